#!/usr/bin/env bash
# make run: builds tierpix (installing libvips first when missing and root) and starts it on its
# embedded defaults: SQLite and local disk under ./data, listening on 127.0.0.1:8080.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
ensure_go
ensure_libvips
mkdir -p bin
go build -o bin/tierpix ./cmd/tierpix
exec bin/tierpix serve
