#!/usr/bin/env bash
# Every runtime at full speed under load (issue #12): a trivial HTTP function in C++ (the SDK), Python (Ferry's
# runner) and Node.js (Google's Functions Framework), each with max_instances 1, called through Ferry one call
# at a time and then by 4 connections at once (the instance always busy). For each: executions/s, the
# client's latency p50/p99, and the execution time Ferry recorded (p50/p99 of "Function execution took").
# Goal: no runtime slower under load than alone.
#   bench/runtimes_bench.sh            # REQUESTS=5000 per phase
source "$(dirname "$0")/lib.sh"
REQUESTS=${REQUESTS:-5000}
LOAD=build/bin/ferry_functions_load
ff_dir=tests/e2e/node_function
[[ -d $ff_dir/node_modules/@google-cloud/functions-framework ]] || (cd "$ff_dir" && npm ci --no-audit --no-fund >/dev/null)
mkdir -p "$work/node"
cp bench/runtimes/index.js "$work/node/"
ln -s "$PWD/$ff_dir/node_modules" "$work/node/node_modules"

cat >"$work/ferry.yaml" <<YAML
project: bench
functions:
  - {name: cpp, runtime: command, command: [$PWD/build/bin/ferry_bench_functions], entry_point: hello,
     trigger_http: true, allow_unauthenticated: true, max_instances: 1}
  - {name: python, runtime: python3, source_dir: $PWD/bench/runtimes, entry_point: trivial_http,
     trigger_http: true, allow_unauthenticated: true, max_instances: 1}
  - {name: nodejs, runtime: nodejs, source_dir: $work/node, entry_point: trivialHttp,
     trigger_http: true, allow_unauthenticated: true, max_instances: 1}
YAML
start_ferry "$work/ferry.yaml"

exec_times() {  # exec_times FUNCTION N: p50 and p99 (ms) of the newest N executions' recorded durations
  curl -sf "$FERRY/ferry/v1/projects/bench/functions/$1/executions?limit=$2" | python3 -c '
import json, sys
d = sorted(e["durationMs"] for e in json.load(sys.stdin)["executions"])
print("%d %d" % (d[len(d) // 2], d[min(len(d) - 1, int(len(d) * 0.99))]))'
}
rows=()
for fn in cpp python nodejs; do
  "$LOAD" --endpoint "$FERRY" http --path "/functions/$fn" --requests 500 --connections 1 >/dev/null  # warm-up
  for connections in 1 4; do
    out=$("$LOAD" --endpoint "$FERRY" http --path "/functions/$fn" --requests "$REQUESTS" --connections "$connections")
    rows+=("$fn" "$connections" "$out" "$(exec_times "$fn" 1000)")
  done
done
python3 - "${rows[@]}" <<'PY'
import json, sys
a = sys.argv[1:]
print("Trivial HTTP function through Ferry, max_instances 1, %s" % "one call at a time vs 4 connections")
print("%-8s %-12s %12s %14s %14s %16s %16s" % ("runtime", "load", "execs/s", "client p50 ms", "client p99 ms",
                                                 "exec time p50 ms", "exec time p99 ms"))
for i in range(0, len(a), 4):
    fn, conns, r, t = a[i], a[i + 1], json.loads(a[i + 2]), a[i + 3].split()
    print("%-8s %-12s %12.0f %14.2f %14.2f %16s %16s" % (fn, "alone" if conns == "1" else "4 connections",
          r["requests_per_s"], r["p50_ms"], r["p99_ms"], t[0], t[1]))
PY
