#!/usr/bin/env bash
# Start a notification bridge: infra/bridge.sh s3|gcs|azure QUEUE SOURCE DATAPOOL
#   s3:    QUEUE is the SQS queue URL that the bucket notifies (s3:ObjectCreated:*)
#   gcs:   QUEUE is the Pub/Sub subscription path of the bucket's notification topic
#   azure: QUEUE is the Storage Queue that an Event Grid subscription (BlobCreated) feeds
#   DATAPOOL: the datapool URL the triggered runs curate into
# Credentials come from the clouds' usual environment variables.
set -euo pipefail
cd "$(dirname "$0")/.."
export PREFECT_API_URL="${PREFECT_API_URL:-http://127.0.0.1:4200/api}"
exec .venv/bin/coresift bridge "$1" --queue "$2" --source "$3" --datapool "$4"
