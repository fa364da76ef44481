# The two commands: `make run` runs the whole system, `make test` runs the whole suite.
# `make test-unit` runs only the tests under Tests/Unit: no broker started, none needed.
# `make bench` (ARGS="--help" lists its flags) measures it; results in bench-results/.
# `make fuzz` fuzzes longer than `make test` does (FUZZ_SECONDS=60 of libFuzzer, then FUZZ_SCALE=10).
# `make run-cluster` runs it scaled out on this machine: a 3-node RabbitMQ cluster, quorum queues, two instances.
.PHONY: run run-cluster test test-unit bench fuzz build clean

run:
	scripts/run.sh

run-cluster:
	scripts/run-cluster.sh

test:
	scripts/test.sh

test-unit:
	scripts/test-unit.sh

bench:
	scripts/bench.sh $(ARGS)

fuzz:
	scripts/fuzz.sh

build:
	scripts/install-deps.sh
	swift build

clean:
	rm -rf .build .run
