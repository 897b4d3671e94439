#!/usr/bin/env bash
# make test: installs what the tests need (libvips; PostgreSQL's server binaries when none are
# installed; versitygw, the S3 server the tests of originals in a bucket start), starts a
# throwaway PostgreSQL cluster unless TEST_DATABASE_URL is set, and runs every Go test, the
# PostgreSQL and S3 suites included (CI=true makes a missing database or S3 server a failure,
# never a skip).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

ensure_go
# versitygw builds (some 90 s on a new machine) while the packages install and go vet runs.
vgw_log=$(mktemp /tmp/tierpix-versitygw.XXXXXX)
ensure_versitygw >"$vgw_log" 2>&1 &
vgw_pid=$!
ensure_libvips
ensure_vips_cli
ensure_chromium
export TIERPIX_CHROMIUM=/usr/bin/chromium
ensure_nginx
export TIERPIX_NGINX
if [ -z "${TEST_DATABASE_URL:-}" ]; then
  ensure_postgres_binaries
  start_throwaway_postgres
  trap stop_throwaway_postgres EXIT
fi
export TEST_DATABASE_URL
# The suites must not skip for want of a database, whoever runs them.
export CI=true
export GOFLAGS="${GOFLAGS:-} -mod=readonly"

log=$(mktemp /tmp/tierpix-test.XXXXXX)
echo "==> go vet ./..."
go vet ./...
if ! wait "$vgw_pid"; then
  cat "$vgw_log" >&2
  echo "could not install versitygw, the S3 server of the tests (set TIERPIX_VERSITYGW to one)" >&2
  exit 1
fi
cat "$vgw_log" >&2
if [ -z "${TIERPIX_VERSITYGW:-}" ] || [ ! -x "$TIERPIX_VERSITYGW" ]; then
  TIERPIX_VERSITYGW="$(go env GOPATH)/bin/versitygw"
fi
export TIERPIX_VERSITYGW
echo "==> go test -race ./... (full log: $log)"
set +e
go test -race -count=1 -timeout 14m -v ./... >"$log" 2>&1
status=$?
set -e

# Package results, then proof that the PostgreSQL suite ran, then the totals.
grep -E '^(ok|FAIL|---|panic:|\?)\s' "$log" | grep -vE '^--- (PASS|SKIP)' || true
pg_pass=$(grep -cE -- '--- PASS: .*/postgres( |$)' "$log" || true)
pg_fail=$(grep -cE -- '--- FAIL: .*/postgres( |$)' "$log" || true)
pg_skip=$(grep -cE -- '--- SKIP: .*/postgres( |$)' "$log" || true)
echo "PostgreSQL suite: $pg_pass passed, $pg_fail failed, $pg_skip skipped (against $(echo "$TEST_DATABASE_URL" | sed -E 's#//[^@]*@#//#'))"
passed=$(grep -cE -- '^\s*--- PASS' "$log" || true)
failed=$(grep -cE -- '^\s*--- FAIL' "$log" || true)
skipped=$(grep -cE -- '^\s*--- SKIP' "$log" || true)
if [ "$status" -ne 0 ]; then
  echo "==> failures (from $log):"
  grep -nE -B2 -A30 -- '--- FAIL|^panic:|\[build failed\]|cannot|undefined' "$log" | head -400
fi
if [ "$pg_pass" -eq 0 ] && [ "$status" -eq 0 ]; then
  echo "the PostgreSQL suite did not run" >&2
  status=1
fi
if [ "$skipped" -gt 0 ]; then
  echo "skipped tests:"; grep -E -- '^\s*--- SKIP' "$log"
fi
echo "$passed passed, $failed failed, $skipped skipped"
exit "$status"
