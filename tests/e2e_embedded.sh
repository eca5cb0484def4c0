#!/usr/bin/env bash
# End to end on the embedded default: `healthlake demo` runs generated batches (several
# partitions, invalid samples, undecodable messages, duplicate and regrouped deliveries) through
# ingest and finalize, then pyiceberg reads the tables back and checks them against what the
# generator says must land.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$CARGO_TARGET_DIR/debug/healthlake" demo --dir "$work/demo" --records 4000 --seed 11 \
  --expect-out "$work/expected.json"
"$HEALTHLAKE_PYTHON" tests/check_tables.py "$work/expected.json"
for metric in valid_records invalid_records validation_errors_total deserialization_errors processing_latency \
  windows_processed records_aggregated window_latency_ms iceberg_writes_total iceberg_commit_duration \
  iceberg_files_written iceberg_bytes_written schema_evolution_events; do
  grep -q "^$metric" "$work/demo/metrics.prom" || { echo "FAIL: metric $metric not emitted" >&2; exit 1; }
done
echo "ok   the spec's metrics are emitted"

# Backfill over the demo's whole range: a dry run finds every closed window as streaming wrote
# it; forced, it rewrites them all through overwrite snapshots, and pyiceberg checks again.
backfill() {
  ICEBERG_CATALOG_URI="sqlite://$work/demo/catalog.db" ICEBERG_WAREHOUSE="file://$work/demo/warehouse" \
    HEALTHLAKE_STATE_DIR="$work/demo/state" LOG_LEVEL=WARNING \
    "$CARGO_TARGET_DIR/debug/healthlake" backfill --from 2020-01-01 --to 2030-01-01 "$@"
}
dry=$(backfill --dry-run)
echo "$dry"
if grep -v '^  e.g.' <<<"$dry" | grep -qv ' 0 changed'; then
  echo "FAIL: backfill of streamed data found windows to change" >&2
  exit 1
fi
backfill --force
"$HEALTHLAKE_PYTHON" tests/check_tables.py "$work/expected.json" --aggregates-overwritten

# The same handlers on hand-fed event files, as `invoke` runs them: a second pass over the same
# events must write nothing.
events="$work/events"
"$CARGO_TARGET_DIR/debug/healthlake" events --out "$events" --records 600 --batch-size 200
export SCHEMA_REGISTRY_URL="file://$events/schemas"
export ICEBERG_CATALOG_URI="sqlite://$work/invoke/catalog.db"
export ICEBERG_WAREHOUSE="file://$work/invoke/warehouse"
export HEALTHLAKE_STATE_DIR="$work/invoke/state"
export LOG_LEVEL=WARNING
first=$("$CARGO_TARGET_DIR/debug/healthlake" invoke ingest --event "$events")
echo "$first"
second=$("$CARGO_TARGET_DIR/debug/healthlake" invoke ingest --event "$events")
echo "$second"
if grep -qv ' 0 raw rows, 0 error rows' <<<"$second"; then
  echo "FAIL: redelivered events wrote rows again" >&2
  exit 1
fi
for kind in daily weekly monthly; do
  "$CARGO_TARGET_DIR/debug/healthlake" invoke finalize --kind "$kind"
done
"$CARGO_TARGET_DIR/debug/healthlake" summary --rows 1
if MIN_HEART_RATE=300 "$CARGO_TARGET_DIR/debug/healthlake" summary 2>"$work/err"; then
  echo "FAIL: a bad setting was accepted" >&2
  exit 1
fi
grep -q 'MIN_HEART_RATE' "$work/err" || { echo "FAIL: error does not name the variable" >&2; cat "$work/err"; exit 1; }
echo "invoke checks passed"
