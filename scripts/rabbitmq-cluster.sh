#!/usr/bin/env bash
# A private RabbitMQ cluster on this machine, for tests and `make run-cluster`: N nodes (default 3), each a
# private node of scripts/rabbitmq-node.sh in DIR/node-I (own data directory, node name and free loopback
# ports), sharing one Erlang cookie and joined into one cluster with `rabbitmqctl join_cluster`. It never
# touches a broker that already runs on the machine. Quorum queues work on it (all stable feature flags,
# quorum_queue included, are enabled on fresh 3.10 nodes).
#
#   scripts/rabbitmq-cluster.sh start DIR [N]      start the cluster kept in DIR (forming it the first time,
#                                                  N nodes, default 3), wait until every node runs and sees
#                                                  all N, print the nodes' amqp:// URLs on one line,
#                                                  comma-separated, node 1 first
#   scripts/rabbitmq-cluster.sh stop DIR           stop every node and wait until all are gone
#   scripts/rabbitmq-cluster.sh stop-node DIR I    stop node I (1-based) gracefully and wait until it is gone
#   scripts/rabbitmq-cluster.sh kill-node DIR I    SIGKILL node I (a crash, not a shutdown)
#   scripts/rabbitmq-cluster.sh start-node DIR I   start node I again on the same ports, wait until it has
#                                                  rejoined the nodes that run, print its URL
#   scripts/rabbitmq-cluster.sh ctl DIR I ...      run rabbitmqctl against node I
#   scripts/rabbitmq-cluster.sh urls DIR           print the comma-separated URLs
#   scripts/rabbitmq-cluster.sh url DIR I          print node I's URL
#
# Ports and node names are chosen once and kept in DIR/node-I/node.env, so a node restarted with start-node
# (or the whole cluster restarted with start) answers at the same URL and rejoins its cluster. The nodes of a
# formed cluster are started in parallel, since a clustered node waits at boot for the peers it last saw.
# RABBITMQ_CLUSTER_BASE_PORT=P gives node I the AMQP port P+I-1 when the cluster is first formed (default:
# free ports; keep clear of 35672-35871, where rabbitmqctl listens while it runs); RABBITMQ_EXTRA_CONF
# (lines of rabbitmq.conf) is passed to every node's first start.
#
# Time, measured on a 2-core machine: forming 3 fresh nodes (booting in parallel, then joining one after
# another) takes about 25 s, up to 50 s when the machine is busy; restarting a formed cluster about 17 s;
# restarting one node 7-12 s; stopping one node 2 s, the cluster 3-4 s.
# Output: URLs on stdout, progress and errors on stderr. Exit status 0 on success, 1 on failure, 2 on usage.
set -euo pipefail

usage="usage: rabbitmq-cluster.sh start DIR [N] | stop DIR | stop-node|kill-node|start-node DIR I | ctl DIR I ... | urls DIR | url DIR I"
cmd=${1:?$usage}
dir=${2:?$usage}
shift 2
node_sh="$(cd "$(dirname "$0")" && pwd)/rabbitmq-node.sh"
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
# The node script reads this on a node's first start; a caller's single-node port must not reach every node.
unset RABBITMQ_NODE_PORT
# Every rabbitmqctl on the machine listens on a port of 35672-35682 by default while it runs; a cluster runs
# several at once (and other nodes' tests run theirs), so its own get a wider range.
export RABBITMQ_CTL_DIST_PORT_MIN=${RABBITMQ_CTL_DIST_PORT_MIN:-35672}
export RABBITMQ_CTL_DIST_PORT_MAX=${RABBITMQ_CTL_DIST_PORT_MAX:-35871}

say() { echo "rabbitmq-cluster: $*" >&2; }
die() { say "$*"; exit 1; }

node_dir() { echo "$dir/node-$1"; }

# The number of nodes, from DIR/cluster.env (written when the cluster is first started).
nodes() {
    [ -f "$dir/cluster.env" ] || die "no cluster in $dir (start it first)"
    (. "$dir/cluster.env" && echo "$NODES")
}

# A value (NODE_NAME, AMQP_PORT, DIST_PORT) from node I's node.env.
node_var() { (. "$(node_dir "$1")/node.env" && eval "echo \"\$$2\""); }

