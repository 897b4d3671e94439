# The two commands a newcomer needs are `make run` and `make test`; see the README.
.PHONY: run test build vet clean

run:
	@scripts/run.sh

test:
	@scripts/test.sh

build:
	@. scripts/lib.sh && ensure_go && ensure_libvips
	go build -o bin/tierpix ./cmd/tierpix

vet:
	go vet ./...

clean:
	rm -rf bin
