#!/usr/bin/env bash
# Rolling restart (not in CI): two `mttx serve` processes behind HAProxy (Debian's), round
# robin, health-checked on /readyz; a steady load of uncached reports goes through HAProxy
# while each server in turn gets SIGTERM, drains, exits and is started again. Prints the
# requests sent, the answers by status and the failed requests (the goal is 0).
#
#   bash benches/rolling.sh [ROUNDS] [THREADS]   (default: 3 rounds of A-then-B, 8 clients)
#
# ROLLING_BIN picks the mttx binary (default: the release build, built if missing).
set -euo pipefail
cd "$(dirname "$0")/.."

rounds=${1:-3}
threads=${2:-8}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/mttx-target}
if ! command -v haproxy >/dev/null; then
    if [ "$(id -u)" = 0 ]; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q haproxy >/dev/null
    else
        echo "install HAProxy first (apt-get install haproxy)" >&2
        exit 1
    fi
fi
if [ -z "${ROLLING_BIN:-}" ]; then
    cargo build --release -q --workspace --bins --benches
fi
mttx=${ROLLING_BIN:-$CARGO_TARGET_DIR/release/mttx}

work=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; wait 2>/dev/null; rm -rf "$work"' EXIT
cd "$work"
"$mttx" fixtures generate --incidents 4000 --weeks 16 >/dev/null 2>&1
"$mttx" etl run --once >/dev/null 2>&1
token=$("$mttx" token create --account 1 | tail -n 1)

ports=(18181 18182)
front=18180
cat >haproxy.cfg <<CFG
global
    maxconn 256
    stats socket $work/haproxy.sock mode 600 level admin
defaults
    mode http
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    # A request the chosen server refused, reset or closed without answering is sent again,
    # to the other server: every report call is a GET, safe to repeat.
    retries 3
    option redispatch 1
    retry-on conn-failure empty-response
    option http-keep-alive
frontend api
    bind 127.0.0.1:$front
    default_backend mttx
backend mttx
    balance roundrobin
    option httpchk GET /readyz
    http-check expect status 200
    default-server inter 250ms fall 1 rise 2
    server a 127.0.0.1:${ports[0]} check
    server b 127.0.0.1:${ports[1]} check
CFG

start_server() { # index
    "$mttx" serve --listen "127.0.0.1:${ports[$1]}" --cache-mib 0 --shutdown-seconds 30 \
        >>"serve$1.log" 2>&1 &
    spid[$1]=$!
    pids+=("$!")
    until curl -sf "http://127.0.0.1:${ports[$1]}/readyz" >/dev/null; do sleep 0.1; done
}
declare -a spid
start_server 0
start_server 1
haproxy -f haproxy.cfg -D -p haproxy.pid
pids+=("$(cat haproxy.pid)")
sleep 1

python3 "$OLDPWD/benches/rolling_load.py" "127.0.0.1:$front" "$token" "$threads" "$work/stop" >load.json &
load=$!
sleep 3
t0=$(date +%s.%N)
for r in $(seq 1 "$rounds"); do
    for i in 0 1; do
        kill -TERM "${spid[$i]}"
        wait "${spid[$i]}" || { echo "server $i exited with $?" >&2; exit 1; }
        start_server "$i"
        # Back in HAProxy's rotation (rise 2 x 250 ms) before the other one goes.
        sleep 1.5
    done
    echo "round $r: both servers restarted"
done
t1=$(date +%s.%N)
sleep 2
touch stop
wait "$load"
printf "== %d rolling restarts of 2 servers in %.1f s, %d clients\n" "$((rounds * 2))" \
    "$(echo "$t1 - $t0" | bc -l)" "$threads"
cat load.json
echo "-- how each stop ended (serve's own log)"
grep -ho "every request received was answered\|requests still running" serve*.log | sort | uniq -c
echo "-- HAProxy: requests per server, retries and redispatches (connections refused or cut)"
python3 - "$work/haproxy.sock" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall(b"show stat\n")
data = b""
while chunk := s.recv(65536):
    data += chunk
rows = [l.split(",") for l in data.decode().splitlines() if l]
head = rows[0]
for r in rows[1:]:
    row = dict(zip(head, r))
    if row["# pxname"] == "mttx":
        print(f'{row["svname"]:8} requests {row["stot"]:>6}  retries {row["wretr"] or 0:>3}  redispatches {row["wredis"] or 0:>3}  5xx {row["hrsp_5xx"] or 0}')
PY
python3 -c 'import json,sys; d=json.load(open("load.json")); bad=sum(d["failures"].values())+sum(v for k,v in d["statuses"].items() if k!="200"); print("failed requests:", bad); sys.exit(1 if bad else 0)'
