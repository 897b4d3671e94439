#!/usr/bin/env bash
# make run: builds tierpix (installing libvips first when missing and root) and starts it on its
# embedded defaults: SQLite and local disk under ./data, listening on 127.0.0.1:8080.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
ensure_go
ensure_libvips
mkdir -p bin
# A fresh build compiles libvips' C bindings and some 370 packages, for minutes on a small
# machine; go build -v names each package as it goes, shown as a dot, so the wait shows progress.
if [ -x bin/tierpix ]; then
  echo "==> building tierpix" >&2
else
  echo "==> building tierpix (the first build compiles libvips' bindings and some 370 packages: 5 to 8 minutes on 2 cores)" >&2
fi
go build -v -o bin/tierpix ./cmd/tierpix 2>&1 | progress_dots >&2
echo "==> starting tierpix (Ctrl-C stops it)" >&2
exec bin/tierpix serve
