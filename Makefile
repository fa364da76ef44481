# The two commands: `make run` runs the whole system, `make test` runs the whole suite.
# `make bench` (ARGS="--help" lists its flags) measures it; results in bench-results/.
# `make fuzz` fuzzes longer than `make test` does (FUZZ_SECONDS=60 of libFuzzer, then FUZZ_SCALE=10).
.PHONY: run test bench fuzz build clean

run:
	scripts/run.sh

test:
	scripts/test.sh

bench:
	scripts/bench.sh $(ARGS)

fuzz:
	scripts/fuzz.sh

build:
	scripts/install-deps.sh
	swift build

clean:
	rm -rf .build .run
