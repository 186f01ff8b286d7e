#!/usr/bin/env bash
# Benchmark of the ETL's backfill, side by side with its floor: the replica's own output
# speed, `psql \copy (SELECT * FROM incident_log_entries) TO /dev/null`, on the same data in
# the same run. For each size: generate into PostgreSQL, time COPY (median of 3), time
# `mttx etl run --once` into a fresh Delta table (median of 3), report the ratio and the
# ETL's peak RSS. WORKERS may list several counts (`1,2`): each runs on the same data, to see
# what another core brings.
#
#   bash benches/etl.sh [WORKERS] [SIZES...]   (default: 2 workers; 130000 1300000 incidents,
#                                              about 1M and 10M log entries)
set -euo pipefail
cd "$(dirname "$0")/.."

workers=${1:-2}
shift || true
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(130000 1300000)
runs=${BENCH_RUNS:-3}
source benches/common.sh
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

for incidents in "${sizes[@]}"; do
    db=mttx_bench_etl_$incidents
    url=$server/$db
    psql_ "$server/postgres" -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
    "$mttx" fixtures generate --incidents "$incidents" --accounts 20 --weeks 26 --source "$url" >/dev/null 2>&1
    psql_ "$url" -c "VACUUM ANALYZE"
    entries=$(psql_ -At "$url" -c "SELECT count(*) FROM incident_log_entries")
    echo "== $entries log entries ($incidents incidents)"
    : >"$work/copy"
    for _ in $(seq "$runs"); do
        /usr/bin/time -f "%e" -a -o "$work/copy" \
            psql -X -q -v ON_ERROR_STOP=1 "$url" -c "\\copy (SELECT * FROM incident_log_entries) TO '/dev/null'"
    done
    copy_s=$(median <"$work/copy")
    for w in ${workers//,/ }; do
        : >"$work/etl"
        : >"$work/rss"
        for _ in $(seq "$runs"); do
            rm -rf "$work/facts" "$work/state.sqlite"*
            /usr/bin/time -f "%e %M %U %S" -o "$work/one" \
                "$mttx" etl run --once --workers "$w" --source "$url" \
                --facts "$work/facts" --state "$work/state.sqlite" >"$work/summary" 2>/dev/null
            awk '{print $1}' "$work/one" >>"$work/etl"
            awk '{print $2}' "$work/one" >>"$work/rss"
            awk '{print $3 + $4}' "$work/one" >>"$work/cpu"
        done
        grep -E "backfill|incidents written|quarantined:" "$work/summary" | sed 's/^/   /'
        etl_s=$(median <"$work/etl")
        rss_kib=$(sort -g "$work/rss" | tail -1)
        printf "COPY TO /dev/null %.1f s; ETL (%s workers) %.1f s = %.0f entries/s; ratio ETL/COPY %.2f; ETL CPU (user+sys) %.1f s; ETL peak RSS %.0f MiB\n" \
            "$copy_s" "$w" "$etl_s" "$(echo "$entries / $etl_s" | bc -l)" \
            "$(echo "$etl_s / $copy_s" | bc -l)" "$(median <"$work/cpu")" "$(echo "$rss_kib / 1024" | bc -l)"
        : >"$work/cpu"
    done
    psql_ "$server/postgres" -c "DROP DATABASE $db"
done
