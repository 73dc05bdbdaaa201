# moto for the `aws` tests: the DynamoDB and Kinesis wire protocols on a free loopback port
# (PyPI `moto[server]`, pinned in scripts/requirements-test.txt; its server run one request at
# a time by moto_serial.py), stopped on exit. Exports what the AWS SDK reads: AWS_ENDPOINT_URL,
# AWS_REGION and test credentials (without them the SDK would wait on the instance metadata
# service).

moto_answers() {
  python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' \
    "http://127.0.0.1:$1/moto-api/" >/dev/null 2>&1
}

moto_free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

start_moto() {
  ensure_python_tools
  local port log pid i
  port=$(moto_free_port)
  log="${TMPDIR:-/tmp}/moto-$port.log"
  # One request at a time, as DynamoDB applies a transaction (see moto_serial.py).
  python3 "$(dirname "${BASH_SOURCE[0]}")/moto_serial.py" -H 127.0.0.1 -p "$port" >"$log" 2>&1 &
  pid=$!
  on_exit "kill $pid"
  for ((i = 0; i < 120; i++)); do
    moto_answers "$port" && break
    kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; echo "moto_server exited" >&2; return 1; }
    sleep 0.5
  done
  moto_answers "$port" || {
    cat "$log" >&2
    echo "moto_server did not answer on 127.0.0.1:$port" >&2
    return 1
  }
  export AWS_ENDPOINT_URL="http://127.0.0.1:$port"
  export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
  export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test
  unset AWS_PROFILE AWS_SESSION_TOKEN
  echo "moto_server on $AWS_ENDPOINT_URL (log: $log)"
}
