"""The C++ SDK's instance server speaks the Functions Framework contract: a real function program, real HTTP."""
import base64
import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import unittest

PROGRAM = None


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Instance:
    def __init__(self, target):
        self.port = free_port()
        self.out = tempfile.TemporaryFile()
        env = dict(os.environ, PORT=str(self.port), FUNCTION_TARGET=target, K_SERVICE=target)
        self.proc = subprocess.Popen([PROGRAM], env=env, stdout=self.out, stderr=subprocess.STDOUT)
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("function instance did not start")

    def post(self, body, headers=None, path="/", method="POST"):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        hdrs = {"Content-Type": "application/json"}
        hdrs.update(headers or {})
        conn.request(method, path, body=body if isinstance(body, bytes) else json.dumps(body).encode(), headers=hdrs)
        res = conn.getresponse()
        return res.status, dict(res.getheaders()), res.read().decode()

    def log_lines(self):
        time.sleep(0.05)
        self.out.seek(0)
        return [json.loads(line) for line in self.out.read().decode().splitlines() if line.startswith("{")]

    def close(self):
        self.proc.kill()
        self.proc.wait()
        self.out.close()


def legacy_event(data, attributes=None, attempt=1):
    return {
        "context": {"eventId": "42", "timestamp": "2026-11-28T02:46:47.381Z",
                    "eventType": "google.pubsub.topic.publish",
                    "resource": {"service": "pubsub.googleapis.com", "name": "projects/p/topics/bar",
                                 "type": "type.googleapis.com/google.pubsub.v1.PubsubMessage"}},
        "data": {"@type": "type.googleapis.com/google.pubsub.v1.PubsubMessage",
                 "data": base64.b64encode(data.encode()).decode(), "attributes": attributes or {},
                 "messageId": "42", "publishTime": "2026-11-28T02:46:47.381Z", "deliveryAttempt": attempt},
    }


class SdkTest(unittest.TestCase):
    def test_event_function_is_wrapped_with_started_and_completed(self):
        inst = Instance("greet")
        try:
            status, headers, _ = inst.post(legacy_event('{"name": "ada"}', {"k": "v"}, attempt=2),
                                           {"Function-Execution-Id": "exec-1"})
            self.assertEqual(status, 200)
            self.assertEqual(headers.get("Function-Execution-Id"), "exec-1")
            lines = inst.log_lines()
            messages = [l["message"] for l in lines]
            self.assertTrue(messages[0].startswith("Started greet! Event: "), messages)
            self.assertIn('"data":"eyJuYW1lIjogImFkYSJ9"', messages[0])
            self.assertIn('Context: {"event_id":"42"', messages[0])
            self.assertIn('"execution_id":"exec-1"', messages[0])
            self.assertEqual(messages[1], "greeting ada on attempt 2 for projects/p/topics/bar attrs=1")
            self.assertEqual(messages[2], "Completed greet!")
            self.assertTrue(all(l["execution_id"] == "exec-1" for l in lines))
            self.assertTrue(all(l["severity"] == "INFO" for l in lines))
        finally:
            inst.close()

    def test_exception_is_a_logged_failure(self):
        inst = Instance("explode")
        try:
            status, _, body = inst.post(legacy_event("{}"), {"Function-Execution-Id": "exec-9"})
            self.assertEqual(status, 500)
            self.assertEqual(body, "the database is down")
            errors = [l for l in inst.log_lines() if l["severity"] == "ERROR"]
            self.assertEqual(len(errors), 1)
            self.assertIn("Failed explode: the database is down (execution exec-9)", errors[0]["message"])
            # The instance keeps serving after a failure.
            status, _, _ = inst.post(legacy_event("{}"))
            self.assertEqual(status, 500)
        finally:
            inst.close()

    def test_binary_cloudevent_reaches_an_event_function(self):
        inst = Instance("greet")
        try:
            body = {"message": {"data": base64.b64encode(b'{"name": "grace"}').decode(), "messageId": "7",
                                "publishTime": "2026-11-28T02:46:47.381Z"},
                    "subscription": "projects/p/subscriptions/s"}
            status, _, _ = inst.post(body, {"ce-id": "7", "ce-specversion": "1.0",
                                            "ce-type": "google.cloud.pubsub.topic.v1.messagePublished",
                                            "ce-source": "//pubsub.googleapis.com/projects/p/topics/bar"})
            self.assertEqual(status, 200)
            messages = [l["message"] for l in inst.log_lines()]
            self.assertIn("greeting grace on attempt 1 for //pubsub.googleapis.com/projects/p/topics/bar attrs=0",
                          messages)
        finally:
            inst.close()

    def test_http_function_round_trips_status_headers_and_body(self):
        inst = Instance("echo")
        try:
            status, headers, body = inst.post(b"hello", {"X-Status": "201"}, path="/some/path?a=1", method="PUT")
            self.assertEqual(status, 201)
            self.assertEqual(headers.get("X-Echo-Method"), "PUT")
            self.assertEqual(body, "/some/path?a=1 hello")
        finally:
            inst.close()

    def test_unknown_target_exits_with_one_clear_line(self):
        proc = subprocess.run([PROGRAM], env=dict(os.environ, PORT=str(free_port()), FUNCTION_TARGET="nope"),
                              capture_output=True, text=True, timeout=10)
        self.assertEqual(proc.returncode, 1)
        self.assertEqual(proc.stderr.strip(),
                         'ferry: FUNCTION_TARGET "nope" is not exported by this program (it exports: chaos, crash, '
                         'explode, greet, hog, overlap, sleepy, echo)')


if __name__ == "__main__":
    PROGRAM = sys.argv.pop(1)
    unittest.main(verbosity=2)
