# Shared shell helpers for the Makefile's scripts. Source it; do not run it.

# ensure_libvips makes sure libvips' development files (and pkg-config, through which govips
# finds them) are installed: as root it installs them from Debian's packages, otherwise it says
# exactly what to install.
ensure_libvips() {
  if command -v pkg-config >/dev/null 2>&1 && pkg-config --exists vips 2>/dev/null; then
    return 0
  fi
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "==> installing libvips (apt-get install libvips-dev pkg-config, about a minute)" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq --no-install-recommends libvips-dev pkg-config >&2
    echo "==> libvips $(pkg-config --modversion vips) installed" >&2
    return 0
  fi
  cat >&2 <<'MSG'
tierpix needs libvips (8.12 or newer) and pkg-config to build. Install them, e.g. on Debian/Ubuntu:
    sudo apt-get install libvips-dev pkg-config
or on macOS:
    brew install vips pkg-config
then run this command again.
MSG
  return 1
}

# ensure_chromium makes sure Debian's Chromium is installed for the browser end-to-end test
# (cmd/tierpix/browser_test.go, which drives it through chromedp): as root it installs it from
# Debian's packages, otherwise it says exactly what to install. The test finds it through
# TIERPIX_CHROMIUM.
ensure_chromium() {
  if [ -x /usr/bin/chromium ]; then
    return 0
  fi
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "==> installing chromium from Debian packages (for the browser test)" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq --no-install-recommends chromium >&2
    return 0
  fi
  cat >&2 <<'MSG'
The browser end-to-end test needs Chromium at /usr/bin/chromium. Install it, e.g. on Debian/Ubuntu:
    sudo apt-get install --no-install-recommends chromium
then run this command again.
MSG
  return 1
}

# ensure_vips_cli makes sure the vips command line (Debian's libvips-tools) is installed: the
# decode-bomb test (cmd/tierpix/reliability_bomb_test.go) makes its images with it. As root it
# installs it, otherwise it says exactly what to install.
ensure_vips_cli() {
  if command -v vips >/dev/null 2>&1; then
    return 0
  fi
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "==> installing libvips-tools from Debian packages (for the decode-bomb test)" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq --no-install-recommends libvips-tools >&2
    return 0
  fi
  cat >&2 <<'MSG'
The decode-bomb test needs the vips command line. Install it, e.g. on Debian/Ubuntu:
    sudo apt-get install --no-install-recommends libvips-tools
then run this command again.
MSG
  return 1
}

# ensure_nginx makes sure nginx is installed for the caching-front tests (nginx/*_test.go run
# nginx/tierpix.conf in a real nginx) and sets TIERPIX_NGINX to its path: as root it installs
# Debian's package, otherwise it says exactly what to install. RUNLEVEL=1 keeps the package's
# own service (the default site on port 80) from being started by the install where the init
# system honours it; the tests run their own nginx on a free port on 127.0.0.1 and never use
# port 80 or /etc/nginx, so a service that does start is harmless.
ensure_nginx() {
  local p
  for p in "${TIERPIX_NGINX:-}" "$(command -v nginx 2>/dev/null)" /usr/sbin/nginx; do
    if [ -n "$p" ] && [ -x "$p" ]; then
      TIERPIX_NGINX=$p
      return 0
    fi
  done
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "==> installing nginx from Debian packages (for the caching-front tests)" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    RUNLEVEL=1 apt-get install -y -qq --no-install-recommends nginx >&2
    TIERPIX_NGINX=/usr/sbin/nginx
    return 0
  fi
  cat >&2 <<'MSG'
The caching-front tests (nginx/) need nginx. Install it, e.g. on Debian/Ubuntu:
    sudo apt-get install --no-install-recommends nginx
or on macOS:
    brew install nginx
(or set TIERPIX_NGINX to an nginx binary), then run this command again.
MSG
  return 1
}

# VERSITYGW_VERSION is the S3 server the tests run (Versity's S3 gateway over a directory).
VERSITYGW_VERSION=v1.8.0

# ensure_versitygw makes sure versitygw, the S3 server the tests of originals in a bucket start
# on 127.0.0.1, is built (go install, about a minute and a half the first time) and sets
# TIERPIX_VERSITYGW to it.
ensure_versitygw() {
  local bin
  bin="$(go env GOPATH)/bin/versitygw"
  if [ -n "${TIERPIX_VERSITYGW:-}" ] && [ -x "$TIERPIX_VERSITYGW" ]; then
    return 0
  fi
  if [ -x "$bin" ] && go version -m "$bin" 2>/dev/null | grep -qE "^\s+mod\s+github.com/versity/versitygw\s+$VERSITYGW_VERSION(\s|$)"; then
    TIERPIX_VERSITYGW=$bin
    return 0
  fi
  echo "==> installing versitygw $VERSITYGW_VERSION (the S3 server of the tests; go install, about 90 s)" >&2
  GOFLAGS= go install "github.com/versity/versitygw/cmd/versitygw@$VERSITYGW_VERSION" >&2 || return 1
  TIERPIX_VERSITYGW=$bin
}

