#!/usr/bin/env bash
# The soak (issue #12): a steady mixed load on one Ferry for SOAK_MINUTES (60) while a sampler records, every
# SAMPLE_SECONDS (60), the daemon's resident memory, CPU, threads and open descriptors, the sizes of its two
# databases, and the p99 latency of publishing and of a function's execution. Flat is the goal.
#   bench/soak.sh                                  # 60 minutes, RATE=20000 msg/s, FN_RATE=200/s
#   SOAK_MINUTES=5 SAMPLE_SECONDS=15 bench/soak.sh  # a short look
# The load: REST publishers and pullers on one topic at RATE messages/s (half of what pull+ack sustains here,
# README "Benchmarks"); a Pub/Sub-triggered trivial C++ function at FN_RATE/s; a schedule every minute; a file
# dropped into a bucket every second. Prints one line per sample, then the first and last samples side by side.
source "$(dirname "$0")/lib.sh"
SOAK_MINUTES=${SOAK_MINUTES:-60}
SAMPLE_SECONDS=${SAMPLE_SECONDS:-60}
RATE=${RATE:-20000}
FN_RATE=${FN_RATE:-200}
[[ -x build/bin/ferry_bench_functions ]] || bash scripts/build.sh >/dev/null

mkdir -p "$work/drop"
cat >"$work/ferry.yaml" <<YAML
project: bench
topics: [soak, soak-work, soak-ticks]
buckets:
  - {name: soak-drop, path: $work/drop}
schedules:
  - {name: soak-tick, schedule: "* * * * *", topic: soak-ticks, data: tick}
functions:
  - name: trivial
    runtime: command
    command: [$PWD/build/bin/ferry_bench_functions]
    event_trigger_type: google.pubsub.topic.publish
    event_trigger_resource: soak-work
    max_instances: 2
YAML
FERRY_ARGS=(--bucket-root "$work")
start_ferry "$work/ferry.yaml"
data_dir=$(ls -d "$work"/tmp.* | head -1)
python3 bench/soak.py --port "$FERRY_PORT" --pid "$ferry_pid" --data-dir "$data_dir" --drop "$work/drop" \
  --minutes "$SOAK_MINUTES" --sample-seconds "$SAMPLE_SECONDS" --rate "$RATE" --fn-rate "$FN_RATE"
