# Sourced by the benchmark scripts (from the repository root): the PostgreSQL server to
# use, PostgreSQL started, the release build of mttx, and two small helpers.
server=${BENCH_SERVER:-postgres://postgres@127.0.0.1:5432}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/mttx-target}
bash scripts/ensure-postgres.sh
cargo build --release -q -p mttx
mttx=$CARGO_TARGET_DIR/release/mttx
psql_() { psql -X -q -v ON_ERROR_STOP=1 "$@"; }
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
