#!/usr/bin/env bash
# Issue 16's latency workload, publish -> subscriber callback with Google's Node.js client (one unbatched publish
# at a time, paced at RATE/s, each awaited; the client's 5 StreamingPull streams ack), in one run against:
#   - Ferry (fsync on) with --latency-stages, and the stage breakdown of that run (docs/performance.md);
#   - a do-nothing Pub/Sub server written with grpc-js (bench/grpc_floor_server.js): what the client alone costs;
#   - with PEERS=1 (the default when ../shared/peers-bench exists), NATS JetStream and RabbitMQ through
#     ../shared/peers-bench (their own clients; it installs them with apt-get), beside Ferry again.
#   bench/latency_bench.sh                   # COUNT=2000 RATE=500
#   PEERS=0 COUNT=1000 bench/latency_bench.sh
source "$(dirname "$0")/lib.sh"
[[ -d tests/e2e/node_pubsub/node_modules/@google-cloud/pubsub ]] ||
  (cd tests/e2e/node_pubsub && npm ci --no-audit --no-fund --silent)
export NODE_PATH=$PWD/tests/e2e/node_pubsub/node_modules
export COUNT=${COUNT:-2000} RATE=${RATE:-500}
peers_dir=../shared/peers-bench
PEERS=${PEERS:-$([[ -d $peers_dir ]] && echo 1 || echo 0)}

FERRY_ARGS=(--latency-stages)
start_ferry
ferry_run=$(PUBSUB_EMULATOR_HOST=127.0.0.1:$FERRY_PORT STAGES=1 TAG=ferry node bench/pubsub_latency.js 2>/dev/null)
stop_ferry

FLOOR_PORT=$(free_port)
PORT=$FLOOR_PORT node bench/grpc_floor_server.js 2>/dev/null &
pids+=("$!")
for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$FLOOR_PORT") 2>/dev/null && break; sleep 0.1; done
floor_run=$(PUBSUB_EMULATOR_HOST=127.0.0.1:$FLOOR_PORT TAG=floor node bench/pubsub_latency.js 2>/dev/null)

peers_table=
if [[ $PEERS == 1 ]]; then
  cp -r "$peers_dir" "$work/peers" && chmod -R u+w "$work/peers"
  ferry_abs=$(cd "$(dirname "$ferry")" && pwd)/$(basename "$ferry")
  peers_table=$(cd "$work/peers" && FERRY_BIN=$ferry_abs N=${N:-20000} RUNS=${RUNS:-1} LAT_N=$COUNT LAT_RATE=$RATE \
    ./run_peers.sh nats rabbitmq ferry 2>&1 | grep -E '^\| (peer|---|nats|rabbitmq|ferry) ' | head -4)
fi

python3 - "$ferry_run" "$floor_run" <<'PY'
import json, sys
ferry, floor = (json.loads(a) for a in sys.argv[1:3])
print("publish -> callback, Google's Node.js client, %d messages at %d/s (p50 / p99 / max ms, achieved rate)" % (
    ferry["messages"], 500))
for name, r in (("ferry (fsync on)", ferry), ("grpc-js floor server", floor)):
    print("  %-22s %7.3f / %7.3f / %7.3f   %6.1f/s" % (name, r["p50_ms"], r["p99_ms"], r["max_ms"], r["achieved_rate"]))
print("ferry's stages in that run (count, p50 / p99 / mean us):")
for stage, s in ferry["stages"].items():
    print("  %-16s %7d   %8.1f / %8.1f / %8.1f" % (stage, s["count"], s["p50_us"], s["p99_us"], s["mean_us"]))
PY
if [[ -n $peers_table ]]; then
  echo "peers, same run (../shared/peers-bench: A publish msg/s, B consume+ack msg/s, C p50 / p99 ms, RSS):"
  echo "$peers_table"
fi
