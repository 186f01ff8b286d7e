#!/usr/bin/env bash
# The cost of object storage against local disk, in one run on the same replica: a backfill
# (`mttx etl run --once --workers 2`, median of BENCH_RUNS) into a local folder, into S3
# (moto's server) and into Azure Blob (Azurite), both on loopback (scripts/ensure-objstores.sh);
# then the team weekly report over each table through `mttx serve --cache-mib 0` (every
# answer computed), p50 of BENCH_CALLS sequential calls after 5 warm ones.
# Loopback emulators have no network latency and keep objects in memory: against real S3
# or Azure in the same region, each request adds milliseconds these numbers do not show.
#
#   bash benches/objstore.sh [INCIDENTS]   (default 130000: about 1M log entries)
set -euo pipefail
cd "$(dirname "$0")/.."

incidents=${1:-130000}
runs=${BENCH_RUNS:-3}
calls=${BENCH_CALLS:-50}
tz=Europe/Berlin
source benches/common.sh
bash scripts/ensure-objstores.sh >/dev/null
source scripts/objstores-env.sh

work=$(mktemp -d)
db=mttx_bench_objstore
url=$server/$db
# The emulators keep objects in memory: stopped at the end (the next test run or bench starts
# them again, empty).
trap 'rm -rf "$work"; pkill -f moto_server || true; pkill -9 -f azurite-blob || true; psql_ "$server/postgres" -c "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true' EXIT
psql_ "$server/postgres" -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
"$mttx" fixtures generate --incidents "$incidents" --accounts 20 --weeks 26 --source "$url" >/dev/null 2>&1
psql_ "$url" -c "VACUUM ANALYZE"
entries=$(psql_ -At "$url" -c "SELECT count(*) FROM incident_log_entries")
monday=$(psql_ -At "$url" -c "SELECT (date_trunc('week', max(created_at) AT TIME ZONE '$tz') - interval '7 days')::date FROM incidents WHERE account_id = 1")
report="/api/v1/reports/incidents?from=$monday&to=$(date -d "$monday + 7 days" +%F)&tz=$tz&group_by=team"
echo "== $entries log entries ($incidents incidents); report: $report"
printf "%-6s %10s %12s %10s %10s\n" store backfill_s entries_per_s report_p50 report_p90

stamp=$(date +%s%N)
for store in local s3 azure; do
    : >"$work/etl"
    for i in $(seq "$runs"); do
        case $store in
            local) facts=$work/facts-$i ;;
            s3) facts=s3://mttx/bench-$stamp-$i/facts ;;
            azure) facts=az://mttx/bench-$stamp-$i/facts ;;
        esac
        state=$work/state-$store-$i.sqlite
        /usr/bin/time -f "%e" -a -o "$work/etl" "$mttx" etl run --once --workers 2 \
            --source "$url" --facts "$facts" --state "$state" >/dev/null 2>"$work/etl.log"
    done
    "$mttx" token create --account 1 --state "$state" 2>/dev/null | tail -1 >"$work/token"
    "$mttx" serve --listen 127.0.0.1:18090 --cache-mib 0 --source "$url" --facts "$facts" \
        --state "$state" >"$work/serve.log" 2>&1 &
    await_url "http://127.0.0.1:18090/readyz"
    : >"$work/calls"
    for i in $(seq $((calls + 5))); do
        t=$(curl -s -o /dev/null -w '%{time_total}' -H "Authorization: Bearer $(cat "$work/token")" "http://127.0.0.1:18090$report")
        [ "$i" -gt 5 ] && echo "$t * 1000" | bc -l >>"$work/calls"
    done
    kill %1; wait %1 2>/dev/null || true
    etl_s=$(median <"$work/etl")
    p90=$(sort -g "$work/calls" | awk '{a[NR]=$1} END {print a[int(NR*0.9)]}')
    printf "%-6s %10.2f %12.0f %10.1f %10.1f\n" "$store" "$etl_s" "$(echo "$entries / $etl_s" | bc -l)" \
        "$(median <"$work/calls")" "$p90"
done
