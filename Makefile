# The two commands: `make run` runs the whole system, `make test` runs the whole suite.
# `make bench` (ARGS="--help" lists its flags) measures it; results in bench-results/.
.PHONY: run test bench build clean

run:
	scripts/run.sh

test:
	scripts/test.sh

bench:
	scripts/bench.sh $(ARGS)

build:
	scripts/install-deps.sh
	swift build

clean:
	rm -rf .build .run
