#!/usr/bin/env bash
# Benchmark of the query engine and the report API on a generated replica of INCIDENTS
# incidents (default 1,000,000: about 7.7M log entries), side by side with its peers in the
# same run:
#   1. warm p50/p99 of the team weekly report and of a 12-week weekly trend for the largest
#      account (and the team weekly report with its rows compared, with and without the
#      changes' intervals): mttx's engine (query/benches/queries.rs) vs DuckDB over the same Parquet
#      files (benches/duckdb_queries.py) vs the same aggregation in SQL over the replica in
#      PostgreSQL (the test oracle etl/tests/sql/facts.sql, scoped to the account);
#   2. HTTP load with wrk on a mix of report and drilldown calls (benches/mix.lua), with the
#      answer cache (the default) and without it (--cache-mib 0).
#
#   bash benches/query.sh [INCIDENTS]
#   BENCH_RUNS (engine/DuckDB runs, default 50), BENCH_PG_RUNS (default 3),
#   BENCH_SECONDS (wrk duration, default 20), BENCH_KEEP=DIR (keep and reuse data in DIR)
set -euo pipefail
cd "$(dirname "$0")/.."

incidents=${1:-1000000}
runs=${BENCH_RUNS:-50}
pg_runs=${BENCH_PG_RUNS:-3}
seconds=${BENCH_SECONDS:-20}
tz=Europe/Berlin
account=1
source benches/common.sh
python3 -c "import duckdb" 2>/dev/null || pip install -q duckdb
if ! command -v wrk >/dev/null; then
    if [ "$(id -u)" = 0 ]; then apt-get install -y -q wrk >/dev/null; else
        echo "install wrk (apt-get install wrk) first" >&2; exit 1; fi
fi
cargo bench -q --workspace --bench queries --no-run 2>/dev/null

if [ -n "${BENCH_KEEP:-}" ]; then work=$BENCH_KEEP; mkdir -p "$work"; else
    work=$(mktemp -d); trap 'rm -rf "$work"; kill %1 2>/dev/null || true' EXIT; fi
query_set "$incidents" "$work"
entries=$(psql_ -At "$url" -c "SELECT count(*) FROM incident_log_entries")
mine=$(psql_ -At "$url" -c "SELECT count(*) FROM incidents WHERE account_id = $account")
# The last full ISO week of the data in the account's time zone.
monday=$(psql_ -At "$url" -c "SELECT (date_trunc('week', max(created_at) AT TIME ZONE '$tz') - interval '7 days')::date FROM incidents WHERE account_id = $account")
files=$(find "$work/facts" -name '*.parquet' | wc -l)
size=$(du -sm "$work/facts" | cut -f1)
echo "== $entries log entries, $incidents incidents ($mine in account $account); facts: $files Parquet files, $size MiB"
echo "== week of $monday in $tz; 12 weeks up to it"

echo "-- engine and DuckDB: name runs p50_ms p99_ms incidents"
bench=$(ls -t "$CARGO_TARGET_DIR"/release/deps/queries-* | grep -v '\.d$' | head -1)
"$bench" "$work/facts" "$account" "$monday" "$tz" "$runs" | sed 's/^/mttx   /' | tee "$work/engine"
python3 benches/duckdb_queries.py "$work/facts" "$account" "$monday" "$tz" "$runs" | sed 's/^/duckdb /' | tee "$work/duckdb"

echo "-- the same aggregations in SQL over the replica (PostgreSQL), $pg_runs runs each"
oracle=$(sed -e "s/FROM incident_log_entries l/FROM (SELECT * FROM incident_log_entries WHERE account_id = $account) l/" \
             -e "s/FROM incidents i/FROM (SELECT * FROM incidents WHERE account_id = $account) i/" etl/tests/sql/facts.sql)
aggs="count(*), count(seconds_to_first_ack), count(seconds_to_resolve), count(*) FILTER (WHERE auto_resolved),
  count(*) FILTER (WHERE escalation_count > 0), avg(seconds_to_first_ack),
  percentile_cont(ARRAY[0.5, 0.9, 0.95]) WITHIN GROUP (ORDER BY seconds_to_first_ack), avg(seconds_to_resolve),
  percentile_cont(ARRAY[0.5, 0.9, 0.95]) WITHIN GROUP (ORDER BY seconds_to_resolve),
  sum(interruptions), sum(interruptions_business), sum(interruptions_off_hours), sum(interruptions_sleep), sum(notification_count)"
