# A real Kafka-protocol broker for the `kafka` tests: tansu (crates.io, pinned in
# scripts/tools.sh), one process with in-memory storage on a free loopback port, stopped on
# exit. The tests also run against librdkafka's in-process mock cluster, which needs nothing
# from here.
#
# Exports EP_TEST_KAFKA_BROKERS (HOST:PORT of the broker) and EP_TEST_TANSU_BIN (for tests
# that start, pause and stop a broker of their own).

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

start_kafka() {
  install_tansu
  local bin="$TOOLS_ROOT/bin/tansu"
  local port log
  port=$(free_port)
  log=$(mktemp -t tansu.XXXXXX.log)
  "$bin" broker \
    --listener-url "tcp://127.0.0.1:$port" \
    --advertised-listener-url "tcp://127.0.0.1:$port" \
    --storage-engine memory://tansu/ >"$log" 2>&1 &
  local pid=$!
  on_exit "kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -f '$log'"
  local i
  for ((i = 0; i < 120; i++)); do
    kill -0 "$pid" 2>/dev/null || { echo "tansu exited:" >&2; cat "$log" >&2; return 1; }
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.25
  done
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || {
    echo "tansu did not accept connections on port $port" >&2
    cat "$log" >&2
    return 1
  }
  export EP_TEST_KAFKA_BROKERS="127.0.0.1:$port"
  export EP_TEST_TANSU_BIN="$bin"
  echo "tansu (pid $pid) on $EP_TEST_KAFKA_BROKERS"
}
