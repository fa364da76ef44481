#!/usr/bin/env bash
# The whole test suite against a private RabbitMQ node that this script starts on free
# loopback ports and stops afterwards, whatever happens.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
# The API fuzz test drives the user service from its OpenAPI document with schemathesis.
if ! command -v schemathesis >/dev/null 2>&1; then
    echo "installing schemathesis (PyPI)..."
    python3 -m pip install --quiet schemathesis 2>/dev/null \
        || python3 -m pip install --quiet --break-system-packages schemathesis
fi

node_dir=$(mktemp -d "${TMPDIR:-/tmp}/swift-user-events-test-broker.XXXXXX")
cluster_dir=$(mktemp -d "${TMPDIR:-/tmp}/swift-user-events-test-cluster.XXXXXX")
cluster_pid=""
cleanup() {
    [ -z "$cluster_pid" ] || wait "$cluster_pid" 2>/dev/null || true
    scripts/rabbitmq-cluster.sh stop "$cluster_dir" >/dev/null 2>&1 || true
    rm -rf "$cluster_dir"
    scripts/rabbitmq-node.sh stop "$node_dir" >/dev/null 2>&1 || true
    rm -rf "$node_dir"
}
trap cleanup EXIT INT TERM

# The cluster tests' 3-node cluster forms (about 25 s, longer on a busy machine) while the tests build.
echo "forming a private 3-node RabbitMQ cluster in the background..."
scripts/rabbitmq-cluster.sh start "$cluster_dir" 3 >"$cluster_dir.log" 2>&1 &
cluster_pid=$!

echo "building..."
swift build --build-tests "$@"

if wait "$cluster_pid"; then
    export RABBITMQ_TEST_CLUSTER_DIR="$cluster_dir"
else
    echo "the cluster did not form (the cluster tests start their own):" >&2
    cat "$cluster_dir.log" >&2
fi
cluster_pid=""
rm -f "$cluster_dir.log"

# Unit tests first, on their own: several are CPU-heavy (fuzzing, a thousand sockets) and would otherwise compete
# with the timing of the integration tests on a small machine. They reach no broker (UNIT_TESTS_ONLY=1).
unit=$(scripts/unit-test-filter.sh)
echo "unit tests: $unit"
# The fuzz tests run alone: their loops keep cooperative threads busy for seconds at a time.
UNIT_TESTS_ONLY=1 swift test --skip-build --filter '^FuzzTests[./]' "$@"
UNIT_TESTS_ONLY=1 swift test --skip-build --filter "$unit" --skip '^FuzzTests[./]' "$@"

echo "starting a private RabbitMQ node..."
RABBITMQ_TEST_URL=$(scripts/rabbitmq-node.sh start "$node_dir")
export RABBITMQ_TEST_URL RABBITMQ_TEST_NODE_DIR="$node_dir"
echo "broker: $RABBITMQ_TEST_URL"

echo "integration tests..."
swift test --skip-build --skip "$unit" "$@"
