"""DuckDB, the peer: the same two aggregations as query/benches/queries.rs over the same
Parquet files of the facts table (hive partitions account_id=/month=), warm.

    python3 benches/duckdb_queries.py FACTS ACCOUNT MONDAY TZ [RUNS]

Prints `name runs p50_ms p99_ms incidents`, like the engine's bench.
"""
import datetime as dt
import statistics
import sys
import time
from zoneinfo import ZoneInfo

import duckdb

AGGS = """count(*) AS n, count(seconds_to_first_ack) AS acked, count(seconds_to_resolve) AS resolved,
  count(*) FILTER (WHERE auto_resolved) AS auto, count(*) FILTER (WHERE escalation_count > 0) AS escalated,
  avg(seconds_to_first_ack) AS mtta_mean, quantile_cont(seconds_to_first_ack, [0.5, 0.9, 0.95]) AS mtta_p,
  avg(seconds_to_resolve) AS mttr_mean, quantile_cont(seconds_to_resolve, [0.5, 0.9, 0.95]) AS mttr_p,
  sum(interruptions), sum(interruptions_business), sum(interruptions_off_hours),
  sum(interruptions_sleep), sum(notification_count)"""


def instant(day, tz):
    """Local midnight of `day` in `tz`, as a UTC literal."""
    local = dt.datetime.combine(day, dt.time(), tzinfo=ZoneInfo(tz))
    return "TIMESTAMPTZ '" + local.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S+00") + "'"


def months(a, b):
    return f"month >= '{a[:7]}' AND month <= '{b[:7]}'"


def run(con, sql, runs):
    times = []
    result = None
    for i in range(runs + 3):
        t = time.perf_counter()
        result = con.execute(sql).fetchall()
        if i >= 3:
            times.append((time.perf_counter() - t) * 1e3)
    times.sort()
    p99 = times[min(len(times) - 1, int(round(0.99 * (len(times) - 1))))]
    return statistics.median(times), p99, result


def main():
    facts, account, monday, tz = sys.argv[1:5]
    runs = int(sys.argv[5]) if len(sys.argv) > 5 else 50
    monday = dt.date.fromisoformat(monday)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    src = f"read_parquet('{facts}/account_id=*/month=*/*.parquet', hive_partitioning = true)"
    prev, start, end = (instant(monday + dt.timedelta(days=d), tz) for d in (-7, 0, 7))
    span = months(str(monday - dt.timedelta(days=8)), str(monday + dt.timedelta(days=8)))
    weekly = f"""
      SELECT period, team_id, GROUPING(team_id) AS total, {AGGS} FROM (
        SELECT *, CASE WHEN created_at < {start} THEN 'previous' ELSE 'current' END AS period
        FROM {src}
        WHERE account_id = {account} AND {span} AND created_at >= {prev} AND created_at < {end})
      GROUP BY GROUPING SETS ((period), (period, team_id))"""
    p50, p99, rows = run(con, weekly, runs)
    n = sum(r[3] for r in rows if r[0] == "current" and r[2] == 1)
    print(f"team_weekly {runs} {p50:.2f} {p99:.2f} {n}")

    first = monday - dt.timedelta(days=77)
    bounds = [first + dt.timedelta(days=7 * k) for k in range(13)]
    case = " ".join(
        f"WHEN created_at < {instant(b, tz)} THEN '{a}'" for a, b in zip(bounds, bounds[1:])
    )
    span = months(str(first - dt.timedelta(days=1)), str(bounds[-1] + dt.timedelta(days=1)))
    trend = f"""
      SELECT CASE {case} END AS bucket, {AGGS} FROM {src}
      WHERE account_id = {account} AND {span}
        AND created_at >= {instant(bounds[0], tz)} AND created_at < {instant(bounds[-1], tz)}
      GROUP BY 1"""
    p50, p99, rows = run(con, trend, runs)
    print(f"trend_12_weeks {runs} {p50:.2f} {p99:.2f} {sum(r[1] for r in rows)}")


if __name__ == "__main__":
    main()
