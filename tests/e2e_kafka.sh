#!/usr/bin/env bash
# End to end as in production, fed by Kafka: `healthlake produce` writes realistic payloads
# (some invalid samples, some undecodable records) to a real broker over several partitions;
# `healthlake local` consumes them as the Lambda event source mapping would and invokes ingest,
# with the finalize schedule alongside, on the AWS emulator (Glue + S3 + DynamoDB). pyiceberg
# then checks the tables against what was produced (tests/check_kafka_run.py).
#
# Two runs over the same topic, each on a fresh emulator and consumer group:
#   1. clean: the runner runs until the topic is drained; its throughput is printed;
#   2. crash: the runner is killed with SIGKILL at random points and restarted, several times,
#      then left to finish; the tables must be exactly the same as after a clean run.
#
# Broker: Redpanda (or any Kafka) when KAFKA_BROKERS is set, else tansu started here.
# The clean run is watched by `healthlake exporter`: lag = every record before the runner starts,
# 0 after it drained, and its table, window and error figures equal pyiceberg's and the state
# table's (tests/check_exporter.py). With HEALTHLAKE_METRIC_NAMES_DIR set, the metric names the
# exporter and the runner served are written there for tests/check_alert_rules.py.
# E2E_KAFKA_RECORDS (default 11,500 records ≈ 51,000 samples), E2E_KAFKA_KILLS (default 4).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
source scripts/local-server.sh
healthlake="$CARGO_TARGET_DIR/debug/healthlake"
work=$(mktemp -d)
kafka_port=""
aws_ports=()
runner_pid=""
exporter_pid=""
scraper_pid=""
cleanup() {
  [[ -n "$runner_pid" ]] && kill -9 "$runner_pid" 2>/dev/null || true
  for pid in $exporter_pid $scraper_pid; do kill "$pid" 2>/dev/null || true; done
  for port in "${aws_ports[@]}"; do bash scripts/aws-emulator.sh stop "$port"; done
  [[ -n "$kafka_port" ]] && bash scripts/kafka-broker.sh stop "$kafka_port"
  rm -rf "$work"
}
trap cleanup EXIT

records="${E2E_KAFKA_RECORDS:-11500}"
kills="${E2E_KAFKA_KILLS:-4}"
partitions=6
export KAFKA_TOPIC="health-data-e2e-$$" HEALTHLAKE_TOPIC_PARTITIONS=$partitions
export SCHEMA_REGISTRY_URL="file://$work/schemas" LOG_LEVEL=WARNING LOG_FORMAT=text METRICS_ENABLED=false


if [[ -z "${KAFKA_BROKERS:-}" ]]; then
  kafka_port=$(free_port)
  eval "$(KAFKA_DATA_DIR="$work/kafka" bash scripts/kafka-broker.sh start "$kafka_port")"
fi
echo "== broker $KAFKA_BROKERS, topic $KAFKA_TOPIC ($partitions partitions)"
"$healthlake" produce --records "$records" --users 30 --days 30 --partitions "$partitions" --seed 42 --create-topic \
  --expect-out "$work/expected.json"

# Settings of the runner; BatchSize 1000 as a production mapping might use.
runner_args=(--batch-size 1000 --batching-window 1 --finalize-every 15 --exit-when-idle 8)

# A fresh emulator per run; its settings replace the previous run's.
emulator() {
  local port
  port=$(free_port)
  aws_ports+=("$port")
  eval "$(bash scripts/aws-emulator.sh start "$port")"
}

