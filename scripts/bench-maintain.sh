#!/usr/bin/env bash
# What maintenance buys readers: BENCH_RECORDS Kafka records (default 30,000) spanning 30 days of
# event time, ingested by `healthlake demo` in 1,000-record batches on the embedded stores (with
# its redelivered and regrouped batches) and finalized; then `healthlake maintain` runs every
# operation on every table (compaction and expiry as scheduled, except that snapshots of any age
# may expire so that the replaced files go). Before and after: data files, manifests, snapshots,
# metadata JSON size, files and bytes under each table, pyiceberg full-scan time of raw and the
# query time of one user's month (pyiceberg, and DuckDB over pyiceberg's Arrow). By hand, not CI.
#
#   scripts/bench-maintain.sh          HEALTHLAKE_BIN=... (default: the release build, built when
#                                      missing); BENCH_RECORDS=...; BENCH_MIN_INPUT_FILES=...
#                                      (compaction's minimum small files per partition, default 5)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
healthlake="${HEALTHLAKE_BIN:-$CARGO_TARGET_DIR/release/healthlake}"
if [[ ! -x "$healthlake" ]]; then
  cargo build --release --locked -p healthlake --bin healthlake
fi
bash scripts/install-python-deps.sh >/dev/null
# DuckDB only for this bench.
"$HEALTHLAKE_PYTHON" -c 'import duckdb' 2>/dev/null ||
  "$HEALTHLAKE_CACHE/venv/bin/pip" install --quiet --disable-pip-version-check 'duckdb==2.0.0'
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

records="${BENCH_RECORDS:-30000}"
start=$(date +%s%N)
"$healthlake" demo --dir "$work/demo" --records "$records" --days 30 --batch-size 1000 --users 60 --seed 3 >/dev/null
echo "demo: $records records in 1,000-record batches over 30 days, ingested and finalized in" \
  "$(( ($(date +%s%N) - start) / 1000000 )) ms"
export ICEBERG_CATALOG_URI="sqlite://$work/demo/catalog.db" ICEBERG_WAREHOUSE="file://$work/demo/warehouse"
export HEALTHLAKE_STATE_DIR="$work/demo/state" LOG_LEVEL=WARNING
bench=("$HEALTHLAKE_PYTHON" scripts/bench_maintain.py "$work/demo/catalog.db" "file://$work/demo/warehouse")
"${bench[@]}" measure "$work/before.json"
start=$(date +%s%N)
"$healthlake" maintain --compact --rewrite-manifests --expire --orphans --max-snapshot-age-hours 0 --grace-days 1 \
  --min-input-files "${BENCH_MIN_INPUT_FILES:-5}" --json >"$work/maintain.jsonl"
echo "maintain (every operation, five tables): $(( ($(date +%s%N) - start) / 1000000 )) ms"
"${bench[@]}" measure "$work/after.json"
"${bench[@]}" compare "$work/before.json" "$work/after.json" "$work/maintain.jsonl"
