"""Chaos: kill -9 the daemon at random moments, round after round, under a mixed load, and check after each
restart and at the end that nothing answered was lost or done twice.

The load, all at once: REST publishers and a REST puller on one topic; Google's Node.js client on StreamingPull
(exactly-once, one process that reconnects across restarts) on the same topic; a Pub/Sub-triggered C++ function
(with retry) fed by another publisher; a schedule firing every minute; files dropped into a bucket.

The checks: every publish answered 200 is delivered to both subscriptions; no message whose ack was answered
(REST 200, or the Node.js client's ackWithResponse on exactly-once) comes back; every schedule tick published at
most once; every file raised its finalize event exactly once (redeliveries of one event are fine, a second event
for the same object generation is not); the function ran every message of the last round, and each successful
execution it recorded has its own log line.

FERRY_CHAOS_ROUNDS (default 8; docs/testing.md reports 50) and FERRY_CHAOS_SEED make a run repeatable."""
import collections
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
NODE_DIR = os.path.join(HERE, "node_pubsub")
ROUNDS = int(os.environ.get("FERRY_CHAOS_ROUNDS", "8"))
TEST_FUNCTIONS = ""  # the ferry_test_functions program, from argv
PROJECT = "chaos"


class Load:
    """What the clients did, as they saw it."""

    def __init__(self):
        self.lock = threading.Lock()
        self.events_answered = set()   # data of publishes to "events" answered 200
        self.work_attempted = set()    # names sent to the function's topic (answered or not)
        self.work_answered = set()
        self.pulled_acked = set()      # REST acks answered 200
        self.pulled_ack_sent = set()   # REST acks sent: one unanswered may have committed before the kill
        self.pulled = set()
        self.acked_then_redelivered = []
        self.files = set()             # object names renamed into the bucket


