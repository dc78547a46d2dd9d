#!/usr/bin/env bash
# Google's Node.js Pub/Sub client over gRPC against Ferry and against Google's Pub/Sub emulator, same run: publish
# N messages of 100 bytes, then receive and ack them all with StreamingPull (one subscriber). Ferry runs with
# fsync on. Prints the rates and their ratios.
#   bench/grpc_bench.sh              # 100,000 messages
#   MESSAGES=20000 bench/grpc_bench.sh
#   MODES="open tls" bench/grpc_bench.sh   # Ferry also with tokens and TLS (gRPC's call credentials, which carry
#                                          # the token, need a TLS channel, so "tokens" alone is not a mode here)
source "$(dirname "$0")/lib.sh"
[[ -d tests/e2e/node_pubsub/node_modules/@google-cloud/pubsub ]] ||
  (cd tests/e2e/node_pubsub && npm ci --no-audit --no-fund --silent)
export NODE_PATH=$PWD/tests/e2e/node_pubsub/node_modules
MESSAGES=${MESSAGES:-100000}
MODES=${MODES:-open}

run() {  # run PORT: a warm-up round, then the measured one
  PUBSUB_EMULATOR_HOST="127.0.0.1:$1" FERRY_ADDRESS="localhost:$1" MESSAGES=10000 TAG=warmup \
    node bench/grpc_load.js >/dev/null 2>&1
  PUBSUB_EMULATOR_HOST="127.0.0.1:$1" FERRY_ADDRESS="localhost:$1" MESSAGES="$MESSAGES" TAG=measured \
    node bench/grpc_load.js 2>/dev/null
}
results=()
for mode in $MODES; do
  ferry_mode "$mode"
  [[ $mode == tls ]] && export FERRY_CA=$work/cert.pem || unset FERRY_CA
  start_ferry
  results+=("$mode" "$(run "$FERRY_PORT")")
  stop_ferry
done
ferry_mode open
unset FERRY_CA
start_emulator
results+=(emulator "$(run "$EMU_PORT")")

python3 - "${results[@]}" <<'PY'
import json, sys
rest = sys.argv[1:]
runs = [(rest[i], json.loads(rest[i + 1])) for i in range(0, len(rest), 2)]
print("Node.js client over gRPC, %d messages of 100 B (publish batches of 1000, one StreamingPull subscriber)"
      % runs[0][1]["messages"])
print("%-24s" % "" + "".join("%14s" % (n if n == "emulator" else "ferry " + n) for n, _ in runs) + "  ferry/emulator")
emu = runs[-1][1]
for key, label in (("publish_msgs_per_s", "publish msg/s"), ("receive_msgs_per_s", "receive+ack msg/s"),
                   ("end_to_end_msgs_per_s", "end to end msg/s")):
    print("%-24s" % label + "".join("%14.0f" % r[key] for _, r in runs) + "  " +
          " ".join("%.1fx" % (r[key] / emu[key]) for _, r in runs[:-1]))
for key, label in (("publish_client_cores", "client cores, publish"), ("receive_client_cores", "client cores, receive")):
    print("%-24s" % label + "".join("%14.2f" % r[key] for _, r in runs))
PY
