"""Sentry reports: failed executions reach a Sentry receiver as envelopes in the shape Sentry documents
(develop.sentry.dev: the DSN, X-Sentry-Auth, an envelope of a header line, an item header with the payload's length,
and the event). A C++ function that times out, runs out of memory and crashes (what no SDK inside it can report),
reported by `ferry serve --sentry-dsn`; a Python function with its own sentry_dsn that reports itself with Debian's
sentry-sdk, configured only by what Ferry sets in its environment."""
import http.server
import json
import os
import re
import shutil
import sys
import tempfile
import textwrap
import threading
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
TEST_FUNCTIONS = ""  # the ferry_test_functions program (C++, the SDK), from argv
PROJECT = "sentry"


class SentryReceiver:
    """Sentry's ingest endpoints on loopback: checks each request as Sentry would and keeps its events."""

    def __init__(self):
        receiver = self
        self.events = []  # (project id, endpoint, headers, event, envelope header or None)
        self.errors = []
        self.cond = threading.Condition()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                if self.headers.get("content-encoding") == "gzip":
                    import gzip
                    body = gzip.decompress(body)
                try:
                    receiver.accept(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                    self.send_response(200)
                except AssertionError as e:
                    with receiver.cond:
                        receiver.errors.append("%s: %s" % (self.path, e))
                    self.send_response(400)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def dsn(self, project_id, key="feedc0ffee"):
        return "http://%s@127.0.0.1:%d/%d" % (key, self.port, project_id)

    def accept(self, path, headers, body):
        m = re.fullmatch(r"/api/(\d+)/(envelope|store)/", path.split("?")[0])
        assert m, "not an ingest path"
        auth = headers.get("x-sentry-auth", "")
        assert auth.startswith("Sentry "), "no X-Sentry-Auth"
        fields = dict(p.strip().split("=", 1) for p in auth[len("Sentry "):].split(","))
        assert fields.get("sentry_version") == "7" and fields.get("sentry_key"), auth
        envelope_header = None
        if m.group(2) == "store":
            event = json.loads(body)
        else:
            assert headers.get("content-type") == "application/x-sentry-envelope", headers.get("content-type")
            first, rest = body.split(b"\n", 1)
            envelope_header = json.loads(first)
            event = None
            while rest.strip():
                item_line, rest = rest.split(b"\n", 1)
                item = json.loads(item_line)
                if "length" in item:
                    payload, rest = rest[:item["length"]], rest[item["length"]:]
                    assert rest[:1] in (b"\n", b""), "the payload is not as long as its length says"
                    rest = rest[1:]
                else:
                    payload, _, rest = rest.partition(b"\n")
                if item["type"] == "event":
                    event = json.loads(payload)
            if event is None:
                return  # sessions, client reports: not what this test looks at
            assert envelope_header.get("event_id") == event["event_id"], "event ids differ"
        assert re.fullmatch(r"[0-9a-f]{32}", event["event_id"]), event["event_id"]
        assert "timestamp" in event and event.get("platform"), "no timestamp or platform"
        with self.cond:
            self.events.append((int(m.group(1)), m.group(2), headers, event, envelope_header, fields["sentry_key"]))
            self.cond.notify_all()

    def wait_for(self, predicate, what, timeout=30):
        with self.cond:
            if not self.cond.wait_for(lambda: any(predicate(e) for e in self.events), timeout):
                raise AssertionError("no Sentry event %s arrived; got %s; refused: %s" % (
                    what, [e[3].get("exception") for e in self.events], self.errors))
            return next(e for e in self.events if predicate(e))

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class SentryTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.receiver = SentryReceiver()
        cls.daemon = harness.Daemon(project=PROJECT, extra_args=["--sentry-dsn", cls.receiver.dsn(42)]).start()
        cls.work = tempfile.mkdtemp(prefix="ferry-sentry-")
        path = os.path.join(cls.work, "ferry.yaml")
        with open(path, "w") as f:
            f.write(textwrap.dedent("""\
                project: %s
                functions:
                  - name: chaos
                    runtime: command
                    command: [%s]
                    entry_point: chaos
                    event_trigger_type: google.pubsub.topic.publish
                    event_trigger_resource: chaos
                    memory_mb: 64
                    timeout: 2s
                  - name: reporter
                    runtime: python3
                    source_dir: %s
                    entry_point: sentry_reports
                    trigger_http: true
                    sentry_dsn: %s
                """) % (PROJECT, json.dumps(TEST_FUNCTIONS), json.dumps(os.path.join(HERE, "python_function")),
                        cls.receiver.dsn(7, key="pythonkey")))
        cls.daemon.deploy(path)

    @classmethod
    def tearDownClass(cls):
        cls.daemon.close()
        cls.receiver.close()
        shutil.rmtree(cls.work, ignore_errors=True)

    def call(self, name, data):
        proc = self.daemon.cli("call", name, "--data", data, "--format", "json")
        return json.loads(proc.stdout)

    def test_a_timeout_an_oom_kill_and_a_crash_are_reported_with_the_execution(self):
        revision = None
        for data, status, kind in (('{"ms": 4000}', "timeout", "FunctionTimeout"),
                                   ('{"mb": 200}', "oom", "FunctionOutOfMemory"),
                                   ('{"crash": true}', "crash", "FunctionCrash")):
            result = self.call("chaos", data)
            self.assertEqual(result["status"], status, result)
            execution = result["executionId"]
            project_id, endpoint, headers, event, header, key = self.receiver.wait_for(
                lambda e: e[3].get("tags", {}).get("execution_id") == execution, "for execution " + execution)
            self.assertEqual((project_id, endpoint, key), (42, "envelope", "feedc0ffee"))
            self.assertEqual(header["dsn"], self.receiver.dsn(42))
            exception = event["exception"]["values"][0]
            self.assertEqual(exception["type"], kind)
            self.assertEqual(exception["value"], result["error"])
            self.assertEqual(event["tags"]["function"], "chaos")
            self.assertEqual(event["tags"]["trigger"], "call")
            self.assertEqual(event["tags"]["attempt"], "1")
            self.assertEqual(event["level"], "fatal")
            self.assertRegex(event["release"], r"^chaos-[0-9a-f]{12}$")
            if revision:
                self.assertEqual(event["release"], revision, "one deploy, one release")
            revision = event["release"]
            # The execution's log lines, Ferry's own among them, as breadcrumbs and in extra.
            messages = [b["message"] for b in event["breadcrumbs"]["values"]]
            self.assertIn("Function execution started", messages)
            self.assertTrue(any("finished with status: '%s'" % status in m for m in messages), messages)
            self.assertEqual(event["extra"]["last_log_lines"], messages)
        client = self.daemon.client()
        metrics = client.request("GET", "/metrics")[1]
        client.close()
        self.assertRegex(metrics, r'ferry_sentry_reports_total\{result="sent"\} [3-9]')

    def test_a_python_function_reports_itself_with_sentry_sdk_configured_by_ferry(self):
        result = self.call("reporter", "{}")
        self.assertEqual(result["status"], "error", result)
        # The SDK's own report, from the function's environment alone: its DSN, and its revision as release.
        _, _, _, event, _, key = self.receiver.wait_for(
            lambda e: e[5] == "pythonkey" and e[3].get("platform") == "python", "from sentry-sdk")
        exception = event["exception"]["values"][-1]
        self.assertEqual((exception["type"], exception["value"]), ("ValueError", "the order table is locked"))
        self.assertRegex(event["release"], r"^reporter-[0-9a-f]{12}$")
        self.assertEqual(event["tags"]["function_name"], "reporter")
        self.assertEqual(event["tags"]["gcp_project"], PROJECT)
        # And Ferry's report of the same execution, to the function's own DSN, with the same release.
        execution = result["executionId"]
        project_id, _, _, ferry_event, _, key = self.receiver.wait_for(
            lambda e: e[3].get("tags", {}).get("execution_id") == execution, "from Ferry for " + execution)
        self.assertEqual((project_id, key), (7, "pythonkey"))
        self.assertEqual(ferry_event["release"], event["release"])
        self.assertEqual(ferry_event["exception"]["values"][0]["type"], "FunctionError")
        self.assertIn("reported to sentry", ferry_event["extra"]["last_log_lines"])

    def test_a_bad_dsn_is_refused_with_one_clear_line(self):
        bad = harness.Daemon(project=PROJECT, extra_args=["--sentry-dsn", "https://sentry.example.com/1"])
        with self.assertRaises(RuntimeError) as raised:
            bad.start()
        self.assertIn("--sentry-dsn: sentry DSN must be http(s)://KEY@HOST[:PORT]/PROJECT_ID: no public key",
                      str(raised.exception))
        bad.close()


if __name__ == "__main__":
    harness.FERRY = os.path.abspath(sys.argv.pop(1))
    TEST_FUNCTIONS = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
