#!/usr/bin/env bash
# Runs every check and test of healthlake on a fresh machine: installs what the tests need
# (into a cache outside the clone), then format, lint, unit/integration tests, and the
# end-to-end check of the embedded tables with pyiceberg.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

step() { printf '\n==> %s\n' "$*"; }

step "tools"
scripts/install-python-deps.sh
if ! cargo nextest --version >/dev/null 2>&1; then
  cargo install cargo-nextest --locked --root "$HEALTHLAKE_CACHE/tools"
fi

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy --all-targets -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "unit and integration tests"
cargo nextest run --workspace --locked --no-fail-fast

step "end to end: embedded pipeline read back with pyiceberg"
cargo build -p healthlake --locked
tests/e2e_embedded.sh

step "end to end: the same events embedded and on the AWS emulator (Glue + S3 + DynamoDB)"
tests/e2e_aws.sh
