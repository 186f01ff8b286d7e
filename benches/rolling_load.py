"""Steady load for benches/rolling.sh: THREADS clients, each on one keep-alive connection,
send report requests through the balancer until the file STOP appears, then print one JSON
line: requests sent, answers by status, and failures (a refused, reset or empty connection
counts as one failed request; the client reconnects and goes on).

    python3 rolling_load.py HOST:PORT TOKEN THREADS STOP
"""

import http.client
import json
import os
import sys
import threading
import time
from collections import Counter

host, port = sys.argv[1].rsplit(":", 1)
token, threads, stop = sys.argv[2], int(sys.argv[3]), sys.argv[4]
# Uncached answers (the server runs with --cache-mib 0): every team, a few periods.
paths = [
    f"/api/v1/reports/incidents?from=2026-{m:02d}-01&to=2026-{m + 1:02d}-01&group_by=team&unit=week&team={t}"
    for m in range(8, 11)
    for t in range(1, 6)
]
lock = threading.Lock()
statuses = Counter()
failures = Counter()


def client(n):
    conn = None
    i = n
    while not os.path.exists(stop):
        path = paths[i % len(paths)]
        i += 1
        try:
            if conn is None:
                conn = http.client.HTTPConnection(host, int(port), timeout=30)
            conn.request("GET", path, headers={"Authorization": f"Bearer {token}"})
            r = conn.getresponse()
            r.read()
            with lock:
                statuses[r.status] += 1
            if r.getheader("Connection", "").lower() == "close":
                conn.close()
                conn = None
        except Exception as e:  # noqa: BLE001 - every kind of failure is counted
            with lock:
                failures[type(e).__name__] += 1
            if conn is not None:
                conn.close()
            conn = None
            time.sleep(0.01)


workers = [threading.Thread(target=client, args=(n,)) for n in range(threads)]
for w in workers:
    w.start()
for w in workers:
    w.join()
sent = sum(statuses.values()) + sum(failures.values())
print(json.dumps({"sent": sent, "statuses": dict(statuses), "failures": dict(failures)}))
