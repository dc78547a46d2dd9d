# Sourced by the bench scripts: builds Ferry, gives a work directory that goes on exit with every process started
# into `pids`, and starts Ferry and Google's Pub/Sub emulator.
# FERRY_BIN names a ferry binary to use instead of building one (so a long run can go on while you rebuild).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ferry=${FERRY_BIN:-}
if [[ -z $ferry ]]; then bash scripts/build.sh >/dev/null; ferry=build/bin/ferry; fi
work=$(mktemp -d)
pids=()
EMU_PORT=
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  [[ -z $EMU_PORT ]] || pkill -f "cloud-pubsub-emulator.*--port=$EMU_PORT" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() { for _ in $(seq 1 120); do curl -sf "http://127.0.0.1:$1/" >/dev/null && return 0; sleep 0.5; done; return 1; }

# start_ferry [DEPLOY_FILE]: Ferry on a free port with fsync on, its data in $work/data; waits until it listens
# (and has deployed the file). Sets FERRY_PORT, FERRY (its URL) and ferry_pid.
start_ferry() {
  local deploy=()
  [[ $# -eq 0 ]] || deploy=(--deploy "$1")
  "$ferry" serve --data-dir "$work/data" --port 0 --port-file "$work/ferry.port" --project bench "${deploy[@]}" \
    2>"$work/ferry.log" &
  ferry_pid=$!
  pids+=("$ferry_pid")
  for _ in $(seq 1 200); do
    [[ -s "$work/ferry.port" ]] && { [[ $# -eq 0 ]] || grep -q "deployed" "$work/ferry.log"; } && break
    sleep 0.05
  done
  FERRY_PORT=$(cat "$work/ferry.port")
  FERRY="http://127.0.0.1:$FERRY_PORT"
}

# start_emulator: Google's Pub/Sub emulator (a JVM started by gcloud) on a free port. Sets EMU_PORT and emu_pid.
start_emulator() {
  EMU_PORT=$(free_port)
  mkdir -p "$work/emulator"
  gcloud beta emulators pubsub start --host-port="127.0.0.1:$EMU_PORT" --project=bench \
    --data-dir="$work/emulator" >"$work/emulator.log" 2>&1 &
  pids+=("$!")
  wait_http "$EMU_PORT" || { echo "the emulator did not start:"; cat "$work/emulator.log"; exit 1; }
  emu_pid=$(pgrep -f "cloud-pubsub-emulator.*--port=$EMU_PORT" | head -1)
}
