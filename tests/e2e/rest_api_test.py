"""Pub/Sub REST against a real daemon: bad input gets Google's error shape and the daemon keeps serving; /metrics."""
import os
import socket
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402


class RestApiTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.daemon = harness.Daemon().start()
        cls.c = cls.daemon.client()
        cls.c.create_topic("input")
        cls.c.create_subscription("input-sub", "input")

    @classmethod
    def tearDownClass(cls):
        cls.c.close()
        cls.daemon.close()

    def assertError(self, status, body, http_status, rpc_status):
        self.assertEqual(status, http_status, body)
        self.assertIsInstance(body, dict, body)
        self.assertEqual(body["error"]["code"], http_status)
        self.assertEqual(body["error"]["status"], rpc_status)
        self.assertTrue(body["error"]["message"])

    def assertStillServing(self):
        ids = self.c.publish("input", ["still-alive"])
        got = self.c.pull("input-sub")
        self.assertIn("still-alive", [harness.data_of(r) for r in got])
        self.c.ack("input-sub", [r["ackId"] for r in got])
        self.assertTrue(ids)

    def publish_path(self):
        return "/v1/projects/test-proj/topics/input:publish"

    def test_malformed_json(self):
        status, body = self.c.request("POST", self.publish_path(), raw=b'{"messages": [')
        self.assertError(status, body, 400, "INVALID_ARGUMENT")
        status, body = self.c.request("POST", self.publish_path(), raw=b'[1, 2]')
        self.assertError(status, body, 400, "INVALID_ARGUMENT")
        self.assertStillServing()

    def test_bad_base64(self):
        status, body = self.c.request("POST", self.publish_path(), {"messages": [{"data": "!!not base64!!"}]})
        self.assertError(status, body, 400, "INVALID_ARGUMENT")
        self.assertIn("data", body["error"]["message"])
        self.assertStillServing()

    def test_unknown_field_and_wrong_type(self):
        status, body = self.c.request("POST", self.publish_path(), {"messages": [{"data": "eA==", "bogus": 1}]})
        self.assertError(status, body, 400, "INVALID_ARGUMENT")
        status, body = self.c.request("PUT", "/v1/projects/test-proj/subscriptions/typed",
                                      {"topic": "projects/test-proj/topics/input", "ackDeadlineSeconds": "ten"})
        self.assertError(status, body, 400, "INVALID_ARGUMENT")

    def test_empty_and_oversized_publishes(self):
        status, body = self.c.request("POST", self.publish_path(), {"messages": []})
        self.assertError(status, body, 400, "INVALID_ARGUMENT")
        status, body = self.c.request("POST", self.publish_path(), {"messages": [{}]})
        self.assertError(status, body, 400, "INVALID_ARGUMENT")
        status, body = self.c.request("POST", self.publish_path(), {"messages": [{"data": "eA=="}] * 1001})
        self.assertError(status, body, 400, "INVALID_ARGUMENT")
        # 11 MB of data in one request: over Pub/Sub's 10 MB limit, under the HTTP body limit.
        big = "A" * (11 * 1000 * 1000 // 3 * 4)
        status, body = self.c.request("POST", self.publish_path(), {"messages": [{"data": big}]})
        self.assertError(status, body, 400, "INVALID_ARGUMENT")
        self.assertStillServing()

    def test_body_over_the_http_limit_is_413(self):
        # Answered from the Content-Length alone, before the client sends the body.
        with socket.create_connection(("127.0.0.1", self.daemon.port), timeout=10) as s:
            s.sendall(b"POST /v1/projects/test-proj/topics/input:publish HTTP/1.1\r\nHost: x\r\n"
                      b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n{" % (17 * 1024 * 1024))
            reply = s.recv(4096).decode(errors="replace")
        self.assertTrue(reply.startswith("HTTP/1.1 413"), reply)
        self.assertIn('"code":413', reply)
        self.assertStillServing()

    def test_wrong_methods(self):
        status, body = self.c.request("GET", self.publish_path())
        self.assertError(status, body, 405, "UNIMPLEMENTED")
        status, body = self.c.request("DELETE", "/v1/projects/test-proj/topics")
        self.assertError(status, body, 405, "UNIMPLEMENTED")
        status, body = self.c.request("POST", "/v1/projects/test-proj/topics/input")
        self.assertError(status, body, 405, "UNIMPLEMENTED")
        self.assertStillServing()

    def test_unknown_paths(self):
        for path in ("/nope", "/v1/projects", "/v1/projects/test-proj/widgets/x",
                     "/v1/projects/test-proj/topics/input:explode", "/v2/projects/p/topics"):
            status, body = self.c.request("GET", path)
            self.assertError(status, body, 404, "NOT_FOUND")
        self.assertStillServing()

    def test_malformed_http_gets_400_and_others_keep_working(self):
        with socket.create_connection(("127.0.0.1", self.daemon.port), timeout=10) as s:
            s.sendall(b"THIS IS NOT HTTP\r\n\r\n")
            reply = s.recv(4096).decode(errors="replace")
        self.assertTrue(reply.startswith("HTTP/1.1 400"), reply)
        self.assertIn('"INVALID_ARGUMENT"', reply)
        self.assertStillServing()

    def test_a_stalled_client_does_not_block_others(self):
        stalled = socket.create_connection(("127.0.0.1", self.daemon.port), timeout=10)
        try:
            stalled.sendall(b"POST /v1/projects/test-proj/topics/input:publish HTTP/1.1\r\nContent-Length: 100\r\n\r\n{")
            self.assertStillServing()
        finally:
            stalled.close()

    def test_name_in_body_must_match_path(self):
        status, body = self.c.request("PUT", "/v1/projects/test-proj/topics/one",
                                      {"name": "projects/test-proj/topics/two"})
        self.assertError(status, body, 400, "INVALID_ARGUMENT")

    def test_metrics(self):
        c = self.c
        c.create_topic("metered")
        c.create_subscription("metered-sub", "metered")
        c.publish("metered", ["abc", "defg"])
        got = c.pull("metered-sub", 1)
        c.ack("metered-sub", [got[0]["ackId"]])
        got = c.pull("metered-sub", 1)
        c.nack("metered-sub", [got[0]["ackId"]])
        topic, sub = c.topic("metered"), c.sub("metered-sub")
        self.assertEqual(c.metric("ferry_topic_published_messages_total", topic), 2)
        self.assertEqual(c.metric("ferry_topic_published_bytes_total", topic), 7)
        self.assertEqual(c.metric("ferry_subscription_backlog_messages", sub), 1)
        self.assertEqual(c.metric("ferry_subscription_delivered_messages_total", sub), 2)
        self.assertEqual(c.metric("ferry_subscription_acked_messages_total", sub), 1)
        self.assertEqual(c.metric("ferry_subscription_nacked_messages_total", sub), 1)
        self.assertEqual(c.metric("ferry_subscription_dead_lettered_messages_total", sub), 0)
        self.assertGreaterEqual(c.metric("ferry_subscription_oldest_unacked_message_age_seconds", sub), 0)
        status, text = c.request("GET", "/metrics")
        self.assertIn("# TYPE ferry_subscription_backlog_messages gauge", text)
        self.assertIn("# TYPE ferry_topic_published_messages_total counter", text)


if __name__ == "__main__":
    harness.FERRY = sys.argv.pop(1)
    unittest.main(verbosity=2)
