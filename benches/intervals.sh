#!/usr/bin/env bash
# The cost of the changes' intervals and verdicts, end to end: two `mttx serve` over the same
# facts with the answer cache off, one judging changes (--min-sample 10, the default) and one
# with a threshold no sample reaches (--min-sample 1000000000: every verdict
# insufficient_data, no interval computed). The team weekly report of the largest account
# (group_by=team, the shape the dashboard and weekly report ask for) is asked of each in
# turn, RUNS times; reports the p50 of each and their ratio. Goal: at most 1.20.
#
#   bash benches/intervals.sh [INCIDENTS]   (default 1000000; BENCH_RUNS default 100)
set -euo pipefail
cd "$(dirname "$0")/.."

incidents=${1:-1000000}
runs=${BENCH_RUNS:-100}
tz=Europe/Berlin
account=1
source benches/common.sh
if [ -n "${BENCH_KEEP:-}" ]; then work=$BENCH_KEEP; mkdir -p "$work"; else
    work=$(mktemp -d); trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT; fi
query_set "$incidents" "$work"
monday=$(psql_ -At "$url" -c "SELECT (date_trunc('week', max(created_at) AT TIME ZONE '$tz') - interval '7 days')::date FROM incidents WHERE account_id = $account")
token=$("$mttx" token create --account "$account" --name bench --state "$work/state.sqlite" 2>/dev/null)
places=(--source "$url" --facts "$work/facts" --state "$work/state.sqlite" --cache-mib 0)
"$mttx" serve --listen 127.0.0.1:18082 --min-sample 10 "${places[@]}" >"$work/with.log" 2>&1 &
"$mttx" serve --listen 127.0.0.1:18083 --min-sample 1000000000 "${places[@]}" >"$work/without.log" 2>&1 &
for port in 18082 18083; do
    await_url "http://127.0.0.1:$port/healthz"
done
path="/api/v1/reports/incidents?from=$monday&to=$(date -d "$monday + 7 days" +%F)&tz=$tz&group_by=team"
ask() { curl -sf -o /dev/null -w "%{time_total}\n" -H "Authorization: Bearer $token" "http://127.0.0.1:$1$path"; }
for port in 18082 18083; do for _ in 1 2 3; do ask "$port" >/dev/null; done; done
: >"$work/with"; : >"$work/without"
for _ in $(seq "$runs"); do
    ask 18082 >>"$work/with"
    ask 18083 >>"$work/without"
done
judged=$(curl -sf -H "Authorization: Bearer $token" "http://127.0.0.1:18082$path" \
    | python3 -c "import json,sys; b=json.load(sys.stdin); rows=[b['total']]+b['groups']; print(sum(1 for r in rows for m in r['metrics'].values() if m.get('interval')))")
with=$(median <"$work/with"); without=$(median <"$work/without")
printf "team weekly report (week of %s, %s intervals in the answer): p50 with intervals %.1f ms, without %.1f ms; ratio %.2f (goal <= 1.20)\n" \
    "$monday" "$judged" "$(echo "$with * 1000" | bc -l)" "$(echo "$without * 1000" | bc -l)" "$(echo "$with / $without" | bc -l)"
