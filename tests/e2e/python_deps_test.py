"""Python functions with a requirements.txt, as Cloud Functions installs it at deploy: a virtual environment per
function that sees Debian's packages, pip's output in the deploy's output, a local wheel through --find-links, a
missing package failing the deploy with pip's message and applying nothing, the environment reused while the file is
unchanged, and the plan saying when a python39 function runs on another Python.

The daemon's pip is pointed at an index that refuses connections (PIP_INDEX_URL, as a team offline sets it), so any
download would fail: what deploys here deploys without network."""
import base64
import glob
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import unittest
import zipfile

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402

FUNCTION = textwrap.dedent("""\
    import os
    import sys


    def where(request):
        import django
        return {"prefix": sys.prefix, "django": django.get_version(), "pip_index": os.environ.get("PIP_INDEX_URL")}


    def probe(request):
        import ferry_wheel_probe
        return {"prefix": sys.prefix, "probe": ferry_wheel_probe.VALUE}
    """)


def write_wheel(directory, name, version, module_source):
    """A pure-Python wheel, as `pip wheel` would make it (PEP 427: the module, METADATA, WHEEL and RECORD)."""
    dist = "%s-%s" % (name, version)
    files = {
        "%s/__init__.py" % name: module_source,
        "%s.dist-info/METADATA" % dist: "Metadata-Version: 2.1\nName: %s\nVersion: %s\n" % (name.replace("_", "-"),
                                                                                         version),
        "%s.dist-info/WHEEL" % dist: "Wheel-Version: 1.0\nGenerator: ferry-test\nRoot-Is-Purelib: true\n"
                                     "Tag: py3-none-any\n",
    }
    record = io.StringIO()
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.write("%s,sha256=%s,%d\n" % (path, digest, len(text.encode())))
    record.write("%s.dist-info/RECORD,,\n" % dist)
    files["%s.dist-info/RECORD" % dist] = record.getvalue()
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, "%s-py3-none-any.whl" % dist)
    with zipfile.ZipFile(path, "w") as z:
        for name_in_zip, text in files.items():
            z.writestr(name_in_zip, text)
    return path


class PythonDependenciesTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.work = tempfile.mkdtemp(prefix="ferry-pydeps-")
        cls.daemon = harness.Daemon(project="deps", env={
            "PIP_INDEX_URL": "http://127.0.0.1:9/simple", "PIP_RETRIES": "0", "PIP_TIMEOUT": "5"}).start()

    @classmethod
    def tearDownClass(cls):
        cls.daemon.close()
        shutil.rmtree(cls.work, ignore_errors=True)

    def source(self, name, requirements):
        src = os.path.join(self.work, name)
        os.makedirs(src, exist_ok=True)
        with open(os.path.join(src, "main.py"), "w") as f:
            f.write(FUNCTION)
        with open(os.path.join(src, "requirements.txt"), "w") as f:
            f.write(requirements)
        return src

    def deploy_file(self, functions, topics=()):
        path = os.path.join(self.work, "ferry.yaml")
        with open(path, "w") as f:
            f.write("project: deps\n")
            if topics:
                f.write("topics: %s\n" % json.dumps(list(topics)))
            f.write("functions:\n")
            for fn in functions:
                f.write("  - %s\n" % json.dumps(fn))
        return path

    def deploy(self, functions, topics=()):
        return self.daemon.cli("deploy", "-f", self.deploy_file(functions, topics), timeout=600)

    def call(self, name):
        out = self.daemon.cli("--format", "json", "call", name, "--data", "{}")
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        answer = json.loads(out.stdout)
        self.assertEqual(answer["status"], "ok", answer)
        return json.loads(answer["result"])

    def venvs(self):
        return sorted(glob.glob(os.path.join(self.daemon.data_dir, "venvs", "*")))

    def test_1_installed_packages_satisfy_requirements_without_a_download_and_the_venv_is_reused(self):
        src = self.source("web", "# Debian's python3-django satisfies this\nDjango>=3.2\n")
        fn = {"name": "where", "runtime": "python39", "source_dir": src, "entry_point": "where",
              "trigger_http": True}
        out = self.deploy([fn])
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        # pip's own output, under the function, and the plan's note on the Python version.
        self.assertIn("function where: pip install:", out.stdout)
        self.assertIn("Requirement already satisfied: Django>=3.2", out.stdout)
        installed = subprocess.run(["/usr/bin/python3", "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                                   capture_output=True, text=True).stdout.strip()
        if installed != "3.9":  # Debian 12's is 3.11
            self.assertIn("function where: python39 asks for Python 3.9; it runs on the installed %s here" % installed,
                          out.stdout)
        answer = self.call("where")
        venvs = self.venvs()
        self.assertEqual(len(venvs), 1, venvs)
        self.assertEqual(answer["prefix"], venvs[0])  # the function runs in its own environment
        self.assertTrue(answer["django"].startswith(("3.", "4.", "5.")), answer)
        self.assertIsNone(answer["pip_index"])  # pip's settings are the build's, not the instance's
        marker = os.path.join(venvs[0], ".ferry-installed")
        made = os.stat(marker).st_mtime_ns

        # Unchanged: nothing to install, the same environment; a restart of the daemon reuses it too.
        again = self.deploy([fn])
        self.assertEqual(again.returncode, 0, again.stdout + again.stderr)
        self.assertNotIn("pip install", again.stdout)
        self.daemon.stop()
        self.daemon.start()
        harness.wait_for(lambda: self.daemon.cli("call", "where", "--data", "{}").returncode == 0, timeout=60,
                         what="where answers after the restart")
        self.assertEqual(self.venvs(), venvs)
        self.assertEqual(os.stat(marker).st_mtime_ns, made)

        # A changed requirements.txt: a new environment, and the old one removed once nothing uses it.
        with open(os.path.join(src, "requirements.txt"), "a") as f:
            f.write("psycopg2>=2.8\n")
        changed = self.deploy([fn])
        self.assertEqual(changed.returncode, 0, changed.stdout + changed.stderr)
        self.assertIn("Requirement already satisfied: psycopg2>=2.8", changed.stdout)
        now = self.venvs()
        self.assertEqual(len(now), 1, now)
        self.assertNotEqual(now, venvs)
        self.assertEqual(self.call("where")["prefix"], now[0])

    def test_2_a_package_only_in_a_local_wheel_directory_installs_with_find_links(self):
        src = self.source("probe", "--find-links wheels\nferry-wheel-probe==1.0\n")
        write_wheel(os.path.join(src, "wheels"), "ferry_wheel_probe", "1.0", 'VALUE = "from a local wheel"\n')
        fn = {"name": "probe", "runtime": "python3", "source_dir": src, "entry_point": "probe", "trigger_http": True}
        out = self.deploy([fn])
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        self.assertIn("Successfully installed ferry-wheel-probe-1.0", out.stdout)
        answer = self.call("probe")
        self.assertEqual(answer["probe"], "from a local wheel")
        self.assertTrue(answer["prefix"].startswith(os.path.join(self.daemon.data_dir, "venvs")), answer)
        # The system's Python is untouched: the wheel went into the function's environment only.
        system = subprocess.run(["/usr/bin/python3", "-c", "import ferry_wheel_probe"], capture_output=True)
        self.assertNotEqual(system.returncode, 0)

    def test_3_a_missing_package_fails_the_deploy_with_pips_message_and_applies_nothing(self):
        src = self.source("missing", "ferry-no-such-package==1.0\n")
        fn = {"name": "missing", "runtime": "python3", "source_dir": src, "entry_point": "where",
              "event_trigger_type": "google.pubsub.topic.publish", "event_trigger_resource": "missing-topic"}
        before = self.venvs()
        out = self.deploy([fn], topics=["missing-topic"])
        self.assertNotEqual(out.returncode, 0, out.stdout)
        self.assertIn("function missing: pip install -r %s failed" % os.path.join(src, "requirements.txt"),
                      out.stderr)
        self.assertIn("No matching distribution found for ferry-no-such-package==1.0", out.stderr)
        self.assertIn("Looking in indexes: http://127.0.0.1:9/simple", out.stderr)  # the daemon's PIP_INDEX_URL
        # Nothing applied: no function, no topic, no half-built environment.
        listed = self.daemon.cli("--format", "json", "functions", "list")
        self.assertEqual(listed.returncode, 0, listed.stderr)
        self.assertNotIn("missing", [f["name"].split("/")[-1] for f in json.loads(listed.stdout)])
        topics = self.daemon.cli("topics", "list")
        self.assertNotIn("missing-topic", topics.stdout)
        self.assertEqual(self.venvs(), before)


if __name__ == "__main__":
    harness.FERRY = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
