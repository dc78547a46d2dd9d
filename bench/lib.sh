# Sourced by the bench scripts: builds Ferry, gives a work directory that goes on exit with every process started
# into `pids`, and starts Ferry and Google's Pub/Sub emulator.
# FERRY_BIN names a ferry binary to use instead of building one (so a long run can go on while you rebuild).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ferry=${FERRY_BIN:-}
if [[ -z $ferry ]]; then bash scripts/build.sh >/dev/null; ferry=build/bin/ferry; fi
# A binary kept elsewhere (a copy of an older build, for a paired run) finds the C++ SDK of this tree, which
# `runtime: cpp` functions build against, here rather than beside itself.
[[ -n ${FERRY_SDK_DIR:-} || ! -f build/lib/cmake/ferry/ferryConfig.cmake ]] || export FERRY_SDK_DIR=$PWD/build/lib/cmake/ferry
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

# The modes a bench can run Ferry in (MODES="open tokens tls postgres postgres3"): open (no tokens, loopback), tokens
# (every call carries an admin bearer token), tls (tokens, and TLS on the port with a self-signed certificate),
# postgres (open, its store a fresh database on a PostgreSQL server the bench starts, fsync and synchronous_commit
# on) and postgres3 (the same with three nodes sharing the database; FERRY then names all three, comma-separated,
# and the load generators spread their connections over them).
# ferry_mode MODE sets FERRY_ARGS for start_ferry, FERRY_TOKEN for the load generators, FERRY_SCHEME and
# FERRY_NODES.
BENCH_TOKEN=bench-admin-token-0123456789abcdef
ferry_mode() {
  FERRY_ARGS=()
  FERRY_SCHEME=http
  FERRY_NODES=1
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
    postgres | postgres3)
      [[ $1 == postgres ]] || FERRY_NODES=3
      [[ -f $work/pg.conninfo ]] || bash scripts/test_postgres.sh start "$work/pg.conninfo"
      local db=bench_$RANDOM$RANDOM
      psql "$(cat "$work/pg.conninfo")" -q -c "CREATE DATABASE $db"
      FERRY_ARGS+=(--database "$(cat "$work/pg.conninfo") dbname=$db")
      ;;
    *) echo "unknown mode $1 (open, tokens, tls, postgres, postgres3)"; exit 1 ;;
  esac
}
FERRY_ARGS=()
FERRY_SCHEME=http
FERRY_NODES=1

