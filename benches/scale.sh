#!/usr/bin/env bash
# The scale curve: for each size (default about 1M, 10M and 100M log entries: 130,000,
# 1,300,000 and 13,000,000 incidents, --accounts 20 --weeks 26), in one run:
#   - generate the replica into PostgreSQL (time, database size);
#   - COPY the log out (`psql \copy … TO /dev/null`, the ETL's floor) and backfill it with
#     `mttx etl run --once --workers W` into a fresh facts table (time, ratio, peak RSS);
#   - `mttx etl upkeep` (facts size after it);
#   - for the largest account, warm p50 of the team weekly report and of the 12-week trend
#     call through `mttx serve --cache-mib 0` (benches/http_latency.py: every answer computed,
#     HTTP and JSON included; the trend call is the 12 weeks' report against the 12 before
#     plus its weekly buckets), beside DuckDB's team weekly and 12-week trend queries over
#     the same Parquet files (benches/duckdb_queries.py, in process).
# The database of a size is dropped before the next one is made, so the disk needed is the
# largest size's: about 250 MB of PostgreSQL per million log entries (25 GB at 100M) plus
# about 10 % of that for the facts. The script checks the free space of PostgreSQL's data
# directory and of the work folder first, and says what it needs.
#
#   bash benches/scale.sh [INCIDENTS...]
#   BENCH_WORKERS (default 3, as `etl run`), BENCH_RUNS (query runs, default 20), BENCH_WORK=DIR (work folder
#   on a disk with room; default a temporary folder under /var/tmp)
set -euo pipefail
cd "$(dirname "$0")/.."

sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(130000 1300000 13000000)
workers=${BENCH_WORKERS:-3}
runs=${BENCH_RUNS:-20}
tz=Europe/Berlin
source benches/common.sh
python3 -c "import duckdb" 2>/dev/null || pip install -q duckdb
work=${BENCH_WORK:-$(mktemp -d /var/tmp/mttx-scale.XXXXXX)}
mkdir -p "$work"
db=mttx_bench_scale
trap 'rm -rf "$work/facts" "$work/state.sqlite"*; psql_ "$server/postgres" -c "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true' EXIT

# Free space, in MB, of the file system holding $1.
free_mb() { df -Pm "$1" | awk 'NR==2 {print $4}'; }
largest=$(printf '%s\n' "${sizes[@]}" | sort -g | tail -1)
# About 7.7 log entries per incident; 250 MB of PostgreSQL and 25 MB of facts per million.
need_pg=$((largest * 77 / 10 * 250 / 1000000 + 500))
need_facts=$((largest * 77 / 10 * 25 / 1000000 + 200))
data_dir=$(psql_ -At "$server/postgres" -c "SHOW data_directory" 2>/dev/null || true)
[ -n "$data_dir" ] && [ -d "$data_dir" ] || data_dir=/var/lib/postgresql
have_pg=$(free_mb "$data_dir")
have_work=$(free_mb "$work")
echo "== disk: the largest size ($largest incidents) needs about $need_pg MB for PostgreSQL ($data_dir: $have_pg MB free) and $need_facts MB for the facts ($work: $have_work MB free)"
device() { df -P "$1" | awk 'NR==2 {print $1}'; }
if [ "$(device "$work")" = "$(device "$data_dir")" ]; then need_pg=$((need_pg + need_facts)); fi
if [ "$have_pg" -lt "$need_pg" ] || [ "$have_work" -lt "$need_facts" ]; then
    echo "not enough free space: free some, choose smaller sizes (bash benches/scale.sh 130000 1300000), or set BENCH_WORK to a folder on a larger disk" >&2
    exit 1
fi

printf "%-11s %12s %10s %9s %9s %8s %8s %7s %9s %10s %9s %9s %12s %9s\n" \
    incidents entries generate_s pg_mb copy_s etl_s ratio rss_mb facts_mb account_inc \
    weekly_ms duck_w_ms trend_api_ms duck_t_ms | tee "$work/curve"
