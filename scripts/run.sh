#!/usr/bin/env bash
# Sets up the machine, builds, and runs Ferry on its embedded default (SQLite in ./data) at http://127.0.0.1:8085,
# with the quickstart (examples/quickstart/ferry.yaml) deployed. FERRY_DEPLOY picks another deploy file; set it
# empty to deploy nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
deploy=${FERRY_DEPLOY-examples/quickstart/ferry.yaml}
exec build/bin/ferry serve --data-dir "${FERRY_DATA_DIR:-./data}" --port "${FERRY_PORT:-8085}" \
  --project "${FERRY_PROJECT:-ferry-local}" ${deploy:+--deploy "$deploy"} "$@"
