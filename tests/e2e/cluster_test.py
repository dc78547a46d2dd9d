"""Three Ferry nodes sharing one PostgreSQL database are one Ferry: any node answers any call, a publish on one
wakes subscribers on another, a node killed -9 loses nothing answered, and a deploy on one node runs on all, and
its logs read through any node; one node at a time watches a bucket's shared directory, and another takes over
when it dies."""
import collections
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
TEST_FUNCTIONS = ""  # the ferry_test_functions program (C++, the SDK), from argv


def lines_of(path):
    """The lines of a file the functions under test append to ([] before the first)."""
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return f.read().splitlines()


class ClusterTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.pg = harness.PostgresServer()
        cls.pg.psql("CREATE DATABASE ferry")
        cls.url = cls.pg.url("ferry")
        cls.nodes = []
        for _ in range(3):
            cls.nodes.append(harness.Daemon(project="cl", extra_args=["--database", cls.url]).start())

    @classmethod
    def tearDownClass(cls):
        for node in cls.nodes:
            node.close()
        cls.pg.close()

    def clients(self):
        cs = [node.client() for node in self.nodes]
        for c in cs:
            self.addCleanup(c.close)
        return cs

    def work_dir(self):
        work = tempfile.mkdtemp(prefix="ferry-cluster-")
        self.addCleanup(shutil.rmtree, work, True)
        return work

    @staticmethod
    def deploy(node, work, text):
        """Writes `text` (dedented) as work/ferry.yaml and deploys it through `node`."""
        path = os.path.join(work, "ferry.yaml")
        with open(path, "w") as f:
            f.write(textwrap.dedent(text))
        node.deploy(path)

    def assert_one_at_a_time(self, spans):
        """`spans`: "start end" lines (a monotonic clock's seconds), one a call. No two overlap."""
        intervals = sorted(tuple(map(float, line.split()[:2])) for line in spans)
        for (_, end), (start, _) in zip(intervals, intervals[1:]):
            self.assertLessEqual(end, start, "two calls overlapped")

    def wait_active_everywhere(self, function):
        def active_everywhere():
            for node in self.nodes:
                status, _, body = harness.http_request(node.port, "GET", "/ferry/v1/projects/cl/functions")
                functions = json.loads(body).get("functions", []) if status == 200 else []
                if [f.get("state") for f in functions if f["name"].endswith("/" + function)] != ["ACTIVE"]:
                    return False
            return True
        harness.wait_for(active_everywhere, timeout=60, what=function + " ACTIVE on every node")

    def test_publish_on_one_node_pull_and_ack_on_others(self):
        a, b, c = self.clients()
        a.create_topic("topic-1")
        b.create_subscription("sub-1", "topic-1")
        self.assertEqual(c.ok("GET", "/v1/" + c.sub("sub-1"))["topic"], c.topic("topic-1"))
        ids = a.publish("topic-1", ["one", "two"]) + c.publish("topic-1", ["three"])
        got = b.pull("sub-1")
        self.assertEqual(sorted(m["message"]["messageId"] for m in got), sorted(ids))
        self.assertEqual(sorted(harness.data_of(m) for m in got), ["one", "three", "two"])
        # Leased to b's caller: no other node hands them out again before the deadline.
        self.assertEqual(a.pull("sub-1"), [])
        c.ack("sub-1", [m["ackId"] for m in got])  # ack ids are good on any node
        self.assertEqual(b.pull("sub-1"), [])
        # Each node's metrics carry its name, so scrapes of every node add up.
        for node in self.nodes:
            _, _, body = harness.http_request(node.port, "GET", "/metrics")
            samples = [line for line in body.decode().splitlines() if line and not line.startswith("#")]
            self.assertTrue(samples)
            self.assertTrue(all(line.split("{", 1)[1].startswith('node="') for line in samples), samples[:3])

    def test_a_transaction_held_open_for_a_minute_stops_nothing(self):
        """PostgreSQL's known failure for queues: a transaction held open (a report, a forgotten psql session) holds
        back the xmin horizon, so vacuum cannot remove the hot tables' dead rows. With one held for 60 s, rounds of
        publish, pull and ack through every node go on, each delivered whole; after it ends they still do, and
        nothing is left behind. (bench/held_xmin_bench.sh measures the throughput of the same.)"""
        clients = self.clients()
        clients[0].create_topic("held")
        clients[0].create_subscription("held-sub", "held")
        got = set()

        def one_round(i):
            publisher, subscriber = clients[i % 3], clients[(i + 1) % 3]
            ids = set(publisher.publish("held", ["r%d-%d" % (i, j) for j in range(500)]))
            deadline = time.time() + 60
            while ids - got and time.time() < deadline:
                received = subscriber.pull("held-sub", immediately=False)
                if received:
                    subscriber.ack("held-sub", [m["ackId"] for m in received])
                    got.update(m["message"]["messageId"] for m in received)
            self.assertFalse(ids - got, "round %d: messages not delivered" % i)
        one_round(0)
        holder = subprocess.Popen(["psql", "-h", "127.0.0.1", "-p", str(self.pg.port), "-U", "postgres", "-d", "ferry",
                                   "-v", "ON_ERROR_STOP=1", "-c", "BEGIN ISOLATION LEVEL REPEATABLE READ; "
                                   "SELECT txid_current(); SELECT pg_sleep(60); COMMIT;"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            harness.wait_for(lambda: self.pg.query(
                "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%%pg_sleep(60)%%' AND backend_xid IS NOT "
                "NULL AND pid <> pg_backend_pid()", db="ferry") == [["1"]], timeout=30, what="the held transaction")
            during = 0
            while holder.poll() is None:
                one_round(1 + during)
                during += 1
            self.assertEqual(holder.wait(), 0, holder.stderr.read())  # held the whole minute
        finally:
            if holder.poll() is None:
                holder.kill()
                holder.wait()
        self.assertGreaterEqual(during, 5)  # rounds went on while it was held
        for i in range(3):
            one_round(1000 + i)
        self.assertEqual(clients[2].pull("held-sub"), [])

    def test_a_waiting_pull_on_one_node_gets_a_publish_on_another(self):
        a, b, _ = self.clients()
        a.create_topic("topic-2")
        a.create_subscription("sub-2", "topic-2")
        result = []
        waiter = threading.Thread(target=lambda: result.extend(b.pull("sub-2", immediately=False)))
        waiter.start()
        a.publish("topic-2", ["wake"])
        waiter.join(timeout=30)
        self.assertEqual([harness.data_of(m) for m in result], ["wake"])

    def test_a_node_killed_mid_load_loses_no_answered_publish(self):
        a, b, c = self.clients()
        a.create_topic("topic-3")
        a.create_subscription("sub-3", "topic-3", ackDeadlineSeconds=10)
        published = []
        for i in range(60):
            published += [a, b, c][i % 3].publish("topic-3", ["m%d" % i])
        # c's caller takes some, and c dies holding their leases.
        held = c.pull("sub-3", max_messages=20)
        self.assertEqual(len(held), 20)
        victim = self.nodes[2]
        victim.kill9()
        seen = set()
        try:
            def drain():
                for m in a.pull("sub-3") + b.pull("sub-3"):
                    seen.add(m["message"]["messageId"])
                    a.ack("sub-3", [m["ackId"]])
                return seen == set(published)
            # The 20 come back when their lease ends, through the nodes left.
            harness.wait_for(drain, timeout=40, interval=0.5, what="every published message delivered")
        finally:
            victim.start()
        self.assertEqual(seen, set(published))

    def test_a_deploy_on_one_node_runs_on_every_node(self):
        work = self.work_dir()
        self.deploy(self.nodes[0], work, """\
                project: cl
                functions:
                  - name: hello
                    runtime: python3
                    source_dir: %s
                    entry_point: hello_pubsub
                    event_trigger_type: google.pubsub.topic.publish
                    event_trigger_resource: hello
                """ % json.dumps(os.path.join(HERE, "python_function")))

        self.wait_active_everywhere("hello")
        # A publish through the third node runs it (on whichever node's dispatcher takes the message).
        self.nodes[2].client().publish("hello", ["{}"])

        # Its lines, and Ferry's around them, are read through any node, whichever ran it.
        def logged_everywhere():
            for node in self.nodes:
                messages = node.log_messages("hello")
                if not any(m.startswith("python got data={}") for m in messages):
                    return False
                if not any(m.startswith("Function execution took") for m in messages):
                    return False
            return True
        harness.wait_for(logged_everywhere, timeout=60, what="the function's log lines through every node")

        # The listing through any node shows each live node's instances: every node runs one.
        def by_node():
            status, _, body = harness.http_request(self.nodes[1].port, "GET", "/ferry/v1/projects/cl/functions")
            hello = [f for f in json.loads(body)["functions"] if f["name"].endswith("/hello")][0]
            # The node that ran it keeps its instance a while; the others' reports come within a second.
            return hello if len(hello.get("nodes", [])) == 3 and hello["instancesRunning"] >= 1 else None
        hello = harness.wait_for(by_node, timeout=10, what="three nodes in the listing, one instance running")
        pids = sorted(str(node.proc.pid) for node in self.nodes)
        self.assertEqual(sorted(part["node"].split("/")[1] for part in hello["nodes"]), pids)
        self.assertEqual(hello["instancesRunning"], sum(part["instancesRunning"] for part in hello["nodes"]))
        listing = subprocess.run([harness.FERRY, "functions", "list"], capture_output=True, text=True, timeout=30,
                                 env=dict(os.environ, FERRY_ENDPOINT=self.nodes[2].endpoint, FERRY_PROJECT="cl"))
        self.assertEqual(listing.returncode, 0, listing.stderr)
        self.assertIn("BY NODE", listing.stdout)
        for pid in pids:
            self.assertIn("/%s/" % pid, listing.stdout)

    def test_max_instances_holds_across_the_cluster(self):
        """A C++ function (the SDK's, in tests/sdk/test_functions_main.cc) with max_instances 1 never runs twice at
        once, though every node runs it and messages come through every node."""
        work = self.work_dir()
        spans = os.path.join(work, "spans")
        self.deploy(self.nodes[1], work, """\
                project: cl
                functions:
                  - name: one-at-a-time
                    runtime: command
                    command: [%s]
                    entry_point: overlap
                    event_trigger_type: google.pubsub.topic.publish
                    event_trigger_resource: serial
                    max_instances: 1
                    env_vars: {OVERLAP_FILE: %s}
                """ % (json.dumps(TEST_FUNCTIONS), json.dumps(spans)))

        self.wait_active_everywhere("one-at-a-time")
        clients = self.clients()
        for i in range(20):  # 200 messages, a backlog of seconds of work for every node that would take it
            clients[i % 3].publish("serial", ["m%d-%d" % (i, j) for j in range(10)])

        harness.wait_for(lambda: len(lines_of(spans)) >= 200, timeout=120, interval=0.5, what="200 calls")
        self.assert_one_at_a_time(lines_of(spans))

    def test_a_functions_calls_spread_over_the_nodes_within_max_instances(self):
        """A function with max_instances 4 and a backlog: its calls run on more than one node, never more than four
        at once in the whole cluster, and its `ferry call`s count against the same four."""
        work = self.work_dir()
        spans = os.path.join(work, "spans")
        self.deploy(self.nodes[0], work, """\
                project: cl
                functions:
                  - name: spread
                    runtime: python3
                    source_dir: %s
                    entry_point: overlap_event
                    event_trigger_type: google.pubsub.topic.publish
                    event_trigger_resource: spread
                    max_instances: 4
                    env_vars: {OVERLAP_FILE: %s}
                """ % (json.dumps(os.path.join(HERE, "python_function")), json.dumps(spans)))
        self.wait_active_everywhere("spread")
        clients = self.clients()
        for i in range(12):  # 60 calls of 0.3 s: 4.5 s of work at four at once
            clients[i % 3].publish("spread", ["m%d-%d" % (i, j) for j in range(5)])
        calls = []

        def call(node):
            env = dict(os.environ, FERRY_ENDPOINT=node.endpoint, FERRY_PROJECT="cl")
            if node.admin_token:
                env["FERRY_TOKEN"] = node.admin_token
            calls.append(subprocess.run([harness.FERRY, "call", "spread", "--data", "x"], env=env,
                                        capture_output=True, text=True, timeout=120))
        callers = [threading.Thread(target=call, args=(node,)) for node in self.nodes]
        for t in callers:
            t.start()

        harness.wait_for(lambda: len(lines_of(spans)) >= 63, timeout=120, interval=0.5, what="63 calls")
        for t in callers:
            t.join(timeout=120)
        self.assertEqual([c.returncode for c in calls], [0, 0, 0], [c.stderr for c in calls])
        rows = [line.split() for line in lines_of(spans)]
        events = sorted([(float(r[0]), 1) for r in rows] + [(float(r[1]), -1) for r in rows])
        at_once = most = 0
        for _, step in events:
            at_once += step
            most = max(most, at_once)
        self.assertLessEqual(most, 4, "more than max_instances calls at once")
        self.assertGreaterEqual(most, 2, "the calls never ran side by side")
        # The nodes that ask first take the slots, and keep them while they have work: the burst's first calls
        # find every node asking.
        by_node = collections.Counter(r[2] for r in rows if r[3] != "x")
        self.assertGreaterEqual(len(by_node), 2, "every event ran on one node: %s" % by_node)

    def node_holding(self, claim):
        """The node (of self.nodes) that holds the claim named like `claim` (SQL LIKE) now, or None."""
        rows = self.pg.query("SELECT node FROM claims WHERE name LIKE '%s' AND until > "
                             "(extract(epoch FROM clock_timestamp()) * 1000)::bigint" % claim, db="ferry")
        for node in self.nodes:
            if rows and node.proc.poll() is None and rows[0][0].split("/")[1] == str(node.proc.pid):
                return node
        return None

    def test_one_node_watches_a_bucket_and_another_takes_over_when_it_dies(self):
        """Files written into a shared bucket directory, uploaded through any node, and written or deleted while the
        watching node is dead each raise their event exactly once."""
        work = self.work_dir()
        shared = os.path.join(work, "shared")
        self.deploy(self.nodes[0], work,
                    "project: cl\nbuckets:\n  - {name: shared-inbox, path: %s}\n" % json.dumps(shared))
        watcher = harness.wait_for(lambda: self.node_holding("watch shared-inbox"), timeout=30,
                                   what="a node watching the bucket")
        # Its first scan, which raises nothing, is done.
        harness.wait_for(lambda: self.pg.query("SELECT 1 FROM bucket_objects WHERE bucket = 'shared-inbox' AND "
                                               "name = ''", db="ferry"), timeout=30, what="the first scan")
        others = [node for node in self.nodes if node is not watcher]
        # Every node follows the deploy within a second.
        harness.wait_for(lambda: all(harness.http_request(node.port, "GET", "/storage/v1/b/shared-inbox")[0] == 200
                                     for node in self.nodes), timeout=10, what="the bucket on every node")
        a = others[1].client()  # a node that stays up
        self.addCleanup(a.close)
        a.create_subscription("inbox-events", "ferry-storage-shared-inbox")

        events = collections.Counter()

        def collect():
            got = a.pull("inbox-events")
            if got:
                a.ack("inbox-events", [m["ackId"] for m in got])
            for m in got:
                attrs = m["message"]["attributes"]
                events[(attrs["eventType"].rsplit(".", 1)[1], attrs["objectId"])] += 1
            return got

        def wait_events(expected, what):
            harness.wait_for(lambda: collect() is not None and set(events) >= expected, timeout=60, interval=0.5,
                             what=what)

        for i in range(3):
            with open(os.path.join(shared, "direct-%d.txt" % i), "w") as f:
                f.write("file %d" % i)
        # An upload through a node that does not watch: raised by that node, with its content type; the watch
        # finds it raised.
        status, _, body = harness.http_request(others[0].port, "POST",
                                               "/upload/storage/v1/b/shared-inbox/o?uploadType=media&name=up.csv",
                                               body=b"a,b\n", headers={"Content-Type": "text/x-upload"})
        self.assertEqual(status, 200, body)
        self.assertEqual(json.loads(body)["contentType"], "text/x-upload")
        wait_events({("finalize", "direct-0.txt"), ("finalize", "direct-1.txt"), ("finalize", "direct-2.txt"),
                     ("finalize", "up.csv")}, "the first events")
        # The object, as another node tells it, has the upload's content type.
        status, _, body = harness.http_request(others[1].port, "GET", "/storage/v1/b/shared-inbox/o/up.csv")
        self.assertEqual((status, json.loads(body)["contentType"]), (200, "text/x-upload"))

        # The watcher dies; while nobody watches, files come and go.
        watcher.kill9()
        try:
            with open(os.path.join(shared, "while-dead.txt"), "w") as f:
                f.write("written while no node watched")
            os.remove(os.path.join(shared, "direct-0.txt"))
            successor = harness.wait_for(lambda: self.node_holding("watch shared-inbox"), timeout=30,
                                         what="another node taking over the bucket")
            self.assertIsNot(successor, watcher)
            wait_events({("finalize", "while-dead.txt"), ("delete", "direct-0.txt")}, "what changed meanwhile")
            with open(os.path.join(shared, "after.txt"), "w") as f:
                f.write("written after the takeover")
            wait_events({("finalize", "after.txt")}, "the new watcher's event")
        finally:
            watcher.start()
        # Rescans (every 5 s) and the restarted node raise nothing again.
        deadline = time.time() + 8
        while time.time() < deadline:
            collect()
            time.sleep(0.5)
        self.assertEqual(dict(events), {("finalize", "direct-0.txt"): 1, ("finalize", "direct-1.txt"): 1,
                                        ("finalize", "direct-2.txt"): 1, ("finalize", "up.csv"): 1,
                                        ("finalize", "while-dead.txt"): 1, ("delete", "direct-0.txt"): 1,
                                        ("finalize", "after.txt"): 1})

    def test_gcloud_and_googles_node_client_on_different_nodes(self):
        """gcloud creates and publishes through one node, Google's Node.js client takes the messages on StreamingPull
        through another, and the REST API publishes through the third."""
        gcloud = shutil.which("gcloud")
        if gcloud is None and os.environ.get("CI") != "true":
            self.skipTest("gcloud is not installed")
        node_dir = os.path.join(HERE, "node_pubsub")
        if not os.path.isdir(os.path.join(node_dir, "node_modules", "@google-cloud", "pubsub")):
            subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=node_dir, check=True, capture_output=True,
                           timeout=300)
        a, b, c = self.nodes
        config = tempfile.mkdtemp(prefix="ferry-gcloud-")
        self.addCleanup(shutil.rmtree, config, True)
        env = dict(os.environ, CLOUDSDK_API_ENDPOINT_OVERRIDES_PUBSUB=b.endpoint + "/",
                   CLOUDSDK_AUTH_DISABLE_CREDENTIALS="true", CLOUDSDK_CONFIG=config, CLOUDSDK_CORE_PROJECT="cl",
                   CLOUDSDK_CORE_DISABLE_PROMPTS="1", CLOUDSDK_COMPONENT_MANAGER_DISABLE_UPDATE_CHECK="true",
                   CLOUDSDK_CORE_DISABLE_USAGE_REPORTING="true")

        def run_gcloud(*args):
            proc = subprocess.run([gcloud, "pubsub"] + list(args) + ["--format=json"], env=env, capture_output=True,
                                  text=True, timeout=120)
            self.assertEqual(proc.returncode, 0, proc.stderr)
            return json.loads(proc.stdout or "null")
        run_gcloud("topics", "create", "mixed")
        run_gcloud("subscriptions", "create", "mixed-sub", "--topic=mixed", "--ack-deadline=20")

        out_path = os.path.join(config, "stream.out")
        subscriber = subprocess.Popen(["node", "chaos_subscriber.js", "cl", "mixed-sub", out_path], cwd=node_dir,
                                      env=dict(os.environ, PUBSUB_EMULATOR_HOST="127.0.0.1:%d" % c.port),
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            def stream_lines():
                if not os.path.exists(out_path):
                    return []
                with open(out_path) as f:
                    return f.read().splitlines()
            harness.wait_for(lambda: "started" in stream_lines(), timeout=30, what="the subscriber")
            client = a.client()
            self.addCleanup(client.close)
            sent = set()
            for i in range(10):
                batch = ["rest-%d-%d" % (i, j) for j in range(10)]
                client.publish("mixed", batch)
                sent |= set(batch)
            for i in range(3):
                run_gcloud("topics", "publish", "mixed", "--message=gcloud-%d" % i)
                sent.add("gcloud-%d" % i)

            def acked():
                return {line.split(" ", 1)[1] for line in stream_lines() if line.startswith("acked ")}
            harness.wait_for(lambda: acked() >= sent, timeout=60, interval=0.5, what="every message on the stream")
            self.assertEqual(acked(), sent)
            # Acked through c: pulls through gcloud on b find nothing left.
            self.assertEqual(run_gcloud("subscriptions", "pull", "mixed-sub", "--limit=10"), [])
            subs = run_gcloud("subscriptions", "list")
            self.assertIn("projects/cl/subscriptions/mixed-sub", [s["name"] for s in subs])
        finally:
            subscriber.terminate()
            subscriber.wait(timeout=30)

    def test_a_node_killed_mid_execution_its_calls_run_again_elsewhere(self):
        """Publishes through every node; a node running the function's calls dies (kill -9) with calls under way;
        every answered publish still runs to completion, those calls on another node."""
        work = self.work_dir()
        record = os.path.join(work, "record")
        self.deploy(self.nodes[0], work, """\
                project: cl
                functions:
                  - name: recorder
                    runtime: python3
                    source_dir: %s
                    entry_point: record_slowly
                    event_trigger_type: google.pubsub.topic.publish
                    event_trigger_resource: jobs
                    timeout: 5s
                    env_vars: {RECORD_FILE: %s}
                """ % (json.dumps(os.path.join(HERE, "python_function")), json.dumps(record)))
        self.wait_active_everywhere("recorder")

        def lines():
            return lines_of(record)

        def under_way_on(node):
            done = {line.split()[1] for line in lines() if line.startswith("done ")}
            return [line.split()[1] for line in lines()
                    if line.startswith("start ") and line.split()[2] == str(node.proc.pid)
                    and line.split()[1] not in done]
        answered = []
        clients = self.clients()
        for i in range(30):
            answered += clients[i % 3].publish("jobs", ["before-%d" % i])
        victim = harness.wait_for(lambda: next((node for node in self.nodes if under_way_on(node)), None),
                                  timeout=60, interval=0.02, what="calls under way on some node")
        survivors = [node for node in self.nodes if node is not victim]

        def under_way_on_victim():
            return under_way_on(victim)
        victim.kill9()
        try:
            cut_short = set(under_way_on_victim())
            self.assertTrue(cut_short)
            others = [node.client() for node in survivors]
            for other in others:
                self.addCleanup(other.close)
            for i in range(30):
                others[i % 2].publish("jobs", ["after-%d" % i])
            expected = {"before-%d" % i for i in range(30)} | {"after-%d" % i for i in range(30)}

            def all_done():
                return {line.split()[1] for line in lines() if line.startswith("done ")} >= expected
            # The leases of the calls cut short run out (the subscription's ack deadline, the timeout and 30 s).
            harness.wait_for(all_done, timeout=120, interval=0.5, what="every published call done")
        finally:
            victim.start()
        for data in cut_short:
            ran_on = [line.split()[2] for line in lines() if line.startswith("start %s " % data)]
            self.assertGreaterEqual(len(ran_on), 2, data)
            self.assertNotEqual(ran_on[-1], str(victim.proc.pid))

    def fired_by(self, nodes):
        """{node: ticks of schedule tick-tock it fired} of the live `nodes`."""
        out = {}
        for node in nodes:
            client = node.client()
            try:
                fired = client.metric("ferry_schedule_ticks_fired_total", "projects/cl/locations/local/jobs/tick-tock")
                out[node] = int(fired or 0)
            finally:
                client.close()
        return out

    def test_a_schedule_fires_each_tick_once_across_the_death_of_the_node_that_fired(self):
        """A schedule every minute on three nodes: one node fires a tick; killed, another fires the next, and no tick
        fires twice. Takes two real minutes."""
        work = self.work_dir()
        a = self.nodes[0].client()
        self.addCleanup(a.close)
        a.create_topic("cl-ticks")
        a.create_subscription("cl-ticks-sub", "cl-ticks")
        self.deploy(self.nodes[0], work, """\
                project: cl
                schedules:
                  - name: tick-tock
                    schedule: "* * * * *"
                    topic: cl-ticks
                    data: tick
                """)
        ticks = []

        def pull_ticks(client):
            got = client.pull("cl-ticks-sub")
            if got:
                client.ack("cl-ticks-sub", [m["ackId"] for m in got])
            ticks.extend(m["message"]["publishTime"] for m in got)
            return len(ticks)
        harness.wait_for(lambda: pull_ticks(a) >= 1, timeout=75, interval=0.5, what="the first tick")
        fired = self.fired_by(self.nodes)
        self.assertEqual(sorted(fired.values()), [0, 0, 1], fired)
        firer = [node for node, n in fired.items() if n == 1][0]
        firer.kill9()
        try:
            survivors = [node for node in self.nodes if node is not firer]
            reader = survivors[0].client()
            self.addCleanup(reader.close)
            harness.wait_for(lambda: pull_ticks(reader) >= 2, timeout=75, interval=0.5, what="the next tick")
            self.assertEqual(sum(self.fired_by(survivors).values()), 1)
            time.sleep(2)  # a second firing of the same tick would be here by now
            pull_ticks(reader)
        finally:
            firer.start()
        minutes = [t[:16] for t in ticks]  # "2026-11-30T21:15"
        self.assertEqual(len(minutes), 2, ticks)
        self.assertEqual(len(set(minutes)), 2, ticks)

    def test_max_instances_holds_across_the_cluster_for_http_calls(self):
        """An HTTP function with max_instances 1 called through all three nodes at once: every call is served, one at
        a time in the whole cluster."""
        work = self.work_dir()
        spans = os.path.join(work, "spans")
        self.deploy(self.nodes[2], work, """\
                project: cl
                functions:
                  - name: one-web
                    runtime: python3
                    source_dir: %s
                    entry_point: overlap_http
                    trigger_http: true
                    allow_unauthenticated: true
                    max_instances: 1
                    env_vars: {OVERLAP_FILE: %s}
                """ % (json.dumps(os.path.join(HERE, "python_function")), json.dumps(spans)))

        def ready_everywhere():
            return all(harness.http_request(node.port, "GET", "/functions/one-web")[0] == 200 for node in self.nodes)
        harness.wait_for(ready_everywhere, timeout=60, interval=0.5, what="the function served by every node")
        with open(spans, "w"):
            pass  # the readiness calls' spans are not the test's
        statuses = []

        def call(node):
            for _ in range(8):
                statuses.append(harness.http_request(node.port, "GET", "/functions/one-web")[0])
        callers = [threading.Thread(target=call, args=(node,)) for node in self.nodes for _ in range(2)]
        for t in callers:
            t.start()
        for t in callers:
            t.join(timeout=120)
        self.assertEqual(statuses, [200] * 48)
        self.assertEqual(len(lines_of(spans)), 48)
        self.assert_one_at_a_time(lines_of(spans))


if __name__ == "__main__":
    harness.FERRY = os.path.abspath(sys.argv.pop(1))
    TEST_FUNCTIONS = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
