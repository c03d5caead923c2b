#!/usr/bin/env bash
# Session-4 A/B helper: one warm `otun dev` from SRC_DIR (a copy of a tree with its .build), nginx-chain.sh +
# nginx-h2-chain.sh as the reference; rps and CPU us/request (dev process from /proc; nginx: both workers) for
# HTTP/1.1 (wrk c64), HTTP/2 TLS and h2c (h2load -c4 -m16). Usage: flock /tmp/otun-bench.lock bash bench/visitor-ab.sh LABEL SRC_DIR
label=$1 src=$2; D=${D:-8}; out=$(mktemp -d /tmp/small-ab.XXXX)
tck=$(getconf CLK_TCK)
ticks() { local t=0 p; for p in "$@"; do t=$((t + $(awk '{print $14+$15+$16+$17}' /proc/$p/stat))); done; echo $t; }
bash ${SHARED_BENCH:-/work/shared/bench}/nginx-chain.sh start >/dev/null 2>&1
GRPC_BACKEND=127.0.0.1:18300 bash ${SHARED_BENCH:-/work/shared/bench}/nginx-h2-chain.sh start >/dev/null 2>&1
np=$(cat /tmp/nginx-chain/nginx.pid); h2np=$(cat /tmp/nginx-h2-chain/nginx.pid)
nk() { pgrep -P "$1" | tr '\n' ' '; }
"$src/otun" dev --expose http://127.0.0.1:18080 --ingress http://127.0.0.1:18090 --h2c-ingress http://127.0.0.1:18091 \
  --https-ingress https://127.0.0.1:18453 --tunnel http://127.0.0.1:17070 --admin http://127.0.0.1:19090 \
  --set Cluster:SiloPort=21111 --set Cluster:GatewayPort=31000 >$out/dev.out 2>$out/dev.err &
pid=$!
trap 'kill -TERM $pid; wait $pid; bash ${SHARED_BENCH:-/work/shared/bench}/nginx-h2-chain.sh stop >/dev/null 2>&1; bash ${SHARED_BENCH:-/work/shared/bench}/nginx-chain.sh stop >/dev/null 2>&1' EXIT
for i in $(seq 1 1500); do grep -q 'otun dev: ready' $out/dev.out && break; sleep 0.2; done
wrk -t1 -c64 -d5s http://127.0.0.1:18090/hello >/dev/null
h2load -c4 -m16 -D 5 https://127.0.0.1:18453/hello >/dev/null
m() { # name pids cmd...
  local name=$1 pids=$2; shift 2; local c0 c1 n rps
  c0=$(ticks $pids); "$@" >$out/$name.txt 2>&1; c1=$(ticks $pids)
  if grep -q '^Requests/sec' $out/$name.txt; then n=$(awk '$2=="requests" && $3=="in" {print $1}' $out/$name.txt); rps=$(awk '/^Requests\/sec/ {print $2}' $out/$name.txt)
  else n=$(sed -n 's/^requests: .* \([0-9]*\) succeeded.*/\1/p' $out/$name.txt); rps=$(sed -n 's/^finished in [^,]*, \([0-9.]*\) req\/s.*/\1/p' $out/$name.txt); fi
  printf '%-6s %-16s rps %8s  reqs %7s  CPU us/req %7.1f  load %s\n' "$label" "$name" "$rps" "$n" "$(awk -v t=$((c1-c0)) -v n=$n -v hz=$tck 'BEGIN{print t/hz*1e6/n}')" "$(cut -d' ' -f1 /proc/loadavg)"
}
m nginx-h2-chain "$(nk $h2np) $(nk $np)" h2load -c4 -m16 -D $D https://127.0.0.1:18443/hello
m h1-c64 $pid wrk -t1 -c64 -d${D}s http://127.0.0.1:18090/hello
m tls-h2-c4m16 $pid h2load -c4 -m16 -D $D https://127.0.0.1:18453/hello
m h2c-c4m16 $pid h2load -c4 -m16 -D $D http://127.0.0.1:18091/hello
