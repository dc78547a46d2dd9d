"""The nodejs and python3 runtimes, HTTP functions and webhooks against the real daemon: a Python function
(Ferry's runner) and a Node.js function (Google's Functions Framework, npm ci'd at deploy), each on a Pub/Sub
trigger and an HTTP trigger; private functions and tokens; timeouts; signed webhooks."""
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ADMIN_TOKEN = "admin-0123456789abcdef"
TOKEN = "s3cret-invoker-0123456789"
OTHER_TOKEN = "s3cret-publisher-0123456789"
WEBHOOK_SECRET = "hook-secret"


def wait_for(predicate, timeout=60, interval=0.1, what="condition"):
    return harness.wait_for(predicate, timeout, interval, what)


class RuntimesTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.daemon = harness.Daemon(project="rt", tokens={
            "admin": ADMIN_TOKEN, "invoker": TOKEN, "publisher": OTHER_TOKEN}, extra_args=[
            "--webhook-secret", "signed-hooks=" + WEBHOOK_SECRET]).start()
        cls.client = cls.daemon.client()
        cls.work = tempfile.mkdtemp(prefix="ferry-rt-")
        # The Node.js function without node_modules: deploy must npm ci it from the lockfile.
        cls.node_src = os.path.join(cls.work, "node_function")
        shutil.copytree(os.path.join(HERE, "node_function"), cls.node_src,
                        ignore=shutil.ignore_patterns("node_modules"))
        cls.python_src = os.path.join(HERE, "python_function")
        deploy = os.path.join(cls.work, "ferry.yaml")
        with open(deploy, "w") as f:
            f.write(textwrap.dedent("""\
                project: rt
                topics: [py-orders, py-failed, node-orders, hooks, signed-hooks, ff-orders]
                functions:
                  - name: py-events
                    runtime: python3
                    source_dir: %(py)s
                    entry_point: hello_pubsub
                    event_trigger_type: google.pubsub.topic.publish
                    event_trigger_resource: py-orders
                    event_trigger_retry: true
                    dead_letter_topic: py-failed
                    max_delivery_attempts: 5
                    min_retry_delay: 0s
                    max_retry_delay: 0s
                  - name: py-web
                    runtime: python3
                    source_dir: %(py)s
                    entry_point: hello_http
                    trigger_http: true
                    allow_unauthenticated: true
                    timeout: 2
                  - name: py-private
                    runtime: python3
                    source_dir: %(py)s
                    entry_point: hello_http
                    trigger_http: true
                  - name: node-events
                    runtime: nodejs
                    source_dir: %(node)s
                    entry_point: helloPubSub
                    event_trigger_type: google.pubsub.topic.publish
                    event_trigger_resource: node-orders
                  - name: node-web
                    runtime: nodejs
                    source_dir: %(node)s
                    entry_point: helloHttp
                    trigger_http: true
                    allow_unauthenticated: true
                  - name: ff-events
                    runtime: python3
                    source_dir: %(ff)s
                    entry_point: on_message
                    event_trigger_type: google.pubsub.topic.publish
                    event_trigger_resource: ff-orders
                  - name: ff-web
                    runtime: python3
                    source_dir: %(ff)s
                    entry_point: hello
                    trigger_http: true
                    allow_unauthenticated: true
                """ % {"py": json.dumps(cls.python_src), "node": json.dumps(cls.node_src),
                       "ff": json.dumps(os.path.join(HERE, "python_ff_function"))}))
        cls.daemon.deploy(deploy, timeout=600)

    @classmethod
    def tearDownClass(cls):
        cls.client.close()
        cls.daemon.close()
        shutil.rmtree(cls.work, ignore_errors=True)

    def http(self, method, path, body=None, headers=None):
        status, headers, body = harness.http_request(self.daemon.port, method, path, body, headers)
        return status, headers, body.decode()

    def log_messages(self, fn):
        return self.daemon.log_messages(fn)

    def executions(self, fn):
        status, res = self.client.request("GET", "/ferry/v1/projects/rt/functions/%s/executions?limit=100" % fn)
        self.assertEqual(status, 200, res)
        return res["executions"]

    def test_python_pubsub_function_gets_event_and_context_and_its_exception_is_retried(self):
        [mid] = self.client.publish("py-orders", ['{"n": 1}'], {"k": "v"})
        got = wait_for(lambda: [m for m in self.log_messages("py-events") if m.startswith("python got")],
                       what="the python function to run")
        self.assertIn('data={"n": 1}', got[0])
        self.assertIn('attributes={"k": "v"}', got[0])
        self.assertIn("event_id=" + mid, got[0])
        self.assertIn("event_type=google.pubsub.topic.publish", got[0])
        self.assertIn("projects/rt/topics/py-orders", got[0])

        self.client.create_subscription("py-failed-sub", "py-failed")
        self.client.publish("py-orders", ["boom"], {"fail": "yes"})
        dead = wait_for(lambda: self.client.pull("py-failed-sub"), what="the failing message dead-lettered")
        attributes = dead[0]["message"]["attributes"]
        self.assertEqual(attributes["CloudPubSubDeadLetterSourceDeliveryCount"], "5")
        # The execution records are written in batches: wait for the fifth.
        errors = lambda: [e for e in self.executions("py-events") if e["status"] == "error"]
        wait_for(lambda: len(errors()) >= 5, timeout=10, what="five failed executions recorded")
        time.sleep(0.5)
        self.assertEqual(len(errors()), 5)
        # The traceback is in the execution's log.
        self.assertTrue(any("ValueError: python function failed as asked" in m for m in self.log_messages("py-events")))

    def test_python_code_for_googles_runtime_with_functions_framework_decorators_runs_unchanged(self):
        # @functions_framework.cloud_event on a Pub/Sub trigger: the CloudEvent Google's framework makes.
        [mid] = self.client.publish("ff-orders", ["order 7"], {"k": "v"})
        got = wait_for(lambda: [m for m in self.log_messages("ff-events") if m.startswith("cloud_event")],
                       what="the cloud_event function to run")
        self.assertIn("type=google.cloud.pubsub.topic.v1.messagePublished", got[0])
        self.assertIn("source=//pubsub.googleapis.com/projects/rt/topics/ff-orders", got[0])
        self.assertIn("data=order 7", got[0])
        self.assertIn("attributes={'k': 'v'}", got[0])
        self.assertIn("id=" + mid, got[0])
        # @functions_framework.http.
        status, _, body = self.http("GET", "/functions/ff-web?name=ferry")
        self.assertEqual((status, body), (200, "hello ferry"))

    def test_python_http_function_round_trips_and_times_out_with_504(self):
        status, headers, body = self.http("POST", "/functions/py-web/a/b?x=1&y=two", body='{"q": 7}',
                                          headers={"content-type": "application/json", "x-echo": "hi"})
        self.assertEqual(status, 201, body)
        self.assertEqual(headers["content-type"], "application/json")
        self.assertEqual(headers["x-echo"], "hi")
        self.assertIn("function-execution-id", headers)
        self.assertEqual(json.loads(body), {"method": "POST", "path": "/a/b", "args": {"x": "1", "y": "two"},
                                            "json": {"q": 7}, "runtime": "python"})
        # The full resource path works too.
        status, _, body = self.http("GET", "/projects/rt/locations/local/functions/py-web")
        self.assertEqual(status, 201, body)
        self.assertEqual(json.loads(body)["method"], "GET")
        # Only in its own project and region, and only an HTTP function.
        self.assertEqual(self.http("GET", "/projects/rt/locations/elsewhere/functions/py-web")[0], 404)
        self.assertEqual(self.http("GET", "/projects/other/locations/local/functions/py-web")[0], 404)
        self.assertEqual(self.http("GET", "/projects/other/functions/py-web")[0], 404)
        self.assertEqual(self.http("GET", "/functions/py-events")[0], 404)

        started = time.time()
        status, _, body = self.http("GET", "/functions/py-web?sleep=5")
        self.assertEqual(status, 504, body)
        self.assertLess(time.time() - started, 4.5)
        timed_out = lambda: [e for e in self.executions("py-web") if e["status"] == "timeout"]
        wait_for(timed_out, timeout=10, what="the timeout recorded")
        time.sleep(1)
        self.assertEqual(len(timed_out()), 1, "an HTTP function is never retried")
        status, _, _ = self.http("GET", "/functions/py-web")  # a fresh instance serves the next call
        self.assertEqual(status, 201)

    def test_private_function_needs_an_invoker_token(self):
        status, headers, _ = self.http("GET", "/functions/py-private")
        self.assertEqual(status, 401)
        self.assertEqual(headers.get("www-authenticate"), "Bearer")
        status, _, _ = self.http("GET", "/functions/py-private", headers={"authorization": "Bearer wrong"})
        self.assertEqual(status, 401)  # an unknown token authenticates no one (RFC 6750 invalid_token)
        status, _, _ = self.http("GET", "/functions/py-private", headers={"authorization": "Bearer " + OTHER_TOKEN})
        self.assertEqual(status, 403)
        status, _, body = self.http("GET", "/functions/py-private", headers={"authorization": "Bearer " + TOKEN})
        self.assertEqual(status, 201, body)
        status, _, _ = self.http("GET", "/functions/no-such-function")
        self.assertEqual(status, 404)

    def test_node_functions_on_pubsub_and_http(self):
        [mid] = self.client.publish("node-orders", ['{"n": 2}'], {"k": "w"})
        got = wait_for(lambda: [m for m in self.log_messages("node-events") if m.startswith("node got")],
                       what="the node function to run")
        self.assertIn('data={"n": 2}', got[0])
        self.assertIn("eventId=" + mid, got[0])
        status, headers, body = self.http("PUT", "/functions/node-web/x/y?x=42", body='{"a": 1}',
                                          headers={"content-type": "application/json"})
        self.assertEqual(status, 201, body)
        self.assertEqual(headers["x-echo"], "42")
        self.assertEqual(json.loads(body), {"method": "PUT", "path": "/x/y", "body": {"a": 1}, "runtime": "node"})

    def test_instances_of_every_runtime_serve_ferry_only(self):  # security audit L11
        # Warm both, then find their processes: Node's listens on a loopback port any local user could call, the
        # Python runner on a Unix socket in a directory only Ferry's user may enter.
        self.assertEqual(self.http("GET", "/functions/node-web")[0], 201)
        self.assertEqual(self.http("GET", "/functions/py-web")[0], 201)
        ports, sockets = {}, {}
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open("/proc/%s/cmdline" % pid, "rb") as f:
                    cmdline = f.read().decode(errors="replace")
                with open("/proc/%s/environ" % pid, "rb") as f:
                    env = dict(e.split("=", 1) for e in f.read().decode(errors="replace").split("\0") if "=" in e)
            except OSError:
                continue
            if env.get("K_SERVICE") in ("node-web", "py-web") and "PORT" in env:
                ports[env["K_SERVICE"] + (" guard" if "ferry_node_guard" in cmdline else "")] = int(env["PORT"])
            if env.get("K_SERVICE") == "py-web" and "FERRY_UNIX_SOCKET" in env:
                sockets["py-web"] = env["FERRY_UNIX_SOCKET"]
        self.assertIn("node-web guard", ports, "the Node.js instance runs with Ferry's guard preloaded")
        self.assertEqual(set(ports), {"node-web guard"}, "the Python runner has no port")
        self.assertIn("py-web", sockets)
        self.assertEqual(os.stat(os.path.dirname(sockets["py-web"])).st_mode & 0o777, 0o700)
        for name, port in ports.items():
            status, _, _ = harness.http_request(port, "GET", "/", headers={"X-Ferry-Instance-Secret": "a guess"})
            self.assertEqual(status, 403, name)
        status, _ = harness.unix_http_request(sockets["py-web"], "GET", "/",
                                              headers={"X-Ferry-Instance-Secret": "a guess"})
        self.assertEqual(status, 403)

    def test_webhooks_publish_and_check_signatures(self):
        self.client.create_subscription("hooks-sub", "hooks")
        # With tokens on, a webhook without a secret needs a publisher token.
        status, _, _ = self.http("POST", "/webhooks/hooks", body='{"event": "push"}')
        self.assertEqual(status, 401)
        status, _, _ = self.http("POST", "/webhooks/hooks", body='{"event": "push"}',
                                 headers={"authorization": "Bearer " + TOKEN})
        self.assertEqual(status, 403)
        status, _, body = self.http("POST", "/webhooks/hooks", body='{"event": "push"}',
                                    headers={"content-type": "application/json",
                                             "authorization": "Bearer " + OTHER_TOKEN})
        self.assertEqual(status, 202, body)
        mid = json.loads(body)["messageId"]
        [got] = self.client.pull("hooks-sub")
        self.assertEqual(got["message"]["messageId"], mid)
        self.assertEqual(harness.data_of(got), '{"event": "push"}')
        self.assertEqual(got["message"]["attributes"]["content-type"], "application/json")

        self.client.create_subscription("signed-sub", "signed-hooks")
        payload = '{"event": "signed"}'
        status, _, _ = self.http("POST", "/webhooks/signed-hooks", body=payload)
        self.assertEqual(status, 401)
        status, _, _ = self.http("POST", "/webhooks/signed-hooks", body=payload,
                                 headers={"x-hub-signature-256": "sha256=" + "0" * 64})
        self.assertEqual(status, 401)
        import hashlib
        import hmac
        signature = "sha256=" + hmac.new(WEBHOOK_SECRET.encode(), payload.encode(), hashlib.sha256).hexdigest()
        status, _, body = self.http("POST", "/webhooks/signed-hooks", body=payload,
                                    headers={"x-hub-signature-256": signature})
        self.assertEqual(status, 202, body)
        [got] = self.client.pull("signed-sub")
        self.assertEqual(harness.data_of(got), payload)
        status, _, _ = self.http("POST", "/webhooks/no-such-topic", body="x",
                                 headers={"authorization": "Bearer " + OTHER_TOKEN})
        self.assertEqual(status, 404)
        # Ferry's own topics are not for webhooks, whoever asks.
        status, _, _ = self.http("POST", "/webhooks/ferry-storage-anything", body='{"name": "fake"}',
                                 headers={"authorization": "Bearer " + ADMIN_TOKEN})
        self.assertEqual(status, 403)


if __name__ == "__main__":
    harness.FERRY = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