# progress_dots reads go build -v's output: a dot for each package it names, any other line
# (a compile error) as it is, and a newline at the end if it printed dots.
progress_dots() {
  local line dots=0
  while IFS= read -r line; do
    case $line in
      '' | *[!A-Za-z0-9._/-]*)
        [ "$dots" = 0 ] || printf '\n'
        dots=0
        printf '%s\n' "$line"
        ;;
      *)
        [ "$dots" != 0 ] || printf '    '
        printf .
        dots=$((dots + 1))
        ;;
    esac
  done
  case $dots in
    0) ;;
    1) printf ' 1 package\n' ;;
    *) printf ' %d packages\n' "$dots" ;;
  esac
}

# go_version prints the Go version go.mod asks for (its go line).
go_version() {
  awk '$1 == "go" { print $2; exit }' go.mod
}

# ensure_go checks that a Go toolchain is on PATH (it is not installed automatically).
ensure_go() {
  if command -v go >/dev/null 2>&1; then
    return 0
  fi
  if [ -x /usr/local/go/bin/go ]; then
    export PATH="/usr/local/go/bin:$PATH"
    return 0
  fi
  echo "tierpix needs Go $(go_version) or newer on PATH: see https://go.dev/doc/install" >&2
  return 1
}

# pg_bindir prints the directory of the newest installed PostgreSQL server binaries.
pg_bindir() {
  local d
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r) /usr/local/pgsql/bin; do
    if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then
      echo "$d"
      return 0
    fi
  done
  if command -v pg_config >/dev/null 2>&1 && [ -x "$(pg_config --bindir)/initdb" ]; then
    pg_config --bindir
    return 0
  fi
  return 1
}

# ensure_postgres_binaries installs Debian's PostgreSQL server when none is installed and we
# are root; otherwise it says what to install.
ensure_postgres_binaries() {
  if pg_bindir >/dev/null; then
    return 0
  fi
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "==> installing the PostgreSQL server from Debian packages" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq --no-install-recommends postgresql >&2
    return 0
  fi
  echo "the PostgreSQL test suite needs the PostgreSQL server binaries (initdb, pg_ctl): sudo apt-get install postgresql, or set TEST_DATABASE_URL" >&2
  return 1
}

# start_throwaway_postgres starts a PostgreSQL cluster in a new temp dir that listens on a unix
# socket only (no port to clash with), as the postgres user when we are root (initdb refuses
# root). It exports TEST_DATABASE_URL and PG_THROWAWAY_DIR; stop_throwaway_postgres undoes it.
start_throwaway_postgres() {
  local bindir dir as
  bindir=$(pg_bindir) || return 1
  dir=$(mktemp -d /tmp/tierpix-pg.XXXXXX)
  chmod 755 "$dir"
  as=()
  if [ "$(id -u)" = 0 ]; then
    chown postgres:postgres "$dir" 2>/dev/null || { echo "no postgres user to run PostgreSQL as" >&2; return 1; }
    as=(runuser -u postgres --)
  fi
  "${as[@]}" "$bindir/initdb" -D "$dir/data" -A trust -U postgres -E UTF8 --no-sync >"$dir/initdb.log" 2>&1 ||
    { cat "$dir/initdb.log" >&2; return 1; }
  "${as[@]}" "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
    -o "-c listen_addresses='' -k $dir -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300" \
    start >/dev/null || { cat "$dir/server.log" >&2; return 1; }
  export PG_THROWAWAY_DIR="$dir" PG_THROWAWAY_BINDIR="$bindir"
  export TEST_DATABASE_URL="postgres://postgres@/postgres?host=$dir&sslmode=disable"
  echo "==> throwaway PostgreSQL $("$bindir/postgres" --version | awk '{print $3}') on unix socket $dir" >&2
}

stop_throwaway_postgres() {
  [ -n "${PG_THROWAWAY_DIR:-}" ] || return 0
  local as=()
  [ "$(id -u)" = 0 ] && as=(runuser -u postgres --)
  "${as[@]}" "$PG_THROWAWAY_BINDIR/pg_ctl" -D "$PG_THROWAWAY_DIR/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$PG_THROWAWAY_DIR"
  unset PG_THROWAWAY_DIR
}

# ensure_bench_tools makes sure `make bench` has wrk, the vips command line (Debian's
# libvips-tools, for the decode floor) and nginx (through ensure_nginx, which sets
# TIERPIX_NGINX): as root it installs the missing ones from Debian's packages, otherwise it
# says exactly what to install.
ensure_bench_tools() {
  local missing=()
  command -v wrk >/dev/null 2>&1 || missing+=(wrk)
  command -v vips >/dev/null 2>&1 || missing+=(libvips-tools)
  if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      echo "==> installing ${missing[*]} from Debian packages (for make bench)" >&2
      export DEBIAN_FRONTEND=noninteractive
      apt-get update -qq >&2
      apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
    else
      echo "make bench needs ${missing[*]}. Install them, e.g. on Debian/Ubuntu:" >&2
      echo "    sudo apt-get install ${missing[*]}" >&2
      return 1
    fi
  fi
  ensure_nginx
}
