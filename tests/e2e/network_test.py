"""Ferry as the README's "Run Ferry on a network" section runs it: TLS on its one port and tokens with roles, with
the real clients a team uses: gcloud (token through its access-token file), Google's Node.js Pub/Sub client (gRPC
over TLS) and Storage client (JSON API over TLS), the ferry CLI. Each is also refused without the right role."""
import json
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import unittest
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
GCLOUD = shutil.which("gcloud")
TOKENS = {"admin": "net-admin-0123456789abcdef", "viewer": "net-viewer-0123456789abcdef",
          "publisher": "net-publisher-0123456789abc", "subscriber": "net-subscriber-0123456789ab",
          "publisher,subscriber": "net-storage-writer-0123456789"}


def make_certificate(directory):
    """A self-signed certificate for localhost and 127.0.0.1, as an operator would make one for a test."""
    cert, key = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "2", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, capture_output=True)
    return cert, key


class NetworkTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.work = tempfile.mkdtemp(prefix="ferry-net-")
        cls.cert, key = make_certificate(cls.work)
        os.makedirs(os.path.join(cls.work, "netb"))
        cls.daemon = harness.Daemon(project="net-proj", tokens=TOKENS, extra_args=[
            "--tls-cert", cls.cert, "--tls-key", key, "--bucket-root", cls.work]).start()
        cls.https = "https://localhost:%d" % cls.daemon.port
        cls.tls = ssl.create_default_context(cafile=cls.cert)
        cls.call("POST", "/ferry/v1/deploy", TOKENS["admin"], json.dumps(
            {"project": "net-proj", "buckets": [{"name": "netb", "path": os.path.join(cls.work, "netb")}]}))

    @classmethod
    def tearDownClass(cls):
        cls.daemon.close()
        shutil.rmtree(cls.work, ignore_errors=True)

    @classmethod
    def call(cls, method, path, token=None, body=None):
        req = urllib.request.Request(cls.https + path, method=method, data=body.encode() if body else None)
        if body is not None:
            req.add_header("Content-Type", "application/json")
        if token:
            req.add_header("Authorization", "Bearer " + token)
        try:
            with urllib.request.urlopen(req, context=cls.tls, timeout=30) as res:
                return res.status, res.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def test_rest_over_tls_checks_roles(self):
        self.assertEqual(self.call("GET", "/healthz")[0], 200)
        self.assertEqual(self.call("GET", "/v1/projects/net-proj/topics")[0], 401)
        self.assertEqual(self.call("GET", "/v1/projects/net-proj/topics", TOKENS["viewer"])[0], 200)
        # Plain HTTP on a TLS port gets nothing.
        with self.assertRaises(Exception):
            urllib.request.urlopen("http://127.0.0.1:%d/healthz" % self.daemon.port, timeout=10).read()

    def node(self, directory, args, env):
        proc = subprocess.run(["node"] + args, cwd=os.path.join(HERE, directory), env=dict(os.environ, **env),
                              capture_output=True, text=True, timeout=120)
        self.assertEqual(proc.returncode, 0, "%s\n%s" % (proc.stdout, proc.stderr))
        return proc.stdout

    def test_node_pubsub_client_over_tls_with_tokens(self):
        out = self.node("node_pubsub", ["tls_token.js", "roles"], {
            "FERRY_ADDRESS": "localhost:%d" % self.daemon.port, "FERRY_CA": self.cert, "FERRY_PROJECT": "net-proj",
            "FERRY_ADMIN_TOKEN": TOKENS["admin"], "FERRY_PUBLISHER_TOKEN": TOKENS["publisher"],
            "FERRY_SUBSCRIBER_TOKEN": TOKENS["subscriber"]})
        self.assertIn("ok roles", out)

    def test_node_storage_client_over_tls_with_tokens(self):
        out = self.node("node_storage", ["tls_token.js"], {
            "NODE_EXTRA_CA_CERTS": self.cert, "FERRY_ENDPOINT": self.https,
            "FERRY_PUBLISHER_TOKEN": TOKENS["publisher"], "FERRY_SUBSCRIBER_TOKEN": TOKENS["subscriber"]})
        self.assertIn("ok storage", out)

    @unittest.skipIf(GCLOUD is None and os.environ.get("CI") != "true", "gcloud is not installed")
    def test_gcloud_with_a_token_file(self):
        config = tempfile.mkdtemp(prefix="gcloud-config-", dir=self.work)

        def gcloud(token, *args):
            token_file = os.path.join(self.work, "gcloud-token")
            with open(token_file, "w") as f:
                f.write(token)
            env = dict(os.environ, CLOUDSDK_CONFIG=config, CLOUDSDK_CORE_PROJECT="net-proj",
                       CLOUDSDK_AUTH_ACCESS_TOKEN_FILE=token_file,
                       CLOUDSDK_CORE_CUSTOM_CA_CERTS_FILE=self.cert,
                       # Python's requests prefers these to gcloud's own setting when they are set, as on
                       # machines that point every client at one CA bundle.
                       REQUESTS_CA_BUNDLE=self.cert, HTTPLIB2_CA_CERTS=self.cert,
                       CLOUDSDK_API_ENDPOINT_OVERRIDES_PUBSUB=self.https + "/",
                       CLOUDSDK_API_ENDPOINT_OVERRIDES_STORAGE=self.https + "/storage/v1/",
                       CLOUDSDK_CORE_DISABLE_PROMPTS="1", CLOUDSDK_COMPONENT_MANAGER_DISABLE_UPDATE_CHECK="true",
                       CLOUDSDK_CORE_DISABLE_USAGE_REPORTING="true")
            return subprocess.run([GCLOUD] + list(args), env=env, capture_output=True, text=True, timeout=120)

        admin, publisher, subscriber = TOKENS["admin"], TOKENS["publisher"], TOKENS["subscriber"]
        proc = gcloud(admin, "pubsub", "topics", "create", "gc-topic")
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertEqual(gcloud(admin, "pubsub", "subscriptions", "create", "gc-sub", "--topic=gc-topic").returncode, 0)
        refused = gcloud(publisher, "pubsub", "topics", "create", "gc-refused")
        self.assertNotEqual(refused.returncode, 0)
        self.assertIn("does not have the admin role", refused.stderr)
        proc = gcloud(publisher, "pubsub", "topics", "publish", "gc-topic", "--message", "hello")
        self.assertEqual(proc.returncode, 0, proc.stderr)
        refused = gcloud("not-a-token-00000000000", "pubsub", "topics", "publish", "gc-topic", "--message", "x")
        self.assertNotEqual(refused.returncode, 0)
        self.assertIn("bearer token is not valid", refused.stderr)
        proc = gcloud(subscriber, "pubsub", "subscriptions", "pull", "gc-sub", "--auto-ack", "--format=json")
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertEqual([m["message"]["data"] for m in json.loads(proc.stdout)], ["aGVsbG8="])

        src = os.path.join(self.work, "gc.txt")
        with open(src, "w") as f:
            f.write("from gcloud over tls\n")
        # gcloud storage cp reads the destination before it writes: a writer holds both roles, as Cloud
        # Storage's objectAdmin does.
        proc = gcloud(TOKENS["publisher,subscriber"], "storage", "cp", src, "gs://netb/gc/gc.txt")
        self.assertEqual(proc.returncode, 0, proc.stderr)
        proc = gcloud(subscriber, "storage", "cat", "gs://netb/gc/gc.txt")
        self.assertEqual((proc.returncode, proc.stdout), (0, "from gcloud over tls\n"), proc.stderr)
        refused = gcloud(subscriber, "storage", "rm", "gs://netb/gc/gc.txt")
        self.assertNotEqual(refused.returncode, 0)


if __name__ == "__main__":
    harness.FERRY = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
