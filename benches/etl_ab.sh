#!/usr/bin/env bash
# Backfill variants in alternating rounds, against their floor in each round: for a machine
# whose speed moves from minute to minute, where only pairs taken close together compare.
# Each round runs `psql \copy (SELECT * FROM incident_log_entries) TO /dev/null`, then
# `mttx etl run --once` into fresh facts once per variant, in the order given. A variant is
# `LABEL|ENVIRONMENT|ARGUMENTS`: ENVIRONMENT is `NAME=VALUE` words for the run (or empty),
# ARGUMENTS more words for `etl run`. Prints each run (wall, user and system CPU, peak RSS)
# and then each variant's medians, its ETL / COPY ratio (median of the rounds' ratios, each
# against its own round's COPY) and in how many rounds it beat the first variant.
#
#   bash benches/etl_ab.sh DATABASE_URL ROUNDS VARIANT...
#   bash benches/etl_ab.sh postgres://postgres@127.0.0.1:5432/b10 6 \
#       "2 workers||--workers 2" "3 workers||--workers 3" \
#       "purge 1s|MIMALLOC_PURGE_DELAY=1000|--workers 2"
#
# The replica must exist (`mttx fixtures generate … --source URL`, then VACUUM ANALYZE).
set -euo pipefail
cd "$(dirname "$0")/.."

[ $# -ge 3 ] || { sed -n 2,16p "$0"; exit 2; }
url=$1
rounds=$2
shift 2
variants=("$@")
source benches/common.sh
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
entries=$(psql_ -At "$url" -c "SELECT count(*) FROM incident_log_entries")
echo "== $entries log entries, $rounds rounds, ${#variants[@]} variants"

for round in $(seq "$rounds"); do
    /usr/bin/time -f "%e" -o "$work/one" \
        psql -X -q -v ON_ERROR_STOP=1 "$url" -c "\\copy (SELECT * FROM incident_log_entries) TO '/dev/null'"
    copy=$(cat "$work/one")
    echo "$copy" >>"$work/copy"
    printf "round %s: COPY %.2f s\n" "$round" "$copy"
    for i in "${!variants[@]}"; do
        IFS='|' read -r label envs args <<<"${variants[$i]}"
        rm -rf "$work/facts" "$work/state.sqlite"*
        # shellcheck disable=SC2086 # words on purpose
        env $envs /usr/bin/time -f "%e %U %S %M" -o "$work/one" \
            "$mttx" etl run --once $args --source "$url" --facts "$work/facts" \
            --state "$work/state.sqlite" >"$work/summary" 2>"$work/log" ||
            { cat "$work/log" >&2; exit 1; }
        read -r wall user sys rss <"$work/one"
        echo "$wall" >>"$work/wall.$i"
        echo "$user + $sys" | bc -l >>"$work/cpu.$i"
        echo "$rss" >>"$work/rss.$i"
        echo "$wall / $copy" | bc -l >>"$work/ratio.$i"
        printf "  %-28s %6.2f s  ETL/COPY %.2f  user %.1f s  sys %.1f s  peak RSS %.0f MiB  (%s)\n" \
            "$label" "$wall" "$(echo "$wall / $copy" | bc -l)" "$user" "$sys" "$(echo "$rss / 1024" | bc -l)" \
            "$(grep -m1 -o '[0-9,]* incidents written' "$work/summary" || echo '?')"
    done
done

printf "\nCOPY p50 %.2f s (%s to %s)\n" "$(median <"$work/copy")" "$(sort -g "$work/copy" | head -1)" \
    "$(sort -g "$work/copy" | tail -1)"
for i in "${!variants[@]}"; do
    IFS='|' read -r label _ _ <<<"${variants[$i]}"
    won=$(paste "$work/wall.0" "$work/wall.$i" | awk '$2 < $1' | wc -l)
    printf "%-28s wall p50 %.2f s (%s to %s)  ETL/COPY p50 %.2f  CPU p50 %.1f s  peak RSS %.0f to %.0f MiB  faster than the first in %s of %s\n" \
        "$label" "$(median <"$work/wall.$i")" "$(sort -g "$work/wall.$i" | head -1)" "$(sort -g "$work/wall.$i" | tail -1)" \
        "$(median <"$work/ratio.$i")" "$(median <"$work/cpu.$i")" \
        "$(echo "$(sort -g "$work/rss.$i" | head -1) / 1024" | bc -l)" \
        "$(echo "$(sort -g "$work/rss.$i" | tail -1) / 1024" | bc -l)" "$won" "$rounds"
done
