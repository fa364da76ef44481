#!/usr/bin/env bash
# The benchmark: installs what is missing, builds in release mode, uses the broker at RABBITMQ_URL when one
# answers there (else starts a private RabbitMQ node on free loopback ports and stops it afterwards, whatever
# happens), and runs user-events-bench with the arguments given (`--help` lists them). Results go to
# bench-results/<time>/: table.txt, report.json, chart.svg and the services' logs.
#
# Three arguments are this script's, not the bench's (the scaled configuration, on throwaway servers it starts
# and removes afterwards):
#   --store postgres   a private PostgreSQL server (scripts/postgres-node.sh) for the users and the snapshots
#   --cluster          a private 3-node RabbitMQ cluster (scripts/rabbitmq-cluster.sh) with quorum queues,
#                      instead of the single node (RABBITMQ_URL is then ignored)
#   --scaled           both, and two instances of each service
set -euo pipefail
cd "$(dirname "$0")/.."

store=sqlite cluster="" bench_args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --store)
            store=${2:?--store needs postgres or sqlite}
            shift 2
            ;;
        --store=*) store=${1#--store=}; shift ;;
        --cluster) cluster=yes; shift ;;
        --scaled) store=postgres cluster=yes; bench_args+=(--instances 2); shift ;;
        *) bench_args+=("$1"); shift ;;
    esac
done
case "$store" in postgres | sqlite) ;; *) echo "--store must be postgres or sqlite, not $store" >&2; exit 2 ;; esac

scripts/install-deps.sh

echo "building (release)..."
# Only what runs: a plain `swift build -c release` also builds the test-support targets, which need
# `@testable` imports that a release build does not allow.
for product in user-service notification-service order-service user-events-bench; do
    swift build -c release --product "$product"
done
bin=$(swift build -c release --show-bin-path)

node_dir="" cluster_dir="" postgres_dir=""
cleanup() {
    if [ -n "$node_dir" ]; then
        scripts/rabbitmq-node.sh stop "$node_dir" >/dev/null 2>&1 || true
        rm -rf "$node_dir"
    fi
    if [ -n "$cluster_dir" ]; then
        scripts/rabbitmq-cluster.sh stop "$cluster_dir" >/dev/null 2>&1 || true
        rm -rf "$cluster_dir"
    fi
    if [ -n "$postgres_dir" ]; then
        scripts/postgres-node.sh destroy "$postgres_dir" >/dev/null 2>&1 || true
        rm -rf "$postgres_dir"
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
if [ -n "$cluster" ]; then
    cluster_dir=$(mktemp -d "${TMPDIR:-/tmp}/swift-user-events-bench-cluster.XXXXXX")
    echo "starting a private 3-node RabbitMQ cluster (about 30 s, longer on a busy machine)..."
    RABBITMQ_URL=$(scripts/rabbitmq-cluster.sh start "$cluster_dir" 3)
    export RABBITMQ_URL
    broker_args=(--queue-type quorum)
    [ -f "$cluster_dir/node-1/node.pid" ] && broker_args+=(--broker-pid "$(cat "$cluster_dir/node-1/node.pid")")
    echo "cluster: ${RABBITMQ_URL//guest:guest@/guest:***@}"
elif [ -n "${RABBITMQ_URL:-}" ] && answers "$RABBITMQ_URL"; then
    echo "using the broker that answers at RABBITMQ_URL (it should have no other consumers of queue_dispatch or queue_order)"
else
    node_dir=$(mktemp -d "${TMPDIR:-/tmp}/swift-user-events-bench-broker.XXXXXX")
    echo "starting a private RabbitMQ node..."
    RABBITMQ_URL=$(scripts/rabbitmq-node.sh start "$node_dir")
    export RABBITMQ_URL
    [ -f "$node_dir/node.pid" ] && broker_args=(--broker-pid "$(cat "$node_dir/node.pid")")
    echo "broker: $RABBITMQ_URL"
fi

store_args=()
if [ "$store" = postgres ]; then
    postgres_dir=$(mktemp -d "${TMPDIR:-/tmp}/swift-user-events-bench-postgres.XXXXXX")
    echo "starting a private PostgreSQL server..."
    scripts/postgres-node.sh start "$postgres_dir" >/dev/null
    store_args=(--user-db-url "$(scripts/postgres-node.sh url "$postgres_dir" users)"
        --order-db-url "$(scripts/postgres-node.sh url "$postgres_dir" orders)")
fi

"$bin/user-events-bench" --bin-dir "$bin" "${broker_args[@]}" "${store_args[@]}" "${bench_args[@]}"
