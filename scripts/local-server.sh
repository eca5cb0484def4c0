# Shared by the scripts that start a local server (the AWS emulator, the Kafka broker): the
# server's pid lives in a pid file under $HEALTHLAKE_CACHE/run, its output in a log beside it.

# Prints a port nothing listens on now, on 127.0.0.1.
free_port() {
  "$HEALTHLAKE_PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Whether the server of PID_FILE is running.
server_running() {
  local pid_file="$1"
  [[ -f "$pid_file" ]] && kill -0 "$(cat "$pid_file")" 2>/dev/null
}

# Waits up to TRIES × 0.1 s for 127.0.0.1:PORT to accept connections; if the server of PID_FILE
# exits first, prints its LOG and fails, naming it WHAT.
wait_listening() {
  local what="$1" port="$2" pid_file="$3" log="$4" tries="$5"
  for _ in $(seq 1 "$tries"); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    if ! server_running "$pid_file"; then
      echo "the $what exited; its log:" >&2
      cat "$log" >&2
      exit 1
    fi
    sleep 0.1
  done
}

# Stops the server of PID_FILE, if any.
stop_server() {
  local pid_file="$1"
  if [[ -f "$pid_file" ]]; then
    kill "$(cat "$pid_file")" 2>/dev/null || true
    rm -f "$pid_file"
  fi
}
