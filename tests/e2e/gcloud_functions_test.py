"""gcloud beyond Pub/Sub, configured by `ferry env`: `gcloud functions list / describe / call` (Cloud Functions
v1) and `logs read` (Cloud Logging v2) on a deploy file's function, and `gcloud scheduler jobs` (Cloud Scheduler
v1): create a Pub/Sub job with a time zone, list,
describe, run (its message reaches a subscription of the topic), pause, resume, update, delete; `gcloud functions
deploy` of topic, HTTP and bucket functions (the source zipped and uploaded by gcloud), update, call, delete; bad
input in Google's error shape, printed by gcloud; and ownership: a deploy file neither deletes nor takes over a job
or function made with gcloud, and gcloud does not change a deploy file's."""
import base64
import io
import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import unittest
import zipfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

GCLOUD = shutil.which("gcloud")
PROJECT = "test-proj"


def gcloud_env(daemon, config):
    """What `eval "$(ferry env)"` sets, as a user would get it, plus a throwaway gcloud config."""
    out = daemon.cli("env")
    assert out.returncode == 0, out.stderr
    exports = dict(shlex.split(line[len("export "):])[0].split("=", 1)
                   for line in out.stdout.splitlines() if line.startswith("export "))
    assert exports["CLOUDSDK_CORE_PROJECT"] == daemon.project, exports
    assert exports["CLOUDSDK_API_ENDPOINT_OVERRIDES_CLOUDSCHEDULER"] == daemon.endpoint + "/", exports
    return dict(os.environ, **exports, **{
        "CLOUDSDK_CONFIG": config,
        "CLOUDSDK_CORE_DISABLE_PROMPTS": "1",
        "CLOUDSDK_COMPONENT_MANAGER_DISABLE_UPDATE_CHECK": "true",
        "CLOUDSDK_CORE_DISABLE_USAGE_REPORTING": "true",
    })


