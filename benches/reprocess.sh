#!/usr/bin/env bash
# Benchmark of `mttx reprocess`: all history folded again by metrics version 2 into a new
# generation, with 1 and 2 workers, side by side with its floor in the same run: the
# replica's own output speed, `psql \copy (SELECT * FROM incident_log_entries) TO
# /dev/null`. Generates the replica into PostgreSQL, folds version 1 with `etl run --once`
# (the served generation), then times `mttx reprocess --metrics-version 2 --no-switch` (each
# run builds a whole new generation; medians of BENCH_RUNS) and the dry run.
#
#   bash benches/reprocess.sh [INCIDENTS]   (default 1300000: about 10M log entries)
set -euo pipefail
cd "$(dirname "$0")/.."

incidents=${1:-1300000}
runs=${BENCH_RUNS:-3}
source benches/common.sh
work=$(mktemp -d)
db=mttx_bench_reprocess
url=$server/$db
trap 'rm -rf "$work"; psql_ "$server/postgres" -c "DROP DATABASE IF EXISTS $db" || true' EXIT

psql_ "$server/postgres" -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
"$mttx" fixtures generate --incidents "$incidents" --accounts 20 --weeks 26 --source "$url" >/dev/null 2>&1
psql_ "$url" -c "VACUUM ANALYZE"
entries=$(psql_ -At "$url" -c "SELECT count(*) FROM incident_log_entries")
echo "== $entries log entries ($incidents incidents)"
places=(--source "$url" --facts "$work/facts" --state "$work/state.sqlite")
"$mttx" etl run --once --workers 2 "${places[@]}" >/dev/null 2>&1

: >"$work/copy"
for _ in $(seq "$runs"); do
    /usr/bin/time -f "%e" -a -o "$work/copy" \
        psql -X -q -v ON_ERROR_STOP=1 "$url" -c "\\copy (SELECT * FROM incident_log_entries) TO '/dev/null'"
done
copy_s=$(median <"$work/copy")
printf "COPY TO /dev/null (median of %s) %.1f s = %.0f entries/s\n" "$runs" "$copy_s" "$(echo "$entries / $copy_s" | bc -l)"

for workers in 1 2; do
    : >"$work/t"
    : >"$work/rss"
    for _ in $(seq "$runs"); do
        /usr/bin/time -f "%e %M" -o "$work/one" \
            "$mttx" reprocess --metrics-version 2 --no-switch --workers "$workers" "${places[@]}" \
            >"$work/summary" 2>/dev/null
        awk '{print $1}' "$work/one" >>"$work/t"
        awk '{print $2}' "$work/one" >>"$work/rss"
    done
    grep -E "reprocessed into|backfill|incidents written" "$work/summary" | sed 's/^/   /'
    t=$(median <"$work/t")
    rss_kib=$(sort -g "$work/rss" | tail -1)
    printf "reprocess, %s worker(s) (median of %s): %.1f s = %.0f entries/s; ratio reprocess/COPY %.2f; peak RSS %.0f MiB; runs: %s\n" \
        "$workers" "$runs" "$t" "$(echo "$entries / $t" | bc -l)" "$(echo "$t / $copy_s" | bc -l)" \
        "$(echo "$rss_kib / 1024" | bc -l)" "$(tr '\n' ' ' <"$work/t")"
done

/usr/bin/time -f "%e %M" -o "$work/one" \
    "$mttx" reprocess --metrics-version 2 --dry-run "${places[@]}" >"$work/dry" 2>/dev/null
tail -1 "$work/dry" | sed 's/^/   /'
printf "dry run: %.1f s; peak RSS %.0f MiB\n" "$(awk '{print $1}' "$work/one")" \
    "$(echo "$(awk '{print $2}' "$work/one") / 1024" | bc -l)"
"$mttx" generations list "${places[@]}" 2>/dev/null | sed 's/^/   /'
du -sh "$work" | sed 's/^/   facts generations and state: /'
