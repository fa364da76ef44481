# The two commands: `make run` runs the whole system, `make test` runs the whole suite.
.PHONY: run test build clean

run:
	scripts/run.sh

test:
	scripts/test.sh

build:
	scripts/install-deps.sh
	swift build

clean:
	rm -rf .build .run
