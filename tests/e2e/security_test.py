"""The security audit's findings (shared/reference/security-audit.md) against a real daemon, each as the behaviour
that protects against it: who may call what, what a browser or a client can make Ferry do, and inputs that once
crashed it, each followed by a check that the daemon still serves."""
import base64
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import textwrap
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402

ADMIN = "admin-token-0123456789abcdef"
VIEWER = "viewer-token-0123456789abcdef"
PUBLISHER = "publisher-token-0123456789abc"
SUBSCRIBER = "subscriber-token-0123456789ab"
INVOKER = "invoker-token-0123456789abcdef"
PYTHON_FUNCTIONS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "python_function")


def raw_request(port, data, timeout=30):
    """Sends raw bytes, returns the raw answer (b"" when the connection closed without one)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        chunks = []
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
                if b"\r\n\r\n" in b"".join(chunks) and b"content-length: 0" in b"".join(chunks).lower():
                    break
        except socket.timeout:
            pass
        return b"".join(chunks)


def status_of(answer):
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else 0


class OpenLoopbackTest(unittest.TestCase):
    """No tokens: Ferry is open, so it must be reachable only from this machine and never from a web page."""

    @classmethod
    def setUpClass(cls):
        cls.work = tempfile.mkdtemp(prefix="ferry-sec-")
        cls.outside = os.path.join(cls.work, "outside")
        os.makedirs(cls.outside)
        with open(os.path.join(cls.outside, "secret.txt"), "w") as f:
            f.write("outside-secret")
        cls.bucket_dir = os.path.join(cls.work, "b1")
        os.makedirs(cls.bucket_dir)
        os.environ["FERRY_TEST_DAEMON_ONLY"] = "daemon-secret"  # instances must not see the daemon's environment
        try:
            cls.daemon = harness.Daemon(project="sec-proj", extra_args=[
                "--push-allow", "127.0.0.1", "--bucket-root", cls.work]).start()
        finally:
            del os.environ["FERRY_TEST_DAEMON_ONLY"]
        cls.c = cls.daemon.client()
        cls.c.create_topic("top")
        cls.c.create_subscription("top-sub", "top")
        deploy = os.path.join(cls.work, "ferry.yaml")
        with open(deploy, "w") as f:
            f.write(textwrap.dedent("""\
                project: sec-proj
                buckets:
                  - {name: bkt1, path: %(bucket)s}
                functions:
                  - name: envy
                    runtime: command
                    command: [/bin/sh, -c, "exec sleep 1000"]
                    env_vars: {SECRET: hunter2}
                    trigger_http: true
                  - {name: noisy, runtime: python3, source_dir: %(py)s, entry_point: noisy_http, trigger_http: true}
                  - name: fds
                    runtime: python3
                    source_dir: %(py)s
                    entry_point: fds_http
                    trigger_http: true
                    env_vars: {MINE: "1"}
                  - name: slow
                    runtime: python3
                    source_dir: %(py)s
                    entry_point: hello_http
                    trigger_http: true
                    max_instances: 1
                    timeout: 4
                  - name: patient
                    runtime: python3
                    source_dir: %(py)s
                    entry_point: hello_http
                    trigger_http: true
                    max_instances: 1
                    timeout: 120
                """ % {"bucket": cls.bucket_dir, "py": PYTHON_FUNCTIONS}))
        cls.daemon.deploy(deploy)

    @classmethod
    def tearDownClass(cls):
        cls.c.close()
        cls.daemon.close()
        shutil.rmtree(cls.work, ignore_errors=True)

    def http(self, method, path, body=None, headers=None):
        status, hdrs, data = harness.http_request(self.daemon.port, method, path, body, headers)
        return status, hdrs, data

    def assertAlive(self):
        status, _, _ = self.http("GET", "/healthz")
        self.assertEqual(status, 200)
        self.c.publish("top", ["alive"])
        got = self.c.pull("top-sub")
        self.assertIn("alive", [harness.data_of(r) for r in got])
        self.c.ack("top-sub", [r["ackId"] for r in got])

    def deploy_body(self, marker):
        return json.dumps({"project": "sec-proj", "functions": [{
            "name": "rce", "runtime": "command", "min_instances": 1, "trigger_http": True,
            "command": ["/bin/sh", "-c", "touch %s; exec sleep 1000" % marker]}]}).encode()

    def test_every_malformed_input_of_the_audit_gets_its_answer(self):  # the audit's malformed-input table
        def b64(n):
            return base64.b64encode(b"x" * n).decode()
        topic = "/v1/projects/sec-proj/topics/top"
        sub = "/v1/projects/sec-proj/subscriptions/top-sub"
        big_attrs = {"k%d" % i: "v" for i in range(101)}
        cases = [
            ("POST", topic + ":publish", b'{"messages": [', 400),
            ("POST", sub + ":pull", b'{"maxMessages":99999999999999999999999}', 400),
            ("POST", sub + ":pull", b'{"maxMessages":1e400}', 400),
            ("POST", sub + ":pull", b'{"maxMessages":1000000,"returnImmediately":true}', 200),
            ("POST", topic + ":publish", b'{"messages": "nope"}', 400),
            ("POST", topic + ":publish", b'{"messages": [{"data": "eA==", "attributes": [1, 2]}]}', 400),
            ("POST", topic + ":publish", b'{"messages": [{"data": "!!!"}]}', 400),
            ("POST", topic + ":publish", json.dumps({"messages": [{"attributes": big_attrs}]}).encode(), 400),
            ("POST", topic + ":publish", json.dumps({"messages": [{"attributes": {"k" * 257: "v"}}]}).encode(), 400),
            ("POST", topic + ":publish", json.dumps({"messages": [{"attributes": {"k": "v" * 1025}}]}).encode(), 400),
            ("POST", topic + ":publish", json.dumps({"messages": [{"data": "eA=="}] * 1001}).encode(), 400),
            ("POST", topic + ":publish", b'{"messages": [{}]}', 400),
            ("POST", topic + ":publish", json.dumps({"messages": [{"data": b64(11 * 1000 * 1000)}]}).encode(), 400),
            # (A body past 16 MiB gets 413 before it is read whole: rest_api_test sends that one on a raw socket.)
            ("POST", sub + ":acknowledge", b'{"ackIds": ["not-an-ack-id"]}', 400),
            ("POST", sub + ":modifyAckDeadline", b'{"ackIds": ["x"], "ackDeadlineSeconds": -5}', 400),
            ("PUT", "/v1/projects/sec-proj/subscriptions/badf",
             b'{"topic": "projects/sec-proj/topics/top", "filter": "attributes.x = "}', 400),
            ("PUT", "/v1/projects/sec-proj/subscriptions/longf", json.dumps(
                {"topic": "projects/sec-proj/topics/top", "filter": 'attributes.x = "%s"' % ("y" * 250)}).encode(), 400),
            ("PUT", "/v1/projects/sec-proj/subscriptions/nots", json.dumps(
                {"topic": "projects/sec-proj/topics/top", "filter": "NOT " * 60 + 'attributes:x'}).encode(), 200),
            ("POST", sub + ":seek", b'{"time": "9999-99-99T00:00:00Z"}', 400),
            ("PUT", "/v1/projects/sec-proj/topics/ret", b'{"messageRetentionDuration": "99999999999999999999s"}', 400),
            ("GET", "/v1/projects/sec-proj/topics?pageSize=99999999999", None, 400),
            ("PUT", "/v1/projects/sec-proj/topics/caf%E9-topic", b"{}", 400),
            ("PUT", "/v1/projects/%FF/topics/abc", b"{}", 400),
            ("POST", sub + ":pull", b'{"maxMessages":' + b"[" * 100000 + b"]" * 100000 + b"}", 400),
            ("POST", "/upload/storage/v1/b/bkt1/o?uploadType=media&name=..%2Fetc%2Fpasswd", b"x", 400),
            ("POST", "/upload/storage/v1/b/bkt1/o?uploadType=media&name=%2Fetc%2Fpasswd", b"x", 400),
            ("POST", "/upload/storage/v1/b/bkt1/o?uploadType=media&name=a%2F..%2F..%2Fetc%2Fpasswd", b"x", 400),
            ("POST", "/upload/storage/v1/b/bkt1/o?uploadType=media&name=.hidden", b"x", 400),
            ("POST", "/upload/storage/v1/b/bkt1/o?uploadType=media&name=x%00y", b"x", 400),
            ("POST", "/upload/storage/v1/b/bkt1/o?uploadType=media&name=" + "n" * 1100, b"x", 400),
        ]
        for method, path, body, want in cases:
            status, _, answer = self.http(method, path, body, {"Content-Type": "application/json"} if body else {})
            self.assertEqual(status, want, (method, path[:80], (body or b"")[:80], answer[:200]))
            if status >= 400 and status != 413:
                error = json.loads(answer)["error"]  # Google's error shape
                self.assertEqual(error["code"], status)
        # Malformed HTTP: answered 400 (413 for sizes), and the connection closed.
        for raw, want in ((b"GARBAGE\r\n\r\n", 400),
                          (b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked"
                           b"\r\n\r\n0\r\n\r\n", 400),
                          (b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 400),
                          (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 70000 + b"\r\n\r\n", 413),
                          (b"POST /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                           b"1100000\r\n", 413)):
            answer = raw_request(self.daemon.port, raw, timeout=10)
            self.assertEqual(status_of(answer), want, raw[:60])
        self.assertAlive()

    def test_cross_site_text_plain_deploy_is_refused(self):  # C2
        marker = os.path.join(self.work, "rce.txt")
        status, _, body = self.http("POST", "/ferry/v1/deploy", self.deploy_body(marker),
                                    {"Content-Type": "text/plain", "Origin": "http://evil.example"})
        self.assertEqual(status, 403, body)
        status, _, body = self.http("POST", "/ferry/v1/deploy", self.deploy_body(marker), {"Content-Type": "text/plain"})
        self.assertEqual(status, 400, body)
        status, _, body = self.http("POST", "/ferry/v1/projects/sec-proj/functions/envy:call", b"{}",
                                    {"Content-Type": "application/x-www-form-urlencoded"})
        self.assertEqual(status, 400, body)
        time.sleep(0.5)
        self.assertFalse(os.path.exists(marker), "the refused deploy ran its command")
        status, _, _ = self.http("GET", "/ferry/v1/projects/sec-proj/functions/rce")
        self.assertEqual(status, 404)

    def test_dns_rebinding_host_is_refused(self):  # C2
        status, _, _ = self.http("GET", "/ferry/v1/projects/sec-proj/functions", headers={"Host": "attacker.example:80"})
        self.assertEqual(status, 403)
        status, _, _ = self.http("GET", "/ferry/v1/projects/sec-proj/functions", headers={"Host": "localhost"})
        self.assertEqual(status, 200)

    def test_push_to_ferry_itself_or_internal_addresses_is_refused_at_creation(self):  # H1, L7
        own = "http://127.0.0.1:%d/ferry/v1/deploy" % self.daemon.port
        for endpoint in (own, "http://localhost:%d/ferry/v1/deploy" % self.daemon.port,
                         "http://169.254.169.254/computeMetadata/v1/", "http://10.0.0.1/x", "http://[::1]:9/x",
                         "https://example.com/x", "ftp://example.com/x"):
            status, body = self.c.request("PUT", "/v1/projects/sec-proj/subscriptions/ssrf", {
                "topic": "projects/sec-proj/topics/top",
                "pushConfig": {"pushEndpoint": endpoint, "noWrapper": {}}})
            self.assertEqual(status, 400, (endpoint, body))
        # Allowed loopback (--push-allow 127.0.0.1) on another port is accepted.
        status, body = self.c.request("PUT", "/v1/projects/sec-proj/subscriptions/ok-push", {
            "topic": "projects/sec-proj/topics/top", "pushConfig": {"pushEndpoint": "http://127.0.0.1:9/x"}})
        self.assertEqual(status, 200, body)
        self.c.request("DELETE", "/v1/projects/sec-proj/subscriptions/ok-push")

    def test_push_attributes_cannot_inject_headers(self):  # M3
        with harness.PushReceiver() as receiver:
            self.c.create_topic("inject")
            self.c.create_subscription("inject-push", "inject", pushConfig={
                "pushEndpoint": receiver.url + "/raw", "noWrapper": {"writeMetadata": True}})
            self.c.publish("inject", ["x"], {
                "x-a": "1\r\nX-Injected: yes\r\nContent-Length: 0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: internal",
                "bad key": "v", "fine": "ok"})
            [req] = receiver.wait_for(1)
            self.assertEqual(req["path"], "/raw")
            self.assertNotIn("x-injected", req["headers"])
            self.assertNotIn("x-a", req["headers"])
            self.assertEqual(req["headers"].get("fine"), "ok")
            time.sleep(0.3)
            self.assertEqual([r["path"] for r in receiver.requests], ["/raw"])

    def test_non_utf8_project_is_refused_and_the_daemon_lives(self):  # H2, L2
        for path in ("/v1/projects/%FF/topics/abc", "/v1/projects/%FF/subscriptions/abc"):
            status, _, body = self.http("PUT", path, b"{}", {"Content-Type": "application/json"})
            self.assertEqual(status, 400, body)
            json.loads(body)  # the error is JSON, whatever the path held
        status, _, body = self.http("GET", "/v1/%FF")
        self.assertIn(status, (400, 404))
        json.loads(body)
        status, _, body = self.http("GET", "/ferry/v1/projects/%FF/functions/x")
        self.assertEqual(status, 400, body)
        self.assertAlive()

    def test_non_utf8_webhook_content_type_is_refused(self):  # H3
        answer = raw_request(self.daemon.port, b"POST /webhooks/top HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                               b"Content-Type: text/plain; charset=\xff\r\nContent-Length: 5\r\n"
                                               b"Connection: close\r\n\r\nhello")
        self.assertEqual(status_of(answer), 400, answer)
        self.assertAlive()

    def test_deeply_nested_json_is_refused(self):  # H4
        deep = b'{"maxMessages":' + b"[" * 100000 + b"]" * 100000 + b"}"
        status, _, body = self.http("POST", "/v1/projects/sec-proj/subscriptions/top-sub:pull", deep,
                                    {"Content-Type": "application/json"})
        self.assertEqual(status, 400, body[:200])
        deploy = b'{"project":"sec-proj","buckets":[{"name":' + b"[" * 200000 + b"]" * 200000 + b',"path":"/x"}]}'
        status, _, _ = self.http("POST", "/ferry/v1/deploy", deploy, {"Content-Type": "application/json"})
        self.assertEqual(status, 400)
        status, _, _ = self.http("PUT", "/v1/projects/sec-proj/topics/deep",
                                 b'{"labels":' + b'{"a":' * 100000 + b'"x"' + b"}" * 100001,
                                 {"Content-Type": "application/json"})
        self.assertEqual(status, 400)
        self.assertAlive()

    def test_bad_numbers_are_400(self):  # L2, L9
        status, _, _ = self.http("POST", "/v1/projects/sec-proj/subscriptions/top-sub:pull", b'{"maxMessages":1e400}',
                                 {"Content-Type": "application/json"})
        self.assertEqual(status, 400)
        status, _, _ = self.http("POST", "/ferry/v1/deploy", b'{"project":[1]}', {"Content-Type": "application/json"})
        self.assertEqual(status, 400)
        body = json.dumps({"project": "sec-proj", "dry_run": True, "schedules": [
            {"name": "sch", "schedule": "* * * * *", "topic": "top", "data": "x", "retry_count": 4294967297}]})
        status, _, _ = self.http("POST", "/ferry/v1/deploy", body.encode(), {"Content-Type": "application/json"})
        self.assertEqual(status, 400)
        body = json.dumps({"project": "sec-proj", "dry_run": True, "schedules": [
            {"name": "sch", "schedule": "* * * * *", "topic": "top", "data": "x", "time_zone": "America"}]})
        status, _, _ = self.http("POST", "/ferry/v1/deploy", body.encode(), {"Content-Type": "application/json"})
        self.assertEqual(status, 400)
        body = json.dumps({"project": "sec-proj", "region": 'a/b"c', "dry_run": True, "functions": [
            {"name": "x", "runtime": "command", "command": ["true"], "region": 'a/b"c'}]})
        status, _, _ = self.http("POST", "/ferry/v1/deploy", body.encode(), {"Content-Type": "application/json"})
        self.assertEqual(status, 400)
        self.assertAlive()

    def test_env_values_are_hidden(self):  # H6
        status, _, body = self.http("GET", "/ferry/v1/projects/sec-proj/functions")
        self.assertEqual(status, 200)
        self.assertNotIn(b"hunter2", body)
        [fn] = [f for f in json.loads(body)["functions"] if f["name"].endswith("/envy")]
        self.assertEqual(list(fn["spec"]["env_vars"]), ["SECRET"])

    def test_non_utf8_object_names_are_refused_and_skipped(self):  # H5
        status, _, _ = self.http("POST", "/upload/storage/v1/b/bkt1/o?uploadType=media&name=caf%E9.txt", b"x",
                                 {"Content-Type": "text/plain"})
        self.assertEqual(status, 400)
        self.assertFalse(any(n.startswith(b"caf") for n in os.listdir(self.bucket_dir.encode())))
        # A file that some other tool dropped in: skipped, and listing still works.
        with open(os.path.join(self.bucket_dir.encode(), b"latin\xe9.txt"), "wb") as f:
            f.write(b"x")
        with open(os.path.join(self.bucket_dir, "plain.txt"), "w") as f:
            f.write("y")
        status, _, body = self.http("GET", "/storage/v1/b/bkt1/o")
        self.assertEqual(status, 200, body)
        names = [o["name"] for o in json.loads(body).get("items", [])]
        self.assertIn("plain.txt", names)
        long_part = "a" * 300
        status, _, _ = self.http("POST", "/upload/storage/v1/b/bkt1/o?uploadType=media&name=" + long_part, b"x",
                                 {"Content-Type": "text/plain"})
        self.assertEqual(status, 400)
        self.assertAlive()

    def test_links_in_a_bucket_lead_nowhere(self):  # M1
        os.symlink(os.path.join(self.outside, "secret.txt"), os.path.join(self.bucket_dir, "link.txt"))
        os.symlink(self.outside, os.path.join(self.bucket_dir, "linkdir"))
        status, _, body = self.http("GET", "/storage/v1/b/bkt1/o/link.txt?alt=media")
        self.assertEqual(status, 404, body)
        self.assertNotIn(b"outside-secret", body)
        status, _, _ = self.http("GET", "/storage/v1/b/bkt1/o/linkdir%2Fsecret.txt?alt=media")
        self.assertNotEqual(status, 200)
        status, _, _ = self.http("POST", "/upload/storage/v1/b/bkt1/o?uploadType=media&name=linkdir/planted.txt",
                                 b"x", {"Content-Type": "text/plain"})
        self.assertNotEqual(status, 200)
        status, _, _ = self.http("DELETE", "/storage/v1/b/bkt1/o/linkdir%2Fsecret.txt")
        self.assertNotEqual(status, 204)
        self.assertEqual(sorted(os.listdir(self.outside)), ["secret.txt"])
        status, _, body = self.http("GET", "/storage/v1/b/bkt1/o")
        names = [o["name"] for o in json.loads(body).get("items", [])]
        self.assertNotIn("link.txt", names)
        self.assertFalse([n for n in names if n.startswith("linkdir")])

    def test_bucket_outside_the_roots_is_refused(self):  # M2
        body = json.dumps({"project": "sec-proj", "buckets": [{"name": "etcb", "path": "/etc"}]})
        status, _, answer = self.http("POST", "/ferry/v1/deploy", body.encode(), {"Content-Type": "application/json"})
        self.assertEqual(status, 403, answer)
        status, _, _ = self.http("GET", "/storage/v1/b/etcb/o/passwd?alt=media")
        self.assertEqual(status, 404)

    def test_another_projects_bucket_is_refused(self):  # L3
        body = json.dumps({"project": "other-proj", "buckets": [{"name": "bkt1", "path": self.bucket_dir}]})
        status, _, answer = self.http("POST", "/ferry/v1/deploy", body.encode(), {"Content-Type": "application/json"})
        self.assertEqual(status, 409, answer)

    def test_links_come_from_a_known_host(self):  # L4
        status, headers, _ = self.http("POST", "/upload/storage/v1/b/bkt1/o?uploadType=resumable&name=r.txt", b"{}",
                                       {"Content-Type": "application/json", "Host": "attacker.example"})
        # A name nobody allowed is refused outright without tokens (DNS rebinding)...
        self.assertEqual(status, 403)
        status, headers, _ = self.http("POST", "/upload/storage/v1/b/bkt1/o?uploadType=resumable&name=r.txt", b"{}",
                                       {"Content-Type": "application/json"})
        self.assertEqual(status, 200)
        self.assertTrue(headers["location"].startswith("http://127.0.0.1:%d/" % self.daemon.port),
                        headers["location"])
        harness.http_request(self.daemon.port, "DELETE", headers["location"][headers["location"].index("/upload/"):])

    def test_webhooks_cannot_reach_internal_topics(self):  # L5
        status, _, _ = self.http("POST", "/webhooks/ferry-storage-bkt1", b'{"name":"fake"}')
        self.assertEqual(status, 403)

    def test_ranges_are_read_from_disk_and_checked(self):  # M8, L9
        with open(os.path.join(self.bucket_dir, "big.bin"), "wb") as f:
            f.write(b"0123456789" * 100000)
        path = "/storage/v1/b/bkt1/o/big.bin?alt=media"
        harness.wait_for(lambda: self.http("GET", "/storage/v1/b/bkt1/o/big.bin")[0] == 200, what="big.bin")
        status, headers, body = self.http("GET", path, headers={"Range": "bytes=5-7"})
        self.assertEqual((status, body), (206, b"567"))
        self.assertEqual(headers["content-range"], "bytes 5-7/1000000")
        status, _, body = self.http("GET", path, headers={"Range": "bytes=-3"})
        self.assertEqual((status, body), (206, b"789"))
        status, _, body = self.http("GET", path)
        self.assertEqual((status, len(body)), (200, 1000000))
        for bad in ("bytes=--9223372036854775808", "bytes=99999999999999999999-", "bytes=7-5", "bytes=2000000-"):
            status, _, _ = self.http("GET", path, headers={"Range": bad})
            self.assertEqual(status, 416, bad)

    def test_resumable_uploads_are_bounded(self):  # H8
        locations = []
        try:
            for i in range(40):
                status, headers, _ = self.http(
                    "POST", "/upload/storage/v1/b/bkt1/o?uploadType=resumable&name=many%d.bin" % i, b"{}",
                    {"Content-Type": "application/json"})
                if status != 200:
                    self.assertEqual(status, 429)
                    break
                locations.append(headers["location"][headers["location"].index("/upload/"):])
            self.assertLessEqual(len(locations), 16)
            self.assertGreater(len(locations), 0)
            # Chunks go to disk, not memory: the spool file grows in the bucket's directory.
            status, _, _ = self.http("PUT", locations[0], b"x" * 1000, {"Content-Range": "bytes 0-999/*"})
            self.assertEqual(status, 308)
            spooled = [n for n in os.listdir(self.bucket_dir) if n.startswith(".ferry-upload-")]
            self.assertTrue(any(os.path.getsize(os.path.join(self.bucket_dir, n)) == 1000 for n in spooled))
        finally:
            for loc in locations:
                harness.http_request(self.daemon.port, "DELETE", loc)
        self.assertFalse([n for n in os.listdir(self.bucket_dir) if n.startswith(".ferry-upload-")],
                         "a cancelled upload left its spool file")

    def test_ferry_cp_uploads_a_file_past_the_body_limit(self):  # L10
        src = os.path.join(self.work, "17m.bin")
        with open(src, "wb") as f:
            f.write(os.urandom(17 * 1024 * 1024))
        env = dict(os.environ, FERRY_ENDPOINT=self.daemon.endpoint)
        proc = subprocess.run([harness.FERRY, "cp", src, "gs://bkt1/big/17m.bin"], env=env, capture_output=True,
                              text=True, timeout=120)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        with open(src, "rb") as a, open(os.path.join(self.bucket_dir, "big", "17m.bin"), "rb") as b:
            self.assertEqual(a.read(), b.read())
        proc = subprocess.run([harness.FERRY, "cp", src, "gs://bkt1/../escape.bin"], env=env, capture_output=True,
                              text=True, timeout=120)
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn("Invalid object name", proc.stderr)

    def test_multipart_with_many_parts_is_refused(self):  # M4
        body = b"--b\n\n\n" * 200000
        status, _, _ = self.http("POST", "/upload/storage/v1/b/nobucket/o?uploadType=multipart", body,
                                 {"Content-Type": "multipart/related; boundary=b"})
        self.assertEqual(status, 400)
        self.assertAlive()

    def test_function_output_is_capped_and_made_utf8(self):  # M10
        status, _, body = self.http("GET", "/functions/noisy")
        self.assertEqual(status, 200, body)

        def lines():
            status, _, body = self.http("GET", "/ferry/v1/projects/sec-proj/functions/noisy/logs?limit=1000")
            self.assertEqual(status, 200, body[:300])
            return [e["message"] for e in json.loads(body)["entries"]]
        # The pieces of the long line are logged one record at a time, so wait for all of them.
        def long_line():
            pieces = [l for l in lines() if l.startswith("aaa")]
            return pieces if sum(len(l) for l in pieces) >= 200000 else None
        got = harness.wait_for(long_line, what="every piece of the long line")
        self.assertIn("caf\ufffd", lines())
        self.assertTrue(all(len(l.encode()) <= 65536 for l in lines()))
        self.assertEqual(sum(len(l) for l in got), 200000, "the long line is split, not lost")

    def test_instances_inherit_no_descriptors_and_no_environment(self):  # M5
        status, _, body = self.http("GET", "/functions/fds")
        self.assertEqual(status, 200, body)
        seen = json.loads(body)
        self.assertIn("MINE", seen["env"])
        self.assertNotIn("FERRY_TEST_DAEMON_ONLY", seen["env"])
        daemon_sockets = set()
        for fd in os.listdir("/proc/%d/fd" % self.daemon.proc.pid):
            try:
                target = os.readlink("/proc/%d/fd/%s" % (self.daemon.proc.pid, fd))
            except OSError:
                continue
            if target.startswith("socket:"):
                daemon_sockets.add(target)
        shared = [t for t in seen["fds"].values() if t in daemon_sockets]
        self.assertEqual(shared, [], "the instance holds the daemon's sockets")
        # What it does get: Cloud Functions' environment, which libraries such as Sentry's GCP integration read.
        contract = seen["contract"]
        self.assertTrue(contract.pop("K_REVISION").startswith("fds-"))
        self.assertEqual(contract, {
            "FUNCTION_NAME": "fds", "FUNCTION_REGION": "local", "GCP_PROJECT": "sec-proj", "ENTRY_POINT": "fds_http",
            "FUNCTION_TIMEOUT_SEC": "60", "FUNCTION_MEMORY_MB": "256",
            "FUNCTION_IDENTITY": "sec-proj@appspot.gserviceaccount.com", "K_SERVICE": "fds",
            "FUNCTION_TARGET": "fds_http", "FUNCTION_SIGNATURE_TYPE": "http"})

    def test_instances_serve_ferry_only(self):  # L11
        status, _, body = self.http("GET", "/functions/fds", headers={"X-Ferry-Instance-Secret": "guess"})
        self.assertEqual(status, 200, body)
        seen = json.loads(body)
        self.assertNotIn("x-ferry-instance-secret", seen["headers"])  # Ferry's, not shown to the function
        # The Python runner listens on a Unix socket in a directory only Ferry's user may enter, not on a port.
        self.assertIsNone(seen["port"])
        self.assertEqual(os.stat(os.path.dirname(seen["unix_socket"])).st_mode & 0o777, 0o700)
        # Around Ferry, straight to the instance's socket (as Ferry's user): refused.
        status, _ = harness.unix_http_request(seen["unix_socket"], "GET", "/")
        self.assertEqual(status, 403)
        status, _ = harness.unix_http_request(seen["unix_socket"], "GET", "/", headers={"X-Ferry-Instance-Secret": "x"})
        self.assertEqual(status, 403)

    def test_unknown_method_reaches_the_function_without_killing_it(self):  # L1
        answer = raw_request(self.daemon.port, b"FOO /functions/fds HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                               b"Connection: close\r\n\r\n")
        self.assertNotEqual(status_of(answer), 500, answer[:300])
        status, _, _ = self.http("GET", "/functions/fds")
        self.assertEqual(status, 200)

    def test_slow_function_calls_leave_the_api_answering(self):  # H9
        import threading
        results = []

        def call():
            try:
                status, _, _ = harness.http_request(self.daemon.port, "GET", "/functions/slow?sleep=3")
                results.append(status)
            except Exception as e:  # noqa: BLE001
                results.append(repr(e))
        threads = [threading.Thread(target=call) for _ in range(40)]
        for t in threads:
            t.start()
        time.sleep(1)
        # While 40 calls wait for the one instance, the rest of Ferry answers, each within a few seconds.
        for path in ("/healthz", "/v1/projects/sec-proj/topics", "/ferry/v1/projects/sec-proj/functions"):
            conn = __import__("http.client").client.HTTPConnection("127.0.0.1", self.daemon.port, timeout=5)
            conn.request("GET", path)
            self.assertEqual(conn.getresponse().status, 200, path)
            conn.close()
        for t in threads:
            t.join(30)
        self.assertIn(201, results)
        self.assertIn(429, results, "calls beyond the queue or the timeout are refused, not held")
        self.assertTrue(all(r in (201, 429) for r in results), results)
        self.assertAlive()

    def test_calls_whose_caller_left_leave_the_queue(self):  # H9
        import threading
        status, _, _ = self.http("GET", "/functions/patient")  # its instance is up
        self.assertEqual(status, 201)

        def impatient():
            try:
                conn = __import__("http.client").client.HTTPConnection("127.0.0.1", self.daemon.port, timeout=1)
                conn.request("GET", "/functions/patient?sleep=2")
                conn.getresponse().read()
            except OSError:
                pass  # gave up after a second, as intended
        threads = [threading.Thread(target=impatient) for _ in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        # 19 of them were queued behind the one the instance took (2 s). Had they stayed queued after their
        # callers left, the instance would serve them for 38 s more (the function's timeout is 120 s); they left,
        # so a new call is served once that one call ends.
        conn = __import__("http.client").client.HTTPConnection("127.0.0.1", self.daemon.port, timeout=15)
        conn.request("GET", "/functions/patient")
        self.assertEqual(conn.getresponse().status, 201)
        conn.close()

    def threads(self):
        with open("/proc/%d/status" % self.daemon.proc.pid) as f:
            return int([l for l in f if l.startswith("Threads:")][0].split()[1])

    def test_push_subscriptions_and_triggers_run_on_bounded_threads(self):  # M6
        before = self.threads()
        with harness.PushReceiver() as receiver:
            self.c.create_topic("fanout")
            for i in range(40):
                self.c.create_subscription("fanout-push-%d" % i, "fanout",
                                           pushConfig={"pushEndpoint": receiver.url + "/p%d" % i})
            time.sleep(1.5)  # the push manager has read them all
            self.c.publish("fanout", ["to all"])
            got = receiver.wait_for(40, timeout=30)
            self.assertEqual(sorted(r["path"] for r in got), sorted("/p%d" % i for i in range(40)))
            self.assertLess(self.threads() - before, 20, "a thread per push subscription")
            for i in range(40):
                self.c.request("DELETE", "/v1/projects/sec-proj/subscriptions/fanout-push-%d" % i)
        body = json.dumps({"project": "sec-proj", "topics": ["wide"], "functions": [{
            "name": "wide", "runtime": "python3", "source_dir": PYTHON_FUNCTIONS, "entry_point": "hello_pubsub",
            "event_trigger_type": "google.pubsub.topic.publish", "event_trigger_resource": "wide",
            "max_instances": 100, "concurrency": 100}], "buckets": [{"name": "bkt1", "path": self.bucket_dir}]})
        before = self.threads()
        status, _, answer = self.http("POST", "/ferry/v1/deploy", body.encode(), {"Content-Type": "application/json"})
        self.assertEqual(status, 200, answer)
        try:
            self.assertLess(self.threads() - before, 100, "a thread per max_instances x concurrency slot")
        finally:
            # Back to the class's functions.
            self.daemon.deploy(os.path.join(self.work, "ferry.yaml"))

    def test_data_directory_is_private(self):  # M11
        mode = stat.S_IMODE(os.stat(self.daemon.data_dir).st_mode)
        self.assertEqual(mode, 0o700)
        for name in os.listdir(self.daemon.data_dir):
            if name.startswith("ferry.db") or name.startswith("executions.db"):
                self.assertEqual(stat.S_IMODE(os.stat(os.path.join(self.daemon.data_dir, name)).st_mode) & 0o077, 0,
                                 name)


class TokensTest(unittest.TestCase):
    """Tokens with roles: every surface checks the role its call needs."""

    @classmethod
    def setUpClass(cls):
        cls.work = tempfile.mkdtemp(prefix="ferry-sec-tok-")
        cls.daemon = harness.Daemon(project="tok-proj", tokens={
            "admin": ADMIN, "viewer": VIEWER, "publisher": PUBLISHER, "subscriber": SUBSCRIBER,
            "invoker": INVOKER}, extra_args=["--bucket-root", cls.work]).start()
        cls.admin = cls.daemon.client()
        cls.admin.create_topic("top")
        cls.admin.create_subscription("top-sub", "top")
        os.makedirs(os.path.join(cls.work, "b"))
        deploy = os.path.join(cls.work, "ferry.yaml")
        with open(deploy, "w") as f:
            f.write(textwrap.dedent("""\
                project: tok-proj
                buckets:
                  - {name: tokb, path: %s/b}
                functions:
                  - name: private-fn
                    runtime: python3
                    source_dir: %s
                    entry_point: hello_http
                    trigger_http: true
                """ % (cls.work, PYTHON_FUNCTIONS)))
        cls.daemon.deploy(deploy)

    @classmethod
    def tearDownClass(cls):
        cls.admin.close()
        cls.daemon.close()
        shutil.rmtree(cls.work, ignore_errors=True)

    def call(self, method, path, token=None, body=None, ctype="application/json"):
        headers = {"Content-Type": ctype} if ctype else {}
        if token:
            headers["Authorization"] = "Bearer " + token
        status, _, data = harness.http_request(self.daemon.port, method, path, body, headers)
        return status, data

    def test_admin_api_needs_admin_or_viewer(self):  # C1, H6
        deploy = json.dumps({"project": "tok-proj", "dry_run": True}).encode()
        self.assertEqual(self.call("POST", "/ferry/v1/deploy", None, deploy)[0], 401)
        self.assertEqual(self.call("POST", "/ferry/v1/deploy", VIEWER, deploy)[0], 403)
        self.assertEqual(self.call("POST", "/ferry/v1/deploy", ADMIN, deploy)[0], 200)
        self.assertEqual(self.call("DELETE", "/ferry/v1/projects/tok-proj/functions/private-fn", None)[0], 401)
        self.assertEqual(self.call("DELETE", "/ferry/v1/projects/tok-proj/functions/private-fn", VIEWER)[0], 403)
        self.assertEqual(self.call("GET", "/ferry/v1/projects/tok-proj/functions", None)[0], 401)
        self.assertEqual(self.call("GET", "/ferry/v1/projects/tok-proj/functions", VIEWER)[0], 200)
        self.assertEqual(self.call("GET", "/ferry/v1/projects/tok-proj/functions/private-fn/logs", PUBLISHER)[0], 403)

    def test_call_needs_invoker(self):  # H7
        path = "/ferry/v1/projects/tok-proj/functions/private-fn:call"
        self.assertEqual(self.call("POST", path, None, b"{}")[0], 401)
        self.assertEqual(self.call("POST", path, VIEWER, b"{}")[0], 403)
        status, body = self.call("POST", path, INVOKER, b"{}")
        self.assertEqual(status, 200, body)
        self.assertEqual(json.loads(body)["status"], "ok", body)
        # The function's own URL: private, so the invoker token is needed there too.
        self.assertEqual(self.call("GET", "/functions/private-fn", None)[0], 401)
        self.assertEqual(self.call("GET", "/functions/private-fn", INVOKER)[0], 201)

    def test_pubsub_rest_checks_roles(self):  # C1
        publish = json.dumps({"messages": [{"data": "eA=="}]}).encode()
        path = "/v1/projects/tok-proj/topics/top:publish"
        self.assertEqual(self.call("POST", path, None, publish)[0], 401)
        self.assertEqual(self.call("POST", path, "not-a-token-at-all-000000", publish)[0], 401)
        self.assertEqual(self.call("POST", path, SUBSCRIBER, publish)[0], 403)
        self.assertEqual(self.call("POST", path, PUBLISHER, publish)[0], 200)
        pull = json.dumps({"maxMessages": 10, "returnImmediately": True}).encode()
        pull_path = "/v1/projects/tok-proj/subscriptions/top-sub:pull"
        self.assertEqual(self.call("POST", pull_path, PUBLISHER, pull)[0], 403)
        status, body = self.call("POST", pull_path, SUBSCRIBER, pull)
        self.assertEqual(status, 200)
        self.assertEqual(self.call("PUT", "/v1/projects/tok-proj/topics/new", PUBLISHER, b"{}")[0], 403)
        self.assertEqual(self.call("GET", "/v1/projects/tok-proj/topics", VIEWER)[0], 200)
        self.assertEqual(self.call("GET", "/v1/projects/tok-proj/topics", None)[0], 401)

    def test_storage_metrics_and_webhooks_check_roles(self):  # C1
        self.assertEqual(self.call("GET", "/storage/v1/b/tokb/o", None)[0], 401)
        self.assertEqual(self.call("GET", "/storage/v1/b/tokb/o", SUBSCRIBER)[0], 200)
        upload = "/upload/storage/v1/b/tokb/o?uploadType=media&name=a.txt"
        self.assertEqual(self.call("POST", upload, SUBSCRIBER, b"x", "text/plain")[0], 403)
        self.assertEqual(self.call("POST", upload, PUBLISHER, b"x", "text/plain")[0], 200)
        self.assertEqual(self.call("GET", "/metrics", None)[0], 401)
        self.assertEqual(self.call("GET", "/metrics", VIEWER)[0], 200)
        self.assertEqual(self.call("GET", "/healthz", None)[0], 200)
        self.assertEqual(self.call("POST", "/webhooks/top", None, b"{}")[0], 401)
        self.assertEqual(self.call("POST", "/webhooks/top", PUBLISHER, b"{}")[0], 202)

    def test_the_rest_of_the_surfaces_check_their_roles_both_ways(self):  # C1
        # Any token reads the daemon's info (the CLI asks it for the default project).
        self.assertEqual(self.call("GET", "/ferry/v1/info", None)[0], 401)
        self.assertEqual(self.call("GET", "/ferry/v1/info", PUBLISHER)[0], 200)
        # Schedule actions are an admin's: a viewer is refused; an admin passes the guard (no such job: 404).
        self.assertEqual(self.call("POST", "/ferry/v1/projects/tok-proj/jobs/nojob:run", VIEWER, b"{}")[0], 403)
        self.assertEqual(self.call("POST", "/ferry/v1/projects/tok-proj/jobs/nojob:run", ADMIN, b"{}")[0], 404)
        # Acknowledge, modifyAckDeadline and seek are a subscriber's.
        sub = "/v1/projects/tok-proj/subscriptions/top-sub"
        for verb, body in ((":acknowledge", {"ackIds": ["x"]}), (":modifyAckDeadline", {"ackIds": ["x"],
                           "ackDeadlineSeconds": 10}), (":seek", {"time": "2026-01-01T00:00:00Z"})):
            self.assertEqual(self.call("POST", sub + verb, PUBLISHER, json.dumps(body).encode())[0], 403, verb)
            self.assertNotIn(self.call("POST", sub + verb, SUBSCRIBER, json.dumps(body).encode())[0], (401, 403), verb)
        # Deleting an object is a storage write.
        upload = "/upload/storage/v1/b/tokb/o?uploadType=media&name=del.txt"
        self.assertEqual(self.call("POST", upload, PUBLISHER, b"x", "text/plain")[0], 200)
        self.assertEqual(self.call("DELETE", "/storage/v1/b/tokb/o/del.txt", SUBSCRIBER, ctype=None)[0], 403)
        self.assertEqual(self.call("DELETE", "/storage/v1/b/tokb/o/del.txt", PUBLISHER, ctype=None)[0], 204)
        # A private function by its full name, as by its short one.
        path = "/projects/tok-proj/locations/local/functions/private-fn"
        self.assertEqual(self.call("GET", path, None, ctype=None)[0], 401)
        self.assertEqual(self.call("GET", path, VIEWER, ctype=None)[0], 403)
        self.assertEqual(self.call("GET", path, INVOKER, ctype=None)[0], 201)

    def test_any_host_name_works_with_tokens(self):
        status, _, _ = harness.http_request(self.daemon.port, "GET", "/v1/projects/tok-proj/topics",
                                            headers={"Host": "ferry.example.com", "Authorization": "Bearer " + VIEWER})
        self.assertEqual(status, 200)

    def test_cli_sends_its_token(self):
        env = dict(os.environ, FERRY_ENDPOINT=self.daemon.endpoint)
        env.pop("FERRY_TOKEN", None)
        proc = subprocess.run([harness.FERRY, "topics", "list"], env=env, capture_output=True, text=True)
        self.assertNotEqual(proc.returncode, 0)
        token_file = os.path.join(self.work, "viewer.token")
        with open(token_file, "w") as f:
            f.write(VIEWER + "\n")
        proc = subprocess.run([harness.FERRY, "--token-file", token_file, "topics", "list"], env=env,
                              capture_output=True, text=True)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertIn("top", proc.stdout)


class BindTest(unittest.TestCase):
    def test_non_loopback_without_tokens_is_refused(self):  # C1
        data_dir = tempfile.mkdtemp(prefix="ferry-sec-bind-")
        try:
            proc = subprocess.run([harness.FERRY, "serve", "--data-dir", data_dir, "--host", "0.0.0.0", "--port", "0"],
                                  capture_output=True, text=True, timeout=30)
            self.assertEqual(proc.returncode, 1)
            lines = [l for l in proc.stderr.splitlines() if l.strip()]
            self.assertEqual(len(lines), 1, proc.stderr)
            self.assertIn("without tokens", lines[0])
        finally:
            shutil.rmtree(data_dir, ignore_errors=True)

    def test_tokens_come_from_the_environment(self):  # M11
        daemon = harness.Daemon(project="env-proj")
        os.environ["FERRY_TOKENS"] = "admin=" + ADMIN
        try:
            daemon.start()
            status, _, _ = harness.http_request(daemon.port, "GET", "/v1/projects/env-proj/topics")
            self.assertEqual(status, 401)
            status, _, _ = harness.http_request(daemon.port, "GET", "/v1/projects/env-proj/topics",
                                                headers={"Authorization": "Bearer " + ADMIN})
            self.assertEqual(status, 200)
            with open("/proc/%d/cmdline" % daemon.proc.pid, "rb") as f:
                self.assertNotIn(ADMIN.encode(), f.read())
        finally:
            del os.environ["FERRY_TOKENS"]
            daemon.close()


if __name__ == "__main__":
    harness.FERRY = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
