#!/usr/bin/env bash
# Prints the `swift test --filter` / `--skip` pattern that matches every test under Tests/Unit: one alternative
# per folder there, so a new unit target is picked up without editing any script. Swift Testing matches the
# pattern against test IDs, which start with the module (= folder) name: `StorageTests.Suite/test()`.
set -euo pipefail
cd "$(dirname "$0")/.."
targets=$(find Tests/Unit -mindepth 1 -maxdepth 1 -type d -printf '%f\n' | sort | paste -sd'|' -)
[ -n "$targets" ] || { echo "no test targets under Tests/Unit" >&2; exit 1; }
echo "^($targets)[./]"
