#!/usr/bin/env bash
# The unit tests alone: every test target under Tests/Unit. They need no broker and no database server, so this
# starts no RabbitMQ node and reaches none: the broker settings are unset, and UNIT_TESTS_ONLY=1 makes TestBroker
# throw at once if a test asks for a node (such a test belongs under Tests/Integration).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh --build-only

unset RABBITMQ_TEST_URL RABBITMQ_TEST_NODE_DIR RABBITMQ_URL
export UNIT_TESTS_ONLY=1

# One alternative per folder under Tests/Unit, so a new unit target runs without editing this script. Swift Testing
# matches --filter against test IDs, which start with the module (= folder) name: `StorageTests.Suite/test()`.
targets=$(find Tests/Unit -mindepth 1 -maxdepth 1 -type d -printf '%f\n' | sort | paste -sd'|' -)
[ -n "$targets" ] || { echo "no test targets under Tests/Unit" >&2; exit 1; }

echo "building..."
swift build --build-tests "$@"

echo "unit test targets: ${targets//|/, }"
swift test --skip-build --filter "^($targets)[./]" "$@"
