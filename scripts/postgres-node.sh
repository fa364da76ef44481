#!/usr/bin/env bash
# A private, throwaway PostgreSQL server for tests and `make run-cluster`: its own data directory, a free
# loopback port and its socket directory kept with the data, so it never needs or touches a PostgreSQL
# service of the machine (Debian's `postgresql` package may have created one on 5432: it stays as it is).
#
#   scripts/postgres-node.sh start DIR          create the server kept in DIR (the first time) and start it,
#                                               print its base URL, postgres://USER:PASSWORD@127.0.0.1:PORT
#   scripts/postgres-node.sh stop DIR           stop it (fast shutdown: sessions are cut, committed data
#                                               stays) and wait until it is gone
#   scripts/postgres-node.sh url DIR [DATABASE] print the base URL, or with DATABASE the URL of that database
#   scripts/postgres-node.sh psql DIR [ARGS]    run psql as the superuser over the server's socket (database
#                                               `postgres` unless ARGS name another)
#   scripts/postgres-node.sh destroy DIR        stop it and delete its data and DIR
#
# The first start creates a login role (CREATEDB, password auth over TCP) and, owned by it, the databases
# `users` and `orders`, so the services get `$(scripts/postgres-node.sh url DIR)/users` (USER_DB_URL) and
# `.../orders` (ORDER_DB_URL). A test that wants a database of its own creates it as that role
# (CREATE DATABASE over the URL of `postgres`) or with `psql DIR -c 'CREATE DATABASE x OWNER ...'`.
# The superuser (`postgres`) has no password and is reachable only through the socket (trust auth, socket
# directory readable by the server's user alone).
#
# DIR/postgres.env keeps the port, role and password; a restart reuses them, so clients reconnect to the
# same URL. Settings read on the first start only: POSTGRES_NODE_PORT (default: a free port),
# POSTGRES_NODE_USER (default `app`), POSTGRES_NODE_PASSWORD (default: random), POSTGRES_NODE_DATABASES
# (default `users orders`), POSTGRES_NODE_FSYNC (default `on`; `off` is faster and loses nothing when only
# processes die, but may lose the last commits if the machine itself crashes).
#
# initdb and postgres refuse to run as root: as root the server runs as the `postgres` user (created by
# Debian's postgresql package) through runuser, and DIR is handed to that user. When that user cannot reach
# DIR (a parent such as /root is closed to others) or DIR's path is too long for a socket, the data lives in
# a directory of its own under /tmp, named in DIR/postgres.env and removed by `destroy`.
#
# Time, measured on a busy 2-core machine: first start (initdb included) 3-5 s, restart under 1 s, stop
# 1-4 s (the shutdown checkpoint). Output: the URL on stdout, errors on stderr; exit status 0, 1 on failure, 2 on usage.
set -euo pipefail

usage="usage: postgres-node.sh start|stop|destroy DIR | url DIR [DATABASE] | psql DIR [ARGS]"
cmd=${1:?$usage}
dir=${2:?$usage}
shift 2

say() { echo "postgres-node: $*" >&2; }
die() { say "$*"; exit 1; }

bin=${POSTGRES_BIN:-}
if [ -z "$bin" ]; then
    for candidate in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k5 -n -r); do
        [ -x "$candidate/initdb" ] && { bin=$candidate; break; }
    done
fi
[ -n "$bin" ] || { initdb=$(command -v initdb 2>/dev/null) && bin=$(dirname "$initdb"); } || true
[ -n "$bin" ] && [ -x "$bin/initdb" ] && [ -x "$bin/pg_ctl" ] ||
    die "PostgreSQL server binaries not found (apt-get install postgresql, or set POSTGRES_BIN)"

