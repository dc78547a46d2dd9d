"""Grafana's dashboards and Prometheus's alerts on a real Prometheus (Debian's): a Ferry under load, with tokens, is
scraped through the shipped scrape settings; `promtool` checks the config, the rules and the /metrics text; every
dashboard panel's query, every template variable and every alert expression is evaluated through Prometheus's HTTP
API and returns data; and the faults the load makes (dead letters, an OOM kill, a function at max_instances) raise
their alerts."""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import unittest
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PROMETHEUS_DIR = os.path.join(REPO, "deploy", "prometheus")
GRAFANA_DIR = os.path.join(REPO, "deploy", "grafana")
TEST_FUNCTIONS = ""  # the ferry_test_functions program (C++, the SDK), from argv
PROJECT = "prom"
ADMIN, VIEWER = "admin-" + "a" * 32, "viewer-" + "v" * 32


def grafana_to_promql(expr):
    """A panel's query as Grafana sends it with every variable at "All" and a 30 s rate interval."""
    return expr.replace("$__rate_interval", "30s").replace("$function", ".*").replace("$subscription", ".*")


def alert_query(expr):
    """An alert expression without its final comparison: the query the threshold is applied to."""
    parts = re.split(r"\s(?:>=|<=|>|<|==|!=)(?:\s+on\s*\([^)]*\))?\s", expr.strip())
    return parts[0]


class PrometheusTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.work = tempfile.mkdtemp(prefix="ferry-prom-")
        cls.daemon = harness.Daemon(project=PROJECT, tokens={"admin": ADMIN, "viewer": VIEWER}).start()
        deploy = os.path.join(cls.work, "ferry.yaml")
        with open(deploy, "w") as f:
            f.write(textwrap.dedent("""\
                project: %(project)s
                topics: [orders, bad, bad-failed, slow]
                functions:
                  - name: greet
                    runtime: command
                    command: [%(fn)s]
                    event_trigger_type: google.pubsub.topic.publish
                    event_trigger_resource: orders
                  - name: explode
                    runtime: command
                    command: [%(fn)s]
                    event_trigger_type: google.pubsub.topic.publish
                    event_trigger_resource: bad
                    event_trigger_retry: true
                    dead_letter_topic: bad-failed
                    max_delivery_attempts: 5
                    min_retry_delay: 1s
                    max_retry_delay: 1s
                  - name: sleepy
                    runtime: command
                    command: [%(fn)s]
                    event_trigger_type: google.pubsub.topic.publish
                    event_trigger_resource: slow
                    max_instances: 1
                  - name: chaos
                    runtime: command
                    command: [%(fn)s]
                    event_trigger_type: google.pubsub.topic.publish
                    event_trigger_resource: chaos-events
                    memory_mb: 64
                schedules:
                  - name: nightly
                    schedule: "0 3 * * *"
                    topic: orders
                    data: '{}'
                """) % {"project": PROJECT, "fn": json.dumps(TEST_FUNCTIONS)})
        cls.daemon.deploy(deploy)
        cls.client = cls.daemon.client()
        cls.client.create_subscription("audit", "orders")
        cls.client.create_subscription("lagging", "orders")  # never pulled: its oldest message ages
        # The load: orders (pulled and acked on "audit"), bad (dead-lettered after 5 attempts), slow (keeps
        # sleepy's one instance busy).
        cls.stop = threading.Event()
        cls.load = threading.Thread(target=cls.run_load, daemon=True)
        cls.load.start()
        # Prometheus, scraping every second with the shipped job (and its token, as the comment there says).
        with open(os.path.join(PROMETHEUS_DIR, "prometheus.yml")) as f:
            shipped = f.read()
        token_file = os.path.join(cls.work, "viewer-token")
        with open(token_file, "w") as f:
            f.write(VIEWER)
        config = shipped.replace("scrape_interval: 15s", "scrape_interval: 1s") \
                        .replace("evaluation_interval: 15s", "evaluation_interval: 1s") \
                        .replace("  - alerts.yml", "  - " + os.path.join(PROMETHEUS_DIR, "alerts.yml")) \
                        .replace("    # authorization:\n    #   credentials_file: /etc/prometheus/ferry-viewer-token",
                                 "    authorization:\n      credentials_file: " + token_file) \
                        .replace("127.0.0.1:8085", "127.0.0.1:%d" % cls.daemon.port)
        assert "credentials_file: " + token_file in config and str(cls.daemon.port) in config, config
        cls.config = os.path.join(cls.work, "prometheus.yml")
        with open(cls.config, "w") as f:
            f.write(config)
        cls.prom_port = harness.free_port()
        cls.prom_log = open(os.path.join(cls.work, "prometheus.log"), "wb")
        cls.prom = subprocess.Popen(
            ["prometheus", "--config.file", cls.config, "--storage.tsdb.path", os.path.join(cls.work, "tsdb"),
             "--web.listen-address", "127.0.0.1:%d" % cls.prom_port], stdout=cls.prom_log, stderr=cls.prom_log)
        harness.wait_for(lambda: cls.get("/-/ready", raw=True) == "ready", timeout=60, what="Prometheus to be ready")
        harness.wait_for(lambda: cls.query("up")[0]["value"][1] == "1" if cls.query("up") else False, timeout=30,
                         what="Prometheus to scrape Ferry")
        # An OOM kill, once Prometheus has seen the counter before it (an increase needs two samples).
        time.sleep(2)
        out = cls.daemon.cli("call", "chaos", "--data", '{"mb": 200}', "--format", "json")
        assert json.loads(out.stdout)["status"] == "oom", out.stdout + out.stderr

    @classmethod
    def run_load(cls):
        client = cls.daemon.client()
        client.token = ADMIN
        while not cls.stop.is_set():
            client.publish("orders", ["{}"])
            client.publish("bad", ["doomed"])
            client.publish("slow", ['{"ms": 1500}'])
            got = client.pull("audit", 100)
            if got:
                client.ack("audit", [m["ackId"] for m in got])
            cls.stop.wait(0.25)
        client.close()

    @classmethod
    def tearDownClass(cls):
        cls.stop.set()
        cls.load.join(timeout=30)
        cls.prom.terminate()
        cls.prom.wait(timeout=30)
        cls.prom_log.close()
        cls.client.close()
        cls.daemon.close()
        shutil.rmtree(cls.work, ignore_errors=True)

    @classmethod
    def get(cls, path, raw=False):
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d%s" % (cls.prom_port, path), timeout=10) as res:
                body = res.read().decode()
        except OSError:
            return None
        return body.strip().lower().split()[-1].strip(".") if raw else json.loads(body)

    @classmethod
    def query(cls, promql):
        res = cls.get("/api/v1/query?" + urllib.parse.urlencode({"query": promql}))
        assert res and res["status"] == "success", "%s: %s" % (promql, res)
        return res["data"]["result"]

    def wait_for_data(self, promql, what):
        deadline = time.time() + 90
        while time.time() < deadline:
            if self.query(promql):
                return
            time.sleep(1)
        self.fail("%s returned no data: %s" % (what, promql))

    def test_promtool_checks_the_config_the_rules_and_the_metrics(self):
        for args in (["check", "config", os.path.join(PROMETHEUS_DIR, "prometheus.yml")],
                     ["check", "rules", os.path.join(PROMETHEUS_DIR, "alerts.yml")]):
            proc = subprocess.run(["promtool"] + args, capture_output=True, text=True)
            self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
        status, _, metrics = harness.http_request(self.daemon.port, "GET", "/metrics",
                                                  headers={"Authorization": "Bearer " + VIEWER})
        self.assertEqual(status, 200)
        metrics = metrics.decode()
        # promtool's linter: naming (units, _total), help text, types; it prints every problem it finds.
        proc = subprocess.run(["promtool", "check", "metrics"], input=metrics, capture_output=True, text=True)
        self.assertEqual((proc.returncode, proc.stdout + proc.stderr), (0, ""))
        for family in re.findall(r"^# TYPE (\S+) counter$", metrics, re.M):
            self.assertTrue(family.endswith("_total"), family)
        for label in set(re.findall(r"[{,]([a-z_]+)=", metrics)):
            self.assertIn(label, {"topic", "subscription", "function", "status", "state", "le", "schedule",
                                  "result"}, "a label outside the bounded set")

    def test_every_dashboard_panel_and_variable_returns_data(self):
        dashboards = sorted(f for f in os.listdir(GRAFANA_DIR) if f.endswith(".json"))
        self.assertEqual(dashboards, ["ferry-functions.json", "ferry-overview.json", "ferry-subscriptions.json"])
        queried = 0
        for name in dashboards:
            with open(os.path.join(GRAFANA_DIR, name)) as f:
                dashboard = json.load(f)
            self.assertEqual(dashboard["__inputs"][0]["pluginId"], "prometheus", name)
            for panel in dashboard["panels"]:
                self.assertEqual(panel["datasource"]["uid"], "${DS_PROMETHEUS}", panel["title"])
                self.assertTrue(panel["targets"], panel["title"])
                for target in panel["targets"]:
                    self.wait_for_data(grafana_to_promql(target["expr"]), "%s / %s" % (name, panel["title"]))
                    queried += 1
            for variable in dashboard["templating"]["list"]:
                metric, label = re.fullmatch(r"label_values\((\w+), (\w+)\)", variable["query"]["query"]).groups()
                res = self.get("/api/v1/label/%s/values?%s" % (label, urllib.parse.urlencode({"match[]": metric})))
                self.assertTrue(res["data"], "variable %s of %s has no values" % (variable["name"], name))
        print("%d panel queries returned data" % queried)

    def test_every_alert_evaluates_and_the_loads_faults_raise_theirs(self):
        rules = self.get("/api/v1/rules")["data"]["groups"]
        alerts = {r["name"]: r for g in rules for r in g["rules"] if r["type"] == "alerting"}
        self.assertEqual(set(alerts), {"FerryOldestUnackedMessageTooOld", "FerryDeadLettersGrowing",
                                       "FerryFunctionErrorRateHigh", "FerryFunctionOutOfMemory",
                                       "FerryFunctionInstancesAtMax"})
        for name, rule in alerts.items():
            self.query(rule["query"])  # evaluates (query() asserts success)
            self.wait_for_data(alert_query(rule["query"]), "the query of alert " + name)
            self.assertEqual(rule.get("health"), "ok", "%s: %s" % (name, rule.get("lastError")))

        def active():
            """Raised alerts by name: the subscriptions or functions each is raised for."""
            raised = {}
            for a in self.get("/api/v1/alerts")["data"]["alerts"]:
                if a["state"] in ("pending", "firing"):
                    labels = a["labels"]
                    raised.setdefault(labels["alertname"], set()).add(
                        labels.get("subscription", labels.get("function", "")))
            return raised
        expected = {"FerryDeadLettersGrowing": "gcf-explode-local-bad",
                    "FerryFunctionOutOfMemory": "functions/chaos",
                    "FerryFunctionInstancesAtMax": "functions/sleepy",
                    "FerryFunctionErrorRateHigh": "functions/explode"}
        deadline = time.time() + 90
        while not set(expected) <= set(active()) and time.time() < deadline:
            time.sleep(1)
        self.assertLessEqual(set(expected), set(active()), "alerts not raised")
        raised = active()
        for name, subject in expected.items():
            self.assertTrue(any(s.endswith(subject) for s in raised[name]), (name, raised[name]))
        # The healthy function raises none.
        for subjects in raised.values():
            self.assertFalse(any(s.endswith("functions/greet") for s in subjects), raised)


if __name__ == "__main__":
    harness.FERRY = os.path.abspath(sys.argv.pop(1))
    TEST_FUNCTIONS = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
