"""Freshness under a steady write load (run by benches/freshness.sh).

One writer commits a new incident (its row and its trigger entry, created now) RATE times a
second into the replica, one transaction each, in order. A reader asks the report API for
today's incident count every 50 ms. Incidents commit in order, so an answer counting K new
incidents reflects the first K: incident k's freshness is the time from its commit to the
first answer that counts it. Prints p50 and p99 in seconds.

    python3 benches/freshness.py URL API TOKEN SECONDS RATE
"""

import json
import sys
import threading
import time
import urllib.request
from datetime import datetime, timedelta, timezone

import psycopg

url, api, token, seconds, rate = sys.argv[1:6]
seconds, rate = float(seconds), float(rate)
today = datetime.now(timezone.utc).date()
report = f"{api}/api/v1/reports/incidents?from={today}&to={today + timedelta(days=1)}&tz=UTC"


def count():
    req = urllib.request.Request(report, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=10) as r:
        body = json.load(r)
    return int(body["total"]["metrics"]["incident_count"]["value"] or 0)


commits = []
seen = {}
done = threading.Event()


def read(base):
    while not done.is_set() or len(seen) < len(commits):
        n = count() - base
        now = time.time()
        for k in range(1, n + 1):
            seen.setdefault(k, now)
        if done.is_set() and time.time() - done_at[0] > 30:
            break
        time.sleep(0.05)


done_at = [0.0]
with psycopg.connect(url, autocommit=True) as conn:
    row = conn.execute(
        "SELECT max(i.id), max(i.incident_number), (SELECT max(id) FROM incident_log_entries) "
        "FROM incidents i WHERE account_id = 1"
    ).fetchone()
    incident, number, entry = row
    base = count()
    reader = threading.Thread(target=read, args=(base,))
    reader.start()
    start = time.time()
    k = 0
    while time.time() - start < seconds:
        k += 1
        with conn.transaction():
            conn.execute(
                "INSERT INTO incidents SELECT %s, account_id, %s, service_id, escalation_policy_id, "
                "'freshness probe', urgency, priority, 'triggered', now() FROM incidents WHERE id = %s",
                (incident + k, number + k, incident),
            )
            conn.execute(
                "INSERT INTO incident_log_entries (id, account_id, incident_id, type, created_at, "
                "agent_type, agent_id, channel) VALUES (%s, 1, %s, 'trigger', now(), 'service', "
                "(SELECT service_id FROM incidents WHERE id = %s), 'api')",
                (entry + k, incident + k, incident),
            )
        commits.append(time.time())
        time.sleep(max(0.0, start + k / rate - time.time()))
    done_at[0] = time.time()
    done.set()
    reader.join()

lat = sorted(seen[k] - commits[k - 1] for k in range(1, len(commits) + 1) if k in seen)
missing = len(commits) - len(lat)
if not lat:
    print(f"no incident was reflected within 30 s ({len(commits)} committed)")
    sys.exit(1)


def pct(p):
    return lat[min(len(lat) - 1, int(p * (len(lat) - 1) + 0.5))]


print(
    f"{len(commits)} incidents at {rate:.0f}/s over {seconds:.0f} s: commit to first answer "
    f"p50 {pct(0.5):.2f} s, p99 {pct(0.99):.2f} s, max {lat[-1]:.2f} s"
    + (f"; {missing} not reflected within 30 s" if missing else "")
)
