#!/usr/bin/env bash
# The benchmark: installs what is missing, builds in release mode, uses the broker at RABBITMQ_URL when one
# answers there (else starts a private RabbitMQ node on free loopback ports and stops it afterwards, whatever
# happens), and runs user-events-bench with the arguments given (`--help` lists them). Results go to
# bench-results/<time>/: table.txt, report.json, chart.svg and the services' logs.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh

echo "building (release)..."
swift build -c release
bin=$(swift build -c release --show-bin-path)

node_dir=""
cleanup() {
    if [ -n "$node_dir" ]; then
        scripts/rabbitmq-node.sh stop "$node_dir" >/dev/null 2>&1 || true
        rm -rf "$node_dir"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

answers() {
    # host and port from amqp[s]://[user[:pass]@]host[:port][/vhost]
    local hostport=${1#*://}
    hostport=${hostport##*@}
    hostport=${hostport%%/*}
    local host=${hostport%%:*} port=${hostport##*:}
    [ "$port" != "$hostport" ] || port=5672
    (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null
}

broker_args=()
if [ -n "${RABBITMQ_URL:-}" ] && answers "$RABBITMQ_URL"; then
    echo "using the broker that answers at RABBITMQ_URL (it should have no other consumers of queue_dispatch or queue_order)"
else
    node_dir=$(mktemp -d "${TMPDIR:-/tmp}/swift-user-events-bench-broker.XXXXXX")
    echo "starting a private RabbitMQ node..."
    RABBITMQ_URL=$(scripts/rabbitmq-node.sh start "$node_dir")
    export RABBITMQ_URL
    [ -f "$node_dir/node.pid" ] && broker_args=(--broker-pid "$(cat "$node_dir/node.pid")")
    echo "broker: $RABBITMQ_URL"
fi

"$bin/user-events-bench" --bin-dir "$bin" "${broker_args[@]}" "$@"
