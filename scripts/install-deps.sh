#!/usr/bin/env bash
# Installs what building, running and testing need, when it is missing:
# rabbitmq-c and SQLite headers, the RabbitMQ server, and the sqlite3 shell.
# With --build-only, only what building (and the unit tests) need: no RabbitMQ server.
set -euo pipefail

build_only=false
[ "${1:-}" = "--build-only" ] && build_only=true

missing=()
pkg-config --exists librabbitmq 2>/dev/null || missing+=(librabbitmq-dev)
pkg-config --exists sqlite3 2>/dev/null || missing+=(libsqlite3-dev)
command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
if ! $build_only; then
    [ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] || command -v rabbitmq-server >/dev/null 2>&1 || missing+=(rabbitmq-server)
    command -v sqlite3 >/dev/null 2>&1 || missing+=(sqlite3)
    command -v python3 >/dev/null 2>&1 || missing+=(python3)
    command -v openssl >/dev/null 2>&1 || missing+=(openssl)  # the TLS tests make their certificates with it
fi

if [ ${#missing[@]} -gt 0 ]; then
    echo "installing: ${missing[*]}" >&2
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq
    # Debian starts rabbitmq-server as a system service on install; we run our own node instead.
    $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v swift >/dev/null 2>&1; then
    echo "swift is not on PATH: install a Swift 6 toolchain (https://www.swift.org/install/)" >&2
    exit 1
fi
