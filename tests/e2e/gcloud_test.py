"""The real `gcloud pubsub` against a real ferry daemon, following shared/reference/gcloud-http."""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402

GCLOUD = shutil.which("gcloud")


@unittest.skipIf(GCLOUD is None and os.environ.get("CI") != "true", "gcloud is not installed")
class GcloudTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if GCLOUD is None:
            raise RuntimeError("gcloud is required in CI but is not installed")
        # The push tests' receivers listen on loopback, which push may reach only when allowed.
        cls.daemon = harness.Daemon(extra_args=["--push-allow", "127.0.0.1"]).start()
        cls.config = tempfile.mkdtemp(prefix="gcloud-config-")
        cls.env = dict(os.environ)
        cls.env.update({
            "CLOUDSDK_API_ENDPOINT_OVERRIDES_PUBSUB": cls.daemon.endpoint + "/",
            "CLOUDSDK_AUTH_DISABLE_CREDENTIALS": "true",
            "CLOUDSDK_CONFIG": cls.config,
            "CLOUDSDK_CORE_PROJECT": "test-proj",
            "CLOUDSDK_CORE_DISABLE_PROMPTS": "1",
            "CLOUDSDK_COMPONENT_MANAGER_DISABLE_UPDATE_CHECK": "true",
            "CLOUDSDK_CORE_DISABLE_USAGE_REPORTING": "true",
        })

    @classmethod
    def tearDownClass(cls):
        cls.daemon.close()
        shutil.rmtree(cls.config, ignore_errors=True)

    def gcloud(self, *args, expect=0):
        proc = subprocess.run([GCLOUD, "pubsub"] + list(args), env=self.env, capture_output=True, text=True,
                              timeout=120)
        self.assertEqual(proc.returncode, expect,
                         "gcloud pubsub %s\nstdout: %s\nstderr: %s" % (" ".join(args), proc.stdout, proc.stderr))
        return proc

    def gjson(self, *args):
        return json.loads(self.gcloud(*args, "--format=json").stdout or "null")

    def test_guide_walkthrough_topics_subscription_deadletter_publish_pull(self):
        out = self.gcloud("topics", "create", "bar")
        self.assertIn("Created topic [projects/test-proj/topics/bar].", out.stderr)
        self.gcloud("topics", "create", "bar-failed")
        self.gcloud("subscriptions", "create", "sub1", "--topic=bar", "--ack-deadline=10")
        # The guide's exact command.
        out = self.gcloud("subscriptions", "update", "sub1", "--dead-letter-topic=bar-failed",
                          "--dead-letter-topic-project=test-proj", "--max-delivery-attempts=6",
                          "--min-retry-delay=2m")
        self.assertIn("Updated subscription [projects/test-proj/subscriptions/sub1].", out.stderr)
        sub = self.gjson("subscriptions", "describe", "sub1")
        self.assertEqual(sub["deadLetterPolicy"], {"deadLetterTopic": "projects/test-proj/topics/bar-failed",
                                                   "maxDeliveryAttempts": 6})
        self.assertEqual(sub["retryPolicy"], {"minimumBackoff": "120s", "maximumBackoff": "600s"})
        self.assertEqual(sub["ackDeadlineSeconds"], 10)
        self.assertEqual(sub["messageRetentionDuration"], "604800s")
        self.assertEqual(sub["topic"], "projects/test-proj/topics/bar")
        self.assertEqual(sub["state"], "ACTIVE")

        ids1 = self.gjson("topics", "publish", "bar", "--message", "{}")["messageIds"]
        ids2 = self.gjson("topics", "publish", "bar", "--message", "hello world", "--attribute", "k1=v1,k2=v2")[
            "messageIds"]
        ids3 = self.gjson("topics", "publish", "bar", "--attribute", "k1=v1")["messageIds"]
        self.assertEqual(len({ids1[0], ids2[0], ids3[0]}), 3)

        pulled = self.gjson("subscriptions", "pull", "sub1", "--auto-ack", "--limit=10")
        self.assertEqual(len(pulled), 3)
        by_id = {p["message"]["messageId"]: p for p in pulled}
        self.assertEqual(by_id[ids1[0]]["message"]["data"], "e30=")
        self.assertEqual(by_id[ids2[0]]["message"]["data"], "aGVsbG8gd29ybGQ=")
        self.assertEqual(by_id[ids2[0]]["message"]["attributes"], {"k1": "v1", "k2": "v2"})
        self.assertNotIn("data", by_id[ids3[0]]["message"])
        for p in pulled:
            self.assertEqual(p["deliveryAttempt"], 1)
            self.assertTrue(p["message"]["publishTime"].endswith("Z"))

        # Auto-acked: nothing is left.
        out = self.gcloud("subscriptions", "pull", "sub1", "--auto-ack", "--limit=5")
        self.assertIn("Listed 0 items.", out.stderr)

        names = [t["name"] for t in self.gjson("topics", "list")]
        self.assertIn("projects/test-proj/topics/bar", names)
        self.assertIn("projects/test-proj/topics/bar-failed", names)
        paged = [t["name"] for t in self.gjson("topics", "list", "--page-size=1")]
        self.assertEqual(sorted(paged), sorted(names))
        subs = [s["name"] for s in self.gjson("subscriptions", "list")]
        self.assertIn("projects/test-proj/subscriptions/sub1", subs)
        self.assertEqual({s["state"] for s in self.gjson("subscriptions", "list")}, {"ACTIVE"})
        self.assertEqual(self.gjson("topics", "describe", "bar"), {"name": "projects/test-proj/topics/bar"})
        listed = self.gcloud("topics", "list-subscriptions", "bar").stdout
        self.assertIn("projects/test-proj/subscriptions/sub1", listed)

        # Clearing the policies leaves the defaults.
        self.gcloud("subscriptions", "update", "sub1", "--clear-dead-letter-policy", "--clear-retry-policy")
        sub = self.gjson("subscriptions", "describe", "sub1")
        self.assertNotIn("deadLetterPolicy", sub)
        self.assertNotIn("retryPolicy", sub)

    def test_ack_and_modify_ack_deadline_by_id(self):
        self.gcloud("topics", "create", "acks")
        self.gcloud("subscriptions", "create", "acks-sub", "--topic=acks")
        self.gcloud("topics", "publish", "acks", "--message", "m1")
        pulled = self.gjson("subscriptions", "pull", "acks-sub", "--limit=1")
        self.assertEqual(len(pulled), 1)
        self.assertNotIn("deliveryAttempt", pulled[0])  # no dead-letter policy: Google omits it
        ack_id = pulled[0]["ackId"]
        self.gcloud("subscriptions", "modify-message-ack-deadline", "acks-sub", "--ack-ids=" + ack_id,
                    "--ack-deadline=60")
        out = self.gcloud("subscriptions", "ack", "acks-sub", "--ack-ids=" + ack_id)
        self.assertIn("Acked the messages", out.stderr)
        out = self.gcloud("subscriptions", "ack", "acks-sub", "--ack-ids=garbage", expect=1)
        self.assertIn("Invalid ack id (ack_id=garbage)", out.stderr)

    def test_nacked_message_reaches_dead_letter_topic_through_gcloud(self):
        self.gcloud("topics", "create", "dl-src")
        self.gcloud("topics", "create", "dl-dst")
        self.gcloud("subscriptions", "create", "dl-dst-sub", "--topic=dl-dst")
        self.gcloud("subscriptions", "create", "dl-src-sub", "--topic=dl-src", "--dead-letter-topic=dl-dst",
                    "--max-delivery-attempts=5", "--min-retry-delay=0s", "--max-retry-delay=0s")
        self.gcloud("topics", "publish", "dl-src", "--message", "poison", "--attribute", "origin=test")
        for attempt in range(1, 6):
            pulled = self.gjson("subscriptions", "pull", "dl-src-sub", "--limit=1")
            self.assertEqual(len(pulled), 1, "attempt %d" % attempt)
            self.assertEqual(pulled[0]["deliveryAttempt"], attempt)
            self.gcloud("subscriptions", "modify-message-ack-deadline", "dl-src-sub",
                        "--ack-ids=" + pulled[0]["ackId"], "--ack-deadline=0")
        dead = self.gjson("subscriptions", "pull", "dl-dst-sub", "--auto-ack", "--limit=1")
        self.assertEqual(len(dead), 1)
        attrs = dead[0]["message"]["attributes"]
        self.assertEqual(attrs["origin"], "test")
        self.assertEqual(attrs["CloudPubSubDeadLetterSourceDeliveryCount"], "5")
        self.assertEqual(attrs["CloudPubSubDeadLetterSourceSubscription"], "dl-src-sub")
        self.assertEqual(attrs["CloudPubSubDeadLetterSourceSubscriptionProject"], "test-proj")
        self.assertIn("CloudPubSubDeadLetterSourceTopicPublishTime", attrs)

    def test_errors_match_pubsub(self):
        self.gcloud("topics", "create", "dup")
        out = self.gcloud("topics", "create", "dup", expect=1)
        self.assertIn("Topic already exists", out.stderr)
        for bad in ("a", "1abc", "goog-topic"):
            out = self.gcloud("topics", "create", bad, expect=1)
            self.assertIn("Invalid [topics] name: (name=projects/test-proj/topics/%s)" % bad, out.stderr)
        out = self.gcloud("topics", "publish", "nosuchtopic", "--message", "hi", expect=1)
        self.assertIn("NOT_FOUND: Topic not found", out.stderr)
        out = self.gcloud("subscriptions", "create", "subx", "--topic=nosuchtopic", expect=1)
        self.assertIn("Subscription topic does not exist", out.stderr)
        self.gcloud("subscriptions", "create", "dup-sub", "--topic=dup")
        out = self.gcloud("subscriptions", "create", "dup-sub", "--topic=dup", expect=1)
        self.assertIn("Subscription already exists", out.stderr)
        out = self.gcloud("subscriptions", "create", "suby", "--topic=dup", "--ack-deadline=700", expect=1)
        self.assertIn("ack_deadline_secs out of bounds", out.stderr)
        out = self.gcloud("subscriptions", "create", "suby", "--topic=dup", "--dead-letter-topic=nosuchdlt",
                          expect=1)
        self.assertIn("Dead letter topic not found", out.stderr)
        out = self.gcloud("subscriptions", "describe", "nosuchsub", expect=1)
        self.assertIn("NOT_FOUND: Subscription does not exist", out.stderr)
        out = self.gcloud("subscriptions", "pull", "nosuchsub", "--auto-ack", expect=1)
        self.assertIn("NOT_FOUND: Subscription does not exist", out.stderr)
        out = self.gcloud("topics", "delete", "nosuchtopic", expect=1)
        self.assertIn("Topic not found", out.stderr)

    def test_delete_subscription_and_topic(self):
        self.gcloud("topics", "create", "gone")
        self.gcloud("subscriptions", "create", "gone-sub", "--topic=gone")
        self.gcloud("topics", "delete", "gone")
        # As in Pub/Sub, the subscription outlives its topic.
        self.assertEqual(self.gjson("subscriptions", "describe", "gone-sub")["topic"], "_deleted-topic_")
        out = self.gcloud("subscriptions", "delete", "gone-sub")
        self.assertIn("Deleted subscription [projects/test-proj/subscriptions/gone-sub].", out.stderr)
        self.gcloud("subscriptions", "describe", "gone-sub", expect=1)
        self.gcloud("topics", "describe", "gone", expect=1)

    def test_push_config_is_stored_and_modified(self):
        self.gcloud("topics", "create", "pushy")
        self.gcloud("subscriptions", "create", "pushy-sub", "--topic=pushy",
                    "--push-endpoint=http://127.0.0.1:9999/push")
        sub = self.gjson("subscriptions", "describe", "pushy-sub")
        self.assertEqual(sub["pushConfig"], {"pushEndpoint": "http://127.0.0.1:9999/push"})
        self.gcloud("subscriptions", "modify-push-config", "pushy-sub", "--push-endpoint=http://127.0.0.1:9998/x")
        sub = self.gjson("subscriptions", "describe", "pushy-sub")
        self.assertEqual(sub["pushConfig"], {"pushEndpoint": "http://127.0.0.1:9998/x"})

    def test_subscription_options_round_trip(self):
        self.gcloud("topics", "create", "opts")
        self.gcloud("subscriptions", "create", "sub-eod", "--topic=opts", "--enable-exactly-once-delivery",
                    "--retain-acked-messages", "--message-retention-duration=1h", "--expiration-period=2d",
                    "--labels=env=dev")
        sub = self.gjson("subscriptions", "describe", "sub-eod")
        self.assertEqual(sub["messageRetentionDuration"], "3600s")
        self.assertEqual(sub["expirationPolicy"], {"ttl": "172800s"})
        self.assertEqual(sub["labels"], {"env": "dev"})
        self.assertTrue(sub["retainAckedMessages"])
        self.assertTrue(sub["enableExactlyOnceDelivery"])
        self.gcloud("subscriptions", "update", "sub-eod", "--ack-deadline=20")
        self.assertEqual(self.gjson("subscriptions", "describe", "sub-eod")["ackDeadlineSeconds"], 20)

    def test_topic_options_and_update(self):
        self.gcloud("topics", "create", "baz", "--message-retention-duration=1d", "--labels=a=b")
        topic = self.gjson("topics", "describe", "baz")
        self.assertEqual(topic["messageRetentionDuration"], "86400s")
        self.assertEqual(topic["labels"], {"a": "b"})
        self.gcloud("topics", "update", "baz", "--message-retention-duration=2d")
        self.assertEqual(self.gjson("topics", "describe", "baz")["messageRetentionDuration"], "172800s")
        self.gcloud("topics", "update", "baz", "--update-labels=c=d")
        self.assertEqual(self.gjson("topics", "describe", "baz")["labels"], {"a": "b", "c": "d"})

    def test_ordering_key_publish_and_ordered_pull(self):
        self.gcloud("topics", "create", "ledger")
        # A long ack deadline: under load a gcloud command takes seconds, and the batch must stay out until the end.
        self.gcloud("subscriptions", "create", "ledger-sub", "--topic=ledger", "--enable-message-ordering",
                    "--ack-deadline=120")
        self.assertTrue(self.gjson("subscriptions", "describe", "ledger-sub")["enableMessageOrdering"])
        for i in range(3):
            self.gcloud("topics", "publish", "ledger", "--message=m%d" % i, "--ordering-key=acct-1")
        pulled = self.gjson("subscriptions", "pull", "ledger-sub", "--limit=10")
        self.assertEqual([harness.data_of(p) for p in pulled], ["m0", "m1", "m2"])
        self.assertEqual({p["message"]["orderingKey"] for p in pulled}, {"acct-1"})
        # Nothing of the key goes out again while its batch is outstanding.
        self.gcloud("topics", "publish", "ledger", "--message=m3", "--ordering-key=acct-1")
        self.assertEqual(self.gjson("subscriptions", "pull", "ledger-sub", "--limit=10"), [])

    def test_filter_delivers_only_matching_messages(self):
        self.gcloud("topics", "create", "events")
        self.gcloud("subscriptions", "create", "events-eu", "--topic=events",
                    '--message-filter=attributes.region = "eu" OR hasPrefix(attributes.region, "eu-")')
        self.assertIn("attributes.region", self.gjson("subscriptions", "describe", "events-eu")["filter"])
        for region in ("eu", "us", "eu-west", "asia"):
            self.gcloud("topics", "publish", "events", "--message=" + region, "--attribute=region=" + region)
        pulled = self.gjson("subscriptions", "pull", "events-eu", "--auto-ack", "--limit=10")
        self.assertEqual(sorted(harness.data_of(p) for p in pulled), ["eu", "eu-west"])
        out = self.gcloud("subscriptions", "create", "events-bad", "--topic=events", "--message-filter=region = eu",
                          expect=1)
        self.assertIn("Invalid filter expression", out.stderr)

    def test_snapshots_and_seek(self):
        self.gcloud("topics", "create", "replay")
        self.gcloud("subscriptions", "create", "replay-sub", "--topic=replay", "--retain-acked-messages")
        self.gcloud("topics", "publish", "replay", "--message=first")
        out = self.gcloud("snapshots", "create", "replay-snap", "--subscription=replay-sub")
        self.assertIn("projects/test-proj/snapshots/replay-snap", out.stderr)
        snap = self.gjson("snapshots", "describe", "replay-snap")
        self.assertEqual(snap["topic"], "projects/test-proj/topics/replay")
        self.assertIn("expireTime", snap)
        self.assertEqual([s["snapshotId"] for s in self.gjson("snapshots", "list")], ["replay-snap"])
        self.gcloud("topics", "publish", "replay", "--message=second")
        self.assertEqual(len(self.gjson("subscriptions", "pull", "replay-sub", "--auto-ack", "--limit=10")), 2)
        self.assertEqual(self.gjson("subscriptions", "pull", "replay-sub", "--limit=10"), [])

        # Back to the snapshot: "first" was unacked then, "second" came after.
        self.gcloud("subscriptions", "seek", "replay-sub", "--snapshot=replay-snap")
        pulled = self.gjson("subscriptions", "pull", "replay-sub", "--auto-ack", "--limit=10")
        self.assertEqual(sorted(harness.data_of(p) for p in pulled), ["first", "second"])
        # To a time: everything published since is redelivered (acked messages are retained).
        self.gcloud("subscriptions", "seek", "replay-sub", "--time=2000-01-01T00:00:00Z")
        pulled = self.gjson("subscriptions", "pull", "replay-sub", "--auto-ack", "--limit=10")
        self.assertEqual(sorted(harness.data_of(p) for p in pulled), ["first", "second"])
        # And forward past all of it: nothing left.
        self.gcloud("subscriptions", "seek", "replay-sub", "--time=2100-01-01T00:00:00Z")
        self.assertEqual(self.gjson("subscriptions", "pull", "replay-sub", "--limit=10"), [])
        self.gcloud("snapshots", "delete", "replay-snap")
        out = self.gcloud("subscriptions", "seek", "replay-sub", "--snapshot=replay-snap", expect=1)
        self.assertIn("NOT_FOUND", out.stderr)

    def test_push_subscription_delivers_acks_and_retries(self):
        with harness.PushReceiver() as receiver:
            self.gcloud("topics", "create", "hooks")
            self.gcloud("subscriptions", "create", "hooks-push", "--topic=hooks",
                        "--push-endpoint=%s/push" % receiver.url, "--min-retry-delay=10s")
            ids = self.gjson("topics", "publish", "hooks", "--message=hello", "--attribute=k=v")["messageIds"]
            req = receiver.wait_for(1)[0]
            self.assertEqual(req["path"], "/push")
            body = json.loads(req["body"])
            self.assertEqual(body["subscription"], "projects/test-proj/subscriptions/hooks-push")
            self.assertEqual(body["message"]["messageId"], ids[0])
            self.assertEqual(body["message"]["message_id"], ids[0])
            self.assertEqual(body["message"]["data"], "aGVsbG8=")
            self.assertEqual(body["message"]["attributes"], {"k": "v"})
            # Acked by the 2xx: no redelivery.
            time.sleep(1.5)
            self.assertEqual(len(receiver.requests), 1)

            # A failing endpoint gets the message again, after the retry delay.
            receiver.status = 503
            self.gcloud("topics", "publish", "hooks", "--message=again")
            first = receiver.wait_for(2)[1]["at"]
            receiver.status = 204
            second = receiver.wait_for(3, timeout=30)[2]["at"]
            self.assertGreaterEqual(second - first, 9.0)
            self.assertEqual(json.loads(receiver.requests[2]["body"])["message"]["data"], "YWdhaW4=")

            # noWrapper with metadata: the data as the body, attributes and metadata as headers.
            self.gcloud("subscriptions", "create", "hooks-raw", "--topic=hooks",
                        "--push-endpoint=%s/raw" % receiver.url, "--push-no-wrapper",
                        "--push-no-wrapper-write-metadata")
            self.gcloud("topics", "publish", "hooks", "--message=raw-body", "--attribute=color=red")
            raw = [r for r in receiver.wait_for(5, timeout=30) if r["path"] == "/raw"][0]
            self.assertEqual(raw["body"], "raw-body")
            self.assertEqual(raw["headers"].get("color"), "red")
            self.assertEqual(raw["headers"].get("x-goog-pubsub-subscription-name"),
                             "projects/test-proj/subscriptions/hooks-raw")

            # Push dead-letters like pull: after 5 failed pushes the message is on the dead-letter topic.
            receiver.status_by_path["/fail"] = 500
            self.gcloud("topics", "create", "hooks-dead")
            self.gcloud("subscriptions", "create", "hooks-dead-sub", "--topic=hooks-dead")
            self.gcloud("topics", "create", "hooks-failing")
            self.gcloud("subscriptions", "create", "hooks-failing-push", "--topic=hooks-failing",
                        "--push-endpoint=%s/fail" % receiver.url, "--dead-letter-topic=hooks-dead",
                        "--max-delivery-attempts=5")
            self.gcloud("topics", "publish", "hooks-failing", "--message=doomed")
            deadline = time.time() + 30
            dead = []
            while not dead and time.time() < deadline:
                dead = self.gjson("subscriptions", "pull", "hooks-dead-sub", "--auto-ack", "--limit=1")
            self.assertEqual(len(dead), 1, "the failing push never reached the dead-letter topic")
            self.assertEqual(harness.data_of(dead[0]), "doomed")
            attributes = dead[0]["message"]["attributes"]
            self.assertEqual(attributes["CloudPubSubDeadLetterSourceDeliveryCount"], "5")
            self.assertIn("HTTP 500", attributes["FerryLastError"])
            fails = [json.loads(r["body"]) for r in receiver.requests if r["path"] == "/fail"]
            self.assertEqual([f["deliveryAttempt"] for f in fails], [1, 2, 3, 4, 5])


if __name__ == "__main__":
    harness.FERRY = sys.argv.pop(1) if len(sys.argv) > 1 and not sys.argv[1].startswith("-") else harness.FERRY
    unittest.main(verbosity=2)
