#!/usr/bin/env bash
# A real hot standby for the replica tests: a primary PostgreSQL cluster on 127.0.0.1:5433 and
# a streaming replica of it (made with pg_basebackup) on 127.0.0.1:5434, both from Debian's
# PostgreSQL binaries, both trust auth for user postgres. The standby cancels conflicting
# queries quickly (max_standby_streaming_delay = 10ms) and does not hold back the primary's
# VACUUM (hot_standby_feedback = off), as a busy production replica does.
#
#   ensure-standby.sh            makes both and starts them (idempotent)
#   ensure-standby.sh restart    restarts the standby (fast shutdown), as a failover drill does
#   ensure-standby.sh stop       stops both
set -euo pipefail

# Outside $HOME: the postgres user must reach it when we run as root.
dir=${MTTX_STANDBY_DIR:-/var/tmp/mttx-standby-$(id -u)}
primary_port=${MTTX_STANDBY_PRIMARY_PORT:-5433}
standby_port=${MTTX_STANDBY_PORT:-5434}

bash "$(dirname "$0")/ensure-postgres.sh" # the server packages
version=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
bin=/usr/lib/postgresql/$version/bin

# PostgreSQL refuses to run as root: run its tools as the postgres user when we are root.
as_pg() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
ready() { pg_isready -q -h 127.0.0.1 -p "$1" 2>/dev/null; }
start() { # data directory, port
    as_pg "$bin/pg_ctl" -D "$1" -l "$1.log" -w -t 60 start >/dev/null \
        || { tail -n 20 "$1.log" >&2; exit 1; }
    for _ in $(seq 1 30); do ready "$2" && return; sleep 1; done
    echo "ensure-standby: nothing answers on port $2; see $1.log" >&2
    exit 1
}

case "${1:-ensure}" in
restart)
    as_pg "$bin/pg_ctl" -D "$dir/standby" -l "$dir/standby.log" -m fast -w -t 60 restart >/dev/null
    for _ in $(seq 1 30); do ready "$standby_port" && exit 0; sleep 1; done
    echo "ensure-standby: the standby did not come back; see $dir/standby.log" >&2
    exit 1
    ;;
stop)
    for c in standby primary; do
        [ -d "$dir/$c" ] && as_pg "$bin/pg_ctl" -D "$dir/$c" -m fast -w stop >/dev/null || true
    done
    exit 0
    ;;
ensure) ;;
*)
    echo "usage: ensure-standby.sh [restart|stop]" >&2
    exit 2
    ;;
esac

mkdir -p "$dir"
[ "$(id -u)" = 0 ] && chown postgres: "$dir"

if ! [ -f "$dir/primary/PG_VERSION" ]; then
    echo "ensure-standby: making the primary cluster in $dir/primary" >&2
    rm -rf "$dir/primary" "$dir/standby"
    as_pg "$bin/initdb" -D "$dir/primary" -U postgres -A trust >/dev/null
    cat >>"$dir/primary/postgresql.conf" <<EOF
port = $primary_port
listen_addresses = '127.0.0.1'
unix_socket_directories = '$dir'
shared_buffers = 32MB
wal_level = replica
max_wal_senders = 4
wal_keep_size = 256MB
fsync = off
EOF
fi
ready "$primary_port" || start "$dir/primary" "$primary_port"

if ! [ -f "$dir/standby/PG_VERSION" ]; then
    echo "ensure-standby: making the standby in $dir/standby with pg_basebackup" >&2
    rm -rf "$dir/standby"
    as_pg "$bin/pg_basebackup" -h 127.0.0.1 -p "$primary_port" -U postgres \
        -D "$dir/standby" -R -X stream -c fast
    cat >>"$dir/standby/postgresql.conf" <<EOF
port = $standby_port
hot_standby = on
hot_standby_feedback = off
max_standby_streaming_delay = 10ms
max_standby_archive_delay = 10ms
EOF
fi
ready "$standby_port" || start "$dir/standby" "$standby_port"

in_recovery=$(psql -qAtX -h 127.0.0.1 -p "$standby_port" -U postgres -c 'SELECT pg_is_in_recovery()')
[ "$in_recovery" = t ] || {
    echo "ensure-standby: port $standby_port answers but is not a standby; remove $dir and rerun" >&2
    exit 1
}
echo "ensure-standby: primary on 127.0.0.1:$primary_port, hot standby on 127.0.0.1:$standby_port" >&2
