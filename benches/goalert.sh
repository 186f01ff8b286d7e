#!/usr/bin/env bash
# Benchmark of the ETL over a GoAlert database, side by side with its floor: the replica's
# own output speed, `psql \copy (SELECT * FROM alert_logs) TO /dev/null`, on the same data in
# the same run. Generates a GoAlert database (`mttx fixtures goalert`, about 9 log rows per
# alert), times COPY (median of 3) and `mttx etl run --once --source-kind goalert` into a
# fresh Delta table (median of 3); reports the ratio and the ETL's peak RSS.
#
#   bash benches/goalert.sh [WORKERS] [ALERTS]   (default: 2 workers; 1100000 alerts, about
#                                                1M alerts and 10M log rows)
set -euo pipefail
cd "$(dirname "$0")/.."

workers=${1:-2}
alerts=${2:-1100000}
runs=${BENCH_RUNS:-3}
source benches/common.sh
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

db=mttx_bench_goalert_$alerts
url=$server/$db
psql_ "$server/postgres" -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
t0=$(date +%s.%N)
"$mttx" fixtures goalert --alerts "$alerts" --days 180 --source "$url" >/dev/null 2>&1
psql_ "$url" -c "VACUUM ANALYZE"
t1=$(date +%s.%N)
rows=$(psql_ -At "$url" -c "SELECT count(*) FROM alert_logs")
made=$(psql_ -At "$url" -c "SELECT count(*) FROM alerts")
printf "== %s alerts, %s alert_logs rows (generate + VACUUM ANALYZE %.0f s)\n" \
    "$made" "$rows" "$(echo "$t1 - $t0" | bc -l)"
: >"$work/copy"
for _ in $(seq "$runs"); do
    /usr/bin/time -f "%e" -a -o "$work/copy" \
        psql -X -q -v ON_ERROR_STOP=1 "$url" -c "\\copy (SELECT * FROM alert_logs) TO '/dev/null'"
done
: >"$work/etl"
: >"$work/rss"
for _ in $(seq "$runs"); do
    rm -rf "$work/facts" "$work/state.sqlite"*
    /usr/bin/time -f "%e %M" -o "$work/one" \
        "$mttx" etl run --once --workers "$workers" --source-kind goalert --source "$url" \
        --facts "$work/facts" --state "$work/state.sqlite" >"$work/summary" 2>/dev/null
    awk '{print $1}' "$work/one" >>"$work/etl"
    awk '{print $2}' "$work/one" >>"$work/rss"
done
grep -E "backfill|incidents written|quarantined:" "$work/summary" | sed 's/^/   /'
copy_s=$(median <"$work/copy")
etl_s=$(median <"$work/etl")
rss_kib=$(sort -g "$work/rss" | tail -1)
printf "COPY TO /dev/null %.1f s; ETL (%s workers) %.1f s = %.0f rows/s; ratio ETL/COPY %.2f; ETL peak RSS %.0f MiB\n" \
    "$copy_s" "$workers" "$etl_s" "$(echo "$rows / $etl_s" | bc -l)" \
    "$(echo "$etl_s / $copy_s" | bc -l)" "$(echo "$rss_kib / 1024" | bc -l)"
[ -n "${BENCH_KEEP_DB:-}" ] || psql_ "$server/postgres" -c "DROP DATABASE $db"
