"""Schedules against the real daemon: a schedule deployed from ferry.yaml fires within the minute, to a topic and
to a function; `ferry schedules` lists, runs, pauses and resumes; a restart does not fire a tick again."""
import json
import os
import shutil
import sys
import tempfile
import textwrap
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


class SchedulesTest(unittest.TestCase):
    def setUp(self):
        self.daemon = harness.Daemon(project="sched").start()
        self.work = tempfile.mkdtemp(prefix="ferry-sched-")

    def tearDown(self):
        self.daemon.close()
        shutil.rmtree(self.work, ignore_errors=True)

    def ferry(self, *args, expect=0):
        proc = self.daemon.cli(*args)
        self.assertEqual(proc.returncode, expect, "ferry %s: %s %s" % (" ".join(args), proc.stdout, proc.stderr))
        return proc

    def deploy(self, text):
        path = os.path.join(self.work, "ferry.yaml")
        with open(path, "w") as f:
            f.write(textwrap.dedent(text))
        return self.ferry("deploy", "-f", path)

    def test_schedule_fires_within_the_minute_once_per_tick_across_a_restart(self):
        self.deploy("""\
            project: sched
            topics: [ticks]
            functions:
              - name: on-tick
                runtime: python3
                source_dir: %s
                entry_point: hello_http
                trigger_http: true
            schedules:
              - name: every-minute
                schedule: "* * * * *"
                time_zone: Europe/London
                topic: ticks
                data: '{"job": "tick"}'
                attributes: {origin: scheduler}
              - name: call-function
                schedule: "* * * * *"
                function: on-tick
                data: '{"from": "scheduler"}'
            """ % json.dumps(os.path.join(HERE, "python_function")))
        client = self.daemon.client()
        client.create_subscription("ticks-sub", "ticks")
        listed = json.loads(self.ferry("schedules", "list", "--format", "json").stdout)
        self.assertEqual(sorted(s["id"] for s in listed), ["call-function", "every-minute"])
        every = [s for s in listed if s["id"] == "every-minute"][0]
        self.assertEqual(every["state"], "ENABLED")
        self.assertEqual(every["time_zone"], "Europe/London")
        next_fire = harness_time(every["next_fire_time"])
        self.assertLessEqual(next_fire - time.time(), 61)

        # The real tick, within the minute.
        got = []
        deadline = time.time() + 75
        while not got and time.time() < deadline:
            got = client.pull("ticks-sub", immediately=False)
        self.assertEqual(len(got), 1, "the schedule did not fire within the minute")
        fired_at = time.time()
        self.assertEqual(harness.data_of(got[0]), '{"job": "tick"}')
        self.assertEqual(got[0]["message"]["attributes"], {"origin": "scheduler"})
        self.assertLess(abs(fired_at - next_fire), 5)
        client.ack("ticks-sub", [got[0]["ackId"]])
        # The function target ran at the same tick.
        deadline = time.time() + 30
        runs = []
        while not runs and time.time() < deadline:
            status, res = client.request("GET", "/ferry/v1/projects/sched/functions/on-tick/executions")
            runs = [e for e in res.get("executions", []) if e["status"] == "ok"]
            time.sleep(0.2)
        self.assertTrue(runs, "the function target did not run")

        # A restart right after the tick does not fire it again.
        described = json.loads(self.ferry("schedules", "describe", "every-minute", "--format", "json").stdout)
        last = described["last_fired_time"]
        client.close()
        self.daemon.stop()
        self.daemon.start()
        client = self.daemon.client()
        described = json.loads(self.ferry("schedules", "describe", "every-minute", "--format", "json").stdout)
        self.assertEqual(described["last_fired_time"], last)
        if harness_time(described["next_fire_time"]) - time.time() > 3:
            self.assertEqual(client.pull("ticks-sub"), [], "a tick fired twice across the restart")

        # Pause: no ticks, but run fires now; resume.
        self.ferry("schedules", "pause", "every-minute")
        self.assertEqual(json.loads(self.ferry("schedules", "describe", "every-minute", "--format",
                                               "json").stdout)["state"], "PAUSED")
        self.ferry("schedules", "run", "every-minute")
        got = client.pull("ticks-sub")
        self.assertEqual([harness.data_of(m) for m in got], ['{"job": "tick"}'])
        self.ferry("schedules", "resume", "every-minute")
        self.assertEqual(json.loads(self.ferry("schedules", "describe", "every-minute", "--format",
                                               "json").stdout)["state"], "ENABLED")
        out = self.ferry("schedules", "run", "no-such", expect=1)
        self.assertIn("does not exist", out.stderr)
        client.close()

    def test_bad_schedules_are_refused_with_line_and_column(self):
        for bad, message in (('schedule: "61 * * * *"', "minute"),
                             ('schedule: "0 3 * * *"\n    time_zone: Mars/Base', "unknown time zone"),
                             ('schedule: "0 3 * * *"', "exactly one target")):
            path = os.path.join(self.work, "bad.yaml")
            with open(path, "w") as f:
                f.write("project: sched\nschedules:\n  - name: bad-job\n    %s\n" % bad)
            out = self.ferry("deploy", "-f", path, expect=1)
            self.assertIn(message, out.stderr)
            self.assertRegex(out.stderr, r"bad.yaml:\d+:\d+")


def harness_time(rfc3339):
    import datetime
    return datetime.datetime.strptime(rfc3339, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()


if __name__ == "__main__":
    harness.FERRY = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
