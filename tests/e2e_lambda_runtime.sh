#!/usr/bin/env bash
# The function binaries (not the handlers in process) run as Lambda's custom runtime runs them,
# against a local Runtime API (tests/lambda_runtime_api.py) and the AWS emulator; pyiceberg then
# finds the same tables as an embedded run of the same events (tests/compare_tables.py).
#
#   BIN_DIR=...   where healthlake-{ingest,finalize,backfill,maintain} are (default: the debug build;
#                 a release build or cargo-lambda's x86_64 bootstrap gives the init/RSS figures)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
source scripts/local-server.sh
bin_dir="${BIN_DIR:-$CARGO_TARGET_DIR/debug}"
healthlake="${HEALTHLAKE_BIN:-$CARGO_TARGET_DIR/debug/healthlake}"
work=$(mktemp -d)
port=$(free_port)
cleanup() {
  bash scripts/aws-emulator.sh stop "$port"
  rm -rf "$work"
}
trap cleanup EXIT

records="${E2E_RUNTIME_RECORDS:-600}"
"$healthlake" events --out "$work/events" --records "$records" --batch-size 200 --seed 31 >/dev/null
export LOG_LEVEL=WARNING

echo "== AWS emulator on 127.0.0.1:$port; functions under a local Runtime API"
settings=$(bash scripts/aws-emulator.sh start "$port")
(
  eval "$settings"
  "$HEALTHLAKE_PYTHON" tests/check_lambda_runtime.py "http://127.0.0.1:$port" "$work/events" "$bin_dir" "$work" \
    ${HEALTHLAKE_METRIC_NAMES_DIR:+"$HEALTHLAKE_METRIC_NAMES_DIR/emf.txt"}
)

echo "== the same events embedded, for comparison"
(
  export SCHEMA_REGISTRY_URL="file://$work/events/schemas"
  export ICEBERG_CATALOG_URI="sqlite://$work/embedded/catalog.db" ICEBERG_WAREHOUSE="file://$work/embedded/warehouse"
  export HEALTHLAKE_STATE_DIR="$work/embedded/state"
  "$healthlake" invoke ingest --event "$work/events" >/dev/null
  for kind in daily weekly monthly; do "$healthlake" invoke finalize --kind "$kind" >/dev/null; done
)
"$HEALTHLAKE_PYTHON" tests/compare_tables.py "$work/embedded/catalog.db" "file://$work/embedded/warehouse" \
  "http://127.0.0.1:$port"
echo "Lambda runtime checks passed"
