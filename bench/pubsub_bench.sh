#!/usr/bin/env bash
# Ferry against Google's Pub/Sub emulator, same client, same run: publish N messages of 100 bytes in batches of
# 1000, then pull (maxMessages 1000) and acknowledge them all. Ferry runs with fsync on. Prints a table with the
# rates, their ratios and each server's peak resident memory.
#   bench/pubsub_bench.sh            # 100,000 messages
#   MESSAGES=20000 bench/pubsub_bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh >/dev/null
MESSAGES=${MESSAGES:-100000}
BENCH=build/bin/ferry_pubsub_rest_bench
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  pkill -f "cloud-pubsub-emulator.*--port=${EMU_PORT:-0}" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() { for _ in $(seq 1 120); do curl -sf "http://127.0.0.1:$1/" >/dev/null && return 0; sleep 0.5; done; return 1; }
peak_kb() { awk '/VmHWM/ {print $2}' "/proc/$1/status"; }

# Ferry
build/bin/ferry serve --data-dir "$work/ferry" --port 0 --port-file "$work/ferry.port" --project bench \
  2>"$work/ferry.log" &
ferry_pid=$!
pids+=("$ferry_pid")
for _ in $(seq 1 100); do [[ -s "$work/ferry.port" ]] && break; sleep 0.05; done
FERRY_PORT=$(cat "$work/ferry.port")

# Google's emulator (a JVM started by gcloud)
EMU_PORT=$(free_port)
mkdir -p "$work/emulator"
gcloud beta emulators pubsub start --host-port="127.0.0.1:$EMU_PORT" --project=bench \
  --data-dir="$work/emulator" >"$work/emulator.log" 2>&1 &
pids+=("$!")
wait_http "$EMU_PORT" || { echo "the emulator did not start:"; cat "$work/emulator.log"; exit 1; }
emu_pid=$(pgrep -f "cloud-pubsub-emulator.*--port=$EMU_PORT" | head -1)

run() {  # run NAME PORT: a warm-up round on its own topic, then the measured one
  "$BENCH" --endpoint "http://127.0.0.1:$2" --messages 10000 --topic warmup --subscription warmup-sub >/dev/null
  "$BENCH" --endpoint "http://127.0.0.1:$2" --messages "$MESSAGES"
}
ferry_json=$(run ferry "$FERRY_PORT")
emu_json=$(run emulator "$EMU_PORT")
ferry_kb=$(peak_kb "$ferry_pid")
emu_kb=$(peak_kb "$emu_pid")

python3 - "$ferry_json" "$emu_json" "$ferry_kb" "$emu_kb" "$MESSAGES" <<'PY'
import json, sys
f, e = json.loads(sys.argv[1]), json.loads(sys.argv[2])
fk, ek, n = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
print("Pub/Sub REST, %d messages of 100 B, batches of 1000, 4 client connections each way" % n)
print("%-22s %14s %14s %8s" % ("", "ferry", "emulator", "ratio"))
for key, label in (("publish_msgs_per_s", "publish msg/s"), ("pull_ack_msgs_per_s", "pull+ack msg/s")):
    print("%-22s %14.0f %14.0f %7.1fx" % (label, f[key], e[key], f[key] / e[key]))
print("%-22s %14.1f %14.1f %7.1fx" % ("peak memory MB", fk / 1024, ek / 1024, ek / fk))
PY
