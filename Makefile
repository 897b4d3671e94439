# The two commands a newcomer needs are `make run` and `make test`; see the README.
.PHONY: run test bench build vet clean

run:
	@scripts/run.sh

test:
	@scripts/test.sh

# make bench: the benchmark of docs/BENCHMARKS.md (about 6 minutes; BENCH_QUICK=1 for a short try).
bench:
	@scripts/bench.sh

build:
	@. scripts/lib.sh && ensure_go && ensure_libvips
	go build -o bin/tierpix ./cmd/tierpix

vet:
	go vet ./...

clean:
	rm -rf bin
