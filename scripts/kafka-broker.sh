#!/usr/bin/env bash
# A real Kafka-compatible broker on 127.0.0.1, for tests and trying healthlake out.
#
#   scripts/kafka-broker.sh install           install tansu (crates.io) into the cache when missing
#                                             (~15 min cold on 2 cores, once)
#   scripts/kafka-broker.sh start [PORT]      start tansu on 127.0.0.1:PORT (default 9092) with sqlite
#                                             storage under the cache, print KAFKA_BROKERS
#   scripts/kafka-broker.sh topic NAME N [PORT]  create topic NAME with N partitions
#   scripts/kafka-broker.sh stop [PORT]       stop the broker started on PORT
#
# KAFKA_DATA_DIR chooses where the broker keeps its sqlite file (default: under the cache, kept
# across restarts on the same port); tests point it at their own temporary folder.
#
# Redpanda (localstack/compose.yaml) is the broker for Docker users; point KAFKA_BROKERS at it
# instead. tansu's sqlite engine is used because its memory engine loses records when a consumer
# resumes from an offset inside a batch (../shared/LOCAL-STACK.md).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
source scripts/local-server.sh

TANSU_VERSION=0.6.0
command="${1:-}"
run_dir="$HEALTHLAKE_CACHE/run"
tools="$HEALTHLAKE_CACHE/tools"
mkdir -p "$run_dir" "$tools"

install() {
  if [[ -x "$tools/bin/tansu" ]] && "$tools/bin/tansu" --version 2>/dev/null | grep -q "$TANSU_VERSION"; then
    return
  fi
  echo "installing tansu $TANSU_VERSION into $tools (once; ~15 min on 2 cores)" >&2
  cargo install "tansu@$TANSU_VERSION" --locked --features dynostore,libsql --root "$tools" >&2
}

case "$command" in
  install)
    install
    ;;
  start)
    port="${2:-9092}"
    install
    pid_file="$run_dir/kafka-$port.pid"
    if server_running "$pid_file"; then
      echo "already running on 127.0.0.1:$port (pid $(cat "$pid_file"))" >&2
    else
      data="${KAFKA_DATA_DIR:-$run_dir/kafka-$port}"
      mkdir -p "$data"
      # A relative sqlite path: tansu resolves the URL against its working directory.
      (cd "$data" && exec "$tools/bin/tansu" broker \
        --listener-url "tcp://127.0.0.1:$port" \
        --advertised-listener-url "tcp://127.0.0.1:$port" \
        --storage-engine "sqlite://tansu.db") >"$run_dir/kafka-$port.log" 2>&1 &
      echo $! >"$pid_file"
      wait_listening broker "$port" "$pid_file" "$run_dir/kafka-$port.log" 100
    fi
    echo "export KAFKA_BROKERS=127.0.0.1:$port"
    ;;
  topic)
    name="${2:?usage: $0 topic NAME PARTITIONS [PORT]}"
    partitions="${3:?usage: $0 topic NAME PARTITIONS [PORT]}"
    port="${4:-9092}"
    "$tools/bin/tansu" topic create "$name" --partitions "$partitions" --broker "tcp://127.0.0.1:$port"
    ;;
  stop)
    port="${2:-9092}"
    stop_server "$run_dir/kafka-$port.pid"
    ;;
  *)
    sed -n '2,17p' "$0" >&2
    exit 2
    ;;
esac
