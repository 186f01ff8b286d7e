"""Latency of HTTP calls taken in turn, for benches/analytics.sh.

    python3 benches/alternate.py CALLS BASE_URL RUNS WARMUP CONCURRENCY

CALLS is a JSON list of {"name", "method", "path", "headers", "body"}. Each of CONCURRENCY
workers holds one keep-alive connection and asks every call in turn, RUNS rounds (after
WARMUP rounds not counted), the order of the calls reversed every other round so neither
always follows the other. A call's time is from sending the request to having read the
whole answer. Every answer must be 200 and computed, not cached (x-mttx-cache: miss).
Prints one line per call: name, timed requests, p50 ms, p99 ms, mean ms, response bytes.
"""

import http.client
import json
import statistics
import sys
import threading
import time
import urllib.parse


def percentile(sorted_ms, q):
    """Nearest rank: the smallest value with at least q of the values at or below it."""
    rank = max(1, -(-len(sorted_ms) * q // 100))
    return sorted_ms[int(rank) - 1]


def worker(calls, base, runs, warmup, times, sizes, failures):
    url = urllib.parse.urlsplit(base)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=120)
    for r in range(warmup + runs):
        order = calls if r % 2 == 0 else list(reversed(calls))
        for call in order:
            body = call.get("body")
            data = json.dumps(body).encode() if body is not None else None
            start = time.perf_counter()
            conn.request(call["method"], call["path"], body=data, headers=call["headers"])
            answer = conn.getresponse()
            payload = answer.read()
            elapsed = (time.perf_counter() - start) * 1000
            cache = answer.getheader("x-mttx-cache")
            if answer.status != 200 or cache != "miss":
                failures.append(f"{call['name']}: {answer.status} cache={cache} {payload[:200]!r}")
                return
            if r >= warmup:
                times[call["name"]].append(elapsed)
                sizes[call["name"]] = len(payload)


def main():
    calls_file, base, runs, warmup, concurrency = sys.argv[1:6]
    with open(calls_file) as f:
        calls = json.load(f)
    times = {c["name"]: [] for c in calls}
    sizes = {}
    failures = []
    threads = [
        threading.Thread(
            target=worker, args=(calls, base, int(runs), int(warmup), times, sizes, failures)
        )
        for _ in range(int(concurrency))
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failures:
        sys.exit("\n".join(failures))
    for c in calls:
        ms = sorted(times[c["name"]])
        print(
            f"{c['name']} {len(ms)} {percentile(ms, 50):.1f} {percentile(ms, 99):.1f} "
            f"{statistics.fmean(ms):.1f} {sizes[c['name']]}"
        )


if __name__ == "__main__":
    main()