check_index() {
    local n
    n=$(nodes)
    [[ "$1" =~ ^[0-9]+$ ]] && [ "$1" -ge 1 ] && [ "$1" -le "$n" ] || { say "no node $1 (nodes: 1-$n)"; exit 2; }
}

ctl() {
    local i=$1
    shift
    "$node_sh" ctl "$(node_dir "$i")" "$@"
}

node_running() {
    local pid_file
    pid_file="$(node_dir "$1")/node.pid"
    [ -f "$pid_file" ] && kill -0 "$(cat "$pid_file")" 2>/dev/null
}

urls() {
    local n i out=""
    n=$(nodes)
    for i in $(seq 1 "$n"); do out+="${out:+,}$("$node_sh" url "$(node_dir "$i")")"; done
    echo "$out"
}

# Node I's view of the cluster: "<running nodes> <known disc nodes>", or nothing when it does not answer.
cluster_view() {
    timeout 30 "$node_sh" ctl "$(node_dir "$1")" -q cluster_status --formatter json 2>/dev/null |
        python3 -c 'import json, sys
s = json.load(sys.stdin)
print(len(s.get("running_nodes", [])), len(s.get("disk_nodes", [])))' 2>/dev/null || true
}

# Waits (up to $2 seconds) until every node that runs sees every running node as part of one cluster of
# $1 members; fails with the nodes' views when the deadline passes.
await_cluster() {
    local want=$1 deadline=$((SECONDS + $2)) n i view running all_ok
    n=$(nodes)
    while :; do
        running=0
        for i in $(seq 1 "$n"); do node_running "$i" && running=$((running + 1)); done
        all_ok=yes
        for i in $(seq 1 "$n"); do
            node_running "$i" || continue
            view=$(cluster_view "$i")
            [ "$view" = "$running $want" ] || { all_ok=""; break; }
        done
        [ -n "$all_ok" ] && [ "$running" -gt 0 ] && return 0
        if [ $SECONDS -ge $deadline ]; then
            for i in $(seq 1 "$n"); do say "node $i: running/known = $(cluster_view "$i")"; done
            return 1
        fi
        sleep 0.5
    done
}

# Starts the given nodes in parallel; fails (with each failing node's output) unless all of them started.
start_nodes() {
    local i failed="" pids=()
    for i in "$@"; do
        "$node_sh" start "$(node_dir "$i")" >"$(node_dir "$i")/start.out" 2>&1 &
        pids+=($!)
    done
    local k=0
    for i in "$@"; do
        if ! wait "${pids[$k]}"; then
            failed+=" $i"
            say "node $i did not start:"
            cat "$(node_dir "$i")/start.out" >&2
        fi
        k=$((k + 1))
    done
    [ -z "$failed" ]
}

# Chooses node I's name and ports (the node script writes node.env on its first call), distinct from
# every other node's (ports picked one after another by the kernel could repeat) and from rabbitmqctl's.
prepare_node() {
    local i=$1 n=$2 d j tries=0 mine theirs
    d=$(node_dir "$i")
    while :; do
        if [ -n "${RABBITMQ_CLUSTER_BASE_PORT:-}" ]; then
            RABBITMQ_NODE_PORT=$((RABBITMQ_CLUSTER_BASE_PORT + i - 1)) "$node_sh" url "$d" >/dev/null
        else
            "$node_sh" url "$d" >/dev/null
        fi
        mine="$(node_var "$i" AMQP_PORT) $(node_var "$i" DIST_PORT)"
        local clash=""
        for p in $mine; do
            [ "$p" -lt "$RABBITMQ_CTL_DIST_PORT_MIN" ] || [ "$p" -gt "$RABBITMQ_CTL_DIST_PORT_MAX" ] || clash=yes
        done
        for j in $(seq 1 "$n"); do
            [ "$j" != "$i" ] && [ -f "$(node_dir "$j")/node.env" ] || continue
            theirs=" $(node_var "$j" AMQP_PORT) $(node_var "$j" DIST_PORT) "
            for p in $mine; do [[ "$theirs" == *" $p "* ]] && clash=yes; done
        done
        [ -z "$clash" ] && return 0
        tries=$((tries + 1))
        [ $tries -lt 20 ] || die "could not choose distinct ports for node $i"
        rm -f "$d/node.env"
    done
}

