#!/bin/sh
# Project-local PostgreSQL 15 in build/pg: 127.0.0.1:15432 and a unix socket
# in build/pg.  Usage: pg.sh start|stop|migrate|psql [args]|status
# As root, the cluster runs as the "postgres" user (initdb refuses root).
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
dir=$top/build/pg
data=$dir/data
port=${PGPORT_NUTRIPRO:-15432}
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)

if [ -z "$bin" ]; then
    echo "pg: no PostgreSQL server (apt-get install postgresql)" >&2
    exit 1
fi

as_owner() {
    if [ "$(id -u)" = 0 ]; then
        su postgres -s /bin/sh -c "$*"
    else
        sh -c "$*"
    fi
}

psql_su() {
    PGOPTIONS='-c client_min_messages=warning' psql -X -q -h "$dir" -p "$port" -U postgres "$@"
}

init() {
    [ -f "$data/PG_VERSION" ] && return 0
    mkdir -p "$dir"
    "$top/scripts/pki.sh" >/dev/null
    if [ "$(id -u)" = 0 ]; then
        chown postgres "$dir"
        chmod 755 "$dir"
    fi
    as_owner "'$bin/initdb' -D '$data' -U postgres -A trust -E UTF8 \
        --locale=C.UTF-8 >'$dir/initdb.log' 2>&1" || {
        cat "$dir/initdb.log" >&2
        exit 1
    }
    cat >> "$data/postgresql.conf" <<CONF
# nutripro dev cluster
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
max_connections = 300
synchronous_commit = off
ssl = on
ssl_cert_file = '$top/build/pki/postgres.crt'
ssl_key_file = '$top/build/pki/postgres.key'
ssl_ca_file = '$top/build/pki/infra-ca.crt'
log_min_messages = warning
CONF
}

start() {
    init
    if as_owner "'$bin/pg_ctl' -D '$data' status" >/dev/null 2>&1; then
        return 0
    fi
    as_owner "'$bin/pg_ctl' -D '$data' -l '$dir/postgres.log' -w -t 60 \
        start" >/dev/null || {
        tail -20 "$dir/postgres.log" >&2
        exit 1
    }
    echo "pg: running on 127.0.0.1:$port and $dir/.s.PGSQL.$port"
}

stop() {
    [ -f "$data/PG_VERSION" ] || return 0
    as_owner "'$bin/pg_ctl' -D '$data' status" >/dev/null 2>&1 || return 0
    as_owner "'$bin/pg_ctl' -D '$data' -m fast -w stop" >/dev/null
    echo "pg: stopped"
}

# applies sql/NNN_*.sql in order, each once, each in one transaction
migrate() {
    start
    psql_su -d postgres -tAc \
        "SELECT 1 FROM pg_database WHERE datname = 'nutripro'" | grep -q 1 \
        || psql_su -d postgres -c "CREATE DATABASE nutripro"
    psql_su -d nutripro -c "CREATE TABLE IF NOT EXISTS schema_migrations (
        filename text PRIMARY KEY,
        applied_at timestamptz NOT NULL DEFAULT now())"
    for f in "$top"/sql/[0-9][0-9][0-9]_*.sql; do
        name=$(basename "$f")
        done=$(psql_su -d nutripro -tAc \
            "SELECT 1 FROM schema_migrations WHERE filename = '$name'")
        [ "$done" = 1 ] && continue
        psql_su -d nutripro -v ON_ERROR_STOP=1 -1 -f "$f" \
            -c "INSERT INTO schema_migrations (filename) VALUES ('$name')" \
            >/dev/null
        echo "pg: applied $name"
    done
}

cmd=${1:-start}
[ $# -gt 0 ] && shift

case $cmd in
    start) start ;;
    stop) stop ;;
    migrate) migrate ;;
    status) as_owner "'$bin/pg_ctl' -D '$data' status" ;;
    psql) psql_su -d nutripro "$@" ;;
    *) echo "usage: $0 start|stop|migrate|status|psql" >&2; exit 2 ;;
esac
