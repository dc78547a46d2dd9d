#!/usr/bin/env bash
# Sets up the machine, builds, and runs every test: unit, integration and end-to-end (real gcloud, real daemons).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh -DFERRY_ENABLE_WERROR=ON
ctest --test-dir build -j2 --output-on-failure