@unittest.skipIf(GCLOUD is None and os.environ.get("CI") != "true", "gcloud is not installed")
class GcloudSchedulerTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # HTTP jobs may reach what push subscriptions may: this machine's receiver, allowed here.
        cls.daemon = harness.Daemon(project=PROJECT, extra_args=["--push-allow", "127.0.0.1"]).start()
        cls.config = tempfile.mkdtemp(prefix="gcloud-config-")
        cls.work = tempfile.mkdtemp(prefix="ferry-sched-")
        cls.env = gcloud_env(cls.daemon, cls.config)
        client = cls.daemon.client()
        client.create_topic("bar-topic")
        client.create_subscription("bar-audit", "bar-topic")
        client.close()

    @classmethod
    def tearDownClass(cls):
        cls.daemon.close()
        shutil.rmtree(cls.config, ignore_errors=True)
        shutil.rmtree(cls.work, ignore_errors=True)

    def gcloud(self, *args, expect=0):
        proc = subprocess.run([GCLOUD, "scheduler", "jobs"] + list(args) + ["--location", "us-central1"],
                              env=self.env, capture_output=True, text=True, timeout=120)
        self.assertEqual(proc.returncode, expect, "gcloud scheduler jobs %s: %s %s" % (
            " ".join(args), proc.stdout, proc.stderr))
        return proc

    def test_a_pubsub_job_from_create_to_delete(self):
        self.gcloud("create", "pubsub", "bar-every-5", "--schedule", "*/5 * * * *", "--topic", "bar-topic",
                    "--message-body", "{}", "--attributes", "k=v", "--time-zone", "Europe/Amsterdam")
        job = json.loads(self.gcloud("describe", "bar-every-5", "--format", "json").stdout)
        self.assertEqual(job["name"], "projects/test-proj/locations/us-central1/jobs/bar-every-5")
        self.assertEqual(job["schedule"], "*/5 * * * *")
        self.assertEqual(job["timeZone"], "Europe/Amsterdam")
        self.assertEqual(job["state"], "ENABLED")
        self.assertEqual(job["pubsubTarget"]["topicName"], "projects/test-proj/topics/bar-topic")
        self.assertEqual(base64.b64decode(job["pubsubTarget"]["data"]), b"{}")
        self.assertEqual(job["pubsubTarget"]["attributes"], {"k": "v"})
        self.assertIn("scheduleTime", job)
        listed = self.gcloud("list").stdout
        self.assertIn("bar-every-5", listed)
        self.assertIn("ENABLED", listed)

        # run: the job's message is published now.
        self.gcloud("run", "bar-every-5")
        client = self.daemon.client()
        self.addCleanup(client.close)
        got = harness.wait_for(lambda: client.pull("bar-audit", 10, immediately=True), timeout=15,
                               what="the run's message")
        self.assertEqual(harness.data_of(got[0]), "{}")
        self.assertEqual(got[0]["message"]["attributes"], {"k": "v"})
        client.ack("bar-audit", [m["ackId"] for m in got])

        self.gcloud("pause", "bar-every-5")
        self.assertEqual(json.loads(self.gcloud("describe", "bar-every-5", "--format", "json").stdout)["state"],
                         "PAUSED")
        self.gcloud("resume", "bar-every-5")
        self.assertEqual(json.loads(self.gcloud("describe", "bar-every-5", "--format", "json").stdout)["state"],
                         "ENABLED")
        self.gcloud("update", "pubsub", "bar-every-5", "--schedule", "*/10 * * * *")
        job = json.loads(self.gcloud("describe", "bar-every-5", "--format", "json").stdout)
        self.assertEqual(job["schedule"], "*/10 * * * *")
        self.assertEqual(job["pubsubTarget"]["attributes"], {"k": "v"}, "an update keeps what it does not name")

        self.gcloud("delete", "bar-every-5")
        failed = self.gcloud("describe", "bar-every-5", expect=1)
        self.assertIn("NOT_FOUND", failed.stderr + failed.stdout)

    def test_an_http_job_calls_its_uri_as_cloud_scheduler_does(self):
        with harness.PushReceiver() as receiver:
            self.gcloud("create", "http", "hook", "--schedule", "0 4 * * *", "--uri", receiver.url + "/hook?x=1",
                        "--message-body", '{"from": "job"}', "--headers", "Content-Type=application/json,X-Team=bar")
            job = json.loads(self.gcloud("describe", "hook", "--format", "json").stdout)
            self.assertEqual(job["httpTarget"]["uri"], receiver.url + "/hook?x=1")
            self.assertEqual(job["httpTarget"]["httpMethod"], "POST")
            self.assertEqual(job["httpTarget"]["headers"]["X-Team"], "bar")
            self.assertEqual(base64.b64decode(job["httpTarget"]["body"]), b'{"from": "job"}')
            self.gcloud("run", "hook")
            got = receiver.wait_for(1)[0]
            self.assertEqual(got["path"], "/hook?x=1")
            self.assertEqual(got["body"], '{"from": "job"}')
            self.assertEqual(got["headers"]["content-type"], "application/json")
            self.assertEqual(got["headers"]["x-team"], "bar")
            self.assertEqual(got["headers"]["user-agent"], "Google-Cloud-Scheduler")
            self.assertEqual(got["headers"]["x-cloudscheduler-jobname"], "hook")
            # An update of the body keeps the rest; a failing answer is retried as the retry config says.
            self.gcloud("update", "http", "hook", "--message-body", "second", "--max-retry-attempts", "1",
                        "--min-backoff", "1s")
            receiver.status = 500
            self.gcloud("run", "hook")
            second = receiver.wait_for(3)[1:]
            self.assertEqual([r["body"] for r in second], ["second", "second"])
            self.assertEqual(second[0]["path"], "/hook?x=1")
            self.gcloud("delete", "hook")

    def test_cloud_schedulers_defaults(self):
        self.gcloud("create", "pubsub", "defaults", "--schedule", "0 9 * * 1", "--topic", "bar-topic",
                    "--message-body", "hello")
        job = json.loads(self.gcloud("describe", "defaults", "--format", "json").stdout)
        self.assertEqual(job["timeZone"], "Etc/UTC")
        self.assertEqual(job["retryConfig"]["minBackoffDuration"], "5s")
        self.gcloud("delete", "defaults")

    def test_bad_input_is_refused_in_googles_words(self):
        bad = self.gcloud("create", "pubsub", "broken", "--schedule", "every day", "--topic", "bar-topic",
                          "--message-body", "x", expect=1)
        self.assertIn("INVALID_ARGUMENT", bad.stderr)
        self.assertIn("schedule broken", bad.stderr)
        bad = self.gcloud("create", "pubsub", "zoned", "--schedule", "* * * * *", "--topic", "bar-topic",
                          "--message-body", "x", "--time-zone", "Mars/Olympus", expect=1)
        self.assertIn("Mars/Olympus", bad.stderr)
        # An HTTP target goes only where a push endpoint may: not to an address ferry serve --push-allow leaves out.
        http = self.gcloud("create", "http", "hook", "--schedule", "* * * * *", "--uri", "http://10.1.2.3:9/",
                           expect=1)
        self.assertIn("10.1.2.3", http.stderr)
        self.assertIn("INVALID_ARGUMENT", http.stderr)
        self.gcloud("create", "pubsub", "twice", "--schedule", "* * * * *", "--topic", "bar-topic",
                    "--message-body", "x")
        again = self.gcloud("create", "pubsub", "twice", "--schedule", "* * * * *", "--topic", "bar-topic",
                            "--message-body", "x", expect=1)
        self.assertIn("ALREADY_EXISTS", again.stderr)
        self.gcloud("delete", "twice")

    def test_a_deploy_file_and_gcloud_keep_to_their_own_jobs(self):
        self.gcloud("create", "pubsub", "from-gcloud", "--schedule", "0 1 * * *", "--topic", "other-topic",
                    "--message-body", "x")
        path = os.path.join(self.work, "ferry.yaml")
        with open(path, "w") as f:
            f.write(textwrap.dedent("""\
                project: test-proj
                schedules:
                  - name: from-file
                    region: us-central1
                    schedule: "0 2 * * *"
                    topic: other-topic
                    data: '{}'
                """))
        self.daemon.deploy(path)
        # The deploy left gcloud's job alone (it did not declare it)...
        names = [j["name"].split("/")[-1] for j in json.loads(self.gcloud("list", "--format", "json").stdout)]
        self.assertEqual(sorted(names), ["from-file", "from-gcloud"])
        # ...and gcloud cannot change or delete the file's job (the next deploy would undo it).
        refused = self.gcloud("delete", "from-file", expect=1)
        self.assertIn("deploy file", refused.stderr)
        refused = self.gcloud("update", "pubsub", "from-file", "--schedule", "0 3 * * *", expect=1)
        self.assertIn("deploy file", refused.stderr)
        # A deploy file that declares gcloud's job is refused whole, naming it.
        with open(path, "a") as f:
            f.write("  - {name: from-gcloud, region: us-central1, schedule: '0 4 * * *', topic: other-topic, data: x}\n")
        out = self.daemon.cli("deploy", "-f", path)
        self.assertNotEqual(out.returncode, 0)
        self.assertIn("was created with gcloud scheduler", out.stderr)
        # Both still run by hand.
        self.gcloud("run", "from-file")
        self.gcloud("delete", "from-gcloud")


