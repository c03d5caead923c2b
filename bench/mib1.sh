#!/usr/bin/env bash
# The issue's 1 MiB row alone, with CPU per MiB: wrk -t1 -c8 GET /1m.bin against nginx-chain.sh's
# backend (18080, direct), nginx two hops (18082), YARP two hops (yarp-chain.sh, 18182) and the
# tunnel (`otun dev --expose http://127.0.0.1:18080` on bulk.sh's ports), RUNS rounds of each in
# turn; medians. CPU ms per MiB: the tunnel = the dev process; YARP = its two processes; nginx two
# hops = the nginx worker (backend and both hops in one process) minus the direct row's figure ("~").
#
# Usage: flock /tmp/otun-bench.lock bash bench/mib1.sh
# Env:   DUR=10 (seconds per wrk run)  RUNS=3  YARP=1  WARMUP=40 (seconds of load per .NET target first)
#        OTUN_SET="Key=Value ..."
#        OTUN_COPY=1 COPY_DIR=/tmp/bench-src-bulk READY_TIMEOUT=90   as in run.sh
# Output: bench/out/mib1-<timestamp>/ (wrk output, dev logs, results.txt).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
shared_bench="${SHARED_BENCH:-$(cd "$repo/../shared/bench" 2>/dev/null && pwd || echo /work/shared/bench)}"
out="$here/out/mib1-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$out"
COPY_DIR="${COPY_DIR:-/tmp/bench-src-bulk}"
# shellcheck source=bench/common.sh
. "$here/common.sh"
INGRESS_PORT=28090 TUNNEL_PORT=27070 ADMIN_PORT=29090 SILO_PORT=22111 SILO_GW_PORT=32000
HTTPS_PORT=28443 DASH_PORT=28091
DUR="${DUR:-10}" RUNS="${RUNS:-3}" YARP="${YARP:-1}" WARMUP="${WARMUP:-40}"

nginx_started=0 yarp_started=0
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  [ -n "$dev_pid" ] && stop_dev
  [ "$yarp_started" = 1 ] && bash "$shared_bench/yarp-chain.sh" stop >/dev/null 2>&1 || true
  [ "$nginx_started" = 1 ] && bash "$shared_bench/nginx-chain.sh" stop >/dev/null 2>&1 || true
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

require_tools wrk nginx curl awk tar dotnet
require_free_ports 18080 18081 18082 18181 18182 "$HTTPS_PORT" "$DASH_PORT"
log "raw output in $out"
build
bash "$shared_bench/nginx-chain.sh" start || die "nginx-chain start failed"
nginx_started=1
nginx_pids="$(cat /tmp/nginx-chain/nginx.pid)"
yarp_pids=""
if [ "$YARP" = 1 ]; then
  if bash "$shared_bench/yarp-chain.sh" start >"$out/yarp.log" 2>&1; then
    yarp_started=1; yarp_pids="$(cat /tmp/yarp-chain/hop1.pid) $(cat /tmp/yarp-chain/hop2.pid)"
  else log "YARP did not start (see $out/yarp.log): no YARP row"; fi
fi
start_dev mib1 --expose http://127.0.0.1:18080 --https-ingress "https://127.0.0.1:$HTTPS_PORT" \
  --set "Cluster:Dashboard=http://127.0.0.1:$DASH_PORT" --data "$out/data"

# run NAME URL PIDS -> appends "MB/s ms/MiB" to $out/NAME.txt (MB/s = wrk's Transfer/sec in 10^6 bytes)
run() {
  local name=$1 url=$2 pids=$3 c0 c1 bps
  c0=$(cpu_ticks $pids)
  wrk -t1 -c8 -d"${DUR}s" "$url" >"$out/$name-$i.txt" 2>&1
  c1=$(cpu_ticks $pids)
  bps=$(awk '/^Transfer\/sec:/ { v = $2; u = v; sub(/^[0-9.]+/, "", u); n = v + 0
           m = (u == "KB") ? 1024 : (u == "MB") ? 1048576 : (u == "GB") ? 1073741824 : 1; printf "%.0f", n * m }' "$out/$name-$i.txt")
  awk -v b="$bps" -v d="$DUR" -v t=$((c1 - c0)) -v hz="$CLK_TCK" 'BEGIN { mib = b * d / 1048576
    printf "%.1f %.2f\n", b / 1e6, (mib > 0 ? t / hz * 1000 / mib : 0) }' >>"$out/$name.txt"
}
for u in "http://127.0.0.1:18182/1m.bin" "http://127.0.0.1:$INGRESS_PORT/1m.bin"; do
  [ "$u" = "http://127.0.0.1:18182/1m.bin" ] && [ -z "$yarp_pids" ] && continue
  wrk -t1 -c8 -d"${WARMUP}s" "$u" >/dev/null 2>&1 || true   # warm-up (JIT: ~40 s of load, see bench/README)
done
for i in $(seq 1 "$RUNS"); do
  run direct "http://127.0.0.1:18080/1m.bin" "$nginx_pids"
  run nginx2 "http://127.0.0.1:18082/1m.bin" "$nginx_pids"
  [ -n "$yarp_pids" ] && run yarp2 "http://127.0.0.1:18182/1m.bin" "$yarp_pids"
  run tunnel "http://127.0.0.1:$INGRESS_PORT/1m.bin" "$dev_pid"
  log "round $i: direct $(tail -1 "$out/direct.txt"), nginx2 $(tail -1 "$out/nginx2.txt"), yarp2 $(tail -1 "$out/yarp2.txt" 2>/dev/null), tunnel $(tail -1 "$out/tunnel.txt")"
done
med() { awk -v c="$2" '{print $c}' "$out/$1.txt" | sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
{
  source_rev
  echo "1 MiB c8 $(date '+%Y-%m-%d %H:%M')  source $rev ($dirty modified)  load avg $(cut -d' ' -f1-3 /proc/loadavg)  medians of $RUNS x ${DUR}s"
  echo "| target | MB/s | CPU ms/MiB (path) | runs (MB/s) |"
  echo "|---|---|---|---|"
  dm=$(med direct 2)
  echo "| nginx backend direct | $(med direct 1) | $dm (backend) | $(awk '{printf "%s ", $1}' "$out/direct.txt")|"
  echo "| nginx 2 hops | $(med nginx2 1) | ~$(awk -v a="$(med nginx2 2)" -v b="$dm" 'BEGIN {printf "%.2f", a - b}') | $(awk '{printf "%s ", $1}' "$out/nginx2.txt")|"
  [ -s "$out/yarp2.txt" ] && echo "| YARP 2 hops | $(med yarp2 1) | $(med yarp2 2) | $(awk '{printf "%s ", $1}' "$out/yarp2.txt")|"
  echo "| tunnel | $(med tunnel 1) | $(med tunnel 2) | $(awk '{printf "%s ", $1}' "$out/tunnel.txt")|"
  [ -s "$out/yarp2.txt" ] && echo "tunnel / YARP 2 hops: $(ratio "$(med tunnel 1)" "$(med yarp2 1)") (bar >= 1.0); tunnel / nginx 2 hops: $(ratio "$(med tunnel 1)" "$(med nginx2 1)")"
} | tee "$out/results.txt"
