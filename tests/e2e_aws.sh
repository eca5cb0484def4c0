#!/usr/bin/env bash
# End to end on the production adapters: the same generated Kafka events go through ingest and
# finalize twice — embedded (SQL catalog, local files, SQLite state) and on the AWS emulator
# (Glue catalog + S3, DynamoDB state) — and pyiceberg, reading through the emulator's Glue,
# finds the same tables. Also prints the DynamoDB requests the batch cost (E2E_AWS_RECORDS
# records in one batch; 1,000 in CI, since moto serves ~60 requests/s here — the closing notes'
# 10,000-record figures come from E2E_AWS_RECORDS=10000).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
source scripts/local-server.sh
healthlake="$CARGO_TARGET_DIR/debug/healthlake"
work=$(mktemp -d)
port=$(free_port)
cleanup() {
  bash scripts/aws-emulator.sh stop "$port"
  rm -rf "$work"
}
trap cleanup EXIT

records="${E2E_AWS_RECORDS:-1000}"
"$healthlake" events --out "$work/events" --records "$records" --batch-size "$records" --seed 23 >/dev/null
export SCHEMA_REGISTRY_URL="file://$work/events/schemas" LOG_LEVEL=WARNING

run() {
  "$healthlake" invoke ingest --event "$work/events" --metrics-out "$work/$1.prom"
  for kind in daily weekly monthly; do "$healthlake" invoke finalize --kind "$kind"; done
}

echo "== embedded"
(
  export ICEBERG_CATALOG_URI="sqlite://$work/embedded/catalog.db" ICEBERG_WAREHOUSE="file://$work/embedded/warehouse"
  export HEALTHLAKE_STATE_DIR="$work/embedded/state"
  run embedded
)

echo "== AWS emulator (Glue + S3 + DynamoDB) on 127.0.0.1:$port"
settings=$(bash scripts/aws-emulator.sh start "$port")
"$HEALTHLAKE_PYTHON" tests/check_emulator.py "http://127.0.0.1:$port"
(
  eval "$settings"
  start=$(date +%s%N)
  run aws
  echo "ingest + finalize on the emulator: $(( ($(date +%s%N) - start) / 1000000 )) ms"
  echo "DynamoDB requests of ingesting $records records in one batch:"
  grep -E '^dynamodb_(requests|conflicts_retried)' "$work/aws.prom" | sed 's/^/  /'
  # A redelivered batch writes nothing through Glue either.
  again=$("$healthlake" invoke ingest --event "$work/events")
  grep -q ' 0 raw rows, 0 error rows' <<<"$again" || { echo "FAIL: redelivery wrote rows: $again" >&2; exit 1; }
  echo "ok   redelivered batch wrote nothing"
)

"$HEALTHLAKE_PYTHON" tests/compare_tables.py "$work/embedded/catalog.db" "file://$work/embedded/warehouse" \
  "http://127.0.0.1:$port"
echo "AWS adapter checks passed"
