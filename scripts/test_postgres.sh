#!/usr/bin/env bash
# A throwaway PostgreSQL server for the tests, listening only on a Unix socket in its own directory.
#   scripts/test_postgres.sh start FILE   # starts one; writes its libpq connection string to FILE
#   scripts/test_postgres.sh stop FILE    # stops the one FILE names and removes its directory
# ctest runs these around the tests that need one (tests/CMakeLists.txt, fixture "postgres").
set -euo pipefail
action=$1
file=$2
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[[ -n $bin ]] || { echo "PostgreSQL is not installed (scripts/setup.sh installs it)" >&2; exit 1; }
as_user=()
case $action in
  start)
    dir=$(mktemp -d /tmp/ferry-test-pg-XXXXXX)
    # initdb refuses to run as root: then the cluster belongs to the postgres user.
    if [[ $(id -u) -eq 0 ]]; then
      chown postgres:postgres "$dir"
      as_user=(runuser -u postgres --)
    fi
    "${as_user[@]}" "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 >/dev/null
    "${as_user[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -w -o "-c listen_addresses='' -k $dir -c fsync=on \
-c max_connections=200 -c shared_buffers=128MB" start >/dev/null
    echo "host=$dir port=5432 user=postgres dbname=postgres" >"$file"
    ;;
  stop)
    [[ -f $file ]] || exit 0
    dir=$(sed -e 's/^host=\([^ ]*\) .*/\1/' "$file")
    [[ $(id -u) -ne 0 ]] || as_user=(runuser -u postgres --)
    "${as_user[@]}" "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null || true
    rm -rf "$dir" "$file"
    ;;
  *)
    echo "usage: $0 start|stop FILE" >&2
    exit 2
    ;;
esac
