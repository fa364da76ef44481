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
cleanup() {
    scripts/rabbitmq-node.sh stop "$node_dir" >/dev/null 2>&1 || true
    rm -rf "$node_dir"
}
trap cleanup EXIT INT TERM

echo "building..."
swift build --build-tests "$@"

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
