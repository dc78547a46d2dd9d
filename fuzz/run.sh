#!/usr/bin/env bash
# Builds the fuzz targets with clang's libFuzzer, ASan and UBSan (in build-fuzz/) and runs each for SECONDS
# (default 60), starting from its seed corpus in fuzz/corpus/ (new inputs it finds go to build-fuzz/corpus/).
#   fuzz/run.sh                 # every target, 60 s each
#   SECONDS_EACH=600 fuzz/run.sh tokens upload_parsing
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
dpkg-query -W -f='${Status}' libclang-rt-14-dev 2>/dev/null | grep -q "ok installed" ||
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clang libclang-rt-14-dev >/dev/null
CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFERRY_FUZZ=ON \
  -DFERRY_BUILD_TESTS=OFF -DFERRY_BUILD_BENCH=OFF >/dev/null
targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=(json_text push_endpoint tokens object_name upload_parsing)
cmake --build build-fuzz --target "${targets[@]/%/_fuzz}"
failed=0
for t in "${targets[@]}"; do
  mkdir -p "build-fuzz/corpus/$t" "build-fuzz/crashes/$t"
  log="build-fuzz/$t.log"
  if "build-fuzz/bin/${t}_fuzz" -max_total_time="${SECONDS_EACH:-60}" -max_len=65536 -print_final_stats=1 \
      -artifact_prefix="build-fuzz/crashes/$t/" "build-fuzz/corpus/$t" "fuzz/corpus/$t" >"$log" 2>&1; then
    echo "$t: $(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | awk '{print $2}') executions, no crash"
  else
    echo "$t: FAILED (see $log and build-fuzz/crashes/$t/)"
    grep -E "ERROR|SUMMARY" "$log" | head -5
    failed=1
  fi
done
exit $failed
