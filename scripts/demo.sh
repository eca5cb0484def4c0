#!/usr/bin/env bash
# Runs `healthlake demo` on the embedded default (no servers). Extra arguments go to the demo.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
cargo run --quiet -p healthlake -- demo "$@"
