#!/usr/bin/env bash
# Schedule precision (issue #5): a schedule "* * * * *" publishing to a topic; for each of TICKS ticks, the error
# is the message's publishTime (Ferry's clock when it fires the tick) minus the scheduled minute, and the time a
# waiting subscriber on this machine received it minus the scheduled minute (fired, committed with its fsync,
# delivered). Prints p50 and p99 of both. 100 ticks take 100 minutes.
#   TICKS=100 bench/schedule_bench.sh
# FERRY_BIN names a ferry binary to use instead of building one (so the long run can go on while you rebuild).
source "$(dirname "$0")/lib.sh"
TICKS=${TICKS:-100}

cat >"$work/ferry.yaml" <<YAML
project: bench
topics: [ticks]
schedules:
  - {name: every-minute, schedule: "* * * * *", topic: ticks, data: "tick"}
YAML
start_ferry "$work/ferry.yaml"

python3 - "$FERRY_PORT" "$TICKS" <<'PY'
import datetime, json, sys, urllib.request
port, ticks = int(sys.argv[1]), int(sys.argv[2])
base = "http://127.0.0.1:%d/v1/projects/bench/" % port
def call(method, path, body):
    req = urllib.request.Request(base + path, data=json.dumps(body).encode(), method=method,
                                 headers={"content-type": "application/json"})
    return json.load(urllib.request.urlopen(req, timeout=120))
call("PUT", "subscriptions/ticks-sub", {"topic": "projects/bench/topics/ticks"})
errors, received = [], []
while len(errors) < ticks:
    got = call("POST", "subscriptions/ticks-sub:pull", {"maxMessages": 10}).get("receivedMessages", [])
    now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    for r in got:
        t = datetime.datetime.strptime(r["message"]["publishTime"], "%Y-%m-%dT%H:%M:%S.%fZ")
        scheduled = t.replace(second=0, microsecond=0)
        errors.append((t - scheduled).total_seconds() * 1000)
        received.append((now - scheduled).total_seconds() * 1000)
        print("tick %d: fired %.1f ms, received %.1f ms after the minute" % (len(errors), errors[-1], received[-1]),
              flush=True)
    if got:
        call("POST", "subscriptions/ticks-sub:acknowledge", {"ackIds": [r["ackId"] for r in got]})
for name, xs in (("fired", errors), ("received", received)):
    xs.sort()
    pct = lambda p: xs[int(p * (len(xs) - 1))]
    print("%s after the scheduled minute, %d ticks: p50 %.1f ms, p99 %.1f ms, max %.1f ms"
          % (name, len(xs), pct(0.5), pct(0.99), xs[-1]))
PY
