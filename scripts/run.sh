#!/usr/bin/env bash
# Runs the whole system: installs what is missing, uses the broker at RABBITMQ_URL when one answers
# there (else starts a private node with its data in .run/rabbitmq), builds, and starts the three
# services with their log lines prefixed by name. Ctrl-C stops everything cleanly.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh

configuration=${CONFIGURATION:-debug}
echo "building ($configuration)..."
swift build -c "$configuration"
bin=$(swift build -c "$configuration" --show-bin-path)

mkdir -p .run
url=${RABBITMQ_URL:-amqp://guest:guest@localhost:5672/%2f}
# host and port from amqp[s]://[user[:pass]@]host[:port][/vhost]
hostport=${url#*://}
hostport=${hostport##*@}
hostport=${hostport%%/*}
host=${hostport%%:*}
port=${hostport##*:}
[ "$port" != "$hostport" ] || port=5672

started_broker=""
if (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; then
    echo "using the broker that answers at $host:$port"
else
    echo "no broker at $host:$port: starting a private RabbitMQ node (data in .run/rabbitmq)..."
    if [ ! -f .run/rabbitmq/node.env ]; then
        RABBITMQ_NODE_PORT=$port scripts/rabbitmq-node.sh start .run/rabbitmq >/dev/null
    else
        scripts/rabbitmq-node.sh start .run/rabbitmq >/dev/null
    fi
    url=$(scripts/rabbitmq-node.sh url .run/rabbitmq)
    started_broker=yes
fi
export RABBITMQ_URL=$url
export USER_DB_URL=${USER_DB_URL:-sqlite:///.run/users.sqlite}
export ORDER_DB_URL=${ORDER_DB_URL:-sqlite:///.run/orders.sqlite}

pids=()
start() {
    local name=$1
    shift
    # A session of its own: Ctrl-C signals the terminal's whole process group, and a service that got that SIGINT
    # and then stop()'s SIGTERM would take the second signal as "exit now" and skip its graceful stop. The
    # prefixing sed ignores Ctrl-C, so the services' last lines still show.
    setsid "$bin/$name" "$@" > >(trap '' INT && exec sed -u "s/^/[$name] /") 2>&1 &
    pids+=($!)
}

stopping=""
stop() {
    [ -z "$stopping" ] || return 0
    stopping=yes
    # A second signal must not cut the stop short (`make` passes its SIGTERM on to this script, which the process
    # group's SIGTERM already reached; a second Ctrl-C is common): the services, then the servers, are stopped.
    trap '' INT TERM HUP
    echo "stopping..."
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    if [ -n "$started_broker" ]; then
        scripts/rabbitmq-node.sh stop .run/rabbitmq
    fi
    echo "stopped."
}
trap stop EXIT
trap 'exit 0' INT TERM

user_port=${USER_SERVICE_PORT:-8000}
start order-service --port "${ORDER_SERVICE_PORT:-8001}"
start notification-service --port "${NOTIFICATION_SERVICE_PORT:-8002}"
start user-service --port "$user_port"
echo "running: user API on http://localhost:$user_port (Ctrl-C stops everything)"
# Runs until Ctrl-C, or until a service exits on its own.
wait -n "${pids[@]}" || true