class ChaosTest(unittest.TestCase):
    def setUp(self):
        self.seed = int(os.environ.get("FERRY_CHAOS_SEED", int(time.time())))
        self.rng = random.Random(self.seed)
        self.work = tempfile.mkdtemp(prefix="ferry-chaos-")
        self.drop = os.path.join(self.work, "drop")
        self.stage = os.path.join(self.work, "stage")
        os.makedirs(self.drop)
        os.makedirs(self.stage)
        self.daemon = harness.Daemon(project=PROJECT, port=harness.free_port()).start()
        self.node = None

    def tearDown(self):
        if self.node and self.node.poll() is None:
            self.node.kill()
            self.node.wait()
        self.daemon.close()
        shutil.rmtree(self.work, ignore_errors=True)

    def deploy(self):
        path = os.path.join(self.work, "ferry.yaml")
        with open(path, "w") as f:
            f.write(textwrap.dedent("""\
                project: %(project)s
                topics: [events, work, ticks]
                buckets:
                  - {name: chaos-drop, path: ./drop}
                schedules:
                  - name: tick
                    schedule: "* * * * *"
                    topic: ticks
                    data: tick
                functions:
                  - name: greet
                    runtime: command
                    command: [%(fn)s]
                    entry_point: greet
                    event_trigger_type: google.pubsub.topic.publish
                    event_trigger_resource: work
                    event_trigger_retry: true
                    min_retry_delay: 0s
                    max_retry_delay: 1s
                    max_instances: 2
                    timeout: 5s
                """ % {"project": PROJECT, "fn": json.dumps(TEST_FUNCTIONS)}))
        self.daemon.deploy(path)
        client = self.daemon.client()
        client.create_subscription("events-pull", "events", ackDeadlineSeconds=10)
        client.create_subscription("events-stream", "events", ackDeadlineSeconds=10, enableExactlyOnceDelivery=True)
        client.create_subscription("ticks-sub", "ticks")
        client.create_subscription("drop-events", "ferry-storage-chaos-drop")
        client.close()

    def start_node(self):
        env = dict(os.environ, PUBSUB_EMULATOR_HOST="127.0.0.1:%d" % self.daemon.port)
        self.node_out = os.path.join(self.work, "node.txt")
        self.node = subprocess.Popen(["node", "chaos_subscriber.js", PROJECT, "events-stream", self.node_out],
                                     cwd=NODE_DIR, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        harness.wait_for(lambda: os.path.exists(self.node_out) and "started" in open(self.node_out).read(),
                         timeout=30, what="the Node.js subscriber to start")

    def node_lines(self):
        with open(self.node_out) as f:
            return [line.split(" ") for line in f.read().splitlines()]

    def run_round(self, load, tag, seconds):
        stop = threading.Event()
        port = self.daemon.port

        def publish_events(worker):
            client = harness.Client(port, PROJECT, timeout=5)
            seq = 0
            while not stop.is_set():
                batch = ["%s-w%d-%d-%d" % (tag, worker, seq, i) for i in range(5)]
                seq += 1
                try:
                    client.publish("events", batch)
                except Exception:  # the daemon died mid-request: not answered, no promise made
                    return
                with load.lock:
                    load.events_answered.update(batch)

        def publish_work():
            client = harness.Client(port, PROJECT, timeout=5)
            seq = 0
            while not stop.is_set():
                name = "%s-%d" % (tag, seq)
                seq += 1
                with load.lock:
                    load.work_attempted.add(name)
                try:
                    client.publish("work", [json.dumps({"name": name})])
                except Exception:
                    return
                with load.lock:
                    load.work_answered.add(name)
                time.sleep(0.01)

        def pull_events():
            client = harness.Client(port, PROJECT, timeout=5)
            while not stop.is_set():
                try:
                    got = client.pull("events-pull", 50)
                    datas = [harness.data_of(r) for r in got]
                    with load.lock:
                        load.acked_then_redelivered += [d for d in datas if d in load.pulled_acked]
                        load.pulled.update(datas)
                        load.pulled_ack_sent.update(datas)
                    if got:
                        client.ack("events-pull", [r["ackId"] for r in got])
                        with load.lock:
                            load.pulled_acked.update(datas)
                except Exception:
                    return

        def drop_files():
            seq = 0
            while not stop.is_set():
                name = "%s-%d.txt" % (tag, seq)
                seq += 1
                staged = os.path.join(self.stage, name)
                with open(staged, "w") as f:
                    f.write("file %s\n" % name)
                os.rename(staged, os.path.join(self.drop, name))  # whole, as an upload lands
                with load.lock:
                    load.files.add(name)
                time.sleep(0.05)

        threads = [threading.Thread(target=publish_events, args=(w,)) for w in range(2)]
        threads += [threading.Thread(target=f) for f in (publish_work, pull_events, drop_files)]
        for t in threads:
            t.start()
        time.sleep(seconds)
        return stop, threads

    def test_kill9_at_random_under_mixed_load_loses_nothing_answered_and_repeats_nothing_recorded(self):
        self.deploy()
        self.start_node()
        load = Load()
        for round_no in range(ROUNDS):
            stop, threads = self.run_round(load, "r%d" % round_no, self.rng.uniform(0.3, 1.5))
            self.daemon.kill9()
            stop.set()
            for t in threads:
                t.join()
            self.daemon.start()
            # After each restart: the daemon answers, and its state is readable.
            client = self.daemon.client()
            status, _ = client.request("GET", "/v1/projects/%s/subscriptions/events-pull" % PROJECT)
            self.assertEqual(status, 200, "round %d: the daemon did not come back" % round_no)
            client.close()

        # A last round without a kill: everything it sends must be fully processed.
        stop, threads = self.run_round(load, "final", 1.0)
        stop.set()
        for t in threads:
            t.join()
        final_work = {n for n in load.work_answered if n.startswith("final-")}

        client = self.daemon.client()
        started = time.time()
        phases = []
        for check in (lambda: self.check_pulled_events(client, load), lambda: self.check_streamed_events(load),
                      lambda: self.check_function(client, load, final_work)):
            check()
            phases.append("%.1f" % (time.time() - started))
        ticks = self.check_ticks(client)
        events = self.check_storage_events(client, load)
        client.close()
        print("chaos test: checks done at %s s" % ", ".join(phases))
        print("chaos test (seed %d): %d rounds, %d publishes answered, %d REST acks, %d streamed acks, "
              "%d function messages, %d files, %d storage events, %d ticks; lost: 0, repeated: 0"
              % (self.seed, ROUNDS, len(load.events_answered) + len(load.work_answered), len(load.pulled_acked),
                 self.streamed_acks, len(load.work_answered), len(load.files), events, ticks))

    def drain(self, client, subscription, timeout=90):
        """Everything left on a subscription, until its backlog is empty (leases lost at a kill come back when
        their deadline passes)."""
        got_all = []
        deadline = time.time() + timeout
        while time.time() < deadline:
            got = client.pull(subscription, 1000, immediately=False)
            if got:
                got_all += got
                client.ack(subscription, [r["ackId"] for r in got])
            elif client.metric("ferry_subscription_backlog_messages", client.sub(subscription)) == 0:
                return got_all
        self.fail("%s did not drain in %d s" % (subscription, timeout))

    def check_pulled_events(self, client, load):
        remaining = {harness.data_of(r) for r in self.drain(client, "events-pull")}
        self.assertEqual(load.acked_then_redelivered, [], "REST acks answered OK were undone")
        self.assertEqual(remaining & load.pulled_acked, set(), "REST acks answered OK were undone")
        lost = load.events_answered - load.pulled_ack_sent - remaining
        self.assertEqual(lost, set(), "%d answered publishes never reached the pull subscription" % len(lost))
        self.assertGreater(len(load.events_answered), 100, "the test published too little to mean anything")
        self.assertGreater(len(load.pulled_acked), 10, "the test acked too little to mean anything")

    def check_streamed_events(self, load):
        def received():
            return {fields[1] for fields in self.node_lines() if fields[0] == "recv"}
        harness.wait_for(lambda: load.events_answered <= received(), timeout=120,
                         what="the Node.js subscriber to receive every answered publish")
        self.node.send_signal(signal.SIGTERM)
        self.node.wait(timeout=30)
        acked = set()
        came_back = []
        for fields in self.node_lines():
            if fields[0] == "recv" and fields[1] in acked:
                came_back.append(fields[1])
            elif fields[0] == "acked":
                acked.add(fields[1])
        self.assertEqual(came_back, [], "messages whose exactly-once ack was confirmed came back")
        self.assertGreater(len(acked), 10, "the Node.js subscriber confirmed too few acks to mean anything")
        self.streamed_acks = len(acked)

    def check_function(self, client, load, final_work):
        fn = "projects/%s/locations/local/functions/greet" % PROJECT
        trigger = "gcf-greet-local-work"

        def greeted():
            status, res = client.request("GET", "/ferry/v1/projects/%s/functions/greet/logs?limit=10000" % PROJECT)
            self.assertEqual(status, 200, res)
            return res["entries"]
        backlog = lambda: client.metric("ferry_subscription_backlog_messages", client.sub(trigger))
        try:
            harness.wait_for(lambda: backlog() == 0, timeout=120, what="the function's subscription to drain")
        except AssertionError:
            _, res = client.request("GET", "/ferry/v1/projects/%s/functions/greet/executions?limit=20" % PROJECT)
            raise AssertionError("the function's subscription kept %s messages; its newest executions: %s; "
                                 "daemon log: %s" % (backlog(), json.dumps(res)[:3000],
                                                     open(self.daemon.log_path).read()[-3000:]))
        names = lambda entries: {e["message"].split(" ")[1] for e in entries if e["message"].startswith("greeting ")}
        harness.wait_for(lambda: final_work <= names(greeted()), timeout=60,
                         what="the function to run every message of the last round")
        entries = greeted()
        self.assertEqual(names(entries) - load.work_attempted, set(), "the function ran messages nobody sent")
        status, res = client.request("GET", "/ferry/v1/projects/%s/functions/greet/executions?limit=1000" % PROJECT)
        self.assertEqual(status, 200, res)
        lines_of = collections.defaultdict(list)
        for e in entries:
            lines_of[e["executionId"]].append(e["message"])
        ok = [e for e in res["executions"] if e["status"] == "ok"]
        self.assertGreater(len(ok), 10)
        for e in ok:
            self.assertEqual(e["function"], fn)
            self.assertTrue(any(m.startswith("greeting ") for m in lines_of[e["executionId"]]),
                            "execution %s is recorded ok without its log line" % e["executionId"])

    def check_ticks(self, client):
        by_minute = collections.defaultdict(set)
        for r in self.drain(client, "ticks-sub", timeout=30):
            by_minute[r["message"]["publishTime"][:16]].add(r["message"]["messageId"])
        repeated = {m: ids for m, ids in by_minute.items() if len(ids) > 1}
        self.assertEqual(repeated, {}, "a schedule tick was published twice")
        return len(by_minute)

    def check_storage_events(self, client, load):
        ids = collections.defaultdict(set)
        finalized = set()
        for r in self.drain(client, "drop-events", timeout=60):
            a = r["message"]["attributes"]
            ids[(a["eventType"], a["objectId"], a["objectGeneration"])].add(r["message"]["messageId"])
            if "finalize" in a["eventType"].lower():
                finalized.add(a["objectId"])
        repeated = {k: v for k, v in ids.items() if len(v) > 1}
        self.assertEqual(repeated, {}, "a storage event was raised twice")
        self.assertEqual(load.files - finalized, set(), "files in the bucket without a finalize event")
        return len(ids)


if __name__ == "__main__":
    harness.FERRY = sys.argv.pop(1)
    TEST_FUNCTIONS = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
