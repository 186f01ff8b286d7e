#!/usr/bin/env bash
# Benchmark of PagerDuty's Analytics API against the native report for the same question,
# on query.sh's replica of INCIDENTS incidents (default 1,000,000): the 12 full weeks up to
# the last full week of the data, for the largest account, in UTC, per team:
#   PD      POST /analytics/metrics/incidents/teams  (Token token=…; the 12 weeks)
#   native  GET /api/v1/reports/incidents?group_by=team  (Bearer; the 12 weeks, the 12
#           weeks before them, and the account-wide norm of each)
# `mttx serve --cache-mib 0` computes every answer. benches/alternate.py asks the two in
# turn over one keep-alive connection per worker (concurrency 1, then 2) and prints p50/p99.
#
#   bash benches/analytics.sh [INCIDENTS]
#   BENCH_RUNS (timed requests of each call per worker, default 300), BENCH_WARMUP
#   (default 5), BENCH_KEEP=DIR (keep and reuse data in DIR, shared with query.sh)
set -euo pipefail
cd "$(dirname "$0")/.."

incidents=${1:-1000000}
runs=${BENCH_RUNS:-300}
warmup=${BENCH_WARMUP:-5}
port=18081
source benches/common.sh

if [ -n "${BENCH_KEEP:-}" ]; then work=$BENCH_KEEP; mkdir -p "$work"; else work=$(mktemp -d); fi
serving=
# The server is stopped however the script ends; the data is kept only with BENCH_KEEP.
stop() {
    if [ -n "$serving" ]; then kill "$serving" 2>/dev/null || true; fi
    if [ -z "${BENCH_KEEP:-}" ]; then rm -rf "$work"; fi
}
trap stop EXIT
query_set "$incidents" "$work"
account=$(psql_ -At "$url" -c "SELECT account_id FROM incidents GROUP BY 1 ORDER BY count(*) DESC LIMIT 1")
# The 12 full ISO weeks (UTC) up to the last full week of the account's data.
end=$(psql_ -At "$url" -c "SELECT date_trunc('week', max(created_at) AT TIME ZONE 'UTC')::date FROM incidents WHERE account_id = $account")
start=$(date -d "$end - 84 days" +%F)
mine=$(psql_ -At "$url" -c "SELECT count(*) FROM incidents WHERE account_id = $account AND created_at >= '$start' AND created_at < '$end'")
files=$(find "$work/facts" -name '*.parquet' | wc -l)
echo "== $incidents incidents, facts in $files Parquet files; account $account (the largest): $mine incidents from $start to $end (UTC)"

token=$("$mttx" token create --account "$account" --name bench-analytics --state "$work/state.sqlite" 2>/dev/null)
cat >"$work/calls.json" <<JSON
[
  {"name": "pd_teams", "method": "POST", "path": "/analytics/metrics/incidents/teams",
   "headers": {"Authorization": "Token token=$token", "Content-Type": "application/json"},
   "body": {"filters": {"created_at_start": "${start}T00:00:00Z", "created_at_end": "${end}T00:00:00Z"},
            "time_zone": "Etc/UTC"}},
  {"name": "native_team", "method": "GET",
   "path": "/api/v1/reports/incidents?from=$start&to=$end&tz=Etc/UTC&group_by=team",
   "headers": {"Authorization": "Bearer $token"}}
]
JSON
"$mttx" serve --listen "127.0.0.1:$port" --cache-mib 0 --source "$url" --facts "$work/facts" --state "$work/state.sqlite" >"$work/serve.log" 2>&1 &
serving=$!
await_url "http://127.0.0.1:$port/healthz"

# The same incidents in both: the teams' counts add up alike (incidents without a team are
# in no PD row, as in PagerDuty, and in the native report's group without a key).
ask() { curl -sS --fail-with-body -H "Authorization: Bearer $token" "$@"; }
pd=$(ask -H 'Content-Type: application/json' -d "$(python3 -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1]))[0]["body"]))' "$work/calls.json")" \
    "http://127.0.0.1:$port/analytics/metrics/incidents/teams" \
    | python3 -c 'import json,sys; d=json.load(sys.stdin)["data"]; print(len(d), sum(r["total_incident_count"] for r in d))')
native=$(ask "http://127.0.0.1:$port/api/v1/reports/incidents?from=$start&to=$end&tz=Etc/UTC&group_by=team" \
    | python3 -c 'import json,sys; d=json.load(sys.stdin); n=lambda r: int(r["metrics"]["incident_count"]["value"] or 0); g=[x for x in d["groups"] if x["key"] is not None]; print(len(g), sum(map(n, g)), n(d["total"]))')
echo "== teams and incidents in teams: PD $pd; native ${native% *} (account total ${native##* })"

echo "-- name requests p50_ms p99_ms mean_ms bytes (cache off, the two asked in turn)"
for c in 1 2; do
    echo "concurrency $c:"
    python3 benches/alternate.py "$work/calls.json" "http://127.0.0.1:$port" "$runs" "$warmup" "$c" | sed 's/^/   /' | tee "$work/c$c"
    pd50=$(awk '$1=="pd_teams"{print $3}' "$work/c$c"); n50=$(awk '$1=="native_team"{print $3}' "$work/c$c")
    pd99=$(awk '$1=="pd_teams"{print $4}' "$work/c$c"); n99=$(awk '$1=="native_team"{print $4}' "$work/c$c")
    echo "   ratio PD / native: p50 $(printf %.2f "$(echo "$pd50 / $n50" | bc -l)"), p99 $(printf %.2f "$(echo "$pd99 / $n99" | bc -l)")"
done
kill "$serving"; wait "$serving" 2>/dev/null || true; serving=
