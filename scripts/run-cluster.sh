#!/usr/bin/env bash
# Runs the scaled system on this machine: a 3-node RabbitMQ cluster (data in .run/cluster), quorum queues, and
# two instances of each service, each instance's log lines prefixed with its name. Ctrl-C stops the services
# (gracefully), then the cluster (and the PostgreSQL server, if one was started).
#
# Each instance is given every node's URL, the list turned so that instance 1 starts at node 1 and instance 2
# at node 2: watch a node die with `scripts/rabbitmq-cluster.sh stop-node .run/cluster 1` (its clients move to
# the next node at once) and bring it back with `start-node .run/cluster 1`.
#
# State: with services that accept postgres:// database URLs, a private PostgreSQL server (scripts/postgres-
# node.sh, data in .run/postgres) holds the users and the snapshots, and every service runs twice. With
# services that take SQLite files only, one SQLite file cannot be shared by two processes, so the user service
# and the order service run once each (on .run/cluster-*.sqlite) and only the notification service twice.
# RUN_CLUSTER_STORE=postgres|sqlite overrides the choice, which is otherwise made from the services' --help.
#
# Ports: USER_SERVICE_PORT (default 8000), ORDER_SERVICE_PORT (8001), NOTIFICATION_SERVICE_PORT (8002) for the
# first instances; the second ones listen 10 higher (8010, 8011, 8012).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh

configuration=${CONFIGURATION:-debug}
echo "building ($configuration)..."
swift build -c "$configuration"
bin=$(swift build -c "$configuration" --show-bin-path)
mkdir -p .run

store=${RUN_CLUSTER_STORE:-}
if [ -z "$store" ]; then
    if "$bin/user-service" --help 2>&1 | grep -qi postgres; then store=postgres; else store=sqlite; fi
fi
case "$store" in postgres | sqlite) ;; *) echo "RUN_CLUSTER_STORE must be postgres or sqlite, not $store" >&2; exit 2 ;; esac

pids=()
started_cluster=""
started_postgres=""
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
    [ -z "$started_cluster" ] || scripts/rabbitmq-cluster.sh stop .run/cluster
    [ -z "$started_postgres" ] || scripts/postgres-node.sh stop .run/postgres
    echo "stopped."
}
trap stop EXIT
trap 'exit 0' INT TERM

echo "starting a 3-node RabbitMQ cluster (data in .run/cluster; the first start takes about 30 s)..."
started_cluster=yes
urls=$(scripts/rabbitmq-cluster.sh start .run/cluster 3)
IFS=, read -r -a nodes <<<"$urls"
echo "cluster: ${urls//guest:guest@/guest:***@}"

if [ "$store" = postgres ]; then
    echo "starting a PostgreSQL server (data in .run/postgres)..."
    started_postgres=yes
    scripts/postgres-node.sh start .run/postgres >/dev/null
    user_db=$(scripts/postgres-node.sh url .run/postgres users)
    order_db=$(scripts/postgres-node.sh url .run/postgres orders)
    scaled_instances=2
else
    echo "the services take SQLite files only here: one user-service and one order-service, two notification-services"
    user_db=sqlite:///.run/cluster-users.sqlite
    order_db=sqlite:///.run/cluster-orders.sqlite
    scaled_instances=1
fi

# Every node's URL, starting at node $1 (1-based) and going round.
node_list() {
    local first=$(($1 - 1)) n=${#nodes[@]} i out=""
    for i in $(seq 0 $((n - 1))); do out+="${out:+,}${nodes[$(((first + i) % n))]}"; done
    echo "$out"
}

# start NAME INSTANCE PORT [ENV=VALUE...]: one instance, its output prefixed with NAME-INSTANCE.
start() {
    local name=$1 instance=$2 port=$3
    shift 3
    local label="$name-$instance"
    (
        # The instance runs in the background of this subshell, which passes SIGTERM on and says how it ended.
        # It runs in a session of its own: Ctrl-C in the terminal signals the whole foreground process group,
        # and an instance that got that SIGINT and then this script's SIGTERM would take the second signal as
        # "exit now" and skip its graceful stop. So only this script hears Ctrl-C and stops each instance once;
        # the prefixing sed ignores it, so the instance's last lines (its graceful stop) still show.
        set +e
        env RABBITMQ_URL="$(node_list "$instance")" AMQP_QUEUE_TYPE=quorum "$@" \
            setsid "$bin/$name" --port "$port" > >(trap '' INT && exec sed -u "s/^/[$label] /") 2>&1 &
        child=$!
        trap 'kill -TERM "$child" 2>/dev/null' TERM HUP
        while :; do
            wait "$child"
            status=$?
            kill -0 "$child" 2>/dev/null || break
        done
        echo "[$label] exited with status $status"
    ) &
    pids+=($!)
}

user_port=${USER_SERVICE_PORT:-8000}
order_port=${ORDER_SERVICE_PORT:-8001}
notification_port=${NOTIFICATION_SERVICE_PORT:-8002}
for instance in $(seq 1 "$scaled_instances"); do
    start order-service "$instance" $((order_port + 10 * (instance - 1))) ORDER_DB_URL="$order_db"
done
for instance in 1 2; do
    start notification-service "$instance" $((notification_port + 10 * (instance - 1)))
done
for instance in $(seq 1 "$scaled_instances"); do
    start user-service "$instance" $((user_port + 10 * (instance - 1))) USER_DB_URL="$user_db"
done
echo "running on quorum queues: user API on http://localhost:$user_port$([ "$scaled_instances" = 2 ] && echo " and http://localhost:$((user_port + 10))")"
echo "stop a node: scripts/rabbitmq-cluster.sh stop-node .run/cluster 1 (start-node to bring it back); Ctrl-C stops everything"
# Runs until Ctrl-C, or until every instance has exited.
wait "${pids[@]}" || true
