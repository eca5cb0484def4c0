#!/usr/bin/env bash
# Runs every check and test of healthlake on a fresh machine: installs what the tests need
# (into a cache outside the clone: pyiceberg and moto, cargo-nextest, the tansu Kafka broker),
# then format, lint, unit/integration tests, and the end-to-end checks with pyiceberg: embedded,
# on the AWS emulator, and fed by Kafka through the local event source mapping.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

step() { printf '\n==> %s\n' "$*"; }

step "tools"
scripts/install-python-deps.sh
if ! cargo nextest --version >/dev/null 2>&1; then
  cargo install cargo-nextest --locked --root "$HEALTHLAKE_CACHE/tools"
fi
# The Kafka-compatible broker the runner tests and the Kafka end to end start (skipped when
# KAFKA_BROKERS points at a broker, Redpanda say); ~18 min the first time, then cached.
if [[ -z "${KAFKA_BROKERS:-}" ]]; then
  scripts/kafka-broker.sh install
fi

# promtool checks the alert rules and runs their unit tests (prometheus/alerts_test.yml); only
# Debian's prometheus package ships it. Optional: without it the rules are still checked by
# tests/check_alert_rules.py (structure, runbook links, metric names).
if ! command -v promtool >/dev/null 2>&1 && [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null 2>&1; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus) \
    >/dev/null 2>&1 || echo "promtool could not be installed; alert rules checked without it" >&2
fi

step "infra: terraform fmt, checkov, the module's wiring against the code"
scripts/check-infra.sh

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy --all-targets -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "unit and integration tests"
cargo nextest run --workspace --locked --no-fail-fast

# The metric names the end to ends saw served (EMF lines, the runner's and the exporter's
# /metrics): the alert rules and dashboard may name only those.
export HEALTHLAKE_METRIC_NAMES_DIR
HEALTHLAKE_METRIC_NAMES_DIR=$(mktemp -d)
trap 'rm -rf "$HEALTHLAKE_METRIC_NAMES_DIR"' EXIT

step "end to end: embedded pipeline read back with pyiceberg"
cargo build --workspace --bins --locked
tests/e2e_embedded.sh

step "end to end: the same events embedded and on the AWS emulator (Glue + S3 + DynamoDB)"
tests/e2e_aws.sh

step "end to end: maintenance (compaction, manifest rewrite, expiry, orphans) on the AWS emulator, read back with pyiceberg"
tests/e2e_maintain.sh

step "end to end: Kafka → local event source mapping → ingest + finalize on the AWS emulator, with SIGKILLs"
tests/e2e_kafka.sh

step "end to end: the function binaries under a local Lambda Runtime API, on the AWS emulator"
tests/e2e_lambda_runtime.sh

step "end to end: the same through injected AWS faults (S3 503/timeouts, DynamoDB throttling, Glue conflicts)"
tests/e2e_faults.sh

step "alert rules and dashboard name only metrics healthlake serves"
"$HEALTHLAKE_PYTHON" tests/check_alert_rules.py prometheus/alerts.yml "$HEALTHLAKE_METRIC_NAMES_DIR"/*.txt \
  --dashboard prometheus/grafana-dashboard.json
