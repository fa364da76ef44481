#!/usr/bin/env bash
# Installs what building, running and testing need, when it is missing: rabbitmq-c and SQLite headers,
# the RabbitMQ server, the PostgreSQL server (the tests and `make run-cluster` start private ones with
# scripts/postgres-node.sh), the sqlite3 shell, and the small tools the scripts use.
# Debian or Ubuntu; as root, or through sudo otherwise. Runs `apt-get update` before installing anything.
# Debian's postgresql package creates a cluster on port 5432 and may start it: a cluster that this script's
# install started is stopped again, so the machine runs no PostgreSQL service it did not run before.
# With --build-only, only what building (and the unit tests) need: no RabbitMQ or PostgreSQL server.
set -euo pipefail

build_only=false
[ "${1:-}" = "--build-only" ] && build_only=true

missing=()
pkg-config --exists librabbitmq 2>/dev/null || missing+=(librabbitmq-dev)
pkg-config --exists sqlite3 2>/dev/null || missing+=(libsqlite3-dev)
command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
if ! $build_only; then
    [ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] || command -v rabbitmq-server >/dev/null 2>&1 || missing+=(rabbitmq-server)
    compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql)
    command -v sqlite3 >/dev/null 2>&1 || missing+=(sqlite3)
    command -v python3 >/dev/null 2>&1 || missing+=(python3)
    command -v openssl >/dev/null 2>&1 || missing+=(openssl)  # the TLS tests make their certificates with it
fi

# The PostgreSQL clusters of the machine that run now ("15/main" ...).
online_postgres_clusters() {
    command -v pg_lsclusters >/dev/null 2>&1 || return 0
    pg_lsclusters -h 2>/dev/null | awk '$4 ~ /^online/ { print $1 "/" $2 }' || true
}

if [ ${#missing[@]} -gt 0 ]; then
    echo "installing: ${missing[*]}" >&2
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null 2>&1 || {
            echo "install-deps: not root and no sudo: install ${missing[*]} as root" >&2
            exit 1
        }
        sudo="sudo"
    fi
    export DEBIAN_FRONTEND=noninteractive
    postgres_before=$(online_postgres_clusters)
    $sudo apt-get update -qq
    # Debian starts rabbitmq-server as a system service on install; the scripts run their own nodes.
    $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    for cluster in $(online_postgres_clusters); do
        case " $(echo $postgres_before) " in *" $cluster "*) continue ;; esac
        echo "stopping the PostgreSQL cluster $cluster that the postgresql package started" >&2
        $sudo pg_ctlcluster "${cluster%%/*}" "${cluster#*/}" stop
    done
fi

if ! command -v swift >/dev/null 2>&1; then
    echo "swift is not on PATH: install a Swift 6 toolchain (https://www.swift.org/install/)" >&2
    exit 1
fi
