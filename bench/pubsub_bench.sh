#!/usr/bin/env bash
# Ferry against Google's Pub/Sub emulator, same client, same run: publish N messages of 100 bytes in batches of
# 1000, then pull (maxMessages 1000) and acknowledge them all. Ferry runs with fsync on. Prints a table with the
# rates, their ratios and each server's peak resident memory.
#   bench/pubsub_bench.sh            # 100,000 messages
#   MESSAGES=20000 bench/pubsub_bench.sh
source "$(dirname "$0")/lib.sh"
MESSAGES=${MESSAGES:-100000}
BENCH=build/bin/ferry_pubsub_rest_bench
peak_kb() { awk '/VmHWM/ {print $2}' "/proc/$1/status"; }

start_ferry
start_emulator

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
