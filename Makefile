# The two commands: `make run` runs the whole system, `make test` runs the whole suite.
# `make test-unit` runs only the tests under Tests/Unit: no broker started, none needed.
# `make bench` (ARGS="--help" lists its flags) measures it; results in bench-results/.
.PHONY: run test test-unit bench build clean

run:
	scripts/run.sh

test:
	scripts/test.sh

test-unit:
	scripts/test-unit.sh

bench:
	scripts/bench.sh $(ARGS)

build:
	scripts/install-deps.sh
	swift build

clean:
	rm -rf .build .run