@unittest.skipIf(GCLOUD is None and os.environ.get("CI") != "true", "gcloud is not installed")
class GcloudLogsTest(unittest.TestCase):
    """`gcloud functions logs read` (Cloud Logging v2 entries:list) on a deploy file's function."""

    @classmethod
    def setUpClass(cls):
        cls.daemon = harness.Daemon(project="logs-proj").start()
        cls.config = tempfile.mkdtemp(prefix="gcloud-config-")
        cls.work = tempfile.mkdtemp(prefix="ferry-logs-")
        cls.env = gcloud_env(cls.daemon, cls.config)
        path = os.path.join(cls.work, "ferry.yaml")
        with open(path, "w") as f:
            f.write(textwrap.dedent("""\
                project: logs-proj
                topics: [bar]
                functions:
                  - name: bar
                    runtime: python3
                    source_dir: %s
                    entry_point: hello_pubsub
                    event_trigger_type: google.pubsub.topic.publish
                    event_trigger_resource: bar
                """) % json.dumps(os.path.join(os.path.dirname(os.path.abspath(__file__)), "python_function")))
        cls.daemon.deploy(path)

    @classmethod
    def tearDownClass(cls):
        cls.daemon.close()
        shutil.rmtree(cls.config, ignore_errors=True)
        shutil.rmtree(cls.work, ignore_errors=True)

    def logs(self, *args):
        proc = subprocess.run([GCLOUD, "functions", "logs", "read"] + list(args), env=self.env, capture_output=True,
                              text=True, timeout=120)
        self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
        return proc.stdout

    def test_logs_read_shows_each_executions_lines(self):
        client = self.daemon.client()
        self.addCleanup(client.close)
        client.publish("bar", ['{"n": 1}'])
        client.publish("bar", ['{"n": 2}', '{"fail": 1}'], {"fail": "yes"})
        # gcloud asks for the newest 20 lines by default; the failures' tracebacks are more than that.
        harness.wait_for(lambda: "python got data={\"n\": 1}" in self.logs("bar", "--limit", "100"), timeout=30,
                         what="the function's line in gcloud functions logs read")
        out = self.logs("bar", "--limit", "100")
        self.assertEqual(out.splitlines()[0].split(), ["LEVEL", "NAME", "EXECUTION_ID", "TIME_UTC", "LOG"])
        rows = [line.split(None, 5) for line in out.splitlines()[1:]]
        got = [r for r in rows if len(r) == 6 and r[5].startswith("python got data={\"n\": 1}")]
        self.assertEqual(len(got), 1, out)
        level, name, execution = got[0][:3]
        self.assertEqual((level, name), ("I", "bar"))
        # --execution-id: that execution's lines only (its start, its line, its end).
        one = self.logs("bar", "--execution-id", execution)
        self.assertIn("python got", one)
        self.assertNotIn('{"n": 2}', one)
        self.assertTrue(all(execution in line for line in one.splitlines()[1:]), one)
        # --min-log-level error: the failures' tracebacks and Ferry's error lines, nothing at INFO.
        harness.wait_for(lambda: "ValueError: python function failed as asked" in self.logs(
            "bar", "--min-log-level", "error", "--limit", "100"), timeout=30, what="the failure's traceback")
        errors = self.logs("bar", "--min-log-level", "error", "--limit", "100")
        self.assertNotIn("python got", errors)
        # --limit: the newest lines, newest first, as gcloud asks for them.
        newest = self.logs("bar", "--limit", "3").splitlines()
        self.assertEqual(len(newest), 4)
        times = [line.split(None, 5)[3] + " " + line.split(None, 5)[4] for line in newest[1:]]
        self.assertEqual(times, sorted(times, reverse=True))


    def functions(self, *args, expect=0):
        proc = subprocess.run([GCLOUD, "functions"] + list(args), env=self.env, capture_output=True, text=True,
                              timeout=120)
        self.assertEqual(proc.returncode, expect, proc.stdout + proc.stderr)
        return proc

    def test_list_describe_and_call_a_deploy_files_function(self):
        listed = json.loads(self.functions("list", "--format", "json").stdout)
        self.assertEqual([f["name"] for f in listed], ["projects/logs-proj/locations/local/functions/bar"])
        bar = json.loads(self.functions("describe", "bar", "--format", "json").stdout)
        self.assertEqual(bar["status"], "ACTIVE")
        self.assertEqual(bar["runtime"], "python311")
        self.assertEqual(bar["entryPoint"], "hello_pubsub")
        self.assertEqual(bar["eventTrigger"]["eventType"], "google.pubsub.topic.publish")
        self.assertEqual(bar["eventTrigger"]["resource"], "projects/logs-proj/topics/bar")
        self.assertEqual(bar["timeout"], "60s")
        called = self.functions("call", "bar", "--data", '{"n": 42}').stdout
        self.assertIn("executionId:", called)
        self.assertIn("result: OK", called)
        execution = [line.split(":", 1)[1].strip() for line in called.splitlines() if line.startswith("executionId")][0]
        harness.wait_for(lambda: "python got data={\"n\": 42}" in self.logs("bar", "--execution-id", execution),
                         timeout=30, what="the called execution's line")
        missing = self.functions("describe", "nope", expect=1)
        self.assertIn("does not exist", missing.stderr)


