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
  [[ ! -f $work/pg.conninfo ]] || bash scripts/test_postgres.sh stop "$work/pg.conninfo"
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() { for _ in $(seq 1 120); do curl -sf "http://127.0.0.1:$1/" >/dev/null && return 0; sleep 0.5; done; return 1; }

# The modes a bench can run Ferry in (MODES="open tokens tls postgres"): open (no tokens, loopback), tokens (every
# call carries an admin bearer token), tls (tokens, and TLS on the port with a self-signed certificate) and postgres
# (open, its store a fresh database on a PostgreSQL server the bench starts, fsync and synchronous_commit on).
# ferry_mode MODE sets FERRY_ARGS for start_ferry, FERRY_TOKEN for the load generators, and FERRY_SCHEME.
BENCH_TOKEN=bench-admin-token-0123456789abcdef
ferry_mode() {
  FERRY_ARGS=()
  FERRY_SCHEME=http
  unset FERRY_TOKEN
  case $1 in
    open) ;;
    tokens | tls)
      printf 'admin=%s\n' "$BENCH_TOKEN" >"$work/tokens.txt"
      FERRY_ARGS+=(--token-file "$work/tokens.txt")
      export FERRY_TOKEN=$BENCH_TOKEN
      ;;&
    tls)
      [[ -s $work/cert.pem ]] || openssl req -x509 -newkey rsa:2048 -nodes -keyout "$work/key.pem" \
        -out "$work/cert.pem" -days 2 -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 2>/dev/null
      FERRY_ARGS+=(--tls-cert "$work/cert.pem" --tls-key "$work/key.pem")
      FERRY_SCHEME=https
      export SSL_CERT_FILE=$work/cert.pem  # the load generators trust it
      ;;
    tokens) ;;
    postgres)
      [[ -f $work/pg.conninfo ]] || bash scripts/test_postgres.sh start "$work/pg.conninfo"
      local db=bench_$RANDOM$RANDOM
      psql "$(cat "$work/pg.conninfo")" -q -c "CREATE DATABASE $db"
      FERRY_ARGS+=(--database "$(cat "$work/pg.conninfo") dbname=$db")
      ;;
    *) echo "unknown mode $1 (open, tokens, tls, postgres)"; exit 1 ;;
  esac
}
FERRY_ARGS=()
FERRY_SCHEME=http

# start_ferry [DEPLOY_FILE]: Ferry on a free port with fsync on, its data in a fresh directory, with FERRY_ARGS;
# waits until it listens (and has deployed the file). Sets FERRY_PORT, FERRY (its URL) and ferry_pid.
start_ferry() {
  local deploy=()
  [[ $# -eq 0 ]] || deploy=(--deploy "$1")
  rm -f "$work/ferry.port"
  "$ferry" serve --data-dir "$(mktemp -d -p "$work")" --port 0 --port-file "$work/ferry.port" --project bench \
    "${deploy[@]}" "${FERRY_ARGS[@]}" 2>"$work/ferry.log" &
  ferry_pid=$!
  pids+=("$ferry_pid")
  for _ in $(seq 1 200); do
    [[ -s "$work/ferry.port" ]] && { [[ $# -eq 0 ]] || grep -q "deployed" "$work/ferry.log"; } && break
    sleep 0.05
  done
  FERRY_PORT=$(cat "$work/ferry.port")
  FERRY="$FERRY_SCHEME://127.0.0.1:$FERRY_PORT"
  [[ $FERRY_SCHEME == http ]] || FERRY="$FERRY_SCHEME://localhost:$FERRY_PORT"
}

stop_ferry() {
  kill "$ferry_pid" 2>/dev/null || true
  wait "$ferry_pid" 2>/dev/null || true
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
