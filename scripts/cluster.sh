#!/usr/bin/env bash
# Ferry as a cluster on one machine, to try it: a PostgreSQL server and three Ferry nodes sharing it, on
# http://127.0.0.1:8085, :8086 and :8087, with the quickstart (examples/quickstart/ferry.yaml) deployed once,
# through the first node. State (node data, logs, pids) is in ./cluster; the database goes with `stop`.
#   scripts/cluster.sh start    # set up, build, start, deploy
#   scripts/cluster.sh status   # which nodes answer
#   scripts/cluster.sh stop     # stop the nodes and the database
# On several machines, run on each: ferry serve --database postgresql://USER@DBHOST/DB --host ADDRESS
# --token-file TOKENS (the same tokens everywhere) --bucket-root SHARED_DIR. docs/scale-out.md explains.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=cluster
ports=(8085 8086 8087)

stop() {
  for i in 0 1 2; do
    [[ -f $dir/node$i.pid ]] || continue
    kill "$(cat "$dir/node$i.pid")" 2>/dev/null || true
    rm -f "$dir/node$i.pid"
  done
  sleep 1
  bash scripts/test_postgres.sh stop "$dir/pg.conninfo"
}

case ${1:-} in
  start)
    [[ ! -f $dir/pg.conninfo ]] || { echo "a cluster is running (scripts/cluster.sh stop first)" >&2; exit 1; }
    bash scripts/build.sh >/dev/null
    mkdir -p "$dir"
    bash scripts/test_postgres.sh start "$dir/pg.conninfo"
    psql "$(cat "$dir/pg.conninfo")" -q -c "CREATE DATABASE ferry"
    database="$(cat "$dir/pg.conninfo") dbname=ferry"
    for i in 0 1 2; do
      mkdir -p "$dir/node$i"
      build/bin/ferry serve --database "$database" --data-dir "$dir/node$i" --port "${ports[$i]}" \
        --port-file "$dir/node$i.port" --project ferry-local >"$dir/node$i.log" 2>&1 &
      echo $! >"$dir/node$i.pid"
    done
    for i in 0 1 2; do
      for _ in $(seq 1 100); do [[ -s $dir/node$i.port ]] && break; sleep 0.1; done
      [[ -s $dir/node$i.port ]] || { echo "node $i did not start: see $dir/node$i.log" >&2; stop; exit 1; }
    done
    FERRY_ENDPOINT=http://127.0.0.1:${ports[0]} build/bin/ferry deploy -f examples/quickstart/ferry.yaml
    echo "three nodes: http://127.0.0.1:${ports[0]} :${ports[1]} :${ports[2]}; logs in $dir/"
    echo "try: FERRY_ENDPOINT=http://127.0.0.1:${ports[1]} build/bin/ferry publish bar --message '{}'"
    echo "     FERRY_ENDPOINT=http://127.0.0.1:${ports[2]} build/bin/ferry logs bar"
    ;;
  status)
    for i in 0 1 2; do
      if curl -sf "http://127.0.0.1:${ports[$i]}/healthz" >/dev/null; then s=up; else s=down; fi
      echo "node $i  http://127.0.0.1:${ports[$i]}  $s"
    done
    ;;
  stop) stop ;;
  *)
    echo "usage: $0 start|status|stop" >&2
    exit 2
    ;;
esac
