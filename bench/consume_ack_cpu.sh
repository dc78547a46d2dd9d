#!/usr/bin/env bash
# Server CPU per consumed and acknowledged message (issue 16's target: at most 10 us), by thread, with Google's
# Node.js client: MESSAGES messages are published first, then one StreamingPull subscriber (flow control 2,000)
# receives and acks them all; only that second phase is measured, from /proc/<pid>/task/*/stat, so the figure does
# not depend on how busy the machine is the way messages/s does. Google's Pub/Sub emulator runs the same workload in
# the same run. Threads that end during the phase (gRPC's short-lived pollers) count in the total, not by name.
#   bench/consume_ack_cpu.sh             # MESSAGES=100000 by default
source "$(dirname "$0")/lib.sh"
[[ -d tests/e2e/node_pubsub/node_modules/@google-cloud/pubsub ]] ||
  (cd tests/e2e/node_pubsub && npm ci --no-audit --no-fund --silent)
export NODE_PATH=$PWD/tests/e2e/node_pubsub/node_modules
MESSAGES=${MESSAGES:-100000}

# measure PORT PID LABEL: publishes, then consumes with the server's CPU read around the consuming phase.
measure() {
  local port=$1 pid=$2 label=$3 before after in out
  in=$work/$label.in out=$work/$label.out
  mkfifo "$in"
  PUBSUB_EMULATOR_HOST="127.0.0.1:$port" MESSAGES="$MESSAGES" node bench/consume_ack.js <"$in" >"$out" 2>&1 &
  local client=$!
  exec 7>"$in"
  for _ in $(seq 1 1200); do grep -q published "$out" && break; sleep 0.1; done
  sleep 1  # the publishes' fsyncs and the client settle
  ticks_by_thread "$pid" >"$work/$label.before"
  before=$(cpu_ticks "$pid")
  echo go >&7
  wait "$client" || { cat "$out"; exit 1; }
  exec 7>&-
  after=$(cpu_ticks "$pid")
  ticks_by_thread "$pid" >"$work/$label.after"
  echo "$label: $(grep consumed "$out"); server CPU $(awk -v d=$((after - before)) -v hz="$(getconf CLK_TCK)" \
    -v n="$MESSAGES" 'BEGIN {printf "%.1f", d / hz / n * 1e6}') us a message"
  join "$work/$label.before" "$work/$label.after" | awk -v hz="$(getconf CLK_TCK)" -v n="$MESSAGES" \
    '{d = ($3 - $2) / hz / n * 1e6; if (d > 0.05) printf "  %-18s %5.1f us a message\n", $1, d}'
}

ferry_mode open
start_ferry
measure "$FERRY_PORT" "$ferry_pid" ferry
stop_ferry
start_emulator
measure "$EMU_PORT" "$emu_pid" emulator
