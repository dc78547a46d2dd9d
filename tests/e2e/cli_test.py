"""The `ferry` command line against a real daemon: tables, --format json, and one-line errors."""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402


class CliTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.daemon = harness.Daemon(project="cli-proj").start()

    @classmethod
    def tearDownClass(cls):
        cls.daemon.close()

    def ferry(self, *args, expect=0, endpoint=None):
        env = dict(os.environ)
        env.pop("FERRY_PROJECT", None)
        env["FERRY_ENDPOINT"] = endpoint or self.daemon.endpoint
        proc = subprocess.run([harness.FERRY] + list(args), env=env, capture_output=True, text=True, timeout=60)
        self.assertEqual(proc.returncode, expect,
                         "ferry %s\nstdout: %s\nstderr: %s" % (" ".join(args), proc.stdout, proc.stderr))
        return proc

    def test_walkthrough(self):
        out = self.ferry("topics", "create", "bar", "bar-failed")
        self.assertIn("Created topic [projects/cli-proj/topics/bar].", out.stderr)
        listed = self.ferry("topics", "list").stdout.splitlines()
        self.assertTrue(listed[0].startswith("NAME"), listed)
        self.assertIn("projects/cli-proj/topics/bar-failed", "\n".join(listed))

        self.ferry("subscriptions", "create", "sub1", "--topic", "bar", "--ack-deadline", "30",
                   "--dead-letter-topic", "bar-failed", "--max-delivery-attempts", "6", "--min-retry-delay", "2m")
        sub = json.loads(self.ferry("subscriptions", "describe", "sub1", "--format", "json").stdout)
        self.assertEqual(sub["ackDeadlineSeconds"], 30)
        self.assertEqual(sub["deadLetterPolicy"]["maxDeliveryAttempts"], 6)
        self.assertEqual(sub["retryPolicy"], {"minimumBackoff": "120s", "maximumBackoff": "600s"})
        self.ferry("subscriptions", "update", "sub1", "--max-retry-delay", "5m")
        sub = json.loads(self.ferry("subscriptions", "describe", "sub1", "--format", "json").stdout)
        self.assertEqual(sub["retryPolicy"]["maximumBackoff"], "300s")
        table = self.ferry("subscriptions", "list").stdout
        self.assertIn("projects/cli-proj/subscriptions/sub1", table)
        self.assertIn("bar-failed", table)

        out = self.ferry("publish", "bar", "--message", "{}", "--attribute", "k=v")
        self.assertTrue(out.stdout.startswith("MESSAGE_ID"), out.stdout)
        pulled = self.ferry("pull", "sub1", "--limit", "5", "--auto-ack").stdout.splitlines()
        self.assertIn("DATA", pulled[0])
        self.assertIn("{}", pulled[1])
        self.assertIn("k=v", pulled[1])
        self.assertIn("SUCCESS", pulled[1])
        out = self.ferry("pull", "sub1", "--format", "json")
        self.assertEqual(json.loads(out.stdout), [])

    def test_a_github_workflows_deploy_step_deploys_as_written(self):
        # The guide's job for a function, its with: block as the guide writes it (issue 17), around a Python function.
        work = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, work, True)
        shutil.copy(os.path.join(os.path.dirname(__file__), "python_function", "main.py"), work)
        os.makedirs(os.path.join(work, ".github", "workflows"))
        workflow = os.path.join(work, ".github", "workflows", "deploy.yml")
        with open(workflow, "w") as f:
            f.write("""name: Deploy
on: push
env:
  PROJECT: cli-proj
jobs:
  deploy_cloud_function_hello:
    runs-on: ubuntu-latest
    needs: setup_environment
    env:
      FUNCTION_NAME: hello_pubsub
    steps:
      - uses: actions/checkout@v3
      - name: Deploy Cloud Function - Hello
        uses: 'google-github-actions/deploy-cloud-functions@v0'
        with:
          build_environment_variables: "ALLOWED_HOSTS=localhost ,DJANGO_SECRET_KEY=foo"
          deploy_timeout: 900
          entry_point: ${{ env.FUNCTION_NAME }}
          env_vars: "REGION=${{ needs.setup_environment.outputs.region }},GOOGLE_CLOUD_PROJECT=${{ env.PROJECT }}"
          event_trigger_resource: projects/${{ env.PROJECT }}/topics/${{ needs.setup_environment.outputs.gcp_env }}-hello
          event_trigger_retry: true
          event_trigger_type: google.pubsub.topic.publish
          max_instances: 1
          memory_mb: 512
          name: "cf-${{ needs.setup_environment.outputs.gcp_env }}-hello"
          project_id: "${{ env.PROJECT }}"
          region: "${{ needs.setup_environment.outputs.region }}"
          runtime: 'python39'
          source_dir: .
          timeout: 540
          vpc_connector: "projects/${{ env.PROJECT }}/locations/us-central1/connectors/c"
""")
        unresolved = self.ferry("deploy", "--github-workflow", workflow, "--dry-run", expect=1)
        self.assertEqual(len(unresolved.stderr.strip().splitlines()), 1, unresolved.stderr)
        self.assertIn("deploy.yml:19:21: unresolved expression ${{ needs.setup_environment.outputs.region }}",
                      unresolved.stderr)
        sets = ["--set", "needs.setup_environment.outputs.gcp_env=dev",
                "--set", "${{ needs.setup_environment.outputs.region }}=us-central1"]
        # --env-vars-file is the workflow's: a deploy file names its own, and a broken one is refused with its place.
        bad_env = os.path.join(work, "bad-env.yaml")
        with open(bad_env, "w") as f:
            f.write("PGHOST: [127.0.0.1]\n")
        refused = self.ferry("deploy", "-f", workflow, "--env-vars-file", bad_env, expect=1)
        self.assertIn("--env-vars-file needs --github-workflow", refused.stderr)
        refused = self.ferry("deploy", "--github-workflow", workflow, *sets, "--env-vars-file", bad_env, "--dry-run",
                             expect=1)
        self.assertIn("bad-env.yaml:1:9: environment variables.PGHOST must be a string", refused.stderr)
        out = self.ferry("deploy", "--github-workflow", workflow, *sets).stdout
        self.assertIn("+ create topic projects/cli-proj/topics/dev-hello", out)
        self.assertIn("+ create function projects/cli-proj/locations/us-central1/functions/cf-dev-hello", out)
        self.assertEqual(out.count("no effect here: deploy_timeout, vpc_connector"), 1, out)
        described = json.loads(self.ferry("functions", "describe", "cf-dev-hello", "--format", "json").stdout)
        spec = described["spec"]
        self.assertEqual(spec["runtime"], "python3")
        self.assertEqual(spec["google_runtime"], "python39")
        self.assertEqual(spec["no_effect"]["vpc_connector"], "projects/cli-proj/locations/us-central1/connectors/c")
        self.assertEqual(sorted(spec["env_vars"]), ["GOOGLE_CLOUD_PROJECT", "REGION"])  # values hidden
        self.assertEqual(described["triggerSubscription"],
                         "projects/cli-proj/subscriptions/gcf-cf-dev-hello-us-central1-dev-hello")
        # The guide's next step names the trigger subscription as Cloud Functions does.
        self.ferry("topics", "create", "dev-hello-failed")
        self.ferry("subscriptions", "update", "gcf-cf-dev-hello-us-central1-dev-hello",
                   "--dead-letter-topic", "dev-hello-failed", "--max-delivery-attempts", "6",
                   "--min-retry-delay", "2m")
        self.ferry("publish", "dev-hello", "--message", "hi")
        harness.wait_for(lambda: "python got data=" in self.ferry("logs", "cf-dev-hello").stdout,
                         what="the function's line in its logs")
        # Deployed again, as the workflow runs on each merge: the dead-letter policy the guide's step set stays.
        self.assertIn("No changes.", self.ferry("deploy", "--github-workflow", workflow, *sets).stdout)
        sub = json.loads(self.ferry("subscriptions", "describe", "gcf-cf-dev-hello-us-central1-dev-hello",
                                    "--format", "json").stdout)
        self.assertEqual(sub["deadLetterPolicy"]["maxDeliveryAttempts"], 6)

    def test_errors_are_one_line_with_nonzero_exit(self):
        self.ferry("topics", "create", "dup")
        out = self.ferry("topics", "create", "dup", expect=1)
        self.assertEqual(out.stderr.strip().count("\n"), 0, out.stderr)
        self.assertIn("Topic already exists", out.stderr)
        out = self.ferry("topics", "describe", "nosuch", expect=1)
        self.assertIn("Topic not found (NOT_FOUND)", out.stderr)
        out = self.ferry("topics", "create", expect=2)
        self.assertEqual(out.stderr.strip().count("\n"), 0, out.stderr)
        out = self.ferry("subscriptions", "create", "s-bad", "--topic", "dup", "--min-retry-delay", "soon",
                         expect=1)
        self.assertIn("invalid duration", out.stderr)
        out = self.ferry("topics", "list", endpoint="http://127.0.0.1:1", expect=1)
        self.assertIn("cannot reach ferry", out.stderr)
        self.assertEqual(out.stderr.strip().count("\n"), 0, out.stderr)
        # A database that is not there: one line (libpq's own message has two), and no daemon.
        work = tempfile.mkdtemp(prefix="ferry-cli-")
        self.addCleanup(shutil.rmtree, work, True)
        out = self.ferry("serve", "--port", "0", "--data-dir", work, "--database",
                         "host=%s/none dbname=ferry connect_timeout=5" % work, expect=1)
        self.assertIn("postgresql: cannot connect", out.stderr)
        self.assertEqual(out.stderr.strip().count("\n"), 0, out.stderr)

    def test_help_everywhere(self):
        for args in (["--help"], ["topics", "--help"], ["subscriptions", "create", "--help"], ["pull", "--help"],
                     ["serve", "--help"]):
            out = self.ferry(*args)
            self.assertIn("Usage", out.stdout)


if __name__ == "__main__":
    harness.FERRY = sys.argv.pop(1)
    unittest.main(verbosity=2)
