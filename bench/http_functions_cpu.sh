#!/usr/bin/env bash
# Where an HTTP function call's CPU goes in Ferry, by thread, against what nginx spends proxying the same call (issue
# 16): 20,000 GETs of the trivial C++ function over 4 keep-alive connections, through Ferry (the function as
# `runtime: command`, 4 instances) and through nginx (a plain keep-alive proxy to the function started directly).
# CPU is read from /proc/<pid>/task/*/stat before and after, so it does not depend on how busy the machine is the
# way requests/s does. The instances' and the load generator's CPU are not counted, on either side. From
# /proc/<tid>/schedstat, how long Ferry's threads and the instances were runnable but waited for a core, a call.
#   bench/http_functions_cpu.sh          # REQUESTS=20000 by default
source "$(dirname "$0")/lib.sh"
REQUESTS=${REQUESTS:-20000}
LOAD=build/bin/ferry_functions_load
FN=$PWD/build/bin/ferry_bench_functions

per_call() {  # BEFORE AFTER: each thread's microseconds a call
  join "$1" "$2" | awk -v hz="$(getconf CLK_TCK)" -v n="$REQUESTS" \
    '{d = ($3 - $2) / hz / n * 1e6; total += d; if (d > 0) printf "  %-18s %6.1f us a call\n", $1, d}
     END {printf "  %-18s %6.1f us a call\n", "all of Ferry", total}'
}

cat >"$work/ferry.yaml" <<YAML
project: bench
functions:
  - name: hello
    runtime: command
    command: [$FN]
    trigger_http: true
    allow_unauthenticated: true
    max_instances: 4
    min_instances: 4
YAML
ferry_mode open
start_ferry "$work/ferry.yaml"

for _ in $(seq 1 100); do curl -sf "$FERRY/functions/hello" -o /dev/null && break; sleep 0.1; done
"$LOAD" --endpoint "$FERRY" http --path /functions/hello --requests 4000 >/dev/null
instances=$(pgrep -f "^$FN" | tr '\n' ' ')
ticks_by_thread "$ferry_pid" >"$work/before"
waits_by_thread "$ferry_pid" $instances >"$work/waits-before"
through=$("$LOAD" --endpoint "$FERRY" http --path /functions/hello --requests "$REQUESTS" --connections 4)
waits_by_thread "$ferry_pid" $instances >"$work/waits-after"
ticks_by_thread "$ferry_pid" >"$work/after"
stop_ferry

start_direct_and_nginx "$FN"
worker=$(pgrep -f "nginx: worker process" -P "$(cat "$work/nginx.pid")" | head -1)
"$LOAD" --endpoint "http://127.0.0.1:$NGINX_PORT" http --path / --requests 4000 >/dev/null
ticks_by_thread "$worker" >"$work/nginx-before"
waits_by_thread "$worker" >"$work/nginx-waits-before"
proxied=$("$LOAD" --endpoint "http://127.0.0.1:$NGINX_PORT" http --path / --requests "$REQUESTS" --connections 4)
waits_by_thread "$worker" >"$work/nginx-waits-after"
ticks_by_thread "$worker" >"$work/nginx-after"

echo "HTTP function calls: CPU a call, $REQUESTS calls over 4 keep-alive connections"
echo "through Ferry ($(python3 -c 'import json,sys; print("%.0f requests/s" % json.loads(sys.argv[1])["requests_per_s"])' "$through")):"
per_call "$work/before" "$work/after"
waits() {  # BEFORE AFTER: each thread's wait for a core, microseconds a call
  echo "  waiting for a core (run queue):"
  join "$1" "$2" | awk -v n="$REQUESTS" \
    '{run = ($4 - $2) / n / 1e3; wait = ($5 - $3) / n / 1e3; if (run > 0.5) printf "    %-16s %6.1f us a call\n", $1, wait}'
}
waits "$work/waits-before" "$work/waits-after"
echo "through nginx ($(python3 -c 'import json,sys; print("%.0f requests/s" % json.loads(sys.argv[1])["requests_per_s"])' "$proxied")):"
per_call "$work/nginx-before" "$work/nginx-after" | grep -v "all of Ferry"
waits "$work/nginx-waits-before" "$work/nginx-waits-after"
