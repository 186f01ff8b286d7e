#!/usr/bin/env bash
# Soak (not in CI): kill -9 `mttx etl run` at random moments while it backfills and then
# follows a PostgreSQL replica that a writer keeps appending to, restart it every time, and
# check that the facts equal those of one fresh, uninterrupted run over the same replica
# (every column of every row, read back with the `deltalake` package from PyPI).
#
#   bash benches/soak.sh [KILLS] [INCIDENTS]   (default: 100 kills, 3000 incidents)
#
# SOAK_BIN picks the mttx binary (default: the release build, built if missing); the seed
# of the kill moments is printed, SOAK_SEED repeats a run.
set -euo pipefail
cd "$(dirname "$0")/.."

kills=${1:-100}
incidents=${2:-3000}
server=${BENCH_SERVER:-postgres://postgres@127.0.0.1:5432}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/mttx-target}
bash scripts/ensure-postgres.sh
if [ -z "${SOAK_BIN:-}" ]; then
    cargo build --release -q --workspace --bins --benches
fi
mttx=${SOAK_BIN:-$CARGO_TARGET_DIR/release/mttx}
seed=${SOAK_SEED:-$RANDOM}
RANDOM=$seed
echo "== soak: $kills kills, $incidents incidents, seed $seed, $mttx"

venv=$HOME/.cache/mttx-soak-venv
if ! "$venv/bin/python" -c 'import deltalake' 2>/dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check 'deltalake==1.*' pyarrow
fi

db=mttx_soak
url=$server/$db
work=$(mktemp -d)
trap 'rm -rf "$work"; pkill -9 -f "$work" 2>/dev/null || true' EXIT
psql -X -q "$server/postgres" -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
"$mttx" fixtures generate --incidents "$incidents" --accounts 3 --weeks 8 --source "$url" >/dev/null 2>&1
# The generator writes ids itself; new rows take the ids after them.
psql -X -q "$url" -c "SELECT setval('incident_log_entries_id_seq', (SELECT max(id) FROM incident_log_entries))" >/dev/null

# A writer's commit: notifications for 20 random incidents, ids in any order.
append() {
    psql -X -q "$url" -c "INSERT INTO incident_log_entries (account_id, incident_id, type, created_at, agent_type, channel, user_id)
        SELECT i.account_id, i.id, 'notify', i.created_at + interval '90 minutes', 'system', 'email',
               (SELECT u.id FROM users u WHERE u.account_id = i.account_id ORDER BY u.id LIMIT 1)
        FROM incidents i ORDER BY random() LIMIT 20"
}

killed=0
start=$(date +%s)
while [ "$killed" -lt "$kills" ]; do
    "$mttx" etl run --workers 2 --source "$url" --facts "$work/killed" --state "$work/killed.sqlite" \
        >>"$work/etl.log" 2>&1 &
    pid=$!
    # Somewhere between 0.1 and 3 s in: during the backfill at first, while following later.
    sleep "$(awk -v r="$RANDOM" 'BEGIN { printf "%.2f", 0.1 + (r % 290) / 100 }')"
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    killed=$((killed + 1))
    [ $((killed % 5)) -eq 0 ] && append
    [ $((killed % 10)) -eq 0 ] && echo "   $killed kills, $(($(date +%s) - start)) s"
done
# Restarted once more, to the end; then one run that was never interrupted.
"$mttx" etl run --once --workers 2 --source "$url" --facts "$work/killed" --state "$work/killed.sqlite" >/dev/null 2>&1
"$mttx" etl run --once --workers 2 --source "$url" --facts "$work/fresh" --state "$work/fresh.sqlite" >/dev/null 2>&1

"$venv/bin/python" - "$work/killed" "$work/fresh" <<'EOF'
import sys
from deltalake import DeltaTable

def rows(path):
    t = DeltaTable(path).to_pyarrow_table()
    t = t.sort_by([("account_id", "ascending"), ("incident_id", "ascending")])
    return t

killed, fresh = rows(sys.argv[1]), rows(sys.argv[2])
assert killed.num_rows == fresh.num_rows, (killed.num_rows, fresh.num_rows)
cols = sorted(fresh.column_names)
different = [c for c in cols if killed[c].to_pylist() != fresh[c].to_pylist()]
print(f"== {fresh.num_rows} incidents; columns that differ after the kills: {different or 'none'}")
sys.exit(1 if different else 0)
EOF
entries=$(psql -X -At "$url" -c "SELECT count(*) FROM incident_log_entries")
echo "== $kills kill -9s over $(($(date +%s) - start)) s, $entries log entries: identical facts"
psql -X -q "$server/postgres" -c "DROP DATABASE IF EXISTS $db"
