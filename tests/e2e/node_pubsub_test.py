"""Google's Node.js Pub/Sub client (@google-cloud/pubsub, over gRPC) against the real daemon via
PUBSUB_EMULATOR_HOST: each scenario in node_pubsub/scenarios.js, and kill -9 under StreamingPull load."""
import os
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
NODE_DIR = os.path.join(HERE, "node_pubsub")


def setUpModule():
    # scripts/test.sh installs the client (npm ci from the lockfile); standalone runs do the same here.
    if not os.path.isdir(os.path.join(NODE_DIR, "node_modules", "@google-cloud", "pubsub")):
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=NODE_DIR, check=True, capture_output=True,
                       timeout=300)


def node_env(daemon, project):
    env = dict(os.environ)
    env["PUBSUB_EMULATOR_HOST"] = "127.0.0.1:%d" % daemon.port
    env["FERRY_PROJECT"] = project
    return env


class NodeClientTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.daemon = harness.Daemon().start()

    @classmethod
    def tearDownClass(cls):
        cls.daemon.close()

    def run_scenario(self, name):
        # A project per scenario: they share the daemon, not their resources.
        proc = subprocess.run(["node", "scenarios.js", name], cwd=NODE_DIR, env=node_env(self.daemon, name.replace("_", "-")),
                              capture_output=True, text=True, timeout=120)
        self.assertEqual(proc.returncode, 0, "scenario %s failed:\n%s\n%s" % (name, proc.stdout, proc.stderr))
        self.assertIn("ok " + name, proc.stdout)

    def test_publish_and_subscribe_with_flow_control_across_rest_and_grpc(self):
        self.run_scenario("publish_and_subscribe")

    def test_nack_then_dead_letter_with_delivery_attempts(self):
        self.run_scenario("nack_dead_letter")

    def test_ordering_keys(self):
        self.run_scenario("ordering_keys")

    def test_exactly_once(self):
        self.run_scenario("exactly_once")

    def test_filters(self):
        self.run_scenario("filters")

    def test_snapshots_and_seek(self):
        self.run_scenario("seek")

    def test_a_subscriber_reopened_after_close_gets_the_next_message_at_once(self):
        self.run_scenario("reopen")


class NodeCrashTest(unittest.TestCase):
    def test_kill9_under_streaming_pull_loses_no_acknowledged_publish(self):
        daemon = harness.Daemon(project="crash-proj").start()
        try:
            client = daemon.client()
            client.create_topic("crash")
            client.create_subscription("crash-sub", "crash")
            client.close()
            out_path = os.path.join(daemon.data_dir, "node.out")
            with open(out_path, "w") as out:
                load = subprocess.Popen(["node", "scenarios.js", "crash_load"], cwd=NODE_DIR,
                                        env=node_env(daemon, "crash-proj"), stdout=out, stderr=subprocess.DEVNULL)
                time.sleep(4)
                daemon.kill9()
                time.sleep(0.5)
                load.kill()
                load.wait()
            published, received = set(), set()
            for line in open(out_path):
                kind, _, mid = line.strip().partition(" ")
                (published if kind == "published" else received).add(mid)
            self.assertGreater(len(published), 200, "the load published too little to mean anything")
            self.assertGreater(len(received), 50, "the stream received too little to mean anything")

            daemon.start()
            client = daemon.client()
            # Drain the backlog; messages the stream held come back when their leases run out.
            remaining = set()
            sub_name = client.sub("crash-sub")
            deadline = time.time() + 90
            while client.metric("ferry_subscription_backlog_messages", sub_name) and time.time() < deadline:
                got = client.pull("crash-sub", 1000, immediately=False)
                remaining |= {r["message"]["messageId"] for r in got}
                if got:
                    client.ack("crash-sub", [r["ackId"] for r in got])
            client.close()
            # A publish answered OK was either delivered before the kill or is still there after it.
            lost = published - received - remaining
            self.assertEqual(lost, set(), "%d acknowledged publishes lost" % len(lost))
            print("node crash test: %d publishes answered, %d received on the stream, %d drained after restart"
                  % (len(published), len(received), len(remaining)))
        finally:
            daemon.close()


if __name__ == "__main__":
    harness.FERRY = sys.argv.pop(1)
    unittest.main(verbosity=2)
