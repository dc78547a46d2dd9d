#!/usr/bin/env bash
# Ferry against Google's Pub/Sub emulator, same client, same run: publish N messages of 100 bytes in batches of
# 1000, then pull (maxMessages 1000) and acknowledge them all. Ferry runs with fsync on. Prints a table with the
# rates, their ratios, the servers' CPU per message (publish, pull and ack; in the postgres modes the database
# server's processes count too) and each server's peak resident memory (Ferry's nodes summed; not PostgreSQL's).
#   bench/pubsub_bench.sh            # 100,000 messages
#   MESSAGES=20000 bench/pubsub_bench.sh
#   MODES="open tokens tls" bench/pubsub_bench.sh   # Ferry also with tokens, and with tokens and TLS (lib.sh)
#   MODES="open postgres postgres3" bench/pubsub_bench.sh   # SQLite, PostgreSQL with one node and with three
source "$(dirname "$0")/lib.sh"
MESSAGES=${MESSAGES:-100000}
BENCH=build/bin/ferry_pubsub_rest_bench
peak_kb() { for p in "$@"; do awk '/VmHWM/ {print $2}' "/proc/$p/status"; done | awk '{s += $1} END {print s}'; }

MODES=${MODES:-open}

run() {  # run URL PID...: a warm-up round on its own topic, then the measured one, with the servers' CPU time
  local url=$1 before after out
  shift
  "$BENCH" --endpoint "$url" --messages 10000 --topic warmup --subscription warmup-sub >/dev/null
  before=$(cpu_ticks "$@")
  out=$("$BENCH" --endpoint "$url" --messages "$MESSAGES")
  after=$(cpu_ticks "$@")
  python3 -c 'import json, sys; r = json.loads(sys.argv[1]); r["cpu_ticks"] = int(sys.argv[2]); print(json.dumps(r))' \
    "$out" "$((after - before))"
}
results=()
for mode in $MODES; do
  ferry_mode "$mode"
  start_ferry
  # shellcheck disable=SC2046
  results+=("$mode" "$(run "$FERRY" $(server_pids))" "$(peak_kb "${ferry_pids[@]}")")
  stop_ferry
done
ferry_mode open
start_emulator
results+=(emulator "$(run "http://127.0.0.1:$EMU_PORT" "$emu_pid")" "$(peak_kb "$emu_pid")")

python3 - "$MESSAGES" "${results[@]}" <<'PY'
import json, sys
n, rest = int(sys.argv[1]), sys.argv[2:]
runs = [(rest[i], json.loads(rest[i + 1]), int(rest[i + 2])) for i in range(0, len(rest), 3)]
names = ["ferry " + name if name != "emulator" else name for name, _, _ in runs]
print("Pub/Sub REST, %d messages of 100 B, batches of 1000, 4 client connections each way" % n)
print("%-22s" % "" + "".join("%16s" % name for name in names) + "   ferry/emulator")
emu = runs[-1][1]
for key, label in (("publish_msgs_per_s", "publish msg/s"), ("pull_ack_msgs_per_s", "pull+ack msg/s")):
    print("%-22s" % label + "".join("%16.0f" % r[key] for _, r, _ in runs) + "   " +
          " ".join("%.1fx" % (r[key] / emu[key]) for _, r, _ in runs[:-1]))
# CPU: clock ticks of 10 ms over the measured run, per message published, pulled and acknowledged.
print("%-22s" % "server CPU us/msg" + "".join("%16.1f" % (r["cpu_ticks"] * 10000.0 / n) for _, r, _ in runs))
print("%-22s" % "peak memory MB" + "".join("%16.1f" % (kb / 1024) for _, _, kb in runs))
if runs[0][0] == "open":
    for name, r, _ in runs[1:-1]:
        if name.startswith("postgres"):
            print("%s / open: publish %.2fx, pull+ack %.2fx" % (name, r["publish_msgs_per_s"] / runs[0][1]["publish_msgs_per_s"],
                  r["pull_ack_msgs_per_s"] / runs[0][1]["pull_ack_msgs_per_s"]))
if runs[0][0] == "open":
    for name, r, _ in runs[1:-1]:
        if not name.startswith("postgres"):
            print("%s vs open: publish %+.1f%%, pull+ack %+.1f%%" % (name, 100 * (r["publish_msgs_per_s"] / runs[0][1]["publish_msgs_per_s"] - 1),
              100 * (r["pull_ack_msgs_per_s"] / runs[0][1]["pull_ack_msgs_per_s"] - 1)))
PY
