"""The web console in a real browser: Debian's Chromium driven by playwright-core (tests/e2e/console/scenario.js).
This starts Ferry with tokens and what the scenario needs (a Python function that fails until fixed, with a
dead-letter topic; a plain subscription to peek at; a schedule; a bucket), runs the scenario, and keeps its
screenshots of every page in FERRY_ARTIFACTS/console (default build/artifacts/console)."""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
SCENARIO_DIR = os.path.join(HERE, "console")
ADMIN, VIEWER = "console-admin-" + "a" * 24, "console-viewer-" + "v" * 24
DEPLOY = """\
project: console
topics: [work, work-failed, ticks]
buckets:
  - {name: uploads, path: %(bucket)s}
functions:
  - name: worker
    runtime: python3
    source_dir: %(source)s
    entry_point: fail_until_fixed
    event_trigger_type: google.pubsub.topic.publish
    event_trigger_resource: work
    event_trigger_retry: true
    dead_letter_topic: work-failed
    max_delivery_attempts: 5
    min_retry_delay: 1s
    max_retry_delay: 1s
    env_vars: {FIXED: "%(fixed)s", DATABASE_PASSWORD: "not-shown"}
schedules:
  - name: nightly
    schedule: "0 3 * * *"
    time_zone: Europe/Amsterdam
    topic: ticks
    data: '{"job": "nightly"}'
"""


class ConsoleTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not os.path.isdir(os.path.join(SCENARIO_DIR, "node_modules", "playwright-core")):
            subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=SCENARIO_DIR, check=True,
                           capture_output=True, timeout=300)
        cls.work = tempfile.mkdtemp(prefix="ferry-console-")
        cls.daemon = harness.Daemon(project="console", tokens={"admin": ADMIN, "viewer": VIEWER}).start()
        cls.deploy_files = {}
        for fixed in ("0", "1"):
            path = os.path.join(cls.work, "ferry-%s.yaml" % fixed)
            with open(path, "w") as f:
                f.write(DEPLOY % {"bucket": json.dumps(os.path.join(cls.work, "uploads")),
                                  "source": json.dumps(os.path.join(HERE, "python_function")), "fixed": fixed})
            cls.deploy_files[fixed] = path
        os.makedirs(os.path.join(cls.work, "uploads"))
        cls.daemon.deploy(cls.deploy_files["0"])
        client = cls.daemon.client()
        client.create_subscription("audit", "work")
        client.close()

    @classmethod
    def tearDownClass(cls):
        cls.daemon.close()
        shutil.rmtree(cls.work, ignore_errors=True)

    def test_fail_see_why_fix_and_redrive_in_the_browser(self):
        shots = os.path.join(os.environ.get("FERRY_ARTIFACTS", os.path.join(REPO, "build", "artifacts")), "console")
        shutil.rmtree(shots, ignore_errors=True)
        os.makedirs(shots)
        env = dict(os.environ, FERRY_URL="http://127.0.0.1:%d" % self.daemon.port, ADMIN_TOKEN=ADMIN,
                   VIEWER_TOKEN=VIEWER, FERRY_BIN=harness.FERRY, FIXED_DEPLOY=self.deploy_files["1"],
                   SCREENSHOTS=shots)
        proc = subprocess.run(["node", os.path.join(SCENARIO_DIR, "scenario.js")], env=env, capture_output=True,
                              text=True, timeout=400)
        if proc.returncode != 0:  # what the server holds, to tell a console fault from a server one
            client = self.daemon.client()
            for path in ("/ferry/v1/projects/console/functions/worker/executions",
                         "/ferry/v1/projects/console/subscriptions/gcf-worker-local-work/deadLetters"):
                print(path, client.request("GET", path)[1])
            client.close()
        self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
        print(proc.stdout.strip())
        self.assertEqual(len([f for f in os.listdir(shots) if f.endswith(".png")]), 9)
        # The page never shows an environment value.
        status, _, body = harness.http_request(self.daemon.port, "GET", "/ferry/v1/projects/console/functions/worker",
                                               headers={"Authorization": "Bearer " + VIEWER})
        self.assertEqual(status, 200)
        self.assertNotIn(b"not-shown", body)

    def test_the_page_is_served_from_the_binary_with_a_strict_policy(self):
        status, headers, body = harness.http_request(self.daemon.port, "GET", "/console")
        self.assertEqual(status, 200)  # no token needed for the page itself: it holds no data
        self.assertIn(b'<script src="/console/console.js"', body)
        policy = headers.get("content-security-policy", "")
        self.assertIn("script-src 'self'", policy)
        self.assertIn("frame-ancestors 'none'", policy)
        status, _, body = harness.http_request(self.daemon.port, "GET", "/console/console.js")
        self.assertEqual(status, 200)
        self.assertIn(b"function route()", body)
        # Its data is not: the APIs it calls want a token.
        status, _, _ = harness.http_request(self.daemon.port, "GET", "/ferry/v1/projects/console/overview")
        self.assertEqual(status, 401)
        status, _, _ = harness.http_request(self.daemon.port, "POST", "/console", body=b"{}")
        self.assertIn(status, (400, 401, 405))  # refused, one way or another


if __name__ == "__main__":
    harness.FERRY = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