local_="(DATE '$monday' + %s)::timestamp AT TIME ZONE '$tz'"
at() { printf "$local_" "$1"; }
cat >"$work/weekly.sql" <<SQL
WITH f AS ($oracle)
SELECT CASE WHEN created_at < $(at 0) THEN 'previous' ELSE 'current' END AS period, team_id_v1, $aggs
FROM f WHERE account_id = $account AND created_at >= $(at -7) AND created_at < $(at 7)
GROUP BY GROUPING SETS ((1), (1, 2));
SQL
cat >"$work/trend.sql" <<SQL
WITH f AS ($oracle)
SELECT date_trunc('week', created_at AT TIME ZONE '$tz')::date AS week, $aggs
FROM f WHERE account_id = $account AND created_at >= $(at -77) AND created_at < $(at 7)
GROUP BY 1;
SQL
: >"$work/pg"
for q in weekly trend; do
    : >"$work/pg-$q"
    for _ in $(seq "$pg_runs"); do
        start=$(date +%s.%N)
        psql_ "$url" -f "$work/$q.sql" >/dev/null
        end=$(date +%s.%N)
        echo "($end - $start) * 1000" | bc -l >>"$work/pg-$q"
    done
    printf "postgres %s %s %.2f\n" "$q" "$pg_runs" "$(median <"$work/pg-$q")" | tee -a "$work/pg"
done
ratio() { echo "scale=2; $1 / $2" | bc -l; }
e_w=$(awk '$2=="team_weekly"{print $4}' "$work/engine"); d_w=$(awk '$2=="team_weekly"{print $4}' "$work/duckdb")
e_t=$(awk '$2=="trend_12_weeks"{print $4}' "$work/engine"); d_t=$(awk '$2=="trend_12_weeks"{print $4}' "$work/duckdb")
p_w=$(awk '$2=="weekly"{print $4}' "$work/pg"); p_t=$(awk '$2=="trend"{print $4}' "$work/pg")
echo "ratio mttx/DuckDB p50: team weekly $(ratio "$e_w" "$d_w"), 12-week trend $(ratio "$e_t" "$d_t")"
echo "PostgreSQL/mttx p50: team weekly $(ratio "$p_w" "$e_w")x, 12-week trend $(ratio "$p_t" "$e_t")x"
i_w=$(awk '$2=="team_weekly_compared_with_intervals"{print $4}' "$work/engine")
i_wo=$(awk '$2=="team_weekly_compared_without_intervals"{print $4}' "$work/engine")
echo "intervals and verdicts: team weekly report compared, p50 with/without $(ratio "$i_w" "$i_wo") (goal <= 1.20)"

echo "-- HTTP: wrk, 2 threads, 32 connections, ${seconds}s, a mix of reports and drilldowns"
token=$("$mttx" token create --account "$account" --name bench --state "$work/state.sqlite" 2>/dev/null)
: >"$work/mix.txt"
for w in $(seq 0 11); do
    d=$(date -d "$monday - $((7 * w)) days" +%F); e=$(date -d "$d + 7 days" +%F)
    p="from=$d&to=$e&tz=$tz"
    echo "/api/v1/reports/incidents?$p&group_by=team" >>"$work/mix.txt"
    echo "/api/v1/reports/incidents?$p&group_by=service" >>"$work/mix.txt"
    echo "/api/v1/incidents?$p&sort=-time_to_resolve&limit=50" >>"$work/mix.txt"
done
echo "/api/v1/reports/incidents?from=$(date -d "$monday - 77 days" +%F)&to=$(date -d "$monday + 7 days" +%F)&tz=$tz&unit=week" >>"$work/mix.txt"
for cache in 256 0; do
    "$mttx" serve --listen 127.0.0.1:18080 --cache-mib "$cache" --source "$url" --facts "$work/facts" --state "$work/state.sqlite" >"$work/serve.log" 2>&1 &
    await_url "http://127.0.0.1:18080/healthz"
    # Warm: every call once (fills the cache when there is one).
    while read -r p; do curl -sf -o /dev/null -H "Authorization: Bearer $token" "http://127.0.0.1:18080$p"; done <"$work/mix.txt"
    echo "cache ${cache} MiB:"
    MIX="$work/mix.txt" TOKEN="$token" wrk -t2 -c32 -d"${seconds}s" --latency -s benches/mix.lua http://127.0.0.1:18080 \
        | grep -E "Requests/sec|Non-2xx|Socket errors|^ +(50|90|99)%|requests in" | sed 's/^/   /'
    echo "   (no Non-2xx or Socket errors line: every request answered 200)"
    kill %1; wait %1 2>/dev/null || true
done
