"""The guide's Python walkthrough on Ferry: a real PostgreSQL server (started here), Django's migrations, the
guide's `bar` deployed from examples/django with runtime python3, `{}` published to `bar`, and `ferry logs bar`
showing that it started, counted the practices through the ORM and completed. Then the same through gcloud alone,
as the guide's team runs it: `gcloud functions deploy` of examples/django, the guide's dead-letter settings with
`gcloud pubsub subscriptions update`, `gcloud pubsub topics publish`, and `gcloud functions logs read`."""
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

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
EXAMPLE = os.path.join(REPO, "examples", "django")
PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else "python3"


GCLOUD = shutil.which("gcloud")


def migrated_database(test, pg, practices):
    """The example's database on `pg`, migrated by Django, with these practices: the PG* variables that reach it."""
    pg.psql("CREATE DATABASE peerlogic")
    db = dict(PGHOST="127.0.0.1", PGPORT=str(pg.port), PGDATABASE="peerlogic", PGUSER="postgres")
    migrate = subprocess.run([PYTHON, "manage.py", "migrate", "--noinput"], cwd=EXAMPLE, env=dict(os.environ, **db),
                             capture_output=True, text=True, timeout=120)
    test.assertEqual(migrate.returncode, 0, migrate.stdout + migrate.stderr)
    pg.psql("INSERT INTO core_practice(name) VALUES " + ", ".join("('%s')" % p for p in practices), db="peerlogic")
    return db


