#!/usr/bin/env python3
"""A Kafka consumer written the way the original Python/Flask service's consumers were: the
kafka-python client, a topic named `{client}.{event}`, and each record's value decoded as the
event's JSON. It knows nothing of the gateway: it never reads headers (the gateway's `ce_*`
CloudEvents attributes), keys or any envelope.

Reads COUNT records of TOPIC from the beginning and prints one JSON line per record:
`{"offset": N, "raw": "<the value as text>", "event": <json.loads of the value>}`. Exits
non-zero if kafka-python is missing, if a value is not JSON, or if fewer than COUNT records
arrive within the timeout.

Used by tests/tests/integration/original_consumers.rs (run by scripts/test, which installs
kafka-python from scripts/requirements-test.txt into the tools virtualenv). By hand:

    python3 tests/original_consumer.py --bootstrap-server 127.0.0.1:9092 \
        --topic SpongeBob.Fruits --count 5
"""

import argparse
import json
import sys
import time

try:
    from kafka import KafkaConsumer
except ImportError as error:  # fail loudly: the test must not pass without a consumer
    sys.exit(
        f"kafka-python is not installed for {sys.executable} ({error}); install "
        "scripts/requirements-test.txt (scripts/test does, into the tools virtualenv)"
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap-server", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds")
    args = parser.parse_args()

    # As the original's consumers: no group (so nothing is committed), from the earliest
    # offset, the value deserialized as JSON. Headers are never looked at.
    consumer = KafkaConsumer(
        args.topic,
        bootstrap_servers=args.bootstrap_server,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=1000,
    )
    seen = 0
    deadline = time.monotonic() + args.timeout
    try:
        while seen < args.count and time.monotonic() < deadline:
            # Iteration ends after consumer_timeout_ms without a record; try again until the
            # deadline (the topic may not have every record yet).
            for record in consumer:
                raw = record.value.decode("utf-8")
                event = json.loads(raw)
                print(json.dumps({"offset": record.offset, "raw": raw, "event": event}), flush=True)
                seen += 1
                if seen >= args.count:
                    break
    finally:
        consumer.close()
    if seen < args.count:
        sys.exit(f"only {seen} of {args.count} records of {args.topic} within {args.timeout}s")


if __name__ == "__main__":
    main()
