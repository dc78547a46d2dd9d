"""Dead-letter redrive end to end, as an operator does it at 3 a.m.: a Python function fails until its messages are
dead-lettered; `ferry dead-letter list` shows them with the function's error; a fixed deploy; `ferry dead-letter
redrive` sends one back to the function's subscription alone, where it runs; `purge` drops the rest."""
import json
import os
import shutil
import sys
import tempfile
import textwrap
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
DEPLOY = """\
project: dl
topics: [work, work-failed]
functions:
  - name: worker
    runtime: python3
    source_dir: %s
    entry_point: fail_until_fixed
    event_trigger_type: google.pubsub.topic.publish
    event_trigger_resource: work
    event_trigger_retry: true
    dead_letter_topic: work-failed
    max_delivery_attempts: 5
    min_retry_delay: 1s
    max_retry_delay: 1s
    env_vars: {FIXED: "%s"}
"""
TRIGGER_SUB = "gcf-worker-local-work"


class DeadLetterTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.daemon = harness.Daemon(project="dl").start()
        cls.work = tempfile.mkdtemp(prefix="ferry-dl-")

    @classmethod
    def tearDownClass(cls):
        cls.daemon.close()
        shutil.rmtree(cls.work, ignore_errors=True)

    def ferry(self, *args, expect=0):
        proc = self.daemon.cli(*args)
        self.assertEqual(proc.returncode, expect, "ferry %s: %s %s" % (" ".join(args), proc.stdout, proc.stderr))
        return proc

    def deploy(self, fixed):
        path = os.path.join(self.work, "ferry.yaml")
        with open(path, "w") as f:
            f.write(DEPLOY % (json.dumps(os.path.join(HERE, "python_function")), fixed))
        return self.daemon.deploy(path)

    def dead_letters(self):
        return json.loads(self.ferry("--format", "json", "dead-letter", "list", TRIGGER_SUB).stdout)

    def test_fail_see_why_fix_redrive(self):
        plan = self.deploy("0")
        self.assertIn("projects/dl/subscriptions/ferry-dead-letters-work-failed", plan)
        client = self.daemon.client()
        self.addCleanup(client.close)
        client.publish("work", ["first", "second", "third"], {"order": "42"})
        harness.wait_for(lambda: len(self.dead_letters()["messages"]) == 3, timeout=90, interval=0.5,
                         what="three messages dead-lettered")
        listing = self.dead_letters()
        self.assertEqual(listing["deadLetterSubscription"], "projects/dl/subscriptions/ferry-dead-letters-work-failed")
        by_data = {m["dataPreview"]: m for m in listing["messages"]}
        self.assertEqual(sorted(by_data), ["first", "second", "third"])
        first = by_data["first"]
        self.assertEqual(first["deliveryAttempts"], 5)
        self.assertEqual(first["redrives"], 0)
        self.assertIn("cannot handle first yet", first["lastError"])
        self.assertEqual(first["attributes"]["order"], "42")
        # Its source message id finds the function's executions of it: five attempts, each failed.
        # (Executions are recorded a moment after they end; the last may trail its dead-lettering.)
        def attempts_of_first():
            status, body = client.request(
                "GET", "/ferry/v1/projects/dl/functions/worker/executions?messageId=" + first["sourceMessageId"])
            self.assertEqual(status, 200, body)
            return body["executions"] if len(body["executions"]) >= 5 else None
        attempts = harness.wait_for(attempts_of_first, timeout=10, what="the five attempts' executions")
        self.assertEqual(sorted(e["attempt"] for e in attempts), [1, 2, 3, 4, 5])
        self.assertEqual({e["status"] for e in attempts}, {"error"})
        table = self.ferry("dead-letter", "list", TRIGGER_SUB).stdout
        self.assertIn("cannot handle second yet", table)
        self.assertIn("MESSAGE_ID", table)

        # Bad requests: clear errors, nothing moved.
        self.ferry("dead-letter", "redrive", TRIGGER_SUB, expect=1)  # neither ids nor --all
        status, _, body = harness.http_request(
            self.daemon.port, "POST", "/ferry/v1/projects/dl/subscriptions/%s/deadLetters:redrive" % TRIGGER_SUB,
            json.dumps({"messageIds": ["1"], "all": True}).encode())
        self.assertEqual(status, 400, body)
        self.assertEqual(json.loads(body)["error"]["status"], "INVALID_ARGUMENT")
        status, _, body = harness.http_request(
            self.daemon.port, "GET", "/ferry/v1/projects/dl/subscriptions/nope/deadLetters")
        self.assertEqual(status, 404, body)
        self.assertEqual(len(self.dead_letters()["messages"]), 3)

        # Fixed: redrive one by id; it runs, once, with the redrive counted and the dead-letter attributes gone.
        self.deploy("1")
        out = self.ferry("dead-letter", "redrive", TRIGGER_SUB, "--message-id", first["messageId"]).stdout
        self.assertIn("1 message(s) redriven", out)

        def handled():
            return [m for m in self.daemon.log_messages("worker") if m.startswith("handled ")]
        harness.wait_for(lambda: handled(), timeout=60, interval=0.5, what="the redriven message handled")
        line = handled()[0]
        self.assertTrue(line.startswith("handled first attributes="), line)
        attributes = json.loads(line.split("attributes=", 1)[1])
        self.assertEqual(attributes, {"FerryRedriveCount": "1", "order": "42"})
        self.assertEqual(sorted(m["dataPreview"] for m in self.dead_letters()["messages"]), ["second", "third"])
        # The same id again: nothing left to redrive, and the CLI says so.
        self.ferry("dead-letter", "redrive", TRIGGER_SUB, "--message-id", first["messageId"], expect=1)

        # Purge the rest: gone, and never run.
        out = self.ferry("dead-letter", "purge", TRIGGER_SUB, "--all").stdout
        self.assertIn("2 message(s) purged", out)
        self.assertEqual(self.dead_letters()["messages"], [])
        self.assertEqual(len(handled()), 1)


if __name__ == "__main__":
    harness.FERRY = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
