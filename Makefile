# The two entry points named in README.md.
.PHONY: test build bench

build:
	go build -o bin/bluegreen ./cmd/bluegreen

test:
	./scripts/test.sh

bench:
	./bench/run.sh