case "$cmd" in
start)
    want=${1:-}
    if [ -f "$dir/cluster.env" ]; then
        n=$(nodes)
        [ -z "$want" ] || [ "$want" = "$n" ] || die "$dir holds a cluster of $n nodes, not $want"
    else
        n=${want:-3}
        [[ "$n" =~ ^[0-9]+$ ]] && [ "$n" -ge 1 ] || { say "N must be a positive number, not $n"; exit 2; }
    fi
    started=$SECONDS
    if [ -f "$dir/cluster.env" ] && (. "$dir/cluster.env" && [ "${FORMED:-}" = yes ]); then
        # A formed cluster: every node remembers its peers and rejoins them by itself.
        down=()
        for i in $(seq 1 "$n"); do node_running "$i" || down+=("$i"); done
        if [ ${#down[@]} -gt 0 ]; then
            say "starting node(s) ${down[*]} of $n..."
            start_nodes "${down[@]}" || die "the cluster in $dir did not start"
        fi
    else
        echo "NODES=$n" >"$dir/cluster.env"
        cookie=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
        for i in $(seq 1 "$n"); do
            d=$(node_dir "$i")
            mkdir -p "$d"
            # The node script keeps an existing cookie: every node and its rabbitmqctl share this one.
            if [ ! -f "$d/.erlang.cookie" ]; then
                (umask 077 && printf '%s' "$cookie" >"$d/.erlang.cookie")
                chmod 400 "$d/.erlang.cookie"
            fi
            prepare_node "$i" "$n"
        done
        say "starting $n nodes..."
        down=()
        for i in $(seq 1 "$n"); do node_running "$i" || down+=("$i"); done
        [ ${#down[@]} -eq 0 ] || start_nodes "${down[@]}" || die "the nodes in $dir did not start"
        seed=$(node_var 1 NODE_NAME)
        for i in $(seq 2 "$n"); do
            # Already a member (a start interrupted after this join): nothing to do.
            if ctl "$i" -q cluster_status --formatter json 2>/dev/null | grep -q "\"$seed\""; then continue; fi
            say "joining node $i to node 1..."
            # rabbitmqctl logs harmless warnings while a node joins: shown only when the join fails.
            if ! { ctl "$i" -q stop_app && ctl "$i" -q reset && ctl "$i" -q join_cluster "$seed" &&
                ctl "$i" -q start_app; } >"$(node_dir "$i")/join.out" 2>&1; then
                cat "$(node_dir "$i")/join.out" >&2
                die "node $i could not join node 1"
            fi
        done
        printf 'NODES=%s\nFORMED=yes\n' "$n" >"$dir/cluster.env"
    fi
    await_cluster "$n" 120 || die "the cluster in $dir did not form within 120 s"
    say "cluster of $n nodes running ($((SECONDS - started)) s)"
    urls
    ;;
stop)
    [ -f "$dir/cluster.env" ] || exit 0
    n=$(nodes)
    pids=()
    for i in $(seq 1 "$n"); do
        if [ -f "$(node_dir "$i")/node.env" ]; then
            "$node_sh" stop "$(node_dir "$i")" &
            pids+=($!)
        fi
    done
    for pid in "${pids[@]}"; do wait "$pid" || true; done
    ;;
stop-node)
    i=${1:?$usage}
    check_index "$i"
    "$node_sh" stop "$(node_dir "$i")"
    ;;
kill-node)
    i=${1:?$usage}
    check_index "$i"
    d=$(node_dir "$i")
    if node_running "$i"; then
        pid=$(cat "$d/node.pid")
        kill -KILL "$pid" 2>/dev/null || true
        for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
    # Clears the pid files (and a launcher that outlived the node), so start-node boots it afresh.
    "$node_sh" stop "$d"
    ;;
start-node)
    i=${1:?$usage}
    check_index "$i"
    start_nodes "$i" || die "node $i did not start"
    await_cluster "$(nodes)" 120 || die "node $i did not rejoin the cluster within 120 s"
    "$node_sh" url "$(node_dir "$i")"
    ;;
ctl)
    i=${1:?$usage}
    check_index "$i"
    shift
    ctl "$i" "$@"
    ;;
urls) urls ;;
url)
    i=${1:?$usage}
    check_index "$i"
    "$node_sh" url "$(node_dir "$i")"
    ;;
*) say "unknown command $cmd"; echo "$usage" >&2; exit 2 ;;
esac
