#!/usr/bin/env bash
# The local AWS API (S3, DynamoDB, Glue) for tests and trying healthlake out.
#
#   scripts/aws-emulator.sh start [PORT]   install moto when missing, start it on 127.0.0.1:PORT
#                                          (default 4566), create the bucket, state table and Glue
#                                          database, print the settings that point healthlake at it
#   scripts/aws-emulator.sh stop [PORT]    stop the emulator started on PORT
#   scripts/aws-emulator.sh resources URL  only create the resources, on an emulator already
#                                          running at URL (LocalStack from localstack/, say)
#   scripts/aws-emulator.sh env [PORT]     print the settings for an emulator on 127.0.0.1:PORT
#
# moto (PyPI) runs everywhere; see scripts/moto_serial.py for the two guarantees of real AWS it
# is patched to keep (one request at a time; Glue's VersionId check).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
source scripts/local-server.sh

command="${1:-}"
run_dir="$HEALTHLAKE_CACHE/run"
mkdir -p "$run_dir"

export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-testing}"
export AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-testing}"
export AWS_REGION="${AWS_REGION:-us-east-1}"

case "$command" in
  start)
    port="${2:-4566}"
    pid_file="$run_dir/aws-emulator-$port.pid"
    bash scripts/install-python-deps.sh >/dev/null
    if server_running "$pid_file"; then
      echo "already running on 127.0.0.1:$port (pid $(cat "$pid_file"))" >&2
    else
      "$HEALTHLAKE_PYTHON" scripts/moto_serial.py 127.0.0.1 "$port" >"$run_dir/aws-emulator-$port.log" 2>&1 &
      echo $! >"$pid_file"
      wait_listening emulator "$port" "$pid_file" "$run_dir/aws-emulator-$port.log" 300
    fi
    "$HEALTHLAKE_PYTHON" scripts/aws_resources.py "http://127.0.0.1:$port" >&2
    "$0" env "$port"
    ;;
  env)
    port="${2:-4566}"
    cat <<SETTINGS
export AWS_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY AWS_REGION=$AWS_REGION
export ICEBERG_CATALOG_TYPE=glue ICEBERG_CATALOG_URI=http://127.0.0.1:$port
export ICEBERG_WAREHOUSE=${ICEBERG_WAREHOUSE:-s3://healthlake-lake/warehouse}
export S3_ENDPOINT=http://127.0.0.1:$port S3_PATH_STYLE_ACCESS=true
export HEALTHLAKE_STATE_STORE=dynamodb HEALTHLAKE_DYNAMODB_ENDPOINT=http://127.0.0.1:$port
export HEALTHLAKE_DYNAMODB_TABLE=${HEALTHLAKE_DYNAMODB_TABLE:-healthlake-state}
SETTINGS
    ;;
  stop)
    port="${2:-4566}"
    stop_server "$run_dir/aws-emulator-$port.pid"
    ;;
  resources)
    bash scripts/install-python-deps.sh >/dev/null
    "$HEALTHLAKE_PYTHON" scripts/aws_resources.py "${2:?usage: $0 resources URL}"
    ;;
  *)
    sed -n '2,14p' "$0" >&2
    exit 2
    ;;
esac
