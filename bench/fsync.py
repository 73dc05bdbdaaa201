#!/usr/bin/env python3
"""The disk's own fsync latency, for reading the durable default's tail latency beside it:
append 4 KiB and fsync, N times, in a directory on the same disk. Prints p50/p99/p99.9/max (ms).
Usage: bench/fsync.py DIR [COUNT]"""
import os
import sys
import time

directory = sys.argv[1]
count = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
path = os.path.join(directory, "fsync-probe")
block = b"x" * 4096
times = []
fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
try:
    for _ in range(count):
        os.write(fd, block)
        start = time.perf_counter()
        os.fsync(fd)
        times.append((time.perf_counter() - start) * 1000)
finally:
    os.close(fd)
    os.unlink(path)
times.sort()


def pct(p):
    return times[min(len(times) - 1, int(len(times) * p / 100))]


print(f"fsync of 4 KiB x{count}: p50_ms={pct(50):.2f} p99_ms={pct(99):.2f} "
      f"p99.9_ms={pct(99.9):.2f} max_ms={times[-1]:.2f}")
