#!/usr/bin/env bash
# The process work pool that prefect.yaml names, and a worker polling it.
# Stop the worker with Ctrl-C (SIGINT); it ignores SIGTERM.
set -euo pipefail
cd "$(dirname "$0")/.."
export PREFECT_API_URL="${PREFECT_API_URL:-http://127.0.0.1:4200/api}"
export CORESIFT_PROJECT_DIR="${CORESIFT_PROJECT_DIR:-$PWD}"
.venv/bin/prefect work-pool inspect coresift-process >/dev/null 2>&1 \
  || .venv/bin/prefect work-pool create coresift-process --type process
exec .venv/bin/prefect worker start --pool coresift-process