FUNCTION_SOURCE = """\
import base64
import os


def bar(event, context):
    data = base64.b64decode(event.get("data", "")).decode()
    print("Started bar! data=%s" % data)
    if data == "fail":
        raise ValueError("bar failed as asked")
    print("Completed bar! A=%s" % os.environ.get("A", "-"))


def web(request):
    return "hello " + request.args.get("name", "world")


def on_upload(event, context):
    print("stored %s in %s" % (event["name"], event["bucket"]))
"""


@unittest.skipIf(GCLOUD is None and os.environ.get("CI") != "true", "gcloud is not installed")
class GcloudFunctionsDeployTest(unittest.TestCase):
    """gcloud functions deploy / describe / list / call / delete, with the source zipped and uploaded by gcloud."""

    @classmethod
    def setUpClass(cls):
        cls.daemon = harness.Daemon(project="deploy-proj").start()
        cls.config = tempfile.mkdtemp(prefix="gcloud-config-")
        cls.work = tempfile.mkdtemp(prefix="ferry-gcf-")
        cls.env = gcloud_env(cls.daemon, cls.config)
        cls.src = os.path.join(cls.work, "src")
        os.makedirs(cls.src)
        with open(os.path.join(cls.src, "main.py"), "w") as f:
            f.write(FUNCTION_SOURCE)

    @classmethod
    def tearDownClass(cls):
        cls.daemon.close()
        shutil.rmtree(cls.config, ignore_errors=True)
        shutil.rmtree(cls.work, ignore_errors=True)

    def gcloud(self, *args, expect=0):
        proc = subprocess.run([GCLOUD] + list(args), env=self.env, capture_output=True, text=True, timeout=180)
        self.assertEqual(proc.returncode, expect, "gcloud %s: %s %s" % (" ".join(args), proc.stdout, proc.stderr))
        return proc

    def describe(self, name):
        return json.loads(self.gcloud("functions", "describe", name, "--format", "json").stdout)

    def logs(self, name, *args):
        return self.gcloud("functions", "logs", "read", name, "--limit", "100", *args).stdout

    def test_a_topic_function_from_deploy_to_delete(self):
        self.gcloud("functions", "deploy", "bar", "--no-gen2", "--runtime", "python311", "--trigger-topic", "bar",
                    "--retry", "--timeout", "540s", "--memory", "512MB", "--max-instances", "1", "--source",
                    self.src, "--entry-point", "bar")
        bar = self.describe("bar")
        self.assertEqual(bar["name"], "projects/deploy-proj/locations/local/functions/bar")
        self.assertEqual(bar["status"], "ACTIVE")
        self.assertEqual(bar["runtime"], "python311")
        self.assertEqual(bar["timeout"], "540s")
        self.assertEqual(bar["availableMemoryMb"], 512)
        self.assertEqual(bar["maxInstances"], 1)
        self.assertEqual(bar["eventTrigger"]["resource"], "projects/deploy-proj/topics/bar")
        self.assertEqual(bar["eventTrigger"]["failurePolicy"], {"retry": {}})
        self.assertEqual(bar["labels"], {"deployment-tool": "cli-gcloud"})
        self.assertEqual(bar["versionId"], "1")
        self.assertIn("updateTime", bar)

        # The guide's next step: the dead-letter settings on the trigger subscription, named as Google names it.
        self.gcloud("pubsub", "topics", "create", "bar-failed")
        self.gcloud("pubsub", "subscriptions", "update", "gcf-bar-local-bar", "--dead-letter-topic", "bar-failed",
                    "--max-delivery-attempts", "6", "--min-retry-delay", "2m")
        self.gcloud("pubsub", "topics", "publish", "bar", "--message", "{}")
        harness.wait_for(lambda: "Completed bar! A=-" in self.logs("bar"), timeout=60, what="Completed bar!")
        # A Cloud Scheduler job publishing to the function's topic: run, the function runs.
        self.gcloud("scheduler", "jobs", "create", "pubsub", "bar-nightly", "--location", "local", "--schedule",
                    "0 3 * * *", "--time-zone", "Europe/Amsterdam", "--topic", "bar", "--message-body", "from-job")
        self.gcloud("scheduler", "jobs", "run", "bar-nightly", "--location", "local")
        harness.wait_for(lambda: "Started bar! data=from-job" in self.logs("bar"), timeout=60,
                         what="the job's run in the function's log")
        self.gcloud("scheduler", "jobs", "delete", "bar-nightly", "--location", "local")

        # An update: a shorter timeout and an environment variable; the dead-letter settings stay.
        self.gcloud("functions", "deploy", "bar", "--no-gen2", "--runtime", "python311", "--trigger-topic", "bar",
                    "--retry", "--timeout", "60s", "--update-env-vars", "A=1", "--source", self.src,
                    "--entry-point", "bar")
        bar = self.describe("bar")
        self.assertEqual(bar["timeout"], "60s")
        self.assertEqual(bar["versionId"], "2")
        self.assertEqual(bar["environmentVariables"], {"A": "(hidden)"})
        self.assertEqual(bar["availableMemoryMb"], 512, "an update keeps what it does not change")
        sub = json.loads(self.gcloud("pubsub", "subscriptions", "describe", "gcf-bar-local-bar", "--format",
                                     "json").stdout)
        self.assertEqual(sub["deadLetterPolicy"]["maxDeliveryAttempts"], 6)
        self.assertEqual(sub["retryPolicy"]["minimumBackoff"], "120s")
        self.assertEqual(sub["ackDeadlineSeconds"], 90)
        # --update-env-vars sends back the "(hidden)" it read: the values stay what they are.
        self.gcloud("functions", "deploy", "bar", "--no-gen2", "--runtime", "python311", "--trigger-topic", "bar",
                    "--retry", "--update-env-vars", "B=2", "--source", self.src, "--entry-point", "bar")
        self.gcloud("pubsub", "topics", "publish", "bar", "--message", "again")
        harness.wait_for(lambda: "Completed bar! A=1" in self.logs("bar"), timeout=60, what="the new A in the log")

        listed = self.gcloud("functions", "list").stdout
        self.assertIn("bar", listed)
        self.assertIn("ACTIVE", listed)
        out = self.gcloud("functions", "delete", "bar")
        self.assertIn("Deleted [projects/deploy-proj/locations/local/functions/bar]", out.stderr + out.stdout)
        missing = self.gcloud("functions", "describe", "bar", expect=1)
        self.assertIn("does not exist", missing.stderr)
        # Its sources are gone with it.
        self.assertFalse(os.path.exists(os.path.join(self.daemon.data_dir, "function-sources", "deploy-proj",
                                                     "local", "bar")))

    def test_an_http_function_called_with_and_without_gcloud(self):
        self.gcloud("functions", "deploy", "web", "--no-gen2", "--runtime", "python311", "--trigger-http",
                    "--allow-unauthenticated", "--source", self.src, "--entry-point", "web")
        web = self.describe("web")
        url = web["httpsTrigger"]["url"]
        self.assertEqual(url, self.daemon.endpoint + "/projects/deploy-proj/locations/local/functions/web")
        status, _, body = harness.http_request(self.daemon.port, "GET", url[len(self.daemon.endpoint):] + "?name=x")
        self.assertEqual((status, body), (200, b"hello x"))
        called = self.gcloud("functions", "call", "web", "--data", "{}").stdout
        self.assertIn("result: hello world", called)
        self.gcloud("functions", "delete", "web")

    def test_a_nodejs_function_gets_its_dependencies_at_deploy(self):
        """gcloud leaves node_modules out of the zip (its default .gcloudignore); the deploy runs npm ci from the
        package-lock.json, as Cloud Functions' build does, and Google's Functions Framework runs the function."""
        src = os.path.join(self.work, "node")
        shutil.copytree(os.path.join(os.path.dirname(os.path.abspath(__file__)), "node_function"), src,
                        ignore=shutil.ignore_patterns("node_modules"))
        self.gcloud("functions", "deploy", "node-bar", "--no-gen2", "--runtime", "nodejs20", "--trigger-topic",
                    "node-topic", "--source", src, "--entry-point", "helloPubSub")
        self.assertEqual(self.describe("node-bar")["runtime"], "nodejs20")
        self.gcloud("pubsub", "topics", "publish", "node-topic", "--message", "from-gcloud")
        harness.wait_for(lambda: "node got data=from-gcloud" in self.logs("node-bar"), timeout=60,
                         what="the Node.js function's line")
        self.gcloud("functions", "delete", "node-bar")

    def test_a_bucket_function(self):
        bucket_dir = os.path.join(self.work, "uploads")
        path = os.path.join(self.work, "ferry.yaml")
        with open(path, "w") as f:
            f.write("project: deploy-proj\nbuckets:\n  - name: deploy-proj-uploads\n    path: %s\n"
                    % json.dumps(bucket_dir))
        self.daemon.deploy(path)
        self.gcloud("functions", "deploy", "on_upload", "--no-gen2", "--runtime", "python311", "--trigger-bucket",
                    "deploy-proj-uploads", "--source", self.src)
        self.assertEqual(self.describe("on_upload")["eventTrigger"]["resource"],
                         "projects/_/buckets/deploy-proj-uploads")
        with open(os.path.join(bucket_dir, "report.csv"), "w") as f:
            f.write("a,b\n")
        harness.wait_for(lambda: "stored report.csv in deploy-proj-uploads" in self.logs("on_upload"), timeout=60,
                         what="the bucket function's line")
        # A bucket no deploy file declared is refused, saying so.
        refused = self.gcloud("functions", "deploy", "nobucket", "--no-gen2", "--runtime", "python311",
                              "--trigger-bucket", "nowhere-bucket", "--source", self.src, "--entry-point",
                              "on_upload", expect=1)
        self.assertIn("bucket nowhere-bucket does not exist", refused.stderr)
        # The deploy file that declares the bucket keeps gcloud's function when it is applied again.
        self.daemon.deploy(path)
        self.assertEqual(self.describe("on_upload")["status"], "ACTIVE")
        self.gcloud("functions", "delete", "on_upload")

    def test_bad_input_is_refused_in_googles_words(self):
        # A runtime Ferry does not run: gcloud checks the runtimes Ferry lists.
        bad = self.gcloud("functions", "deploy", "old", "--no-gen2", "--runtime", "python27", "--trigger-http",
                          "--source", self.src, expect=1)
        self.assertIn("python27 is not a supported runtime", bad.stderr)
        # A value out of Ferry's range: Ferry's message, printed by gcloud.
        bad = self.gcloud("functions", "deploy", "slow", "--no-gen2", "--runtime", "python311", "--trigger-topic",
                          "bar", "--max-instances", "5000", "--source", self.src, "--entry-point", "bar", expect=1)
        self.assertIn("status=[400]", bad.stderr)
        self.assertIn("max_instances must be between 1 and 1000", bad.stderr)
        self.gcloud("functions", "describe", "slow", expect=1)
        # A deploy file's function is not gcloud's to change or delete.
        path = os.path.join(self.work, "owned.yaml")
        with open(path, "w") as f:
            f.write(textwrap.dedent("""\
                project: deploy-proj
                functions:
                  - name: filed
                    runtime: python3
                    source_dir: %s
                    entry_point: web
                """) % json.dumps(self.src))
        self.daemon.deploy(path)
        refused = self.gcloud("functions", "delete", "filed", expect=1)
        self.assertIn("belongs to a deploy file", refused.stderr)
        refused = self.gcloud("functions", "deploy", "filed", "--no-gen2", "--runtime", "python311", "--trigger-http",
                              "--source", self.src, "--entry-point", "web", expect=1)
        self.assertIn("belongs to a deploy file", refused.stderr)

    def test_a_zip_that_reaches_outside_its_directory_is_refused(self):
        """gcloud zips a directory, which cannot hold such a path; another client can send one. The API refuses it
        in google.rpc.Status form, and nothing is written outside the function's directory."""
        port = self.daemon.port
        base = "/v1/projects/deploy-proj/locations/local/functions"
        status, _, body = harness.http_request(port, "POST", base + ":generateUploadUrl", b"{}",
                                               {"Content-Type": "application/json"})
        self.assertEqual(status, 200, body)
        url = json.loads(body)["uploadUrl"]
        self.assertTrue(url.startswith(self.daemon.endpoint + "/upload/functions/"), url)
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            z.writestr("main.py", "def bar(event, context):\n    pass\n")
            z.writestr("../../escaped.py", "oops")
        status, _, body = harness.http_request(port, "PUT", url[len(self.daemon.endpoint):], buf.getvalue(),
                                               {"Content-Type": "application/zip"})
        self.assertEqual(status, 200, body)
        fn = {"name": base[1 + len("v1/"):] + "/evil", "runtime": "python311", "entryPoint": "bar",
              "eventTrigger": {"eventType": "google.pubsub.topic.publish",
                               "resource": "projects/deploy-proj/topics/bar"},
              "sourceUploadUrl": url}
        status, _, body = harness.http_request(port, "POST", base, json.dumps(fn).encode(),
                                               {"Content-Type": "application/json"})
        self.assertEqual(status, 400, body)
        error = json.loads(body)["error"]
        self.assertEqual(error["status"], "INVALID_ARGUMENT")
        self.assertIn("../../escaped.py", error["message"])
        self.assertFalse(os.path.exists(os.path.join(self.daemon.data_dir, "escaped.py")))
        self.assertFalse(os.path.exists(os.path.join(self.daemon.data_dir, "function-sources", "escaped.py")))
        # The upload was used up: the same URL takes nothing more.
        status, _, body = harness.http_request(port, "PUT", url[len(self.daemon.endpoint):], buf.getvalue(),
                                               {"Content-Type": "application/zip"})
        self.assertEqual(status, 404, body)
        # An upload URL Ferry did not hand out takes nothing, and no more than any request may send.
        status, _, _ = harness.http_request(port, "PUT", "/upload/functions/" + "0" * 32 + ".zip", b"x",
                                            {"Content-Type": "application/zip"})
        self.assertEqual(status, 404)
        # One that waits for its upload takes as much as Cloud Functions does (100 MiB), more than other requests.
        status, _, body = harness.http_request(port, "POST", base + ":generateUploadUrl", b"{}",
                                               {"Content-Type": "application/json"})
        big = json.loads(body)["uploadUrl"][len(self.daemon.endpoint):]
        status, _, body = harness.http_request(port, "PUT", big, os.urandom(20 << 20),
                                               {"Content-Type": "application/zip"})
        self.assertEqual(status, 200, body)
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            sock.sendall(b"PUT /upload/functions/%s.zip HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
                         b"application/zip\r\nContent-Length: %d\r\n\r\n" % (b"0" * 32, 17 << 20))
            self.assertTrue(sock.recv(4096).startswith(b"HTTP/1.1 413"))


