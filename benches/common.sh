# Sourced by the benchmark scripts (from the repository root): the PostgreSQL server to
# use, PostgreSQL started, the release build of mttx, and two small helpers.
server=${BENCH_SERVER:-postgres://postgres@127.0.0.1:5432}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/mttx-target}
bash scripts/ensure-postgres.sh
# The whole workspace, so that features resolve as in every other build (one DataFusion).
cargo build --release -q --workspace --bins --benches
mttx=$CARGO_TARGET_DIR/release/mttx
psql_() { psql -X -q -v ON_ERROR_STOP=1 "$@"; }
# Waits until URL answers (a server just started), for at most 20 s.
await_url() {
    for _ in $(seq 100); do curl -sf "$1" >/dev/null && return 0; sleep 0.2; done
    echo "nothing answers at $1" >&2
    return 1
}
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# The replica of query.sh and analytics.sh: query_set INCIDENTS WORK generates INCIDENTS
# incidents (--accounts 20 --weeks 26) into the database mttx_bench_query_INCIDENTS and folds
# them into WORK/facts (state in WORK/state.sqlite), unless WORK already holds them (a kept
# BENCH_KEEP=DIR); prints how long each step took. Sets $db and $url.
query_set() {
    db=mttx_bench_query_$1
    url=$server/$db
    local work=$2 t0 t1 t2
    [ -f "$work/ready-$1" ] && return
    rm -rf "$work/facts" "$work/state.sqlite"*
    psql_ "$server/postgres" -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
    t0=$(date +%s.%N)
    "$mttx" fixtures generate --incidents "$1" --accounts 20 --weeks 26 --source "$url" >/dev/null 2>&1
    psql_ "$url" -c "VACUUM ANALYZE"
    t1=$(date +%s.%N)
    "$mttx" etl run --once --workers 2 --source "$url" --facts "$work/facts" --state "$work/state.sqlite" >/dev/null 2>&1
    # Compacted, and only the live files left, so DuckDB's glob reads exactly the table.
    "$mttx" etl upkeep --retain-hours 0 --source "$url" --facts "$work/facts" --state "$work/state.sqlite" >/dev/null 2>&1
    t2=$(date +%s.%N)
    printf "== data set made: generate + VACUUM ANALYZE %.0f s, etl run + upkeep %.0f s\n" \
        "$(echo "$t1 - $t0" | bc -l)" "$(echo "$t2 - $t1" | bc -l)"
    touch "$work/ready-$1"
}
