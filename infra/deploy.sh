#!/usr/bin/env bash
# Register prefect.yaml's deployments on the server at PREFECT_API_URL.
# CORESIFT_SOURCE and CORESIFT_DATAPOOL name what the scheduled, manual and watch
# deployments curate (URLs; an absolute datapool path is resolved on the worker's machine).
set -euo pipefail
cd "$(dirname "$0")/.."
export PREFECT_API_URL="${PREFECT_API_URL:-http://127.0.0.1:4200/api}"
: "${CORESIFT_SOURCE:?set CORESIFT_SOURCE, e.g. s3://my-bucket/raw}"
: "${CORESIFT_DATAPOOL:?set CORESIFT_DATAPOOL to an absolute path or a bucket URL}"
.venv/bin/prefect work-pool inspect coresift-process >/dev/null 2>&1 \
  || .venv/bin/prefect work-pool create coresift-process --type process
exec .venv/bin/prefect --no-prompt deploy --all
