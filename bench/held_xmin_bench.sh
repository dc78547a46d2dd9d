#!/usr/bin/env bash
# PostgreSQL's known failure for queues: a transaction held open (a report, a forgotten psql session) holds back
# the xmin horizon, so vacuum cannot remove the dead rows of the hot tables and every lease scans more of them.
# Ferry on PostgreSQL under a steady publish + pull + ack load, before, during and after a transaction held open
# for HOLD seconds; prints the throughput of each phase (goal: under 10% lost while it is held).
#   bench/held_xmin_bench.sh             # BEFORE=20 HOLD=60 AFTER=20 seconds, rounds of 5,000 messages
source "$(dirname "$0")/lib.sh"
BEFORE=${BEFORE:-20}
HOLD=${HOLD:-60}
AFTER=${AFTER:-20}
ROUND=${ROUND:-5000}
BENCH=build/bin/ferry_pubsub_rest_bench

ferry_mode postgres
start_ferry
conninfo=$(cat "$work/pg.conninfo")
db=$(grep -o 'dbname=[a-z_0-9]*' <<<"${FERRY_ARGS[*]}" | tail -1)

# rounds SECONDS: publish and pull+ack rounds of ROUND messages for about that long; prints messages/s over them.
rounds() {
  local until=$((SECONDS + $1)) n=0 start=$SECONDS
  while ((SECONDS < until)); do
    "$BENCH" --endpoint "$FERRY" --messages "$ROUND" --topic held --subscription held-sub >/dev/null
    n=$((n + ROUND))
  done
  python3 -c "print('%.0f' % ($n / max(1, $SECONDS - $start)))"
}

"$BENCH" --endpoint "$FERRY" --messages "$ROUND" --topic held --subscription held-sub >/dev/null  # warm-up
before=$(rounds "$BEFORE")
# The held transaction: it has an xid and sleeps, so the horizon stays where it was when it began.
psql "$conninfo $db" -q -c "BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT txid_current(); SELECT pg_sleep($HOLD); \
COMMIT;" >/dev/null &
holder=$!
sleep 1
during=$(rounds $((HOLD - 2)))
wait "$holder"
after=$(rounds "$AFTER")
stop_ferry
python3 - "$before" "$during" "$after" "$HOLD" <<'PY'
import sys
before, during, after, hold = (float(x) for x in sys.argv[1:5])
print("Ferry on PostgreSQL, publish + pull + ack rounds, a transaction held open for %d s" % hold)
print("  before   %8.0f msg/s" % before)
print("  during   %8.0f msg/s  (%+.1f%%)" % (during, 100 * (during / before - 1)))
print("  after    %8.0f msg/s  (%+.1f%%)" % (after, 100 * (after / before - 1)))
PY