@unittest.skipIf(GCLOUD is None and os.environ.get("CI") != "true", "gcloud is not installed")
class GcloudFunctionsWithTokensTest(unittest.TestCase):
    """With tokens, `ferry env --token-file` gives gcloud its token: an admin deploys, a viewer reads and is refused a
    deploy in Google's words."""

    def test_roles(self):
        admin, viewer = "gcloud-admin-" + "a" * 24, "gcloud-viewer-" + "v" * 24
        daemon = harness.Daemon(project="tok-proj", tokens={"admin": admin, "viewer": viewer}).start()
        work = tempfile.mkdtemp(prefix="ferry-gcf-tokens-")
        self.addCleanup(shutil.rmtree, work, True)
        self.addCleanup(daemon.close)
        src = os.path.join(work, "src")
        os.makedirs(src)
        with open(os.path.join(src, "main.py"), "w") as f:
            f.write(FUNCTION_SOURCE)

        def env_for(token):
            path = os.path.join(work, token.split("-")[1] + ".token")
            with open(path, "w") as f:
                f.write(token + "\n")
            out = daemon.cli("env", "--token-file", path)
            self.assertEqual(out.returncode, 0, out.stderr)
            exports = dict(shlex.split(line[len("export "):])[0].split("=", 1)
                           for line in out.stdout.splitlines() if line.startswith("export "))
            self.assertEqual(exports["CLOUDSDK_AUTH_ACCESS_TOKEN_FILE"], path)
            return dict(os.environ, **exports, CLOUDSDK_CONFIG=os.path.join(work, "config-" + token[:10]),
                        CLOUDSDK_CORE_DISABLE_PROMPTS="1")

        def gcloud(env, *args):
            return subprocess.run([GCLOUD, "functions"] + list(args), env=env, capture_output=True, text=True,
                                  timeout=180)

        deploy = ["deploy", "bar", "--no-gen2", "--runtime", "python311", "--trigger-topic", "bar", "--source", src,
                  "--entry-point", "bar"]
        refused = gcloud(env_for(viewer), *deploy)
        self.assertEqual(refused.returncode, 1, refused.stdout + refused.stderr)
        self.assertIn("status=[403]", refused.stderr)
        self.assertIn("admin role", refused.stderr)
        done = gcloud(env_for(admin), *deploy)
        self.assertEqual(done.returncode, 0, done.stdout + done.stderr)
        described = gcloud(env_for(viewer), "describe", "bar", "--format", "value(status)")
        self.assertEqual(described.stdout.strip(), "ACTIVE", described.stderr)


if __name__ == "__main__":
    harness.FERRY = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
