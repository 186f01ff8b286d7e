#!/usr/bin/env bash
# Benchmark of the ETL's backfill, side by side with its floor: the replica's own output
# speed, `psql \copy (SELECT * FROM incident_log_entries) TO /dev/null`, on the same data in
# the same run. For each size: generate into PostgreSQL, time COPY (median of 3), time
# `mttx etl run --once` into a fresh Delta table (median of 3), report the ratio and the
# ETL's peak RSS. WORKERS may list several counts (`1,2`): each runs on the same data, to see
# what another core brings. RANGES may list several backfill range sizes
# (`RANGES=50000,500`, incident ids per range and so per commit): each runs on the same data,
# to see what the number of commits costs.
#
#   bash benches/etl.sh [WORKERS] [SIZES...]   (default: 3 workers; 130000 1300000 incidents,
#                                              about 1M and 10M log entries)
set -euo pipefail
cd "$(dirname "$0")/.."

workers=${1:-3}
shift || true
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(130000 1300000)
runs=${BENCH_RUNS:-3}
RANGES=${RANGES:-50000}
source benches/common.sh
# Seconds of CPU time the whole machine has spent busy (all cores, from /proc/stat).
busy_seconds() { awk '/^cpu / {print ($2 + $3 + $4 + $7 + $8 + $9) / 100; exit}' /proc/stat; }
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
    copy_busy0=$(busy_seconds)
    for _ in $(seq "$runs"); do
        /usr/bin/time -f "%e" -a -o "$work/copy" \
            psql -X -q -v ON_ERROR_STOP=1 "$url" -c "\\copy (SELECT * FROM incident_log_entries) TO '/dev/null'"
    done
    copy_s=$(median <"$work/copy")
    printf "COPY TO /dev/null: %.1f s, all CPUs busy %.1f s per run\n" "$copy_s" \
        "$(echo "($(busy_seconds) - $copy_busy0) / $runs" | bc -l)"
    for w in ${workers//,/ }; do
    for range in ${RANGES//,/ }; do
        : >"$work/etl"
        : >"$work/rss"
        for _ in $(seq "$runs"); do
            rm -rf "$work/facts" "$work/state.sqlite"*
            busy0=$(busy_seconds)
            /usr/bin/time -f "%e %M %U %S" -o "$work/one" \
                "$mttx" etl run --once --workers "$w" --range-incidents "$range" --source "$url" \
                --facts "$work/facts" --state "$work/state.sqlite" >"$work/summary" 2>/dev/null
            awk '{print $1}' "$work/one" >>"$work/etl"
            awk '{print $2}' "$work/one" >>"$work/rss"
            awk '{print $3 + $4}' "$work/one" >>"$work/cpu"
            echo "$(busy_seconds) - $busy0" | bc -l >>"$work/busy"
        done
        grep -E "backfill|incidents written|quarantined:" "$work/summary" | sed 's/^/   /'
        etl_s=$(median <"$work/etl")
        rss_kib=$(sort -g "$work/rss" | tail -1)
        printf "COPY TO /dev/null %.1f s; ETL (%s workers, ranges of %s incidents, %s commits, %s files) %.1f s = %.0f entries/s; ratio ETL/COPY %.2f; ETL CPU (user+sys) %.1f s; all CPUs busy %.1f s (PostgreSQL and the rest: the difference); ETL peak RSS %.0f MiB\n" \
            "$copy_s" "$w" "$range" "$(ls "$work/facts/_delta_log" | grep -c '\.json$')" \
            "$(find "$work/facts" -name '*.parquet' | wc -l)" "$etl_s" "$(echo "$entries / $etl_s" | bc -l)" \
            "$(echo "$etl_s / $copy_s" | bc -l)" "$(median <"$work/cpu")" "$(median <"$work/busy")" \
            "$(echo "$rss_kib / 1024" | bc -l)"
        : >"$work/cpu"
        : >"$work/busy"
    done
    done
    psql_ "$server/postgres" -c "DROP DATABASE $db"
done
