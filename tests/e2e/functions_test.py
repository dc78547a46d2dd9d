"""Functions end to end: the real daemon deploys ferry.yaml files with the real `ferry` CLI, builds the C++
quickstart against the SDK, runs function processes (C++ and Google's Node.js Functions Framework), and the tests
read what happened through `ferry logs`, the admin API and Pub/Sub."""
import base64
import json
import os
import re
import select
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
TEST_FUNCTIONS = ""  # the ferry_test_functions program, from argv


def wait_for(predicate, timeout=30, interval=0.1, what="condition"):
    return harness.wait_for(predicate, timeout, interval, what)


class FunctionsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.daemon = harness.Daemon(project="ferry-local").start()
        cls.client = cls.daemon.client()
        cls.work = tempfile.mkdtemp(prefix="ferry-fn-")

    @classmethod
    def tearDownClass(cls):
        cls.client.close()
        cls.daemon.close()
        shutil.rmtree(cls.work, ignore_errors=True)

    def ferry(self, *args, expect=0, project=None):
        env = dict(os.environ, FERRY_ENDPOINT=self.daemon.endpoint)
        env.pop("FERRY_PROJECT", None)
        if project:
            env["FERRY_PROJECT"] = project
        proc = subprocess.run([harness.FERRY] + list(args), env=env, capture_output=True, text=True, timeout=300)
        if proc.returncode != expect:
            with open(self.daemon.log_path) as log:
                self.fail("ferry %s exited %d\nstdout: %s\nstderr: %s\ndaemon log: %s" % (
                    " ".join(args), proc.returncode, proc.stdout, proc.stderr, log.read()[-3000:]))
        return proc

    def write(self, name, text):
        path = os.path.join(self.work, name)
        with open(path, "w") as f:
            f.write(textwrap.dedent(text))
        return path

    def admin(self, method, path, body=None):
        return self.client.request(method, "/ferry/v1/" + path, body)

    def executions(self, project, fn, limit=1000):
        status, res = self.admin("GET", "projects/%s/functions/%s/executions?limit=%d" % (project, fn, limit))
        self.assertEqual(status, 200, res)
        return res["executions"]

    def log_entries(self, project, fn, limit=10000):
        status, res = self.admin("GET", "projects/%s/functions/%s/logs?limit=%d" % (project, fn, limit))
        self.assertEqual(status, 200, res)
        return res["entries"]

    # --- the guide's walkthrough, in C++ ---

    def test_quickstart_walkthrough_retry_and_dead_letter(self):
        app = os.path.join(self.work, "quickstart")
        shutil.copytree(os.path.join(REPO, "examples", "quickstart"), app,
                        ignore=shutil.ignore_patterns("*.db", "build"))
        deploy_file = os.path.join(app, "ferry.yaml")

        plan = self.ferry("deploy", "-f", deploy_file, "--dry-run").stdout
        self.assertIn("+ create function projects/ferry-local/locations/local/functions/bar", plan)
        self.assertIn("nothing applied", plan)
        self.assertEqual(self.ferry("functions", "list", "--format", "json", project="ferry-local").stdout.strip(),
                         "[]")

        out = self.ferry("deploy", "-f", deploy_file).stdout
        self.assertIn("+ create topic projects/ferry-local/topics/bar-failed", out)
        self.assertIn("+ create subscription projects/ferry-local/subscriptions/gcf-bar-local-bar", out)
        self.assertIn("Applied", out)
        # Deploying the same file again changes nothing.
        self.assertEqual(self.ferry("deploy", "-f", deploy_file).stdout.strip(), "No changes.")

        # The trigger subscription carries the function's retry and dead-letter settings.
        sub = self.client.ok("GET", "/v1/projects/ferry-local/subscriptions/gcf-bar-local-bar")
        self.assertEqual(sub["deadLetterPolicy"], {"deadLetterTopic": "projects/ferry-local/topics/bar-failed",
                                                   "maxDeliveryAttempts": 6})
        self.assertEqual(sub["retryPolicy"]["minimumBackoff"], "120s")
        self.assertEqual(sub["ackDeadlineSeconds"], 570)

        self.ferry("publish", "bar", "--message", "{}", project="ferry-local")

        def completed():  # the platform's closing line, which can come a log batch after "Completed bar!"
            out = self.ferry("logs", "bar", project="ferry-local").stdout
            return out if "Completed bar!" in out and "finished with status" in out else None
        logs = wait_for(completed, timeout=60, what="Completed bar! and its execution's end in ferry logs bar")
        lines = logs.splitlines()
        self.assertTrue(lines[0].startswith("LEVEL"), logs)
        started = next(i for i, l in enumerate(lines) if "Started bar! Event: " in l)
        count = next(i for i, l in enumerate(lines) if "There are 3 practices and the DB totally works!" in l)
        done = next(i for i, l in enumerate(lines) if "Completed bar!" in l)
        self.assertLess(started, count)
        self.assertLess(count, done)
        self.assertIn('"data":"e30="', lines[started])  # the event: {} in base64
        self.assertIn("Context: ", lines[started])
        self.assertIn('"resource":"projects/ferry-local/topics/bar"', lines[started])
        execution_id = re.search(r'"execution_id":"([0-9a-f]{20})"', lines[started]).group(1)
        self.assertIn(execution_id, lines[done])
        only = self.ferry("logs", "bar", "--execution-id", execution_id, "--format", "json",
                          project="ferry-local").stdout.splitlines()
        messages = [json.loads(l)["message"] for l in only]
        self.assertEqual(messages[0], "Function execution started")
        self.assertTrue(messages[-1].startswith("Function execution took"), messages)
        self.assertTrue(messages[-1].endswith("finished with status: 'ok'"), messages)
        [execution] = self.executions("ferry-local", "bar")
        self.assertEqual((execution["status"], execution["attempt"], execution["trigger"]), ("ok", 1, "pubsub"))

        # The failing function: tried exactly max_delivery_attempts (5) times with growing delays (1s doubling),
        # then the message is on the dead-letter topic with the last error.
        self.client.create_subscription("dead-letters", "always-fails-failed")
        self.ferry("publish", "always-fails", "--message", '{"order": 42}', project="ferry-local")
        runs = wait_for(lambda: (lambda e: e if len(e) >= 5 else None)(self.executions("ferry-local", "always_fails")),
                        timeout=60, what="5 executions of always_fails")
        dead = wait_for(lambda: self.client.pull("dead-letters"), timeout=20, what="the dead-lettered message")
        # The dead letter took the place of a sixth delivery: there was none, and none can come.
        runs = sorted(self.executions("ferry-local", "always_fails"), key=lambda e: e["attempt"])
        self.assertEqual([e["attempt"] for e in runs], [1, 2, 3, 4, 5])
        self.assertTrue(all(e["status"] == "error" for e in runs))
        starts = [harness_time(e["startTime"]) for e in runs]
        gaps = [b - a for a, b in zip(starts, starts[1:])]
        for gap, expected in zip(gaps, [1, 2, 4, 8]):
            self.assertGreaterEqual(gap, expected - 0.05, gaps)
            self.assertLess(gap, expected + 1.5, gaps)
        self.assertEqual(len(dead), 1)
        attrs = dead[0]["message"]["attributes"]
        self.assertEqual(harness.data_of(dead[0]), '{"order": 42}')
        self.assertEqual(attrs["CloudPubSubDeadLetterSourceDeliveryCount"], "5")
        self.assertEqual(attrs["CloudPubSubDeadLetterSourceSubscription"], "gcf-always_fails-local-always-fails")
        self.assertIn("always_fails failed on attempt 5", attrs["FerryLastError"])

        # A restart runs what was deployed without building it again, and the walkthrough still works.
        self.daemon.stop()
        self.daemon.start()
        self.client.close()
        type(self).client = self.daemon.client()  # the restarted daemon has a new port
        wait_for(lambda: "ACTIVE" in self.ferry("functions", "list", project="ferry-local").stdout, timeout=60,
                 what="the functions to be running again")
        self.ferry("publish", "bar", "--message", "{}", project="ferry-local")
        wait_for(lambda: len(self.executions("ferry-local", "bar")) == 2, timeout=30, what="a second execution")

    # --- limits: timeout, memory, crash; each replaces the instance and the next invocation succeeds ---

    def test_timeout_memory_and_crash_fail_the_invocation_and_replace_the_instance(self):
        deploy_file = self.write("limits.yaml", """\
            project: limits
            functions:
              - name: chaos
                runtime: command
                command: [%s]
                entry_point: chaos
                event_trigger_type: google.pubsub.topic.publish
                event_trigger_resource: chaos
                memory_mb: 64
                timeout: 2
            """ % json.dumps(TEST_FUNCTIONS))
        self.ferry("deploy", "-f", deploy_file)
        cases = [('{"ms": 4000}', "timeout", "did not answer within 2000 ms"),
                 ('{"mb": 200}', "oom", "exceeded its memory limit of 64 MB"),
                 ('{"crash": true}', "crash", "crashed")]
        for data, status, error in cases:
            failed = self.ferry("call", "chaos", "--data", data, "--format", "json", project="limits", expect=1)
            result = json.loads(failed.stdout)
            self.assertEqual(result["status"], status, result)
            self.assertIn(error, result["error"])
            ok = json.loads(self.ferry("call", "chaos", "--data", "{}", "--format", "json", project="limits").stdout)
            self.assertEqual(ok["status"], "ok", ok)
        wait_for(lambda: len(self.executions("limits", "chaos")) == 6, timeout=5, what="6 executions recorded")
        statuses = [e["status"] for e in reversed(self.executions("limits", "chaos"))]
        self.assertEqual(statuses, ["timeout", "ok", "oom", "ok", "crash", "ok"])
        # Each failure was logged with its reason.
        messages = [e["message"] for e in self.log_entries("limits", "chaos")]
        self.assertIn("Function execution took", "\n".join(messages))
        self.assertTrue(any("finished with status: 'oom'" in m for m in messages), messages)
        metrics = self.client.request("GET", "/metrics")[1]
        self.assertIn('ferry_function_executions_total{function="projects/limits/locations/local/functions/chaos",'
                      'status="timeout"} 1', metrics)

        # `ferry logs --follow` prints lines as they come.
        env = dict(os.environ, FERRY_ENDPOINT=self.daemon.endpoint, FERRY_PROJECT="limits")
        follower = subprocess.Popen([harness.FERRY, "logs", "chaos", "--follow", "--limit", "1"], env=env,
                                    stdout=subprocess.PIPE)
        try:
            time.sleep(0.5)
            self.ferry("call", "chaos", "--data", "{}", project="limits")
            seen = ""
            deadline = time.time() + 10
            while time.time() < deadline and "chaos survived" not in seen:
                if select.select([follower.stdout], [], [], 0.2)[0]:
                    seen += os.read(follower.stdout.fileno(), 65536).decode()
            self.assertIn("chaos survived", seen)
        finally:
            follower.kill()
            follower.wait()

        # Deleting the function removes its trigger subscription; its executions stay readable.
        self.ferry("functions", "delete", "chaos", project="limits")
        self.assertEqual(self.ferry("functions", "list", "--format", "json", project="limits").stdout.strip(), "[]")
        status, _ = self.client.request("GET", "/v1/projects/limits/subscriptions/gcf-chaos-local-chaos")
        self.assertEqual(status, 404)
        self.assertEqual(len(self.executions("limits", "chaos")), 7)
        out = self.ferry("call", "chaos", "--data", "{}", project="limits", expect=1)
        self.assertIn("does not exist", out.stderr)

    def test_instances_die_with_the_daemon_even_on_kill_9(self):
        daemon = harness.Daemon(project="orphans").start()
        try:
            path = self.write("orphans.yaml", """\
                project: orphans
                functions:
                  - {name: greet, runtime: command, command: [%s], event_trigger_type: google.pubsub.topic.publish,
                     event_trigger_resource: greetings}
                topics: [greetings]
                """ % json.dumps(TEST_FUNCTIONS))
            env = dict(os.environ, FERRY_ENDPOINT=daemon.endpoint, FERRY_PROJECT="orphans")
            subprocess.run([harness.FERRY, "deploy", "-f", path], env=env, check=True, capture_output=True)
            subprocess.run([harness.FERRY, "call", "greet", "--data", "{}"], env=env, check=True, capture_output=True)
            children = subprocess.run(["pgrep", "-P", str(daemon.proc.pid)], capture_output=True,
                                      text=True).stdout.split()
            self.assertTrue(children, "the instance runs as a child of the daemon")
            daemon.kill9()
            wait_for(lambda: not any(os.path.exists("/proc/%s" % pid) and
                                     open("/proc/%s/stat" % pid).read().split()[2] != "Z" for pid in children),
                     timeout=5, what="the instances to die with the daemon")
        finally:
            daemon.close()

    # --- max_instances under a burst ---

    def test_burst_of_200_never_runs_more_than_max_instances(self):
        deploy_file = self.write("burst.yaml", """\
            project: burst
            topics: [burst]
            functions:
              - name: sleepy
                runtime: command
                command: [%s]
                event_trigger_type: google.pubsub.topic.publish
                event_trigger_resource: burst
                max_instances: 2
            """ % json.dumps(TEST_FUNCTIONS))
        self.ferry("deploy", "-f", deploy_file)
        client = harness.Client(self.daemon.port, "burst")
        for i in range(0, 200, 50):
            client.publish("burst", ['{"ms": 5}'] * 50)
        wait_for(lambda: len([e for e in self.executions("burst", "sleepy") if e["status"] == "ok"]) >= 200,
                 timeout=120, interval=0.5, what="200 executions")
        self.assertEqual(len(self.executions("burst", "sleepy")), 200)
        # Overlap measured inside the function: begin/end stamps from a clock shared by all instances.
        events = []
        for e in self.log_entries("burst", "sleepy"):
            m = re.match(r"(begin|end) (\d+)$", e["message"])
            if m:
                events.append((int(m.group(2)), 1 if m.group(1) == "begin" else -1))
        self.assertEqual(len(events), 400)
        in_flight = peak = 0
        for _, delta in sorted(events, key=lambda ev: (ev[0], ev[1])):
            in_flight += delta
            peak = max(peak, in_flight)
        self.assertLessEqual(peak, 2)
        self.assertEqual(peak, 2)  # and the two instances were both used
        client.close()

    # --- deploy files: refused whole with a line and column ---

    def test_broken_deploy_files_are_refused_whole_with_line_and_column(self):
        good = textwrap.dedent("""\
            project: broken
            topics: [aaa]
            functions:
              - name: f
                runtime: command
                command: [%s]
                event_trigger_type: google.pubsub.topic.publish
                event_trigger_resource: aaa
            """) % json.dumps(TEST_FUNCTIONS)
        cases = {
            # a YAML syntax error
            "syntax.yaml": (good + "  - name: [unclosed\n", r"syntax\.yaml:\d+:\d+: end of sequence flow not found"),
            # an unknown setting, at the key
            "unknown.yaml": (good.replace("    runtime: command", "    runtime: command\n    colour: blue"),
                             r"unknown\.yaml:6:5: function f: unknown setting \"colour\""),
            # a value out of range, at the function
            "range.yaml": (good + "    max_delivery_attempts: 3\n    dead_letter_topic: dlt\n",
                           r"range\.yaml:4:5: function f: max_delivery_attempts must be between 5 and 100, not 3"),
            # a wrong type
            "type.yaml": (good + "    max_instances: lots\n", r"type\.yaml:9:20: function f: max_instances must be"),
        }
        for name, (text, pattern) in cases.items():
            path = self.write(name, text)
            out = self.ferry("deploy", "-f", path, expect=1)
            self.assertEqual(out.stdout, "")
            self.assertRegex(out.stderr.strip(), "^ferry: error: .*" + pattern)
            self.assertEqual(out.stderr.count("\n"), 1, out.stderr)
        # Nothing was applied: no topic, no function.
        status, _ = self.client.request("GET", "/v1/projects/broken/topics/aaa")
        self.assertEqual(status, 404)
        self.assertEqual(self.ferry("functions", "list", "--format", "json", project="broken").stdout.strip(), "[]")
        # A function that fails to build fails the whole deploy too.
        bad_src = os.path.join(self.work, "badcpp")
        os.makedirs(bad_src, exist_ok=True)
        with open(os.path.join(bad_src, "CMakeLists.txt"), "w") as f:
            f.write("cmake_minimum_required(VERSION 3.25)\nproject(bad CXX)\nfind_package(ferry REQUIRED)\n"
                    "add_executable(bad main.cpp)\ntarget_link_libraries(bad PRIVATE ferry::sdk)\n")
        with open(os.path.join(bad_src, "main.cpp"), "w") as f:
            f.write("int main() { return this_does_not_compile; }\n")
        path = self.write("badbuild.yaml", """\
            project: broken
            topics: [aaa]
            functions:
              - {name: bad, runtime: cpp, source_dir: badcpp, event_trigger_type: google.pubsub.topic.publish,
                 event_trigger_resource: aaa}
            """)
        out = self.ferry("deploy", "-f", path, expect=1)
        self.assertIn("this_does_not_compile", out.stderr)
        status, _ = self.client.request("GET", "/v1/projects/broken/topics/aaa")
        self.assertEqual(status, 404)

    # --- Google's Node.js Functions Framework, as runtime: command ---

    def test_node_functions_framework_receives_the_same_event_and_its_error_is_a_failure(self):
        src = os.path.join(HERE, "node_function")
        # scripts/test.sh installs it (npm ci); standalone runs do the same here.
        if not os.path.isdir(os.path.join(src, "node_modules", "@google-cloud", "functions-framework")):
            subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=src, check=True, capture_output=True,
                           timeout=300)
        deploy_file = self.write("node.yaml", """\
            project: node
            topics: [orders, orders-failed]
            functions:
              - name: hello
                runtime: command
                source_dir: %s
                command: [node, node_modules/@google-cloud/functions-framework/build/src/main.js]
                entry_point: helloPubSub
                event_trigger_type: google.pubsub.topic.publish
                event_trigger_resource: orders
                event_trigger_retry: true
                dead_letter_topic: orders-failed
                max_delivery_attempts: 5
                min_retry_delay: 0s
                max_retry_delay: 0s
            """ % json.dumps(src))
        self.ferry("deploy", "-f", deploy_file)
        client = harness.Client(self.daemon.port, "node")
        client.create_subscription("failed", "orders-failed")
        [ok_id] = client.publish("orders", ['{"n": 1}'], {"k": "v"})
        wait_for(lambda: any(e["status"] == "ok" for e in self.executions("node", "hello")), timeout=60,
                 what="the node function to run")
        messages = [e["message"] for e in self.log_entries("node", "hello")]
        got = [m for m in messages if m.startswith("node got")]
        self.assertEqual(len(got), 1, messages)
        self.assertIn('data={"n": 1}', got[0])
        self.assertIn('attributes={"k":"v"}', got[0])
        self.assertIn("eventId=" + ok_id, got[0])
        self.assertIn("eventType=google.pubsub.topic.publish", got[0])
        self.assertIn("projects/node/topics/orders", got[0])

        client.publish("orders", ["boom"], {"fail": "yes"})
        dead = wait_for(lambda: client.pull("failed"), timeout=60, what="the failing message dead-lettered")
        self.assertEqual(dead[0]["message"]["attributes"]["CloudPubSubDeadLetterSourceDeliveryCount"], "5")
        failures = [e for e in self.executions("node", "hello") if e["status"] == "error"]
        self.assertEqual(len(failures), 5)
        client.close()


def harness_time(rfc3339):
    """Seconds since the epoch from "2026-11-28T09:42:34.921Z"."""
    import datetime
    return datetime.datetime.strptime(rfc3339, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()


if __name__ == "__main__":
    harness.FERRY = os.path.abspath(sys.argv.pop(1))
    TEST_FUNCTIONS = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
