#!/usr/bin/env python3
"""The gcloud functions deploy benchmark (issue 15): the wall time of `gcloud functions deploy` of a Python function
against Ferry, beside gcloud's own floor measured in the same run: `gcloud version` (gcloud starting and exiting) and
`gcloud functions describe` (gcloud loading its functions commands and making one request). The goal: a deploy
within 1 s of `gcloud version`. Each is run REPEAT times, in turns; medians and the spread are reported.
  python3 bench/gcloud_deploy_bench.py          # REPEAT=7
Needs build/bin/ferry and gcloud (with CLOUDSDK_FUNCTIONS_GEN2=false from `ferry env`, gcloud goes straight to v1)."""
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tests", "e2e"))
import harness  # noqa: E402
from gcloud_functions_test import gcloud_env  # noqa: E402

REPEAT = int(os.environ.get("REPEAT", "7"))
GCLOUD = shutil.which("gcloud")


def timed(env, *args):
    start = time.monotonic()
    proc = subprocess.run([GCLOUD] + list(args), env=env, capture_output=True, text=True, timeout=300)
    elapsed = time.monotonic() - start
    if proc.returncode != 0:
        raise SystemExit("gcloud %s failed: %s" % (" ".join(args), proc.stderr))
    return elapsed


def main():
    harness.FERRY = os.path.join(REPO, "build", "bin", "ferry")
    work = tempfile.mkdtemp(prefix="ferry-deploy-bench-")
    daemon = harness.Daemon(project="bench-proj").start()
    try:
        env = gcloud_env(daemon, os.path.join(work, "gcloud-config"))
        src = os.path.join(work, "src")
        os.makedirs(src)
        with open(os.path.join(src, "main.py"), "w") as f:
            f.write("def bar(event, context):\n    print('Completed bar!')\n")
        deploy = ["functions", "deploy", "--no-gen2", "--runtime", "python311", "--trigger-topic", "bar",
                  "--retry", "--timeout", "540s", "--memory", "512MB", "--max-instances", "1", "--source", src,
                  "--entry-point", "bar"]
        timed(env, "version")  # warm the file cache
        timed(env, "functions", "deploy", "warm", *deploy[2:])
        times = {"gcloud version": [], "gcloud functions describe": [], "deploy (create)": [],
                 "deploy (update)": []}
        for i in range(REPEAT):
            times["gcloud version"].append(timed(env, "version"))
            times["gcloud functions describe"].append(timed(env, "functions", "describe", "warm"))
            times["deploy (create)"].append(timed(env, "functions", "deploy", "bar%d" % i, *deploy[2:]))
            times["deploy (update)"].append(timed(env, "functions", "deploy", "warm", *deploy[2:],
                                                  "--update-env-vars", "RUN=%d" % i))
        floor = statistics.median(times["gcloud version"])
        print("gcloud %s against Ferry, %d runs each (seconds)\n" % (
            subprocess.run([GCLOUD, "version", "--format", "value(core)"], capture_output=True, text=True,
                           env=env).stdout.strip() or "?", REPEAT))
        print("| command | median | min | max | median - gcloud version |")
        print("|---|---:|---:|---:|---:|")
        for name, values in times.items():
            median = statistics.median(values)
            print("| %s | %.2f | %.2f | %.2f | %+.2f |" % (name, median, min(values), max(values), median - floor))
    finally:
        daemon.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
