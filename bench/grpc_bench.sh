#!/usr/bin/env bash
# Google's Node.js Pub/Sub client over gRPC against Ferry and against Google's Pub/Sub emulator, same run: publish
# N messages of 100 bytes, then receive and ack them all with StreamingPull (one subscriber). Ferry runs with
# fsync on. Prints the rates and their ratios.
#   bench/grpc_bench.sh              # 100,000 messages
#   MESSAGES=20000 bench/grpc_bench.sh
source "$(dirname "$0")/lib.sh"
[[ -d tests/e2e/node_pubsub/node_modules/@google-cloud/pubsub ]] ||
  (cd tests/e2e/node_pubsub && npm ci --no-audit --no-fund --silent)
export NODE_PATH=$PWD/tests/e2e/node_pubsub/node_modules
MESSAGES=${MESSAGES:-100000}
start_ferry
start_emulator

run() {  # run PORT: a warm-up round, then the measured one
  PUBSUB_EMULATOR_HOST="127.0.0.1:$1" MESSAGES=10000 TAG=warmup node bench/grpc_load.js >/dev/null 2>&1
  PUBSUB_EMULATOR_HOST="127.0.0.1:$1" MESSAGES="$MESSAGES" TAG=measured node bench/grpc_load.js 2>/dev/null
}
ferry_json=$(run "$FERRY_PORT")
emu_json=$(run "$EMU_PORT")

python3 - "$ferry_json" "$emu_json" <<'PY'
import json, sys
f, e = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print("Node.js client over gRPC, %d messages of 100 B (publish batches of 1000, one StreamingPull subscriber)"
      % f["messages"])
print("%-24s %12s %12s %8s" % ("", "ferry", "emulator", "ratio"))
for key, label in (("publish_msgs_per_s", "publish msg/s"), ("receive_msgs_per_s", "receive+ack msg/s"),
                   ("end_to_end_msgs_per_s", "end to end msg/s")):
    print("%-24s %12.0f %12.0f %7.1fx" % (label, f[key], e[key], f[key] / e[key]))
for key, label in (("publish_client_cores", "client cores, publish"), ("receive_client_cores", "client cores, receive")):
    print("%-24s %12.2f %12.2f" % (label, f[key], e[key]))
PY
