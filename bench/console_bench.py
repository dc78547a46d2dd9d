#!/usr/bin/env python3
"""The console benchmark (issue 14): how fast the console's pages load with a 10,000-message backlog and 1,000
executions, against the target of 200 ms. No peer has a console to compare with (the Pub/Sub emulator has no UI),
so this reports absolute times, median and p95 of REPEAT loads:
  1. each page's API calls, timed from a client on loopback (what the page waits for);
  2. each page in Debian's Chromium (playwright-core): from navigation to the page rendered with its data.
  python3 bench/console_bench.py            # BACKLOG=10000 EXECUTIONS=1000 REPEAT=20
Needs build/bin/ferry and build/bin/ferry_test_functions, and tests/e2e/console's node_modules (npm ci)."""
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tests", "e2e"))
import harness  # noqa: E402

BACKLOG = int(os.environ.get("BACKLOG", "10000"))
EXECUTIONS = int(os.environ.get("EXECUTIONS", "1000"))
REPEAT = int(os.environ.get("REPEAT", "20"))
TOKEN = "bench-admin-" + "b" * 24

BROWSER = r"""
const { chromium } = require(process.env.PLAYWRIGHT);
(async () => {
  const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--no-sandbox"] });
  const page = await browser.newPage();
  await page.goto(process.env.URL + "/console#/login");
  await page.fill("input[name=token]", process.env.TOKEN);
  await page.click("#login-form button[type=submit]");
  await page.waitForFunction(() => document.body.dataset.page === "#/");
  const out = {};
  for (const hash of JSON.parse(process.env.PAGES)) {
    out[hash] = [];
    for (let i = 0; i < Number(process.env.REPEAT); ++i) {
      await page.goto("about:blank");
      const start = Date.now();
      await page.goto(process.env.URL + "/console" + hash);
      await page.waitForFunction((h) => document.body.dataset.page === h, hash);
      out[hash].push(Date.now() - start);
    }
  }
  await browser.close();
  console.log(JSON.stringify(out));
})().catch((e) => { console.error(e); process.exit(1); });
"""


def summary(times):
    times = sorted(times)
    return "median %6.1f ms  p95 %6.1f ms" % (statistics.median(times), times[int(0.95 * (len(times) - 1))])


def main():
    harness.FERRY = os.path.join(REPO, "build", "bin", "ferry")
    functions = os.path.join(REPO, "build", "bin", "ferry_test_functions")
    daemon = harness.Daemon(project="bench", tokens={"admin": TOKEN}, extra_args=["--no-fsync"]).start()
    work = tempfile.mkdtemp(prefix="ferry-console-bench-")
    try:
        path = os.path.join(work, "ferry.yaml")
        with open(path, "w") as f:
            f.write("project: bench\ntopics: [orders, backlog]\nfunctions:\n  - name: greet\n    runtime: command\n"
                    "    command: [%s]\n    event_trigger_type: google.pubsub.topic.publish\n"
                    "    event_trigger_resource: orders\n" % json.dumps(functions))
        daemon.deploy(path)
        client = daemon.client()
        client.create_subscription("backlog-sub", "backlog")
        for start in range(0, BACKLOG, 1000):
            client.publish("backlog", ['{"order": %d, "note": "a message waiting"}' % i
                                       for i in range(start, min(BACKLOG, start + 1000))])
        for start in range(0, EXECUTIONS, 500):
            client.publish("orders", ["{}"] * min(500, EXECUTIONS - start))
        executions = "/ferry/v1/projects/bench/functions/greet/executions?limit=1000"
        harness.wait_for(lambda: len(client.request("GET", executions)[1]["executions"]) >= EXECUTIONS, timeout=120,
                         what="%d executions" % EXECUTIONS)
        print("Ferry console, %d messages waiting on backlog-sub, %d executions of greet; %d loads each" % (
            BACKLOG, EXECUTIONS, REPEAT))
        pages = {
            "overview": ["/ferry/v1/projects/bench/overview"],
            "subscription": ["/v1/projects/bench/subscriptions/backlog-sub",
                             "/ferry/v1/projects/bench/subscriptions/backlog-sub/messages?limit=50",
                             "/v1/projects/bench/snapshots"],
            "function": ["/ferry/v1/projects/bench/functions/greet",
                         "/ferry/v1/projects/bench/functions/greet/executions?limit=50"],
        }
        print("1. The pages' API calls (one client, keep-alive):")
        for name, paths in pages.items():
            times = []
            for _ in range(REPEAT):
                start = time.perf_counter()
                for p in paths:
                    status, _ = client.request("GET", p)
                    assert status == 200, (p, status)
                times.append((time.perf_counter() - start) * 1000)
            print("   %-13s %s" % (name, summary(times)))
        client.close()
        env = dict(os.environ, URL="http://127.0.0.1:%d" % daemon.port, TOKEN=TOKEN, REPEAT=str(REPEAT),
                   PLAYWRIGHT=os.path.join(REPO, "tests", "e2e", "console", "node_modules", "playwright-core"),
                   PAGES=json.dumps(["#/", "#/subscriptions/backlog-sub", "#/functions/greet"]))
        out = subprocess.run(["node", "-e", BROWSER], env=env, capture_output=True, text=True, timeout=600)
        if out.returncode != 0:
            sys.exit("browser run failed: " + out.stderr)
        print("2. The pages in Chromium, navigation to rendered with data:")
        for hash, times in json.loads(out.stdout).items():
            print("   %-27s %s" % (hash, summary(times)))
    finally:
        daemon.close()


if __name__ == "__main__":
    main()
