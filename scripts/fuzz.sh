#!/usr/bin/env bash
# Longer fuzzing than `make test` does: libFuzzer over the event decoder for FUZZ_SECONDS (default 60),
# then the seeded fuzz tests (Tests/Unit/FuzzTests) with a fresh seed and FUZZ_SCALE times more cases
# (default 10). Needs no broker. A crash leaves its input in .build/fuzz/artifacts/; turn it into a
# regression test in Tests/Unit/FuzzTests/FuzzRegressionTests.swift.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${FUZZ_SECONDS:-60}
work=.build/fuzz
mkdir -p "$work/corpus-event-decoder" "$work/artifacts"

echo "building the libFuzzer harness for the event decoder..."
# The event codec is a module without dependencies: its files compile with the harness as they are.
# shellcheck disable=SC2086 # one file per word
swiftc -swift-version 6 -O -sanitize=fuzzer -parse-as-library -module-name EventDecoderFuzz \
    -enable-upcoming-feature ExistentialAny -enable-upcoming-feature InternalImportsByDefault \
    -enable-upcoming-feature MemberImportVisibility \
    Sources/Foundations/EventCodec/*.swift Fuzz/EventDecoder/main.swift -o "$work/event-decoder"

echo "fuzzing the event decoder for ${seconds}s (new inputs go to $work/corpus-event-decoder)..."
# The first corpus folder receives what libFuzzer finds; the checked-in seeds stay as they are.
"$work/event-decoder" -max_total_time="$seconds" -timeout=5 -rss_limit_mb=2048 -print_final_stats=1 \
    -dict=Fuzz/EventDecoder/json.dict -artifact_prefix="$work/artifacts/" \
    "$work/corpus-event-decoder" Fuzz/EventDecoder/corpus

seed=${FUZZ_SEED:-$(date +%s)}
echo "seeded fuzz tests with FUZZ_SEED=$seed FUZZ_SCALE=${FUZZ_SCALE:-10}..."
swift build --build-tests
FUZZ_SEED=$seed FUZZ_SCALE=${FUZZ_SCALE:-10} swift test --skip-build --filter '^FuzzTests\.'
