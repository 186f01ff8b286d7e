#!/usr/bin/env bash
# Benchmark of `mttx reprocess`: all history folded again by metrics version 2 into a new
# generation, with 1 and 2 workers, side by side with its floor in the same run: the
# replica's own output speed, `psql \copy (SELECT * FROM incident_log_entries) TO
# /dev/null`. Generates the replica into PostgreSQL, folds version 1 with `etl run --once`
# (the served generation), then times `mttx reprocess --metrics-version 2 --no-switch` (each
# run builds a whole new generation, dropped after it is timed; medians of BENCH_RUNS) and
# the dry run. A failing command prints its error and stops the script.
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

# Runs mttx with stderr kept; on failure prints it and stops.
run() {
    "$@" 2>"$work/err" || { echo "failed: $*" >&2; tail -20 "$work/err" >&2; exit 1; }
}

psql_ "$server/postgres" -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
run "$mttx" fixtures generate --incidents "$incidents" --accounts 20 --weeks 26 --source "$url" >/dev/null
psql_ "$url" -c "VACUUM ANALYZE"
entries=$(psql_ -At "$url" -c "SELECT count(*) FROM incident_log_entries")
echo "== $entries log entries ($incidents incidents)"
places=(--source "$url" --facts "$work/facts" --state "$work/state.sqlite")
run "$mttx" etl run --once --workers 2 "${places[@]}" >/dev/null

: >"$work/copy"
for _ in $(seq "$runs"); do
    /usr/bin/time -f "%e" -a -o "$work/copy" \
        psql -X -q -v ON_ERROR_STOP=1 "$url" -c "\\copy (SELECT * FROM incident_log_entries) TO '/dev/null'"
done
copy_s=$(median <"$work/copy")
printf "COPY TO /dev/null (median of %s) %.1f s = %.0f entries/s\n" "$runs" "$copy_s" "$(echo "$entries / $copy_s" | bc -l)"

# The same fold into a fresh table by `etl run --once` (2 workers): what a reprocess adds.
: >"$work/etl"
for _ in $(seq "$runs"); do
    rm -rf "$work/fresh" "$work/fresh-state.sqlite"*
    run /usr/bin/time -f "%e" -a -o "$work/etl" "$mttx" etl run --once --workers 2 --source "$url" \
        --facts "$work/fresh" --state "$work/fresh-state.sqlite" >/dev/null
done
rm -rf "$work/fresh" "$work/fresh-state.sqlite"*
etl_s=$(median <"$work/etl")
printf "etl run --once into a fresh table, 2 workers (median of %s) %.1f s = %.0f entries/s\n" "$runs" "$etl_s" "$(echo "$entries / $etl_s" | bc -l)"

for workers in 1 2; do
    : >"$work/t"
    : >"$work/rss"
    for _ in $(seq "$runs"); do
        run /usr/bin/time -f "%e %M" -o "$work/one" \
            "$mttx" reprocess --metrics-version 2 --no-switch --workers "$workers" "${places[@]}" \
            >"$work/summary"
        awk '{print $1}' "$work/one" >>"$work/t"
        awk '{print $2}' "$work/one" >>"$work/rss"
        built=$(sed -n 's/^reprocessed into generation \([0-9]*\) .*/\1/p' "$work/summary")
        run "$mttx" generations drop --id "$built" "${places[@]}" >/dev/null
    done
    grep -E "reprocessed into|backfill|incidents written" "$work/summary" | sed 's/^/   /' || true
    t=$(median <"$work/t")
    rss_kib=$(sort -g "$work/rss" | tail -1)
    printf "reprocess, %s worker(s) (median of %s): %.1f s = %.0f entries/s; ratio reprocess/COPY %.2f, reprocess/etl %.2f; peak RSS %.0f MiB; runs: %s\n" \
        "$workers" "$runs" "$t" "$(echo "$entries / $t" | bc -l)" "$(echo "$t / $copy_s" | bc -l)" \
        "$(echo "$t / $etl_s" | bc -l)" "$(echo "$rss_kib / 1024" | bc -l)" "$(tr '\n' ' ' <"$work/t")"
done

run /usr/bin/time -f "%e %M" -o "$work/one" \
    "$mttx" reprocess --metrics-version 2 --dry-run "${places[@]}" >"$work/dry"
tail -1 "$work/dry" | sed 's/^/   /'
printf "dry run: %.1f s; peak RSS %.0f MiB\n" "$(awk '{print $1}' "$work/one")" \
    "$(echo "$(awk '{print $2}' "$work/one") / 1024" | bc -l)"
du -sh "$work" | sed 's/^/   facts and state: /'
