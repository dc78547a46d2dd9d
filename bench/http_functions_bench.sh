#!/usr/bin/env bash
# HTTP functions (issue #5): requests/s and latency through Ferry (GET /functions/hello: routing, the execution
# record, the instance's log lines) against the same trivial C++ function called directly on its own port, in the
# same run, with the same load generator (4 keep-alive connections). Through Ferry twice: as `runtime: command`
# (loopback TCP to the instance, as for Google's Functions Frameworks) and as `runtime: cpp` (bench/http_cpp,
# built at deploy; Unix sockets). A peer for scale: nginx as a plain reverse
# proxy (keep-alive upstream, no access log) in front of the directly started function, same run.
#   bench/http_functions_bench.sh          # REQUESTS=20000 by default
#   MODES="open tokens tls" bench/http_functions_bench.sh   # also a private function called with a token, and
#                                                            # that over TLS (lib.sh)
source "$(dirname "$0")/lib.sh"
REQUESTS=${REQUESTS:-20000}
LOAD=build/bin/ferry_functions_load
FN=$PWD/build/bin/ferry_bench_functions

start_direct_and_nginx "$FN"

MODES=${MODES:-open}
"$LOAD" --endpoint "http://127.0.0.1:$DIRECT_PORT" http --path / --requests 2000 >/dev/null
"$LOAD" --endpoint "http://127.0.0.1:$NGINX_PORT" http --path / --requests 2000 >/dev/null

throughs=()
for mode in $MODES; do
  ferry_mode "$mode"
  # Open: a public function. With tokens: a private one, so every call's token is checked.
  public=true
  [[ $mode == open ]] || public=false
  cat >"$work/ferry.yaml" <<YAML
project: bench
functions:
  - name: hello
    runtime: command
    command: [$FN]
    trigger_http: true
    allow_unauthenticated: $public
    max_instances: 4
    min_instances: 4
    concurrency: 1
  - name: hello-cpp
    runtime: cpp
    source_dir: $PWD/bench/http_cpp
    entry_point: hello
    trigger_http: true
    allow_unauthenticated: $public
    max_instances: 4
    min_instances: 4
    concurrency: 1
YAML
  start_ferry "$work/ferry.yaml"
  auth=()
  [[ -z ${FERRY_TOKEN:-} ]] || auth=(-H "Authorization: Bearer $FERRY_TOKEN")
  for _ in $(seq 1 100); do
    curl -sf --cacert "$work/cert.pem" "${auth[@]}" "$FERRY/functions/hello" -o /dev/null 2>/dev/null && break
    curl -sf "${auth[@]}" "$FERRY/functions/hello" -o /dev/null 2>/dev/null && break
    sleep 0.1
  done
  for _ in $(seq 1 600); do
    curl -sf --cacert "$work/cert.pem" "${auth[@]}" "$FERRY/functions/hello-cpp" -o /dev/null 2>/dev/null && break
    curl -sf "${auth[@]}" "$FERRY/functions/hello-cpp" -o /dev/null 2>/dev/null && break
    sleep 0.5  # built at deploy
  done
  "$LOAD" --endpoint "$FERRY" http --path /functions/hello --requests 2000 >/dev/null
  "$LOAD" --endpoint "$FERRY" http --path /functions/hello-cpp --requests 2000 >/dev/null
  throughs+=("$mode" "$("$LOAD" --endpoint "$FERRY" http --path /functions/hello --requests "$REQUESTS" --connections 4)")
  if [[ $mode == open ]]; then
    through_uds=$("$LOAD" --endpoint "$FERRY" http --path /functions/hello-cpp --requests "$REQUESTS" --connections 4)
    # One call at a time: the time a call adds when nothing queues for the 2 cores.
    through_one=$("$LOAD" --endpoint "$FERRY" http --path /functions/hello --requests "$REQUESTS" --connections 1)
    through_uds_one=$("$LOAD" --endpoint "$FERRY" http --path /functions/hello-cpp --requests "$REQUESTS" --connections 1)
  fi
  stop_ferry
done
ferry_mode open
through=${throughs[1]}
direct=$("$LOAD" --endpoint "http://127.0.0.1:$DIRECT_PORT" http --path / --requests "$REQUESTS" --connections 4)
nginx=$("$LOAD" --endpoint "http://127.0.0.1:$NGINX_PORT" http --path / --requests "$REQUESTS" --connections 4)
direct_one=$("$LOAD" --endpoint "http://127.0.0.1:$DIRECT_PORT" http --path / --requests "$REQUESTS" --connections 1)
nginx_one=$("$LOAD" --endpoint "http://127.0.0.1:$NGINX_PORT" http --path / --requests "$REQUESTS" --connections 1)

python3 - "$through" "$direct" "$nginx" "$through_uds" <<'PY'
import json, sys
t, d, n, u = (json.loads(a) for a in sys.argv[1:5])
print("HTTP function, %d GETs over 4 keep-alive connections" % t["requests"])
print("%-14s %14s %10s %14s" % ("", "through ferry", "direct", "through nginx"))
print("%-14s %14.0f %10.0f %14.0f   ferry/direct %.2f (target >= 0.5), nginx/direct %.2f" % (
    "requests/s", t["requests_per_s"], d["requests_per_s"], n["requests_per_s"],
    t["requests_per_s"] / d["requests_per_s"], n["requests_per_s"] / d["requests_per_s"]))
print("%-14s %14.3f %10.3f %14.3f   ferry adds %.3f ms (target <= 0.5), nginx %.3f ms" % (
    "p50 ms", t["p50_ms"], d["p50_ms"], n["p50_ms"], t["p50_ms"] - d["p50_ms"], n["p50_ms"] - d["p50_ms"]))
print("%-14s %14.3f %10.3f %14.3f" % ("p99 ms", t["p99_ms"], d["p99_ms"], n["p99_ms"]))
print("the same function as runtime: cpp (built by Ferry, its instances on Unix sockets): %.0f requests/s, "
      "p50 %.3f ms, p99 %.3f ms; ferry/nginx %.2f (target >= 1)" % (
          u["requests_per_s"], u["p50_ms"], u["p99_ms"], u["requests_per_s"] / n["requests_per_s"]))
PY

python3 - "$through_one" "$through_uds_one" "$direct_one" "$nginx_one" <<'PY'
import json, sys
t, u, d, n = (json.loads(a) for a in sys.argv[1:5])
print("one connection (a call at a time, nothing queues): p50 / p99 ms, and what each adds over direct")
for name, r in (("direct", d), ("through nginx", n), ("through ferry", t), ("ferry, cpp", u)):
    extra = "" if r is d else "   adds %.3f / %.3f" % (r["p50_ms"] - d["p50_ms"], r["p99_ms"] - d["p99_ms"])
    print("  %-14s %.3f / %.3f%s" % (name, r["p50_ms"], r["p99_ms"], extra))
print("  (issue 16's targets: ferry adds at most 0.100 at p50 and 0.300 at p99)")
PY

python3 - "${throughs[@]}" <<'PY'
import json, sys
rest = sys.argv[1:]
runs = [(rest[i], json.loads(rest[i + 1])) for i in range(0, len(rest), 2)]
if len(runs) > 1:
    print("through ferry by mode: " + ", ".join("%s %.0f req/s (p50 %.3f ms, p99 %.3f ms)" % (
        name, r["requests_per_s"], r["p50_ms"], r["p99_ms"]) for name, r in runs))
PY
