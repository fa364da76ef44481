#!/usr/bin/env bash
# A private RabbitMQ node for development and tests: its own data directory,
# its own node name and free loopback ports, so it never touches a broker that
# is already running on the machine.
#
#   scripts/rabbitmq-node.sh start DIR    start (or restart) the node kept in DIR,
#                                         print its amqp:// URL
#   scripts/rabbitmq-node.sh stop DIR     stop it and wait until it is gone
#   scripts/rabbitmq-node.sh ctl DIR ...  run rabbitmqctl against it
#   scripts/rabbitmq-node.sh url DIR      print its amqp:// URL
#
# DIR/node.env holds the node's name and ports; a restart reuses them so that
# clients can reconnect to the same URL. RABBITMQ_NODE_PORT picks the AMQP port
# on the first start (default: a free one).
set -euo pipefail

cmd=${1:?usage: rabbitmq-node.sh start|stop|ctl|url DIR [args]}
dir=${2:?usage: rabbitmq-node.sh start|stop|ctl|url DIR [args]}
shift 2
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

rabbit_bin=/usr/lib/rabbitmq/bin
[ -x "$rabbit_bin/rabbitmq-server" ] || rabbit_bin=$(dirname "$(command -v rabbitmq-server 2>/dev/null || echo /usr/sbin/x)")
if [ ! -x "$rabbit_bin/rabbitmq-server" ]; then
    echo "rabbitmq-node: rabbitmq-server is not installed (apt-get install rabbitmq-server)" >&2
    exit 1
fi

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

if [ ! -f "$dir/node.env" ]; then
    amqp_port=${RABBITMQ_NODE_PORT:-$(free_port)}
    dist_port=$(free_port)
    while [ "$dist_port" = "$amqp_port" ]; do dist_port=$(free_port); done
    {
        echo "NODE_NAME=rabbit-$$-$amqp_port@localhost"
        echo "AMQP_PORT=$amqp_port"
        echo "DIST_PORT=$dist_port"
    } >"$dir/node.env"
fi
# shellcheck disable=SC1091
. "$dir/node.env"

# Everything the node reads or writes lives under $dir.
export HOME="$dir"
export RABBITMQ_NODENAME="$NODE_NAME"
export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
export RABBITMQ_NODE_PORT="$AMQP_PORT"
export RABBITMQ_DIST_PORT="$DIST_PORT"
export RABBITMQ_MNESIA_BASE="$dir/mnesia"
export RABBITMQ_LOG_BASE="$dir/log"
export RABBITMQ_PID_FILE="$dir/node.pid"
export RABBITMQ_CONF_ENV_FILE="$dir/rabbitmq-env.conf"
export RABBITMQ_CONFIG_FILE="$dir/rabbitmq"
export RABBITMQ_ADVANCED_CONFIG_FILE="$dir/advanced.config"
export RABBITMQ_ENABLED_PLUGINS_FILE="$dir/enabled_plugins"
export RABBITMQ_LOGS="$dir/log/node.log"
# Erlang writes crash dumps (of the node or of rabbitmqctl) into the working directory unless told otherwise.
export ERL_CRASH_DUMP="$dir/log/erl_crash.dump"

ctl() { "$rabbit_bin/rabbitmqctl" -n "$NODE_NAME" "$@"; }

url() { echo "amqp://guest:guest@127.0.0.1:$AMQP_PORT/%2f"; }

running() { [ -f "$dir/node.pid" ] && kill -0 "$(cat "$dir/node.pid")" 2>/dev/null; }

case "$cmd" in
start)
    if running; then url; exit 0; fi
    mkdir -p "$dir/mnesia" "$dir/log"
    : >"$dir/rabbitmq-env.conf"
    [ -f "$dir/enabled_plugins" ] || echo "[]." >"$dir/enabled_plugins"
    [ -f "$dir/advanced.config" ] || echo "[]." >"$dir/advanced.config"
    if [ ! -f "$dir/rabbitmq.conf" ]; then
        {
            echo "loopback_users = none"
            echo "listeners.tcp.1 = 127.0.0.1:$AMQP_PORT"
            echo "log.console = false"
            echo "log.file.level = warning"
            # A developer machine or CI box may have little free disk.
            echo "disk_free_limit.absolute = 50MB"
            [ -n "${RABBITMQ_EXTRA_CONF:-}" ] && printf '%s\n' "$RABBITMQ_EXTRA_CONF"
        } >"$dir/rabbitmq.conf"
    fi
    if [ ! -f "$dir/.erlang.cookie" ]; then
        head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$dir/.erlang.cookie"
        chmod 400 "$dir/.erlang.cookie"
    fi
    nohup "$rabbit_bin/rabbitmq-server" >"$dir/log/stdout.log" 2>&1 </dev/null &
    echo $! >"$dir/launcher.pid"
    # await_startup needs the pid file; the node writes it only once booted.
    for _ in $(seq 1 120); do
        if ctl -q await_startup --timeout 60 >/dev/null 2>&1; then url; exit 0; fi
        if ! kill -0 "$(cat "$dir/launcher.pid")" 2>/dev/null; then break; fi
        sleep 0.5
    done
    echo "rabbitmq-node: node did not start; last log lines:" >&2
    tail -n 20 "$dir/log/stdout.log" "$dir/log/node.log" >&2 2>/dev/null || true
    exit 1
    ;;
stop)
    pid=""
    [ -f "$dir/node.pid" ] && pid=$(cat "$dir/node.pid")
    [ -n "$pid" ] || { [ -f "$dir/launcher.pid" ] && pid=$(cat "$dir/launcher.pid"); }
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        # A node that no longer answers must not hang the caller: bounded, then signals.
        timeout 30 "$rabbit_bin/rabbitmqctl" -n "$NODE_NAME" -q stop >/dev/null 2>&1 || kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
    fi
    if [ -f "$dir/launcher.pid" ]; then kill -KILL "$(cat "$dir/launcher.pid")" 2>/dev/null || true; fi
    rm -f "$dir/node.pid" "$dir/launcher.pid"
    ;;
ctl) ctl "$@" ;;
url) url ;;
*) echo "rabbitmq-node: unknown command $cmd" >&2; exit 2 ;;
esac
