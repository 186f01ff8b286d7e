#!/usr/bin/env bash
# Benchmark of `mttx fixtures generate` into PostgreSQL, side by side with its floor:
# PostgreSQL's own COPY FROM of the very same rows (dumped from the generated replica) into
# an empty replica with the same schema and indexes. Prints both times, the ratio, the
# generator's rate, its peak RSS and the replica's size.
#
#   bash benches/generate.sh [INCIDENTS]    (default 1300000: about 10M log entries)
set -euo pipefail
cd "$(dirname "$0")/.."

incidents=${1:-1300000}
source benches/common.sh
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

for db in mttx_bench_gen mttx_bench_copy; do
    psql_ "$server/postgres" -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
done

echo "== mttx fixtures generate --incidents $incidents --accounts 20 --weeks 26"
/usr/bin/time -f "%e s elapsed, peak RSS %M KiB" -o "$work/time" \
    "$mttx" fixtures generate --incidents "$incidents" --accounts 20 --weeks 26 \
    --source "$server/mttx_bench_gen" 2>/dev/null | tee "$work/summary"
cat "$work/time"
gen_s=$(awk '{print $1}' "$work/time")

echo "== the same rows through psql COPY FROM (schema and indexes as the generator's)"
"$mttx" fixtures generate --incidents 0 --accounts 20 --weeks 26 --source "$server/mttx_bench_copy" >/dev/null 2>&1
psql_ "$server/mttx_bench_gen" -c "\\copy incidents TO '$work/incidents.tsv'" \
    -c "\\copy incident_log_entries TO '$work/entries.tsv'"
start=$(date +%s.%N)
psql_ "$server/mttx_bench_copy" -c "\\copy incidents FROM '$work/incidents.tsv'" \
    -c "\\copy incident_log_entries FROM '$work/entries.tsv'" -c "ANALYZE"
end=$(date +%s.%N)
copy_s=$(echo "$end - $start" | bc -l)
entries=$(psql_ -At "$server/mttx_bench_gen" -c "SELECT count(*) FROM incident_log_entries")
printf "COPY FROM: %.1f s\n" "$copy_s"
printf "entries %s; generate %.1f s (%.0f entries/s); COPY FROM %.1f s; ratio generate/COPY %.2f\n" \
    "$entries" "$gen_s" "$(echo "$entries / $gen_s" | bc -l)" "$copy_s" "$(echo "$gen_s / $copy_s" | bc -l)"
psql_ "$server/postgres" -c "DROP DATABASE mttx_bench_copy"
