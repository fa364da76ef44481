#!/usr/bin/env bash
# The unit tests alone: every test target under Tests/Unit. They need no broker and no database server, so this
# starts no RabbitMQ node and reaches none: the broker settings are unset, and UNIT_TESTS_ONLY=1 makes TestBroker
# throw at once if a test asks for a node (such a test belongs under Tests/Integration).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh --build-only

unset RABBITMQ_TEST_URL RABBITMQ_TEST_NODE_DIR RABBITMQ_URL
export UNIT_TESTS_ONLY=1

unit=$(scripts/unit-test-filter.sh)

echo "building..."
swift build --build-tests "$@"

echo "unit tests: $unit"
# The fuzz tests run alone: their loops keep cooperative threads busy for seconds at a time, which would starve
# the timing of the other tests.
swift test --skip-build --filter '^FuzzTests[./]' "$@"
swift test --skip-build --filter "$unit" --skip '^FuzzTests[./]' "$@"
