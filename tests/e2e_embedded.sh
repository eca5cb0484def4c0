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
