#!/usr/bin/env bash
# make bench: measures tierpix against the anchors and targets of issue 4 and prints one
# Markdown table (also written to bench-out/bench-results.md; docs/BENCHMARKS.md explains it).
#
# This script only prepares: it installs what is missing (wrk, nginx, the vips CLI; as root,
# from Debian's packages), builds tierpix and the bench program (scripts/bench), and starts a
# throwaway PostgreSQL with pg_stat_statements preloaded, unless BENCH_DATABASE_URL names a
# database the bench may fill. The bench program does the rest, every run bounded in time,
# every server on 127.0.0.1. BENCH_QUICK=1 runs each scenario for a third of the time, to
# try it out; the figures of such a run are not for the record. BENCH_ONLY=users runs the
# user list scenario alone (a million users, every ordering; some 3 minutes); BENCH_ONLY=s3
# the cold 12 MP renders with the original in S3 against local disk (some 3 minutes);
# BENCH_ONLY=formats issue 13's thumbnails by format: bytes and SSIM of JPEG, PNG and WebP
# against the Q80 baseline, cold-render CPU of clients with and without WebP, and
# vipsthumbnail (some 11 minutes).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

began=$(date +%s)
ensure_go
ensure_libvips
ensure_bench_tools
ensure_versitygw

out=${BENCH_OUT:-bench-out}
mkdir -p "$out"
echo "==> building tierpix and the bench program" >&2
go build -buildvcs=auto -o "$out/tierpix" ./cmd/tierpix  # stamped with its commit, which the report names
go build -o "$out/bench" ./scripts/bench

if [ -n "${BENCH_DATABASE_URL:-}" ]; then
  db=$BENCH_DATABASE_URL
else
  ensure_postgres_binaries
  start_throwaway_postgres
  trap stop_throwaway_postgres EXIT
  db=$TEST_DATABASE_URL
  # pg_stat_statements lets PostgreSQL itself count the statements of a list page; it must be
  # preloaded, hence the restart (pg_ctl keeps the options the cluster was started with).
  "$PG_THROWAWAY_BINDIR/psql" -qAt "$db" -c "ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'" >/dev/null
  as=()
  [ "$(id -u)" = 0 ] && as=(runuser -u postgres --)
  "${as[@]}" "$PG_THROWAWAY_BINDIR/pg_ctl" -D "$PG_THROWAWAY_DIR/data" -w -t 60 -m fast restart >/dev/null
fi

flags=()
[ "${BENCH_QUICK:-}" = 1 ] && flags+=(-quick)
[ -n "${BENCH_ONLY:-}" ] && flags+=(-only "$BENCH_ONLY")
"$out/bench" -tierpix "$out/tierpix" -nginx "$TIERPIX_NGINX" -versitygw "$TIERPIX_VERSITYGW" -db "$db" -out "$out" "${flags[@]}"
echo "==> make bench took $(( $(date +%s) - began )) s" >&2
