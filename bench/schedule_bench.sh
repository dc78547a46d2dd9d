#!/usr/bin/env bash
# Schedule precision (issue #5): a schedule "* * * * *" publishing to a topic; for each of TICKS ticks, the error
# is the message's publishTime (Ferry's clock when it fires the tick) minus the scheduled minute, and the time a
# waiting subscriber on this machine received it minus the scheduled minute (fired, committed with its fsync,
# delivered). Prints p50 and p99 of both. 100 ticks take 100 minutes.
#   TICKS=100 bench/schedule_bench.sh
# FERRY_BIN names a ferry binary to use instead of building one (so the long run can go on while you rebuild).
set -euo pipefail
cd "$(dirname "$0")/.."
ferry=${FERRY_BIN:-}
if [[ -z $ferry ]]; then bash scripts/build.sh >/dev/null; ferry=build/bin/ferry; fi
TICKS=${TICKS:-100}
work=$(mktemp -d)
pid=
cleanup() { [[ -n $pid ]] && kill "$pid" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

cat >"$work/ferry.yaml" <<YAML
project: bench
topics: [ticks]
schedules:
  - {name: every-minute, schedule: "* * * * *", topic: ticks, data: "tick"}
YAML
"$ferry" serve --data-dir "$work/data" --port 0 --port-file "$work/ferry.port" --project bench \
  --deploy "$work/ferry.yaml" 2>"$work/ferry.log" &
pid=$!
for _ in $(seq 1 200); do [[ -s "$work/ferry.port" ]] && grep -q "deployed" "$work/ferry.log" && break; sleep 0.05; done

python3 - "$(cat "$work/ferry.port")" "$TICKS" <<'PY'
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
