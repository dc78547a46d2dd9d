#!/usr/bin/env bash
# Where an HTTP function call's CPU goes in Ferry, by thread, against what nginx spends proxying the same call (issue
# 16): 20,000 GETs of the trivial C++ function over 4 keep-alive connections, through Ferry (the function as
# `runtime: command`, 4 instances) and through nginx (a plain keep-alive proxy to the function started directly).
# CPU is read from /proc/<pid>/task/*/stat before and after, so it does not depend on how busy the machine is the
# way requests/s does. The instances' and the load generator's CPU are not counted, on either side. From
# /proc/<tid>/schedstat, how long Ferry's threads and the instances were runnable but waited for a core, a call.
# And the whole machine's CPU a call (/proc/stat), split into the proxy, the function's processes and the rest (the
# load generator, mostly), with the share of the two cores left idle: when nothing is idle, the rate is the cores
# over the machine's CPU a call, so a proxy matches another's rate only if its path costs the machine as little.
#   bench/http_functions_cpu.sh          # REQUESTS=20000 by default
source "$(dirname "$0")/lib.sh"
REQUESTS=${REQUESTS:-20000}
LOAD=build/bin/ferry_functions_load
FN=$PWD/build/bin/ferry_bench_functions

# machine_ticks: "busy idle" CPU ticks of all cores, from /proc/stat.
machine_ticks() { awk '/^cpu / {printf "%d %d\n", $2 + $3 + $4 + $7 + $8 + $9, $5 + $6}' /proc/stat; }
# process_ticks PID...: their CPU ticks, all threads.
process_ticks() { local p t=0; for p in "$@"; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done; echo $t; }
# machine_split PROXY_NAME PROXY_BEFORE PROXY_AFTER FN_BEFORE FN_AFTER MACHINE_BEFORE MACHINE_AFTER
machine_split() {
  awk -v hz="$(getconf CLK_TCK)" -v n="$REQUESTS" -v name="$1" -v p0="$2" -v p1="$3" -v f0="$4" -v f1="$5" \
    -v m0="$6" -v m1="$7" 'BEGIN {
      split(m0, a, " "); split(m1, b, " "); busy = b[1] - a[1]; idle = b[2] - a[2]; us = 1e6 / hz / n
      printf "  the machine: %.1f us of CPU a call (%s %.1f, the function %.1f, the load generator and the rest %.1f); %.0f %% of the cores idle\n",
        busy * us, name, (p1 - p0) * us, (f1 - f0) * us, (busy - (p1 - p0) - (f1 - f0)) * us, 100 * idle / (busy + idle)}'
}

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
machine_before=$(machine_ticks); ferry_before=$(process_ticks "$ferry_pid"); fn_before=$(process_ticks $instances)
through=$("$LOAD" --endpoint "$FERRY" http --path /functions/hello --requests "$REQUESTS" --connections 4)
fn_after=$(process_ticks $instances); ferry_after=$(process_ticks "$ferry_pid"); machine_after=$(machine_ticks)
waits_by_thread "$ferry_pid" $instances >"$work/waits-after"
ticks_by_thread "$ferry_pid" >"$work/after"
stop_ferry

start_direct_and_nginx "$FN"
worker=$(pgrep -f "nginx: worker process" -P "$(cat "$work/nginx.pid")" | head -1)
"$LOAD" --endpoint "http://127.0.0.1:$NGINX_PORT" http --path / --requests 4000 >/dev/null
ticks_by_thread "$worker" >"$work/nginx-before"
waits_by_thread "$worker" >"$work/nginx-waits-before"
direct=$(pgrep -f "^$FN" | tr '\n' ' ')
machine_before_nginx=$(machine_ticks); nginx_before=$(process_ticks "$worker"); direct_before=$(process_ticks $direct)
proxied=$("$LOAD" --endpoint "http://127.0.0.1:$NGINX_PORT" http --path / --requests "$REQUESTS" --connections 4)
direct_after=$(process_ticks $direct); nginx_after=$(process_ticks "$worker"); machine_after_nginx=$(machine_ticks)
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
machine_split Ferry "$ferry_before" "$ferry_after" "$fn_before" "$fn_after" "$machine_before" "$machine_after"
echo "through nginx ($(python3 -c 'import json,sys; print("%.0f requests/s" % json.loads(sys.argv[1])["requests_per_s"])' "$proxied")):"
per_call "$work/nginx-before" "$work/nginx-after" | grep -v "all of Ferry"
waits "$work/nginx-waits-before" "$work/nginx-waits-after"
machine_split nginx "$nginx_before" "$nginx_after" "$direct_before" "$direct_after" "$machine_before_nginx" "$machine_after_nginx"
