#!/usr/bin/env bash
# Benchmark of freshness under a steady write load: a generated replica, `mttx etl run`
# following it (polling every 0.5 s) and `mttx serve` answering; benches/freshness.py writes
# RATE new incidents a second for SECONDS and times each from its commit to the first API
# answer that counts it. Goal: p99 <= 5 s.
#
#   bash benches/freshness.sh [SECONDS] [RATE]   (default 60 s at 50 entries/s)
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-60}
rate=${2:-50}
source benches/common.sh
python3 -c "import psycopg" 2>/dev/null || pip install -q "psycopg[binary]"
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
db=mttx_bench_freshness
url=$server/$db
psql_ "$server/postgres" -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
"$mttx" fixtures generate --incidents 20000 --accounts 1 --weeks 4 --until "$(date -u +%F)" --source "$url" >/dev/null 2>&1
places=(--source "$url" --facts "$work/facts" --state "$work/state.sqlite")
"$mttx" etl run --once "${places[@]}" >/dev/null 2>&1
token=$("$mttx" token create --account 1 --name bench "${places[@]}" 2>/dev/null)
"$mttx" etl run --poll-seconds 0.5 "${places[@]}" >"$work/etl.log" 2>&1 &
"$mttx" serve --listen 127.0.0.1:18081 "${places[@]}" >"$work/serve.log" 2>&1 &
await_url "http://127.0.0.1:18081/healthz"
echo "== $rate incidents/s for $seconds s into a replica of 20000 incidents; etl run polling every 0.5 s; serve following every 1 s"
python3 benches/freshness.py "$url" http://127.0.0.1:18081 "$token" "$seconds" "$rate"
kill $(jobs -p) 2>/dev/null || true
wait 2>/dev/null || true
psql_ "$server/postgres" -c "DROP DATABASE $db WITH (FORCE)" 2>/dev/null || true
