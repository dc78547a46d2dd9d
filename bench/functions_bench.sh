#!/usr/bin/env bash
# The functions benchmark (issue #3). Ferry's whole pipeline (durable broker, supervisor, a trivial C++ function
# with max_instances 2) against Google's Node.js Functions Framework serving the same trivial background function
# over direct HTTP with keep-alive, in the same run:
#   1. executions/s: publish 20,000 messages, time until the function has run them all (publish to ack);
#   2. latency from publish to the function's start at a steady 200 messages/s (p50, p99);
#   3. the Node.js Functions Framework's requests/s, direct, 4 keep-alive connections.
#   bench/functions_bench.sh             # MESSAGES=20000 RATE=200 LATENCY_SECONDS=10 by default
#   MODES="open postgres postgres3" bench/functions_bench.sh   # also on PostgreSQL, one node and three (lib.sh)
source "$(dirname "$0")/lib.sh"
MESSAGES=${MESSAGES:-20000}
RATE=${RATE:-200}
LATENCY_SECONDS=${LATENCY_SECONDS:-10}
LOAD=build/bin/ferry_functions_load

# Google's Node.js Functions Framework, installed from npm by the e2e tests' package.
ff_dir=tests/e2e/node_function
[[ -d $ff_dir/node_modules/@google-cloud/functions-framework ]] || (cd "$ff_dir" && npm ci --no-audit --no-fund >/dev/null)
FF_PORT=$(free_port)
node "$ff_dir/node_modules/@google-cloud/functions-framework/build/src/main.js" --source bench/node_trivial \
  --target trivial --signature-type event --port "$FF_PORT" >"$work/ff.log" 2>&1 &
pids+=("$!")

# Ferry with the trivial function deployed.
cat >"$work/ferry.yaml" <<YAML
project: bench
topics: [bench]
functions:
  - name: trivial
    runtime: command
    command: [$PWD/build/bin/ferry_bench_functions]
    event_trigger_type: google.pubsub.topic.publish
    event_trigger_resource: bench
    max_instances: 2
YAML
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$FF_PORT/" -o /dev/null -X POST -H 'Content-Type: application/json' \
  -d '{"context":{},"data":{}}' && break; sleep 0.1; done

# Warm-ups, then the measured runs.
"$LOAD" --endpoint "http://127.0.0.1:$FF_PORT" direct --requests 2000 >/dev/null
direct=$("$LOAD" --endpoint "http://127.0.0.1:$FF_PORT" direct --requests "$MESSAGES" --connections 4)
results=()
for mode in ${MODES:-open}; do
  ferry_mode "$mode"
  start_ferry "$work/ferry.yaml"
  "$LOAD" --endpoint "$FERRY" pipeline --messages 2000 >/dev/null
  # shellcheck disable=SC2046
  servers=$(server_pids | tr '\n' ' ')
  # The instances (children of the nodes) count as server too.
  for p in "${ferry_pids[@]}"; do servers+=" $(pgrep -P "$p" | tr "\\n" " " || true)"; done
  # shellcheck disable=SC2086
  before=$(cpu_ticks $servers)
  pipeline=$("$LOAD" --endpoint "$FERRY" pipeline --messages "$MESSAGES")
  # shellcheck disable=SC2086
  pipeline=$(python3 -c 'import json, sys; r = json.loads(sys.argv[1]); r["cpu_ticks"] = int(sys.argv[2]); print(json.dumps(r))' \
    "$pipeline" "$(($(cpu_ticks $servers) - before))")
  latency=$("$LOAD" --endpoint "$FERRY" latency --rate "$RATE" --seconds "$LATENCY_SECONDS")
  results+=("$mode" "$pipeline" "$latency")
  stop_ferry
done

python3 - "$direct" "${results[@]}" <<'PY'
import json, sys
d = json.loads(sys.argv[1])
rest = sys.argv[2:]
for i in range(0, len(rest), 3):
    mode, p, l = rest[i], json.loads(rest[i + 1]), json.loads(rest[i + 2])
    print("Functions (%s): %d messages through Ferry (publish -> durable store -> supervisor -> C++ function -> ack)"
          % (mode, p["messages"]))
    print("  Ferry pipeline            %8.0f executions/s, server CPU %.0f us an execution (instances and database too)"
          % (p["executions_per_s"], p["cpu_ticks"] * 10000.0 / p["messages"]))
    print("  Node.js FF, direct HTTP   %8.0f requests/s (4 keep-alive connections)" % d["requests_per_s"])
    print("  ratio                     %8.2fx (target 3x)" % (p["executions_per_s"] / d["requests_per_s"]))
    print("  latency publish -> function start at %d msg/s: p50 %.2f ms, p99 %.2f ms, max %.2f ms (%d messages)"
          % (l["rate"], l["p50_ms"], l["p99_ms"], l["max_ms"], l["messages"]))
PY