echo "== 1. clean run on the AWS emulator, watched by healthlake exporter"
emulator
export KAFKA_GROUP_ID=e2e-clean
{
  exporter_port=$(free_port)
  HEALTHLAKE_EXPORTER_PORT=$exporter_port HEALTHLAKE_EXPORTER_CACHE_SECONDS=0 "$healthlake" exporter \
    >"$work/exporter.log" 2>&1 &
  exporter_pid=$!
  echo "$exporter_pid" >"$work/exporter.pid"
  wait_listening exporter "$exporter_port" "$work/exporter.pid" "$work/exporter.log" 300
  exporter=(tests/check_exporter.py "http://127.0.0.1:$exporter_port/metrics" "$ICEBERG_CATALOG_URI"
    "$HEALTHLAKE_DYNAMODB_TABLE")
  produced=$("$HEALTHLAKE_PYTHON" -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["records"]))' \
    "$work/expected.json")
  "$HEALTHLAKE_PYTHON" "${exporter[@]}" --lag-total "$produced"
  # The runner's own /metrics, scraped while it runs: the names the alert rules may use.
  runner_metrics_port=$(free_port)
  ( while sleep 2; do
      curl -sf "http://127.0.0.1:$runner_metrics_port/metrics" >"$work/runner.prom.part" && \
        mv "$work/runner.prom.part" "$work/runner.prom"
    done ) &
  scraper_pid=$!
  start=$(date +%s%N)
  METRICS_ENABLED=true PROMETHEUS_PORT=$runner_metrics_port \
    "$healthlake" local "${runner_args[@]}" --report-out "$work/clean-report.json"
  elapsed_ms=$(( ($(date +%s%N) - start) / 1000000 ))
  kill "$scraper_pid"; scraper_pid=""
  "$HEALTHLAKE_PYTHON" "${exporter[@]}" --drained --names-out "$work/exporter.names"
  kill "$exporter_pid"; exporter_pid=""
  if [[ -n "${HEALTHLAKE_METRIC_NAMES_DIR:-}" ]]; then
    cp "$work/exporter.names" "$HEALTHLAKE_METRIC_NAMES_DIR/exporter.txt"
    grep -v '^#' "$work/runner.prom" | sed 's/[{ ].*//' | sort -u >"$HEALTHLAKE_METRIC_NAMES_DIR/runner.txt"
  fi
  "$HEALTHLAKE_PYTHON" - "$work/expected.json" "$work/clean-report.json" "$elapsed_ms" <<'EOF'
import json, sys
expected = json.load(open(sys.argv[1])); report = json.load(open(sys.argv[2])); ms = int(sys.argv[3])
samples = sum(v + i for _, _, v, i, _ in expected["records"])
print(f"throughput: {len(expected['records'])} records, {samples} samples in {ms / 1000:.1f} s wall "
      f"(including the {report['finalize_rounds']} finalize rounds and the idle wait): "
      f"{samples / (ms / 1000):.0f} samples/s, {len(expected['records']) / (ms / 1000):.0f} records/s")
assert samples >= 50_000, f"only {samples} samples produced"
EOF
  "$HEALTHLAKE_PYTHON" tests/check_kafka_run.py "$work/expected.json" --glue "$ICEBERG_CATALOG_URI"
}

echo "== 2. the runner killed (SIGKILL) at random points and restarted, $kills times"
emulator
export KAFKA_GROUP_ID=e2e-crash
{
  for i in $(seq 1 "$kills"); do
    "$healthlake" local "${runner_args[@]}" >"$work/crash-$i.log" 2>&1 &
    runner_pid=$!
    # Somewhere in the ~90 s the stream takes to drain.
    delay=$(( 5 + RANDOM % 30 ))
    sleep "$delay"
    if kill -9 "$runner_pid" 2>/dev/null; then
      echo "killed the runner after ${delay} s"
    else
      echo "the runner had already finished after ${delay} s"
    fi
    wait "$runner_pid" 2>/dev/null || true
    runner_pid=""
  done
  "$healthlake" local "${runner_args[@]}"
  "$HEALTHLAKE_PYTHON" tests/check_kafka_run.py "$work/expected.json" --glue "$ICEBERG_CATALOG_URI"
}
echo "Kafka end-to-end checks passed"
