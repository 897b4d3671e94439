#!/usr/bin/env bash
# Measures what the core issue asks to report, against a real tierpix on 127.0.0.1:
#  - the server's peak RSS (VmHWM) while it accepts a 50 MiB upload;
#  - the median time of a cold render and of a memory-cache hit of a 200 px thumbnail of a
#    12 MP JPEG, as seen by curl on the same machine.
# Bounded: a fixed number of requests, each with a timeout. Usage: scripts/measure.sh [runs]
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
ensure_go
ensure_libvips
command -v vips >/dev/null || { [ "$(id -u)" = 0 ] && apt-get install -y -qq libvips-tools >/dev/null; }
command -v curl >/dev/null || { echo "needs curl" >&2; exit 1; }
runs=${1:-9}
hits=30

go build -o bin/tierpix ./cmd/tierpix
work=$(mktemp -d /tmp/tierpix-measure.XXXXXX)
port=$((20000 + RANDOM % 20000))
TP="http://127.0.0.1:$port"
TIERPIX_ADDR=127.0.0.1:$port TIERPIX_DATA_DIR=$work/data TIERPIX_PUBLIC_URL=$TP \
TIERPIX_ADMIN_USERNAME=admin TIERPIX_ADMIN_PASSWORD=measure-admin-pw TIERPIX_LOG_LEVEL=warn \
  bin/tierpix serve >"$work/server.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 100); do curl -sf -m 1 "$TP/healthz" >/dev/null && break; sleep 0.1; done

curl -sf -m 10 -u admin:measure-admin-pw -H 'Content-Type: application/json' \
  -d '{"username":"bench","password":"bench-password","tier":"Enterprise"}' "$TP/api/admin/users" >/dev/null
U=bench:bench-password

echo "==> making images"
# 12 MP: smooth noise plus grain and a gradient, JPEG Q90 (like the benchmark anchors).
vips gaussnoise "$work/n.v" 500 375 --sigma 60 --mean 128
vips resize "$work/n.v" "$work/ns.v" 8 --kernel cubic
vips gaussnoise "$work/g.v" 4000 3000 --sigma 12 --mean 0
vips xyz "$work/xy.v" 4000 3000
vips extract_band "$work/xy.v" "$work/x.v" 0
vips linear "$work/x.v" "$work/xg.v" 0.02 0
vips add "$work/ns.v" "$work/g.v" "$work/a.v"
vips add "$work/a.v" "$work/xg.v" "$work/b.v"
vips bandjoin "$work/b.v $work/ns.v $work/b.v" "$work/c.v"
vips cast "$work/c.v" "$work/c8.v" uchar
vips copy "$work/c8.v" "$work/12mp.jpg[Q=90]"
# About 50 MiB: 4100x4100 RGB noise as PNG does not compress.
vips gaussnoise "$work/p.v" 4100 4100 --sigma 80 --mean 128
vips bandjoin "$work/p.v $work/p.v $work/p.v" "$work/p3.v"
vips cast "$work/p3.v" "$work/p8.v" uchar
vips gaussnoise "$work/q.v" 4100 4100 --sigma 80 --mean 128
vips cast "$work/q.v" "$work/q8.v" uchar
vips bandjoin "$work/q8.v $work/p8.v" "$work/pq.v"
vips extract_band "$work/pq.v" "$work/big.v" 0 --n 3
vips copy "$work/big.v" "$work/big.png[compression=0]"
ls -l "$work/12mp.jpg" "$work/big.png" | awk '{print "    " $5 " bytes  " $NF}'

hwm() { awk '/VmHWM/ {print $2}' /proc/$pid/status; }
rss() { awk '/VmRSS/ {print $2}' /proc/$pid/status; }
echo "==> 50 MiB upload"
before=$(hwm)
code=$(curl -s -m 300 -o "$work/up.json" -w '%{http_code}' -u $U -F image=@"$work/big.png" "$TP/api/images")
after=$(hwm)
echo "    status $code; peak RSS before $((before / 1024)) MiB, after the upload $((after / 1024)) MiB; RSS now $(( $(rss) / 1024 )) MiB"

median() { sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
echo "==> 12 MP JPEG, 200 px thumbnail: $runs cold renders, $hits hits each"
: >"$work/cold"; : >"$work/hot"
for i in $(seq "$runs"); do
  link=$(curl -sf -m 30 -u $U -F image=@"$work/12mp.jpg" "$TP/api/images" | grep -o 'http[^"]*/i/[^"]*/h200' | head -1)
  curl -s -m 30 -o /dev/null -w '%{time_total}\n' "$link" >>"$work/cold"
  # One curl for all hits, so they share a keep-alive connection as a browser's would.
  args=(); for _ in $(seq "$hits"); do args+=(-o /dev/null "$link"); done
  curl -s -m 60 -w '%{time_total}\n' "${args[@]}" >>"$work/hot"
done
printf '    cold render: median %.1f ms over %d\n' "$(median <"$work/cold" | awk '{print $1*1000}')" "$runs"
printf '    cached hit:  median %.2f ms over %d\n' "$(median <"$work/hot" | awk '{print $1*1000}')" "$((runs * hits))"
echo "    server peak RSS over the run: $(( $(hwm) / 1024 )) MiB"