# Commands that create or run the server run as the `postgres` user when we are root.
as_server_user() {
    if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

env_file() { echo "$dir/postgres.env"; }

load_env() {
    [ -f "$(env_file)" ] || die "no server in $dir (start it first)"
    # shellcheck disable=SC1090
    . "$(env_file)"
}

running() { [ -f "$HOME_DIR/data/postmaster.pid" ] && as_server_user "$bin/pg_ctl" -D "$HOME_DIR/data" status >/dev/null 2>&1; }

url() { echo "postgres://$DB_USER:$DB_PASSWORD@127.0.0.1:$PORT${1:+/$1}"; }

superuser_psql() {
    PGHOST="$HOME_DIR" PGPORT="$PORT" PGUSER=postgres PGDATABASE=${PGDATABASE:-postgres} "$bin/psql" -X "$@"
}

# The first start: where the data lives, the port and the role; written to DIR/postgres.env.
create_env() {
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    local home=$dir
    if [ "$(id -u)" -eq 0 ]; then
        id postgres >/dev/null 2>&1 || die "the postgres user is missing (apt-get install postgresql creates it)"
        chown postgres: "$dir"
        chmod 700 "$dir"
    fi
    # The socket path ($home/.s.PGSQL.PORT) must fit in 107 bytes.
    if ! as_server_user test -w "$dir" -a -x "$dir" 2>/dev/null || [ ${#dir} -gt 80 ]; then
        home=$(mktemp -d /tmp/postgres-node.XXXXXX)
        [ "$(id -u)" -ne 0 ] || chown postgres: "$home"
        say "the server's user cannot use $dir: its data lives in $home"
    fi
    local port=${POSTGRES_NODE_PORT:-$(free_port)}
    local password=${POSTGRES_NODE_PASSWORD:-$(head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n')}
    (
        umask 077
        {
            echo "HOME_DIR=$home"
            echo "PORT=$port"
            echo "DB_USER=${POSTGRES_NODE_USER:-app}"
            echo "DB_PASSWORD=$password"
            echo "DATABASES=\"${POSTGRES_NODE_DATABASES:-users orders}\""
        } >"$dir/postgres.env.tmp"
    )
    mv "$dir/postgres.env.tmp" "$(env_file)"
}

init_cluster() {
    say "creating a PostgreSQL server in $HOME_DIR/data..."
    # --no-sync: a throwaway server need not wait for initdb's files to reach the disk.
    if ! as_server_user "$bin/initdb" -D "$HOME_DIR/data" -U postgres --auth-local=trust \
        --auth-host=scram-sha-256 --encoding=UTF8 --no-locale --no-sync >"$HOME_DIR/initdb.log" 2>&1; then
        cat "$HOME_DIR/initdb.log" >&2
        die "initdb failed"
    fi
    as_server_user tee -a "$HOME_DIR/data/postgresql.conf" >/dev/null <<EOF

# postgres-node.sh: a private server on loopback, its socket beside its data
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = '$HOME_DIR'
unix_socket_permissions = 0700
max_connections = 200
fsync = ${POSTGRES_NODE_FSYNC:-on}
log_min_messages = warning
log_line_prefix = '%m [%p] '
EOF
}

case "$cmd" in
start)
    [ -f "$dir/postgres.env" ] || create_env
    dir=$(cd "$dir" && pwd)
    load_env
    if running; then url; exit 0; fi
    [ -f "$HOME_DIR/data/PG_VERSION" ] || init_cluster
    # A server that died leaves its pid file; pg_ctl checks whether that process still runs.
    if ! as_server_user "$bin/pg_ctl" -D "$HOME_DIR/data" -l "$HOME_DIR/postgres.log" -w -t 60 -s start >/dev/null 2>&1; then
        say "the server did not start; last log lines:"
        tail -n 20 "$HOME_DIR/postgres.log" >&2 2>/dev/null || true
        exit 1
    fi
    # The role and databases, created when missing (so also after a start that was interrupted).
    superuser_psql -q -v ON_ERROR_STOP=1 -v role="$DB_USER" -v password="$DB_PASSWORD" -v databases="$DATABASES" \
        >/dev/null <<'SQL' || die "could not create the role and databases"
SELECT format('CREATE ROLE %I LOGIN CREATEDB PASSWORD %L', :'role', :'password')
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'role') \gexec
SELECT format('CREATE DATABASE %I OWNER %I', name, :'role')
FROM unnest(string_to_array(:'databases', ' ')) AS name
WHERE name <> '' AND NOT EXISTS (SELECT FROM pg_database WHERE datname = name) \gexec
SQL
    url
    ;;
stop)
    [ -f "$(env_file)" ] || exit 0
    load_env
    [ -f "$HOME_DIR/data/postmaster.pid" ] || exit 0
    pid=$(head -n 1 "$HOME_DIR/data/postmaster.pid")
    if ! as_server_user "$bin/pg_ctl" -D "$HOME_DIR/data" -m fast -w -t 30 -s stop >/dev/null 2>&1; then
        # A server that no longer answers must not hang the caller.
        kill -KILL "$pid" 2>/dev/null || true
    fi
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    ! kill -0 "$pid" 2>/dev/null || die "the server (pid $pid) did not stop"
    ;;
destroy)
    if [ -f "$(env_file)" ]; then
        "$0" stop "$dir"
        load_env
        rm -rf "$HOME_DIR"
    fi
    rm -rf "$dir"
    ;;
url)
    load_env
    url "${1:-}"
    ;;
psql)
    load_env
    superuser_psql "$@"
    ;;
*) say "unknown command $cmd"; echo "$usage" >&2; exit 2 ;;
esac
