"""Process start to the first accepted event, measured from outside the process.

Usage: first_event.py BINARY SQLITE_PATH [RUNS]

Starts `BINARY serve` on the SQLite file (the embedded default) and POSTs one small event to
SpongeBob/Fruits until it is answered 200; the time from spawning the process to that answer
is one sample. The first run starts on a fresh file (schema migrations, then a registration
before the send); the other runs restart on the file the first one left, as a deployment or a
crash restart would. Prints the fresh-file time and the median and maximum of the restarts.
"""

import json
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request

SCHEMA = {"type": "object", "required": ["fruit"]}
EVENT = {"fruit": "pineapple", "quantity": 3}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(url, body):
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"content-type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def first_accepted(binary, db, register):
    port = free_port()
    base = f"http://127.0.0.1:{port}/SpongeBob/Fruits"
    env = dict(os.environ, SCHEMA_STORE=f"sqlite:{db}", EVENT_STREAM=f"sqlite:{db}", RUST_LOG="error")
    start = time.perf_counter()
    server = subprocess.Popen(
        [binary, "serve", "--addr", f"127.0.0.1:{port}"], env=env, stdout=subprocess.DEVNULL
    )
    try:
        while True:
            try:
                if register:
                    status = post(f"{base}/register_event", SCHEMA)
                    if status not in (200, 201):
                        sys.exit(f"register_event answered {status}")
                    register = False
                status = post(f"{base}/send_event", EVENT)
                if status != 200:
                    sys.exit(f"send_event answered {status}")
                return (time.perf_counter() - start) * 1000
            except (ConnectionError, urllib.error.URLError):
                if server.poll() is not None:
                    sys.exit(f"serve exited with {server.returncode}")
                time.sleep(0.001)
    finally:
        server.terminate()
        server.wait()


def main():
    binary, db = sys.argv[1], sys.argv[2]
    runs = int(sys.argv[3]) if len(sys.argv) > 3 else 10
    fresh = first_accepted(binary, db, register=True)
    restarts = [first_accepted(binary, db, register=False) for _ in range(runs)]
    print(
        f"fresh file: {fresh:.1f} ms; restart: median {statistics.median(restarts):.1f} ms, "
        f"max {max(restarts):.1f} ms ({runs} runs)"
    )


if __name__ == "__main__":
    main()
