#!/usr/bin/env bash
# The sanitizer and fuzzing part of CI (scripts/test.sh runs it after the ordinary tests; docs/testing.md says
# what runs where and why):
#   1. build-asan/ (clang 14, ASan + UBSan, libFuzzer's coverage): the unit and integration tests; the e2e tests
#      that feed the daemon's parsers and its failure paths (security, REST, storage faults, function faults)
#      against a daemon built with the sanitizers; then each fuzz target for FUZZ_SECONDS (30) from its seeds.
#   2. build-tsan/ (GCC, TSan): the tests of the concurrent parts (store writer, broker, scheduler, supervisor,
#      Pub/Sub triggers, gRPC StreamingPull, push delivery).
#   scripts/sanitize.sh            # both
#   scripts/sanitize.sh asan       # one
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
dpkg-query -W -f='${Status}' libclang-rt-14-dev 2>/dev/null | grep -q "ok installed" || {
  sudo_cmd=()
  [[ $(id -u) -eq 0 ]] || sudo_cmd=(sudo)
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends clang \
    libclang-rt-14-dev >/dev/null
}
parts=("$@")
[[ ${#parts[@]} -gt 0 ]] || parts=(asan tsan)
jobs=$(nproc)

for part in "${parts[@]}"; do
  case $part in
    asan)
      CC=clang CXX=clang++ cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFERRY_FUZZ=ON \
        -DFERRY_BUILD_TESTS=ON -DFERRY_BUILD_BENCH=OFF -DCMAKE_CXX_COMPILER_LAUNCHER=ccache >/dev/null
      cmake --build build-asan -j "$jobs"
      # halt_on_error: the first report fails the test. Leaks are reported by LeakSanitizer at exit.
      export ASAN_OPTIONS=halt_on_error=1:detect_stack_use_after_return=0:quarantine_size_mb=32
      export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
      ctest --test-dir build-asan -j "$jobs" --output-on-failure -L "unit|integration"
      ctest --test-dir build-asan -j "$jobs" --output-on-failure \
        -R "^e2e\\.(security_test|rest_api_test|storage_faults_test|function_faults_test)$"
      SECONDS_EACH=${FUZZ_SECONDS:-30} FUZZ_BUILD=build-asan bash fuzz/run.sh
      ;;
    tsan)
      cmake -S . -B build-tsan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFERRY_SANITIZER=thread \
        -DFERRY_BUILD_TESTS=ON -DFERRY_BUILD_BENCH=OFF -DCMAKE_CXX_COMPILER_LAUNCHER=ccache >/dev/null
      tsan_tests=(store_contract_test delivery_policy_test sqlite_execution_log_test broker_test scheduler_test supervisor_test
        pubsub_trigger_test grpc_server_test streaming_pull_test sentry_test push_delivery_test)
      cmake --build build-tsan -j "$jobs" --target "${tsan_tests[@]}" ferry_test_functions
      export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 suppressions=$PWD/scripts/tsan.supp"
      printf '%s\n' "${tsan_tests[@]}" | xargs -P "$jobs" -I{} sh -c \
        'build-tsan/bin/{} --gtest_brief=1 >build-tsan/{}.log 2>&1 && echo "tsan: {} passed" ||
         { echo "tsan: {} FAILED"; tail -60 build-tsan/{}.log; exit 1; }'
      ;;
    *) echo "unknown part $part (asan, tsan)"; exit 1 ;;
  esac
done