class DjangoWalkthroughTest(unittest.TestCase):
    def test_the_guides_bar_counts_practices_through_django_on_postgres(self):
        pg = harness.PostgresServer()
        daemon = None
        work = tempfile.mkdtemp(prefix="ferry-django-")
        try:
            migrated_database(self, pg, ["north", "south", "east", "west"])

            # The example's ferry.yaml, pointed at this server.
            with open(os.path.join(EXAMPLE, "ferry.yaml")) as f:
                text = f.read()
            deploy = os.path.join(work, "ferry.yaml")
            with open(deploy, "w") as f:
                f.write(text.replace("source_dir: .", "source_dir: " + json.dumps(EXAMPLE))
                        .replace('PGPORT: "5432"', 'PGPORT: "%d"' % pg.port))

            daemon = harness.Daemon(project="peerlogic-api-dev").start()
            cli_env = dict(os.environ, FERRY_ENDPOINT=daemon.endpoint)
            cli_env.pop("FERRY_PROJECT", None)

            def ferry(*args):
                proc = subprocess.run([harness.FERRY] + list(args), env=cli_env, capture_output=True, text=True,
                                      timeout=300)
                self.assertEqual(proc.returncode, 0, "ferry %s: %s %s" % (" ".join(args), proc.stdout, proc.stderr))
                return proc.stdout

            ferry("deploy", "-f", deploy)
            ferry("publish", "bar", "--message", "{}")
            deadline = time.time() + 60
            logs = ""
            # Until the platform's closing line: it is recorded after the function answers, so it can come a log
            # batch after the function's own "Completed bar!".
            while "finished with status" not in logs and time.time() < deadline:
                time.sleep(0.3)
                logs = ferry("logs", "bar")
            self.assertIn("Completed bar!", logs, logs)
            self.assertIn("There are 4 practices and the DB totally works!", logs)
            self.assertIn("Started bar! Event: {'@type': 'type.googleapis.com/google.pubsub.v1.PubsubMessage'", logs)
            self.assertIn("finished with status: 'ok'", logs)
            lines = logs.splitlines()
            started = next(i for i, l in enumerate(lines) if "Started bar!" in l)
            counted = next(i for i, l in enumerate(lines) if "There are 4 practices" in l)
            completed = next(i for i, l in enumerate(lines) if "Completed bar!" in l)
            self.assertLess(started, counted)
            self.assertLess(counted, completed)
            self.assertIn("'data': 'e30='", lines[started])  # the event: {} in base64
            self.assertTrue(lines[counted].startswith("I"), lines[counted])  # logged at INFO
        finally:
            if daemon:
                daemon.close()
            pg.close()
            shutil.rmtree(work, ignore_errors=True)


    @unittest.skipIf(GCLOUD is None and os.environ.get("CI") != "true", "gcloud is not installed")
    def test_the_guides_walkthrough_through_gcloud_alone(self):
        sys.path.insert(0, HERE)
        from gcloud_functions_test import gcloud_env  # noqa: E402  (what `eval "$(ferry env)"` sets)
        pg = harness.PostgresServer()
        daemon = None
        work = tempfile.mkdtemp(prefix="ferry-django-gcloud-")
        try:
            db = migrated_database(self, pg, ["north", "south", "east"])
            source = os.path.join(work, "django")
            shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns("__pycache__", "ferry.yaml"))

            daemon = harness.Daemon(project="peerlogic-api-dev").start()
            env = gcloud_env(daemon, os.path.join(work, "gcloud-config"))

            def gcloud(*args):
                proc = subprocess.run([GCLOUD] + list(args), env=env, capture_output=True, text=True, timeout=300)
                self.assertEqual(proc.returncode, 0, "gcloud %s: %s %s" % (" ".join(args), proc.stdout, proc.stderr))
                return proc.stdout

            gcloud("functions", "deploy", "bar", "--no-gen2", "--runtime", "python311", "--trigger-topic", "bar",
                   "--retry", "--timeout", "540s", "--memory", "512MB", "--max-instances", "1", "--source", source,
                   "--entry-point", "bar", "--set-env-vars", ",".join("%s=%s" % kv for kv in db.items()),
                   "--set-build-env-vars", "ALLOWED_HOSTS=localhost,DJANGO_SECRET_KEY=foo")
            gcloud("pubsub", "topics", "create", "bar-failed")
            gcloud("pubsub", "subscriptions", "update", "gcf-bar-local-bar", "--dead-letter-topic=bar-failed",
                   "--max-delivery-attempts=6", "--min-retry-delay=2m")
            gcloud("pubsub", "topics", "publish", "bar", "--message", "{}")
            logs = harness.wait_for(
                lambda: (lambda out: out if "Completed bar!" in out else None)(
                    gcloud("functions", "logs", "read", "bar", "--limit", "50")),
                timeout=90, what="Completed bar! in gcloud functions logs read")
            self.assertIn("There are 3 practices and the DB totally works!", logs)
            self.assertIn("Started bar!", logs)
            described = json.loads(gcloud("functions", "describe", "bar", "--format", "json"))
            self.assertEqual((described["status"], described["timeout"], described["availableMemoryMb"],
                              described["maxInstances"]), ("ACTIVE", "540s", 512, 1))
        finally:
            if daemon:
                daemon.close()
            pg.close()
            shutil.rmtree(work, ignore_errors=True)

    def test_the_guides_workflow_deploys_bar_as_written(self):
        """`ferry deploy --github-workflow` of the guide's job (examples/django/.github/workflows/deploy-bar.yml),
        with the values its setup job would output given by --set, and the database address (which GCP gives the
        function through its VPC connector) from --env-vars-file. requirements.txt is installed at deploy."""
        pg = harness.PostgresServer()
        daemon = None
        work = tempfile.mkdtemp(prefix="ferry-django-workflow-")
        try:
            db = migrated_database(self, pg, ["north", "south"])
            repo = os.path.join(work, "repo")
            shutil.copytree(EXAMPLE, repo, ignore=shutil.ignore_patterns("__pycache__"))
            local_env = os.path.join(work, "local-env.yaml")
            with open(local_env, "w") as f:
                f.write("".join("%s: %s\n" % (k, json.dumps(v)) for k, v in db.items()))

            daemon = harness.Daemon(project="peerlogic-api-dev").start()
            out = daemon.cli("deploy", "--github-workflow", os.path.join(repo, ".github", "workflows", "deploy-bar.yml"),
                             "--set", "needs.setup_environment.outputs.gcp_env=dev",
                             "--set", "needs.setup_environment.outputs.region=us-central1",
                             "--set", "needs.setup_environment.outputs.base_name=api",
                             "--env-vars-file", local_env)
            self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
            self.assertIn("+ create function projects/peerlogic-api-dev/locations/us-central1/functions/cf-dev-api-bar",
                          out.stdout)
            self.assertIn("Requirement already satisfied: Django", out.stdout)
            self.assertIn("no effect here: deploy_timeout, vpc_connector", out.stdout)

            published = daemon.cli("publish", "dev-bar", "--message", "{}")
            self.assertEqual(published.returncode, 0, published.stderr)
            logs = harness.wait_for(
                lambda: (lambda out: out if "Completed bar!" in out else None)(
                    daemon.cli("logs", "cf-dev-api-bar").stdout),
                timeout=90, what="Completed bar! in ferry logs")
            self.assertIn("There are 2 practices and the DB totally works!", logs)
            self.assertIn("Started bar!", logs)
            # The step's own env_vars are there beside the local ones (describe shows names, not values).
            described = json.loads(daemon.cli("--format", "json", "functions", "describe", "cf-dev-api-bar").stdout)
            self.assertEqual(sorted(described["spec"]["env_vars"]),
                             ["GOOGLE_CLOUD_PROJECT", "PGDATABASE", "PGHOST", "PGPORT", "PGUSER", "REGION"])
        finally:
            if daemon:
                daemon.close()
            pg.close()
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    harness.FERRY = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
