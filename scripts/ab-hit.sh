#!/bin/bash
# ab-hit.sh compares the hit path of two tierpix binaries side by side: both serve on
# 127.0.0.1, each gets one Premium user and one 1200x800 JPEG, and wrk (-t2 -c64, 5 s) asks
# each for the same h200 link in turn, ROUNDS times, interleaved. A row is the server's CPU
# (user + system, from /proc) per request. MEMBYTES is TIERPIX_MEMORY_CACHE_BYTES: the
# default (268435456) measures memory hits, 1 disk hits.
#
# usage: scripts/ab-hit.sh BIN_BEFORE BIN_AFTER [MEMBYTES [ROUNDS]]
# needs: wrk, curl, python3, vips (Debian's libvips-tools)
set -euo pipefail
A=$1 B=$2 MEM=${3:-268435456} ROUNDS=${4:-5}
work=$(mktemp -d /tmp/tierpix-ab.XXXX)
vips gaussnoise $work/n.v 1200 800 --mean 128 --sigma 40
vips copy $work/n.v "$work/photo.jpg[Q=85]"
start() { # name bin port
  local d=$work/$1; mkdir -p $d
  TIERPIX_ADDR=127.0.0.1:$3 TIERPIX_DATA_DIR=$d TIERPIX_ADMIN_USERNAME=admin TIERPIX_ADMIN_PASSWORD=admin-password \
  TIERPIX_SIGNING_KEY=0123456789abcdef0123456789abcdef0123456789abcdef TIERPIX_MEMORY_CACHE_BYTES=$MEM TIERPIX_LOG_LEVEL=error \
    $2 serve > $d/log 2>&1 &
  echo $! > $work/$1.pid
  for i in $(seq 100); do curl -fs http://127.0.0.1:$3/healthz >/dev/null && return; sleep 0.1; done; cat $d/log; exit 1
}
link() { # port -> h200 path
  local u=http://127.0.0.1:$1
  curl -fs -u admin:admin-password -H 'Content-Type: application/json' -d '{"username":"u","password":"user-password","tier":"Premium"}' $u/api/admin/users >/dev/null
  curl -fs -u u:user-password -F image=@$work/photo.jpg $u/api/images | python3 -c 'import json,sys; print(json.load(sys.stdin)["links"]["thumbnails"][0]["url"])'
}
cpu() { awk '{print $14+$15}' /proc/$1/stat; }
start a $A 18081; start b $B 18082
la=$(link 18081); lb=$(link 18082)
curl -fs -o /dev/null $la; curl -fs -o /dev/null $lb
tck=$(getconf CLK_TCK)
for r in $(seq $ROUNDS); do
  for s in a b; do
    if [ $s = a ]; then l=$la; else l=$lb; fi
    pid=$(cat $work/$s.pid); c0=$(cpu $pid)
    out=$(wrk -t2 -c64 -d5s $l)
    c1=$(cpu $pid)
    n=$(echo "$out" | awk '/requests in/{print $1}')
    bad=$(echo "$out" | awk "/Non-2xx/{print \$NF}"); echo "round $r $([ $s = a ] && echo before || echo after): $n requests (non-2xx: ${bad:-0}), $(python3 -c "print(round(($c1-$c0)/$tck/$n*1e6,1))") us CPU/request"
  done
done
kill $(cat $work/a.pid) $(cat $work/b.pid); wait 2>/dev/null || true; rm -rf $work
