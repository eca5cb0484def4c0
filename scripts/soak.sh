#!/usr/bin/env bash
# Soak: ≥ 1,000,000 samples through a real broker while the consumer is SIGKILLed every 20–60 s
# and the broker is restarted once; then an independent check with pyiceberg
# (tests/check_kafka_run.py): per partition, raw + errors hold every produced offset once (no
# gap, no duplicate), and every aggregate equals a recomputation from the produced samples.
# Run by hand (it takes a while); its figures go in the notes, it is not a CI step.
#
#   scripts/soak.sh                       embedded tables and state (sqlite + files)
#   SOAK_AWS=1 scripts/soak.sh            Glue + S3 + DynamoDB on the emulator (slower: moto
#                                         answers one request at a time)
#
# SOAK_RECORDS (default 230,000 records ≈ 1,000,000 samples), SOAK_PARTITIONS (6), SOAK_PROFILE
# (release; `dev` uses the debug build the tests made), HEALTHLAKE_BIN (a binary to use as is),
# SOAK_KILL_MIN / SOAK_KILL_MAX (20 / 60 s), SOAK_BROKER_RESTART_AT (the 3rd kill), SOAK_MAX_KILLS
# (25: then the runner is left to drain and finish, which on the emulator's slow finalize rounds
# would otherwise never fit between two kills).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
source scripts/local-server.sh
profile="${SOAK_PROFILE:-release}"
healthlake="${HEALTHLAKE_BIN:-$CARGO_TARGET_DIR/$([[ $profile == dev ]] && echo debug || echo release)/healthlake}"
work=$(mktemp -d)
kafka_port=$(free_port)
aws_port=""
runner_pid=""
cleanup() {
  [[ -n "$runner_pid" ]] && kill -9 "$runner_pid" 2>/dev/null || true
  [[ -n "$aws_port" ]] && bash scripts/aws-emulator.sh stop "$aws_port"
  bash scripts/kafka-broker.sh stop "$kafka_port"
  rm -rf "$work"
}
trap cleanup EXIT

records="${SOAK_RECORDS:-230000}"
partitions="${SOAK_PARTITIONS:-6}"
kill_min="${SOAK_KILL_MIN:-20}"
kill_max="${SOAK_KILL_MAX:-60}"
restart_at="${SOAK_BROKER_RESTART_AT:-3}"
max_kills="${SOAK_MAX_KILLS:-25}"

if [[ -z "${HEALTHLAKE_BIN:-}" ]]; then
  if [[ "$profile" == release ]]; then cargo build --release -p healthlake --locked; else cargo build -p healthlake --locked; fi
fi
export KAFKA_TOPIC="health-data-soak-$$" HEALTHLAKE_TOPIC_PARTITIONS=$partitions KAFKA_GROUP_ID=soak
export SCHEMA_REGISTRY_URL="file://$work/schemas" LOG_LEVEL=WARNING LOG_FORMAT=text METRICS_ENABLED=false
export KAFKA_DATA_DIR="$work/kafka"
eval "$(bash scripts/kafka-broker.sh start "$kafka_port")"
if [[ -n "${SOAK_AWS:-}" ]]; then
  aws_port=$(free_port)
  eval "$(bash scripts/aws-emulator.sh start "$aws_port")"
  check_args=(--glue "$ICEBERG_CATALOG_URI")
else
  export ICEBERG_CATALOG_URI="sqlite://$work/catalog.db" ICEBERG_WAREHOUSE="file://$work/warehouse"
  export HEALTHLAKE_STATE_DIR="$work/state"
  check_args=(--sql "$work/catalog.db" "file://$work/warehouse")
fi

echo "== producing $records records over $partitions partitions"
start=$(date +%s)
"$healthlake" produce --records "$records" --users 200 --days 60 --partitions "$partitions" --seed 1 \
  --create-topic --expect-out "$work/expected.json"
echo "produced in $(( $(date +%s) - start )) s"

runner_args=(--batch-size 1000 --batching-window 1 --finalize-every 30 --exit-when-idle 15)
kills=0
failures=0
start=$(date +%s)
while true; do
  "$healthlake" local "${runner_args[@]}" >>"$work/runner.log" 2>&1 &
  runner_pid=$!
  delay=$(( kill_min + RANDOM % (kill_max - kill_min + 1) ))
  if [[ $kills -ge $max_kills ]]; then
    delay=100000   # enough crashes: let it drain and finish its finalize rounds
  fi
  for _ in $(seq 1 "$delay"); do
    kill -0 "$runner_pid" 2>/dev/null || break
    sleep 1
  done
  if ! kill -0 "$runner_pid" 2>/dev/null; then
    wait "$runner_pid" && status=0 || status=$?
    runner_pid=""
    if [[ $status -eq 0 ]]; then
      echo "drained after $kills kills"
      break
    fi
    # As the event source mapping would, start again (the broker may be restarting).
    failures=$(( failures + 1 ))
    echo "the runner stopped with status $status; restarting"
    [[ $failures -lt 20 ]] || { echo "the runner keeps failing; its log:"; tail -50 "$work/runner.log"; exit 1; }
    sleep 2
    continue
  fi
  kill -9 "$runner_pid"
  wait "$runner_pid" 2>/dev/null || true
  runner_pid=""
  kills=$(( kills + 1 ))
  echo "kill $kills after ${delay} s ($(( $(date +%s) - start )) s in)"
  if [[ $kills -eq $restart_at ]]; then
    bash scripts/kafka-broker.sh stop "$kafka_port"
    # The old broker must be gone (its port free) before the new one starts on the same data.
    while (exec 3<>"/dev/tcp/127.0.0.1/$kafka_port") 2>/dev/null; do sleep 0.2; done
    eval "$(bash scripts/kafka-broker.sh start "$kafka_port")"
    echo "broker restarted"
  fi
done
elapsed=$(( $(date +%s) - start ))
"$HEALTHLAKE_PYTHON" - "$work/expected.json" "$elapsed" "$kills" <<'EOF'
import json, sys
expected = json.load(open(sys.argv[1])); seconds = int(sys.argv[2]); kills = int(sys.argv[3])
samples = sum(v + i for _, _, v, i, _ in expected["records"])
print(f"soak: {len(expected['records'])} records, {samples} samples, {kills} SIGKILLs, 1 broker restart, "
      f"{seconds} s wall ({samples / max(seconds, 1):.0f} samples/s including restarts)")
assert samples >= 1_000_000 or "SOAK_RECORDS" in __import__("os").environ, f"only {samples} samples"
EOF
"$HEALTHLAKE_PYTHON" tests/check_kafka_run.py "$work/expected.json" "${check_args[@]}"
echo "soak passed"
