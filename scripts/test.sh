#!/usr/bin/env bash
# Sets up the machine, builds, and runs every test: unit, integration and end-to-end (real gcloud, real daemons).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh -DFERRY_ENABLE_WERROR=ON
# Google's Node.js Functions Framework for the functions e2e test, from the committed lockfile.
[[ -d tests/e2e/node_function/node_modules/@google-cloud/functions-framework ]] ||
  (cd tests/e2e/node_function && npm ci --no-audit --no-fund --silent)
[[ -d tests/e2e/node_pubsub/node_modules/@google-cloud/pubsub ]] ||
  (cd tests/e2e/node_pubsub && npm ci --no-audit --no-fund --silent)
[[ -d tests/e2e/node_storage/node_modules/@google-cloud/storage ]] ||
  (cd tests/e2e/node_storage && npm ci --no-audit --no-fund --silent)
# playwright-core drives Debian's Chromium (scripts/setup.sh installs it) in the console test; no browser download.
[[ -d tests/e2e/console/node_modules/playwright-core ]] ||
  (cd tests/e2e/console && npm ci --no-audit --no-fund --silent)
ctest --test-dir build -j2 --output-on-failure
# Sanitizers and fuzzing (docs/testing.md): ASan+UBSan over the unit, integration and parser-facing e2e tests and
# each fuzz target for 30 s; TSan over the tests of the concurrent parts.
bash scripts/sanitize.sh
