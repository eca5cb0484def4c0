#!/usr/bin/env bash
# End to end through faults: the Kafka-fed run of tests/e2e_kafka.sh, with every AWS call going
# through scripts/fault_proxy.py in front of the emulator. In bursts the proxy answers S3 with
# 503 SlowDown / 500 / dropped connections, DynamoDB with ThrottlingException and
# ProvisionedThroughputExceededException, Glue with ConcurrentModificationException and
# throttling, sometimes after the request took effect. The run must finish, and pyiceberg (reading
# the emulator directly) must find every produced sample exactly once and every window exact.
#
# E2E_FAULT_RECORDS (default 2,000 in CI; the full run is 20,000), E2E_FAULT_BURST_RATE (0.3),
# E2E_FAULT_BURST_EVERY / E2E_FAULT_BURST_LENGTH (seconds: 8 / 3).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
source scripts/local-server.sh
healthlake="$CARGO_TARGET_DIR/debug/healthlake"
work=$(mktemp -d)
kafka_port=""
aws_port=""
proxy_pid=""
cleanup() {
  [[ -n "$proxy_pid" ]] && kill "$proxy_pid" 2>/dev/null || true
  [[ -n "$aws_port" ]] && bash scripts/aws-emulator.sh stop "$aws_port"
  [[ -n "$kafka_port" ]] && bash scripts/kafka-broker.sh stop "$kafka_port"
  rm -rf "$work"
}
trap cleanup EXIT

records="${E2E_FAULT_RECORDS:-2000}"
partitions=6
export KAFKA_TOPIC="health-data-faults-$$" HEALTHLAKE_TOPIC_PARTITIONS=$partitions KAFKA_GROUP_ID=e2e-faults
export SCHEMA_REGISTRY_URL="file://$work/schemas" LOG_LEVEL=WARNING LOG_FORMAT=text METRICS_ENABLED=false

if [[ -z "${KAFKA_BROKERS:-}" ]]; then
  kafka_port=$(free_port)
  eval "$(KAFKA_DATA_DIR="$work/kafka" bash scripts/kafka-broker.sh start "$kafka_port")"
fi
"$healthlake" produce --records "$records" --users 20 --days 40 --partitions "$partitions" --seed 7 --create-topic \
  --expect-out "$work/expected.json"

aws_port=$(free_port)
eval "$(bash scripts/aws-emulator.sh start "$aws_port")"
emulator_url="http://127.0.0.1:$aws_port"
proxy_port=$(free_port)
"$HEALTHLAKE_PYTHON" scripts/fault_proxy.py "$emulator_url" "$proxy_port" --stats "$work/faults.json" \
  --burst-rate "${E2E_FAULT_BURST_RATE:-0.3}" --burst-every "${E2E_FAULT_BURST_EVERY:-8}" \
  --burst-length "${E2E_FAULT_BURST_LENGTH:-3}" 2>"$work/proxy.log" &
proxy_pid=$!
for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$proxy_port") 2>/dev/null && break; sleep 0.1; done
# Every call of the pipeline goes through the proxy.
proxy_url="http://127.0.0.1:$proxy_port"
export ICEBERG_CATALOG_URI="$proxy_url" S3_ENDPOINT="$proxy_url" HEALTHLAKE_DYNAMODB_ENDPOINT="$proxy_url"

echo "== $records records through faults (proxy $proxy_url -> $emulator_url)"
start=$(date +%s)
"$healthlake" local --batch-size 100 --batching-window 1 --finalize-every 10 --exit-when-idle 8 \
  --report-out "$work/report.json"
echo "drained in $(( $(date +%s) - start )) s"
"$HEALTHLAKE_PYTHON" - "$work/faults.json" <<'EOF'
import json, sys
faults = json.load(open(sys.argv[1]))
print("faults injected:", json.dumps(faults, sort_keys=True))
services = {key.split(":")[0] for key in faults if not key.startswith("requests")}
missing = {"s3", "dynamodb", "glue"} - services
assert not missing, f"no fault reached {missing}: the run proved nothing about them"
EOF
# The independent reader goes to the emulator directly.
"$HEALTHLAKE_PYTHON" tests/check_kafka_run.py "$work/expected.json" --glue "$emulator_url"
echo "fault end-to-end checks passed"
