#!/usr/bin/env bash
# End to end of table maintenance on the AWS emulator (Glue + S3 + DynamoDB): generated events in
# 100-record batches go through ingest and finalize (many small files and manifests), then
# `healthlake maintain` compacts, rewrites manifests, expires every snapshot it may and removes
# orphans on all five tables. pyiceberg (tests/check_maintained.py) finds the same rows in every
# table, every retained snapshot readable, fewer files; then every batch is delivered again and
# nothing is written twice.
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

"$healthlake" events --out "$work/events" --records "${E2E_MAINTAIN_RECORDS:-1200}" --batch-size 100 --seed 31 \
  >/dev/null
export SCHEMA_REGISTRY_URL="file://$work/events/schemas" LOG_LEVEL=WARNING
eval "$(bash scripts/aws-emulator.sh start "$port")"
catalog=(--glue "http://127.0.0.1:$port")

"$healthlake" invoke ingest --event "$work/events" >/dev/null
for kind in daily weekly monthly; do "$healthlake" invoke finalize --kind "$kind" >/dev/null; done
"$HEALTHLAKE_PYTHON" tests/check_maintained.py record "$work/before.json" "${catalog[@]}"

# Every operation on every table; expiry keeps only the newest two snapshots (plus the chain to
# the offset map), so the replaced files really go.
"$healthlake" maintain --compact --rewrite-manifests --expire --orphans --min-input-files 2 \
  --max-snapshot-age-hours 0 --keep-snapshots 2 --grace-days 1 --json >"$work/reports.jsonl"
"$HEALTHLAKE_PYTHON" - "$work/reports.jsonl" <<'PY'
import json, sys
reports = {r["table"]: r for r in map(json.loads, open(sys.argv[1]))}
raw = reports["health_data_raw"]
print("raw:", json.dumps({k: raw["compaction"][k] for k in ("filesBefore", "filesAfter", "partitionsCompacted",
                                                            "bytesRewritten", "bytesWritten")}))
assert raw["compaction"]["filesAfter"] < raw["compaction"]["filesBefore"], raw["compaction"]
assert raw["expiry"]["snapshotsExpired"] and raw["expiry"]["filesDeleted"] > 0, raw["expiry"]
assert all(r["complete"] for r in reports.values()), reports
print("ok   maintain compacted raw and expired its old snapshots")
PY
"$HEALTHLAKE_PYTHON" tests/check_maintained.py verify "$work/before.json" "${catalog[@]}" --compacted raw,errors

# Every batch delivered again after compaction and expiry: nothing is written twice.
again=$("$healthlake" invoke ingest --event "$work/events")
if grep -v ' 0 raw rows, 0 error rows' <<<"$again" | grep -q 'raw rows'; then
  echo "FAIL: a redelivery after maintenance wrote rows: $again" >&2
  exit 1
fi
echo "ok   every batch redelivered after maintenance wrote nothing"
for kind in daily weekly monthly; do "$healthlake" invoke finalize --kind "$kind" >/dev/null; done
"$HEALTHLAKE_PYTHON" tests/check_maintained.py verify "$work/before.json" "${catalog[@]}"
echo "maintenance end-to-end checks passed"
