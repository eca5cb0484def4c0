#!/usr/bin/env bash
# How long a scrape of `healthlake exporter` takes (its cache off) on tables with many snapshots:
# BENCH_SNAPSHOTS one-record batches (default 1,000) ingested on the embedded stores give
# health_data_raw that many snapshots, then finalize fills the aggregate tables; the exporter is
# scraped BENCH_SCRAPES times (default 20) and min / median / max are printed. By hand, not CI.
#
#   scripts/bench-exporter.sh            HEALTHLAKE_BIN=... for another build (release, say)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
source scripts/local-server.sh
healthlake="${HEALTHLAKE_BIN:-$CARGO_TARGET_DIR/debug/healthlake}"
snapshots="${BENCH_SNAPSHOTS:-1000}"
scrapes="${BENCH_SCRAPES:-20}"
work=$(mktemp -d)
exporter_pid=""
cleanup() {
  [[ -n "$exporter_pid" ]] && kill "$exporter_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

export ICEBERG_CATALOG_URI="sqlite://$work/catalog.db" ICEBERG_WAREHOUSE="file://$work/warehouse"
export HEALTHLAKE_STATE_DIR="$work/state" SCHEMA_REGISTRY_URL="file://$work/events/schemas" LOG_LEVEL=WARNING
"$healthlake" events --out "$work/events" --records "$snapshots" --batch-size 1 --seed 5 >/dev/null
echo "ingesting $snapshots one-record batches (one raw snapshot each)…"
"$healthlake" invoke ingest --event "$work/events" >/dev/null
for kind in daily weekly monthly; do "$healthlake" invoke finalize --kind "$kind" >/dev/null; done

port=$(free_port)
HEALTHLAKE_EXPORTER_PORT=$port HEALTHLAKE_EXPORTER_CACHE_SECONDS=0 "$healthlake" exporter >"$work/exporter.log" 2>&1 &
exporter_pid=$!
echo "$exporter_pid" >"$work/exporter.pid"
wait_listening exporter "$port" "$work/exporter.pid" "$work/exporter.log" 300
curl -sf "http://127.0.0.1:$port/metrics" >"$work/first.prom"
grep -E '^iceberg_table_records\{table_name="health_data_raw"\}' "$work/first.prom"
"$HEALTHLAKE_PYTHON" - "$work/catalog.db" "$work/warehouse" <<'PY'
import sys
from pyiceberg.catalog.sql import SqlCatalog
catalog = SqlCatalog("health_catalog", uri="sqlite:///" + sys.argv[1], warehouse="file://" + sys.argv[2])
for name in ("health_data_raw", "health_data_errors", "health_data_daily_agg"):
    print(f"{name}: {len(catalog.load_table(('health_db', name)).metadata.snapshots)} snapshots")
PY
for _ in $(seq 1 "$scrapes"); do
  curl -sf -o /dev/null -w '%{time_total}\n' "http://127.0.0.1:$port/metrics"
done | sort -n | awk '{ t[NR] = $1 * 1000 } END {
  printf "exporter scrape (cache off), %d scrapes: min %.1f ms, median %.1f ms, max %.1f ms\n", NR, t[1], t[int((NR + 1) / 2)], t[NR] }'