# start_ferry [DEPLOY_FILE]: FERRY_NODES Ferry nodes on free ports with fsync on, each's data in a fresh directory,
# with FERRY_ARGS; waits until they listen (and the first has deployed the file; the others follow it within a
# second). Sets FERRY_PORT and ferry_pid (the first node's), FERRY (the nodes' URLs, comma-separated) and
# ferry_pids.
start_ferry() {
  local deploy=() urls=() i
  ferry_pids=()
  for ((i = 0; i < FERRY_NODES; i++)); do
    [[ $# -eq 0 || $i -gt 0 ]] || deploy=(--deploy "$1")
    rm -f "$work/ferry$i.port"
    "$ferry" serve --data-dir "$(mktemp -d -p "$work")" --port 0 --port-file "$work/ferry$i.port" --project bench \
      "${deploy[@]}" "${FERRY_ARGS[@]}" 2>"$work/ferry$i.log" &
    ferry_pids+=("$!")
    pids+=("$!")
    deploy=()
    for _ in $(seq 1 200); do
      [[ -s "$work/ferry$i.port" ]] && { [[ $# -eq 0 || $i -gt 0 ]] || grep -q "deployed" "$work/ferry$i.log"; } && break
      sleep 0.05
    done
    local port
    port=$(cat "$work/ferry$i.port")
    if [[ $FERRY_SCHEME == http ]]; then urls+=("http://127.0.0.1:$port"); else urls+=("$FERRY_SCHEME://localhost:$port"); fi
  done
  ferry_pid=${ferry_pids[0]}
  FERRY_PORT=$(cat "$work/ferry0.port")
  FERRY=$(IFS=,; echo "${urls[*]}")
  ((FERRY_NODES == 1)) || sleep 2  # the other nodes follow the deploy
}

stop_ferry() {
  local p
  for p in "${ferry_pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${ferry_pids[@]}"; do wait "$p" 2>/dev/null || true; done
}

# cpu_ticks PID...: the CPU time (user + system, in clock ticks of 10 ms) the processes have used so far.
cpu_ticks() {
  local p
  for p in "$@"; do awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || true; done | awk '{s += $1} END {print s + 0}'
}
# ticks_by_thread PID: "name ticks" lines, the CPU ticks of the process's threads of each name summed (a thread
# that ends while it is read is skipped).
ticks_by_thread() {
  local t
  for t in /proc/"$1"/task/*; do
    echo "$(tr ' ' _ <"$t/comm" 2>/dev/null) $(awk '{print $14 + $15}' "$t/stat" 2>/dev/null)"
  done | awk 'NF == 2 {a[$1] += $2} END {for (k in a) print k, a[k]}' | sort
}
# waits_by_thread PID...: "name run_ns wait_ns" lines from each thread's /proc/<tid>/schedstat, summed by thread name:
# the time it ran and the time it was runnable but waited for a core (the run queue). One process reads them all, so
# reading does not disturb the run being measured.
waits_by_thread() {
  python3 -c '
import collections, glob, sys
sums = collections.defaultdict(lambda: [0, 0])
for pid in sys.argv[1:]:
    for t in glob.glob("/proc/%s/task/*" % pid):
        try:
            name = open(t + "/comm").read().strip().replace(" ", "_")
            run, wait = open(t + "/schedstat").read().split()[:2]
        except (OSError, ValueError):
            continue
        sums[name][0] += int(run)
        sums[name][1] += int(wait)
for name in sorted(sums):
    print(name, *sums[name])' "$@"
}
# server_pids: Ferry's nodes and, in the postgres modes, every process of the PostgreSQL server.
server_pids() {
  echo "${ferry_pids[@]}"
  [[ ! -f $work/pg.conninfo ]] || pgrep -x postgres -u "$(stat -c %U "$(sed -e 's/^host=\([^ ]*\) .*/\1/' "$work/pg.conninfo")")" \
    | while read -r p; do
      # only this bench's server: its processes' working directory is its data directory
      [[ $(readlink "/proc/$p/cwd" 2>/dev/null) == "$(sed -e 's/^host=\([^ ]*\) .*/\1/' "$work/pg.conninfo")"* ]] && echo "$p"
    done
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

# start_direct_and_nginx FUNCTION_PROGRAM: the trivial HTTP function started alone (as Ferry would start an instance)
# on DIRECT_PORT, and nginx as a plain keep-alive reverse proxy to it (no access log) on NGINX_PORT: the HTTP
# functions benchmarks' peer. Both answer before it returns.
start_direct_and_nginx() {
  command -v nginx >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q nginx-light >/dev/null
  DIRECT_PORT=$(free_port)
  PORT=$DIRECT_PORT FUNCTION_TARGET=hello FUNCTION_SIGNATURE_TYPE=http K_SERVICE=hello "$1" >/dev/null 2>&1 &
  pids+=("$!")
  NGINX_PORT=$(free_port)
  cat >"$work/nginx.conf" <<CONF
worker_processes 1;
pid $work/nginx.pid;
error_log $work/nginx-error.log;
daemon off;
events { worker_connections 1024; }
http {
  access_log off;
  upstream fn { server 127.0.0.1:$DIRECT_PORT; keepalive 16; }
  server {
    listen 127.0.0.1:$NGINX_PORT;
    location / { proxy_pass http://fn; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
CONF
  nginx -c "$work/nginx.conf" -e "$work/nginx-error.log" &
  pids+=("$!")
  local port
  for port in "$DIRECT_PORT" "$NGINX_PORT"; do
    for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/" -o /dev/null && break; sleep 0.1; done
  done
}
