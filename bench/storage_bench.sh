#!/usr/bin/env bash
# Storage triggers (issue #5): the time from a file closed in a bucket's directory to the start of the function it
# triggers (a Python function, warm), over FILES files written one every 50 ms. Prints p50 and p99.
#   bench/storage_bench.sh          # FILES=200 by default
source "$(dirname "$0")/lib.sh"
FILES=${FILES:-200}

cat >"$work/ferry.yaml" <<YAML
project: bench
buckets:
  - {name: inbox, path: $work/inbox}
functions:
  - name: on-object
    runtime: python3
    source_dir: $PWD/bench/storage_function
    entry_point: on_object
    event_trigger_type: google.storage.object.finalize
    event_trigger_resource: inbox
    min_instances: 1
YAML
start_ferry "$work/ferry.yaml"

python3 - "$FERRY_PORT" "$work/inbox" "$FILES" <<'PY'
import json, os, sys, time, urllib.request
port, inbox, files = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
def logs():
    url = "http://127.0.0.1:%d/ferry/v1/projects/bench/functions/on-object/logs?limit=100000" % port
    return json.load(urllib.request.urlopen(url))["entries"]
def write(name):
    with open(os.path.join(inbox, name), "wb") as f:
        f.write(b"x" * 1024)
    return time.time()  # closed
write("warmup-0")
time.sleep(2)
closed = {}
for i in range(files):
    closed["f%04d" % i] = write("f%04d" % i)
    time.sleep(0.05)
deadline = time.time() + 60
started = {}
while len(started) < files and time.time() < deadline:
    for e in logs():
        m = e["message"]
        if m.startswith("started name=f"):
            name, t = m[len("started name="):].split(" t=")
            started[name] = float(t)
    time.sleep(0.5)
lat = sorted((started[n] - closed[n]) * 1000 for n in closed if n in started)
pct = lambda p: lat[int(p * (len(lat) - 1))]
print("storage: file closed -> function start, %d of %d files, one every 50 ms" % (len(lat), files))
print("p50 %.2f ms   p99 %.2f ms   max %.2f ms" % (pct(0.5), pct(0.99), lat[-1]))
PY
