"""Function faults: instances that answer garbage, never answer, close mid-answer, flood stdout, fork without end
or ignore SIGTERM (bad_instance/bad_instance.py). Each fails its own execution only (or, for the flood, none);
the daemon and a healthy function beside them carry on, and no process of theirs outlives them."""
import json
import os
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
BAD = os.path.join(HERE, "bad_instance", "bad_instance.py")
PROJECT = "faults"


def pids_cgroup_available():
    """Whether Ferry can put an instance under pids.max here (as src/functions/instance_cgroup.cc decides)."""
    with open("/proc/self/cgroup") as f:
        lines = f.read().splitlines()
    for line in lines:
        if line.startswith("0::"):
            try:
                with open("/sys/fs/cgroup" + line[3:] + "/cgroup.subtree_control") as f:
                    if "pids" in f.read():
                        return True
            except OSError:
                pass
    return os.access("/sys/fs/cgroup/pids/cgroup.procs", os.W_OK)


def descendants(pid):
    """Every process below `pid`, by walking /proc (children that left the session included, while they have
    their parent)."""
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open("/proc/%s/stat" % entry) as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                children.setdefault(int(fields[1]), []).append(int(entry))
            except OSError:
                pass
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def running(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


class FunctionFaultsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.daemon = harness.Daemon(project=PROJECT).start()
        cls.work = tempfile.mkdtemp(prefix="ferry-faults-fn-")
        functions = ""
        for mode, timeout in (("garbage", 10), ("silent", 2), ("halfway", 10), ("flood", 30), ("forkbomb", 3),
                              ("sigterm", 10)):
            functions += textwrap.dedent("""\
                  - name: %s
                    runtime: command
                    command: [python3, %s, %s]
                    trigger_http: true
                    timeout: %ds
                """) % (mode, json.dumps(BAD), mode, timeout)
        functions += textwrap.dedent("""\
              - name: steady
                runtime: python3
                source_dir: %s
                entry_point: hello_http
                trigger_http: true
            """) % json.dumps(os.path.join(HERE, "python_function"))
        path = os.path.join(cls.work, "ferry.yaml")
        with open(path, "w") as f:
            f.write("project: %s\nfunctions:\n%s" % (PROJECT, textwrap.indent(functions, "")))
        cls.daemon.deploy(path)

    @classmethod
    def tearDownClass(cls):
        cls.daemon.close()
        shutil.rmtree(cls.work, ignore_errors=True)

    def call(self, name, timeout=60):
        env = dict(os.environ, FERRY_ENDPOINT=self.daemon.endpoint, FERRY_PROJECT=PROJECT)
        proc = subprocess.run([harness.FERRY, "call", name, "--data", "{}", "--format", "json"], env=env,
                              capture_output=True, text=True, timeout=timeout)
        try:
            return json.loads(proc.stdout)
        except ValueError:
            self.fail("ferry call %s: %s %s" % (name, proc.stdout, proc.stderr))

    def assert_all_is_well(self):
        """The daemon answers, and the healthy function beside the broken one runs."""
        self.assertEqual(self.daemon.proc.poll(), None, "the daemon died")
        status, _, _ = harness.http_request(self.daemon.port, "GET", "/healthz")
        self.assertEqual(status, 200)
        result = self.call("steady")
        self.assertEqual(result["status"], "ok", result)

    def assert_fails_alone(self, name, status, error):
        result = self.call(name)
        self.assertEqual(result["status"], status, result)
        self.assertIn(error, result["error"])
        self.assert_all_is_well()
        return result

    def test_an_instance_answering_garbage_fails_its_execution(self):
        self.assert_fails_alone("garbage", "crash", "crashed (bad version)")  # Beast: not an HTTP status line

    def test_an_instance_that_never_answers_times_out(self):
        self.assert_fails_alone("silent", "timeout", "did not answer within 2000 ms")

    def test_an_instance_closing_mid_answer_fails_its_execution(self):
        self.assert_fails_alone("halfway", "crash", "partial message")

    def test_an_instance_flooding_stdout_is_logged_in_bounded_lines_and_the_daemon_stays_small(self):
        before = self.rss_mb()
        result = self.call("flood", timeout=120)
        self.assertEqual(result["status"], "ok", result)
        self.assert_all_is_well()
        grown = self.rss_mb() - before
        print("flood: the daemon grew by %.0f MB" % grown)
        # Under AddressSanitizer (scripts/sanitize.sh sets ASAN_OPTIONS) freed memory waits in ASan's quarantine
        # and allocator caches and every byte touched has shadow: one CI run measured 112 MB there (others under
        # 100). The bound that matters is the normal build's.
        limit = 200 if "ASAN_OPTIONS" in os.environ else 100
        self.assertLess(grown, limit, "the daemon grew with the instance's output")
        status, _, body = harness.http_request(
            self.daemon.port, "GET", "/ferry/v1/projects/%s/functions/flood/logs?limit=10" % PROJECT)
        self.assertEqual(status, 200)
        longest = max(len(e["message"]) for e in json.loads(body)["entries"])
        self.assertLessEqual(longest, 64 * 1024, "a line longer than the 64 KiB limit was stored whole")

    @unittest.skipUnless(pids_cgroup_available(), "no pids cgroup here: a fork bomb would reach the machine")
    def test_a_fork_bomb_is_capped_by_pids_max_and_dies_whole_with_its_timeout(self):
        result = self.call("forkbomb")
        self.assertEqual(result["status"], "timeout", result)
        self.assert_all_is_well()
        # Every process the bomb made, those in their own sessions too, went with its instance.
        harness.wait_for(lambda: not [p for p in descendants(self.daemon.proc.pid) if running(p) and
                                      "bad_instance.py" in open("/proc/%d/cmdline" % p).read()
                                      and "forkbomb" in open("/proc/%d/cmdline" % p).read()],
                         timeout=10, what="the fork bomb's processes to die")
        self.assertEqual(self.bomb_processes(), [], "processes of the fork bomb outlived its instance")

        # kill -9 of the daemon mid-bomb: the children that left the instance's group outlive the daemon (only its
        # own children get the parent-death signal), and the next start clears them out with their cgroup.
        env = dict(os.environ, FERRY_ENDPOINT=self.daemon.endpoint, FERRY_PROJECT=PROJECT)
        caller = subprocess.Popen([harness.FERRY, "call", "forkbomb", "--data", "{}"], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        harness.wait_for(lambda: len(self.bomb_processes()) > 10, timeout=10, what="the bomb to fork")
        self.daemon.kill9()
        caller.wait()
        self.daemon.start()
        harness.wait_for(lambda: self.bomb_processes() == [], timeout=10,
                         what="the restarted daemon to clear out the bomb's processes")
        self.assert_all_is_well()

    @staticmethod
    def bomb_processes():
        found = subprocess.run(["pgrep", "-f", "bad_instance.py forkbomb"], capture_output=True, text=True)
        return [p for p in found.stdout.split() if running(int(p))]

    def test_an_instance_ignoring_sigterm_is_gone_when_its_function_is_deleted(self):
        self.assertEqual(self.call("sigterm")["status"], "ok")
        pids = [p for p in descendants(self.daemon.proc.pid) if running(p) and
                "sigterm" in open("/proc/%d/cmdline" % p).read()]
        self.assertTrue(pids, "the instance runs")
        env = dict(os.environ, FERRY_ENDPOINT=self.daemon.endpoint, FERRY_PROJECT=PROJECT)
        subprocess.run([harness.FERRY, "functions", "delete", "sigterm"], env=env, check=True, capture_output=True)
        harness.wait_for(lambda: not any(running(p) for p in pids), timeout=10,
                         what="the instance that ignores SIGTERM to be gone")
        self.assert_all_is_well()

    def rss_mb(self):
        with open("/proc/%d/status" % self.daemon.proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return 0


if __name__ == "__main__":
    harness.FERRY = sys.argv.pop(1)
    unittest.main(verbosity=2)