for incidents in "${sizes[@]}"; do
    url=$server/$db
    rm -rf "$work/facts" "$work/state.sqlite"*
    psql_ "$server/postgres" -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
    t0=$(date +%s.%N)
    "$mttx" fixtures generate --incidents "$incidents" --accounts 20 --weeks 26 --source "$url" >/dev/null 2>&1
    t1=$(date +%s.%N)
    generate_s=$(echo "$t1 - $t0" | bc -l)
    psql_ "$url" -c "VACUUM ANALYZE"
    entries=$(psql_ -At "$url" -c "SELECT count(*) FROM incident_log_entries")
    pg_mb=$(psql_ -At "$url" -c "SELECT pg_database_size(current_database()) / 1048576")
    /usr/bin/time -f "%e" -o "$work/copy" \
        psql -X -q -v ON_ERROR_STOP=1 "$url" -c "\\copy (SELECT * FROM incident_log_entries) TO '/dev/null'"
    /usr/bin/time -f "%e %M" -o "$work/etl" \
        "$mttx" etl run --once --workers "$workers" --source "$url" \
        --facts "$work/facts" --state "$work/state.sqlite" >"$work/summary" 2>"$work/etl.log"
    "$mttx" etl upkeep --retain-hours 0 --source "$url" --facts "$work/facts" --state "$work/state.sqlite" >/dev/null 2>&1
    read -r etl_s rss_kib <"$work/etl"
    copy_s=$(cat "$work/copy")
    facts_mb=$(du -sm "$work/facts" | cut -f1)
    read -r account account_inc < <(psql_ -At -F ' ' "$url" -c \
        "SELECT account_id, count(*) FROM incidents GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 1")
    monday=$(psql_ -At "$url" -c "SELECT (date_trunc('week', max(created_at) AT TIME ZONE '$tz') - interval '7 days')::date FROM incidents WHERE account_id = $account")
    token=$("$mttx" token create --account "$account" --name scale --state "$work/state.sqlite" 2>/dev/null | tail -1)
    "$mttx" serve --listen 127.0.0.1:18191 --cache-mib 0 --source "$url" --facts "$work/facts" \
        --state "$work/state.sqlite" >"$work/serve.log" 2>&1 &
    await_url "http://127.0.0.1:18191/readyz"
    next=$(date -d "$monday + 7 days" +%F)
    python3 benches/http_latency.py 127.0.0.1:18191 "$token" "$runs" \
        team_weekly="/api/v1/reports/incidents?from=$monday&to=$next&tz=$tz&group_by=team" \
        trend_12_weeks="/api/v1/reports/incidents?from=$(date -d "$monday - 77 days" +%F)&to=$next&tz=$tz&unit=week" \
        >"$work/engine"
    kill %1; wait %1 2>/dev/null || true
    python3 benches/duckdb_queries.py "$work/facts" "$account" "$monday" "$tz" "$runs" >"$work/duckdb"
    p50() { awk -v q="$2" '$1==q {print $3}' "$1"; }
    printf "%-11s %12s %10.0f %9s %9.1f %8.1f %8.2f %7.0f %9s %10s %9s %9s %12s %9s\n" \
        "$incidents" "$entries" "$generate_s" "$pg_mb" "$copy_s" "$etl_s" \
        "$(echo "$etl_s / $copy_s" | bc -l)" "$(echo "$rss_kib / 1024" | bc -l)" "$facts_mb" \
        "$account_inc" "$(p50 "$work/engine" team_weekly)" "$(p50 "$work/duckdb" team_weekly)" \
        "$(p50 "$work/engine" trend_12_weeks)" "$(p50 "$work/duckdb" trend_12_weeks)" | tee -a "$work/curve"
    grep -E "backfill|incidents written|quarantined:" "$work/summary" | sed 's/^/   /'
done
echo "== the curve is in $work/curve"
cp "$work/curve" "${TMPDIR:-/tmp}/mttx-scale-curve.txt"
