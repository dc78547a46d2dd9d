#!/usr/bin/env bash
# Builds the fuzz targets with clang's libFuzzer, ASan and UBSan and runs each for SECONDS_EACH (default 60),
# starting from its seed corpus and dictionary in fuzz/corpus/ (new inputs it finds go to BUILD/corpus/).
#   fuzz/run.sh                               # every target, 60 s each, in build-fuzz/
#   SECONDS_EACH=600 fuzz/run.sh tokens cron  # some
#   RUNS=10000000 fuzz/run.sh filter          # a number of executions instead of a time
#   MAX_LEN=4096 fuzz/run.sh tokens           # a smaller largest input (default 65536)
# FUZZ_BUILD names an existing FERRY_FUZZ build to use (scripts/sanitize.sh passes build-asan).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${FUZZ_BUILD:-build-fuzz}
all=(json_text push_endpoint tokens object_name upload_parsing filter cron deploy_file instance_line http_request
  grpc_request sentry_dsn scheduler_job log_filter cloud_function source_zip github_workflow)
targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=("${all[@]}")
if [[ -z ${FUZZ_BUILD:-} ]]; then
  bash scripts/setup.sh
  dpkg-query -W -f='${Status}' libclang-rt-14-dev 2>/dev/null | grep -q "ok installed" ||
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clang libclang-rt-14-dev >/dev/null
  CC=clang CXX=clang++ cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFERRY_FUZZ=ON \
    -DFERRY_BUILD_TESTS=OFF -DFERRY_BUILD_BENCH=OFF -DCMAKE_CXX_COMPILER_LAUNCHER=ccache >/dev/null
fi
cmake --build "$build" --target "${targets[@]/%/_fuzz}"
limit=(-max_total_time="${SECONDS_EACH:-60}")
[[ -z ${RUNS:-} ]] || limit=(-runs="$RUNS")
failed=0
for t in "${targets[@]}"; do
  mkdir -p "$build/corpus/$t" "$build/crashes/$t"
  log="$build/$t.log"
  dict=()
  [[ ! -f fuzz/corpus/$t.dict ]] || dict=(-dict="fuzz/corpus/$t.dict")
  start=$SECONDS
  if "$build/bin/${t}_fuzz" "${limit[@]}" -max_len="${MAX_LEN:-65536}" -print_final_stats=1 -timeout=10 -rss_limit_mb=4096 \
      "${dict[@]}" -artifact_prefix="$build/crashes/$t/" "$build/corpus/$t" "fuzz/corpus/$t" >"$log" 2>&1; then
    echo "$t: $(grep -ao 'stat::number_of_executed_units: [0-9]*' "$log" | awk '{print $2}') executions in" \
      "$((SECONDS - start)) s, no crash"
  else
    echo "$t: FAILED (see $log and $build/crashes/$t/)"
    grep -aE "ERROR|SUMMARY|Assertion|abort" "$log" | head -5
    failed=1
  fi
done
exit $failed
