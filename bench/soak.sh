#!/usr/bin/env bash
# Soak: DURATION (default 1h; DURATION=10m for the short variant) of a fixed-rate mix through the local
# cluster (`otun cluster --lb`: redis, 2 silos, 2 gateways, 2 agents, nginx in front) — small GETs,
# 1 MiB downloads, SSE streams, WebSocket echo, gRPC bidi streams and a few slow readers — sampling
# every SAMPLE seconds, per process, RSS, threads and open file descriptors, the GC heap of gateways,
# silos and agents (their /metrics), in-flight requests and permits in use, and the cluster's grain activations (the
# silos' orleans_catalog_activations), into samples.csv.
# Pass: no failed request the mix did not ask for, and the last quarter's RSS (per process) and
# activations no more than 10 % above the second quarter's. Writes summary.md (the table) and soak.png.
#
# Usage: flock /tmp/otun-bench.lock bash bench/soak.sh
# Env:   DURATION=1h        how long the mix runs (s, m or h suffix)
#        RATE=auto          small GET /hello per second (open loop); auto = FRACTION x the capacity
#                           measured first (wrk, closed loop, CAPACITY_SECS through the load balancer,
#                           with the rest of the mix already running beside it)
#        FRACTION=0.5       share of the measured capacity the small GETs run at (the issue: half)
#        CAPACITY_SECS=15   length of the capacity measurement (after a 5 s warm-up)
#        MIB_RATE=2         1 MiB downloads per second (open loop)
#        SSE=2 WS=4 GRPC=4 SLOW=3   concurrent SSE streams, WebSockets, gRPC bidi streams, slow readers
#        ECHO_MS=50         each WebSocket and gRPC bidi stream echoes one message every ECHO_MS ms
#                           (0: as fast as it can, which is no longer "half of capacity")
#        SAMPLE=10          seconds between samples
#        PORT_OFFSET=3000   added to every `otun cluster` port (the load balancer is on 8000 + offset)
#        DASHBOARD=0        1: silo-1 also runs the Orleans dashboard (nothing asks it)
#        OTUN_COPY=1 COPY_DIR=/tmp/bench-src   build a copy of the tree (as run.sh)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
out="$here/out/soak-$(date +%Y%m%d-%H%M%S)"   # samples, loads' output and logs (git-ignored)
mkdir -p "$out"
cd "$out"
# shellcheck source=bench/common.sh
. "$here/common.sh"

DURATION="${DURATION:-1h}"
RATE="${RATE:-auto}"
FRACTION="${FRACTION:-0.5}"
CAPACITY_SECS="${CAPACITY_SECS:-15}"
ECHO_MS="${ECHO_MS:-50}"
MIB_RATE="${MIB_RATE:-2}"
SSE="${SSE:-2}" WS="${WS:-4}" GRPC="${GRPC:-4}" SLOW="${SLOW:-3}"
SAMPLE="${SAMPLE:-10}"
OFF="${PORT_OFFSET:-3000}"
case "$DURATION" in
  *h) SECS=$(( ${DURATION%h} * 3600 )) ;;
  *m) SECS=$(( ${DURATION%m} * 60 )) ;;
  *s) SECS=${DURATION%s} ;;
  *) SECS=$DURATION ;;
esac
LB=$((8000 + OFF)) LB_H2C=$((8001 + OFF)) DASH=$((8090 + OFF)) GRPC_PORT=$((8777 + OFF))
GW_ADMIN=($((9090 + OFF)) $((9190 + OFF)))
SILO_ADMIN=($((9091 + OFF)) $((9092 + OFF)))
AGENT_ADMIN=($((9060 + OFF)) $((9061 + OFF)))
DASHBOARD="${DASHBOARD:-0}"
require_tools curl nginx redis-server wrk
require_free_ports "$LB" "$LB_H2C" "$DASH" "$GRPC_PORT" "${GW_ADMIN[@]}" "${SILO_ADMIN[@]}" "${AGENT_ADMIN[@]}"

WITH_LOADGEN=1 build
data="$out/cluster"
pids_bg=()
cleanup() {
  for p in "${pids_bg[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -n "${cluster_pid:-}" ] && kill -TERM "$cluster_pid" 2>/dev/null && wait "$cluster_pid" 2>/dev/null || true
}
trap cleanup EXIT

log "gRPC backend on $GRPC_PORT"
"$LOADGEN" grpc-backend --port "$GRPC_PORT" >"$out/grpc-backend.log" 2>&1 &
pids_bg+=($!)

log "otun cluster --lb $((8000)) (+$OFF) in $data"
dash_args=(); [ "$DASHBOARD" = 1 ] || dash_args=(--dashboard-port 0)
"$OTUN" cluster --port-offset "$OFF" --data "$data" --lb 8000 --with-demo "${dash_args[@]}" \
  --expose "h2c://127.0.0.1:$GRPC_PORT" --host "127.0.0.1/otunbench.BenchSvc" --service grpc \
  >"$out/cluster.log" 2>&1 &
cluster_pid=$!
for _ in $(seq 1 300); do
  grep -q '^otun cluster: ready' "$out/cluster.log" && break
  kill -0 "$cluster_pid" 2>/dev/null || { tail -30 "$out/cluster.log" >&2; die "otun cluster exited"; }
  sleep 1
done
grep -q '^otun cluster: ready' "$out/cluster.log" || die "otun cluster not ready after 300 s"


# The mix. Each load writes one key=value line (errors=N) or an error count to its own file.
# The rest of the mix starts first, so the capacity below is what the small GETs get beside it (measured
# alone, it was more than the machine had left once the mix ran: the open loop then queued without end).
CAP_TOTAL=$((5 + CAPACITY_SECS + 2))
[ "$RATE" = auto ] || CAP_TOTAL=0
SECS_ALL=$((SECS + CAP_TOTAL))
log "mix for $SECS s: ${RATE} small/s, echoes every $ECHO_MS ms, $MIB_RATE x 1 MiB/s, $SSE SSE, $WS WebSockets, $GRPC gRPC bidi, $SLOW slow readers"
"$LOADGEN" http-rate --target "http://127.0.0.1:$LB/download?size=1048576" --rate "$MIB_RATE" --duration "$SECS_ALL" --connections 8 --warmup 0 >"$out/mib.txt" 2>&1 &
pids_bg+=($!)
"$LOADGEN" ws-echo --target "ws://127.0.0.1:$LB/ws" --sockets "$WS" --duration "$SECS_ALL" --size 1024 --warmup 0 --interval-ms "$ECHO_MS" >"$out/ws.txt" 2>&1 &
pids_bg+=($!)
"$LOADGEN" grpc-stream --target "http://127.0.0.1:$LB_H2C" --streams "$GRPC" --duration "$SECS_ALL" --size 1024 --mode bidi --warmup 0 --interval-ms "$ECHO_MS" >"$out/grpc.txt" 2>&1 &
pids_bg+=($!)
end=$(( $(date +%s) + SECS_ALL ))
mix_t0=$(date +%s) mix_ticks0=$(cpu_ticks "$cluster_pid")
sse_loop() {   # N: SSE streams of 20 events, 500 ms apart, back to back; counts streams that ended short
  local ok=0 bad=0
  while [ "$(date +%s)" -lt "$end" ]; do
    n=$(curl -sN --max-time 60 "http://127.0.0.1:$LB/sse?count=20&interval_ms=500" | grep -c '^data: event' || true)
    if [ "$n" = 20 ]; then ok=$((ok + 1)); else bad=$((bad + 1)); fi
  done
  echo "ok=$ok errors=$bad" >"$out/sse-$1.txt"
}
slow_loop() {   # N: 4 MiB downloads read at 200 KiB/s (20 s each); counts short or failed ones
  local ok=0 bad=0
  while [ "$(date +%s)" -lt "$end" ]; do
    n=$(curl -s --max-time 120 --limit-rate 200k "http://127.0.0.1:$LB/download?size=4194304" | wc -c)
    if [ "$n" = 4194304 ]; then ok=$((ok + 1)); else bad=$((bad + 1)); fi
  done
  echo "ok=$ok errors=$bad" >"$out/slow-$1.txt"
}
for i in $(seq 1 "$SSE"); do sse_loop "$i" & pids_bg+=($!); done
for i in $(seq 1 "$SLOW"); do slow_loop "$i" & pids_bg+=($!); done

# Capacity: closed-loop small GETs through the load balancer (after a warm-up) beside the rest of the mix.
capacity=""
if [ "$RATE" = auto ]; then
  wrk -t1 -c32 -d5s "http://127.0.0.1:$LB/hello" >"$out/capacity-warmup.txt" 2>&1 || true
  wrk -t1 -c32 -d"${CAPACITY_SECS}s" "http://127.0.0.1:$LB/hello" >"$out/capacity.txt" 2>&1 \
    || die "wrk against the load balancer failed: $(tail -3 "$out/capacity.txt")"
  capacity=$(awk '/^Requests\/sec/ { printf "%.0f", $2 }' "$out/capacity.txt")
  [ -n "$capacity" ] && [ "$capacity" -gt 0 ] || die "no capacity figure in $out/capacity.txt"
  RATE=$(awk -v c="$capacity" -v f="$FRACTION" 'BEGIN { r = int(c * f); print (r < 1 ? 1 : r) }')
  log "measured capacity: $capacity small GETs/s through the load balancer; the mix runs them at $RATE/s ($FRACTION)"
fi
echo "capacity_rps=${capacity:-not measured} rate=$RATE fraction=$FRACTION echo_ms=$ECHO_MS" >"$out/rate.txt"
"$LOADGEN" http-rate --target "http://127.0.0.1:$LB/hello" --rate "$RATE" --duration "$SECS" --connections 32 --warmup 0 >"$out/small.txt" 2>&1 &
pids_bg+=($!)

# Samples: one row per process every SAMPLE s.
echo "t_s,process,pid,rss_kb,threads,fds,gc_heap_bytes,activations,in_flight,permits_in_use" >samples.csv
metric() { awk -v m="$2" '$1 == m || index($1, m"{") == 1 { s += $NF; seen = 1 } END { if (seen) printf "%.0f", s }' <<<"$1"; }
t0=$(date +%s)
while [ "$(date +%s)" -lt "$end" ]; do
  t=$(( $(date +%s) - t0 ))
  # Cluster-wide activations: the silos' own gauge (the Orleans meter on their admin /metrics).
  act="" silo_metrics=()
  for port in "${SILO_ADMIN[@]}"; do
    sm=$(curl -s --max-time 5 "http://127.0.0.1:$port/metrics" || true)
    silo_metrics+=("$sm")
    a=$(metric "$sm" orleans_catalog_activations)
    [ -n "$a" ] && act=$(( ${act:-0} + a ))
  done
  while read -r name pid; do
    [ -d "/proc/$pid" ] || continue
    rss=$(vm "$pid" VmRSS) threads=$(vm "$pid" Threads) fds=$(ls "/proc/$pid/fd" 2>/dev/null | wc -l)
    gc="" inflight="" permits=""
    case "$name" in
      gateway-*)
        m=$(curl -s --max-time 5 "http://127.0.0.1:${GW_ADMIN[$(( ${name#gateway-} - 1 ))]}/metrics" || true)
        gc=$(metric "$m" dotnet_gc_last_collection_heap_size_bytes)
        inflight=$(metric "$m" otun_gateway_requests_in_flight)
        permits=$(metric "$m" otun_gateway_permits_in_use) ;;
      agent-*)
        m=$(curl -s --max-time 5 "http://127.0.0.1:${AGENT_ADMIN[$(( ${name#agent-} - 1 ))]}/metrics" || true)
        gc=$(metric "$m" dotnet_gc_last_collection_heap_size_bytes) ;;
      silo-*)
        gc=$(metric "${silo_metrics[$(( ${name#silo-} - 1 ))]:-}" dotnet_gc_last_collection_heap_size_bytes) ;;
    esac
    echo "$t,$name,$pid,$rss,$threads,$fds,$gc,$act,$inflight,$permits" >>samples.csv
  done <"$data/pids"
  sleep "$SAMPLE"
done
mix_ticks1=$(cpu_ticks "$cluster_pid") mix_secs=$(( $(date +%s) - mix_t0 ))
cores=$(awk -v t=$((mix_ticks1 - mix_ticks0)) -v hz="$CLK_TCK" -v s="$mix_secs" 'BEGIN { printf "%.2f", t / hz / s }')
log "the cluster (every otun process, redis and the nginx load balancer) used $cores cores on average over the mix"
log "mix over; waiting for the loads' reports"
for p in "${pids_bg[@]:1}"; do wait "$p" 2>/dev/null || true; done

# Failed requests the mix did not ask for: every load's error count.
errors=0
for f in small.txt mib.txt ws.txt grpc.txt sse-*.txt slow-*.txt; do
  [ -f "$f" ] || continue
  e=$(kv "$(tail -1 "$f")" errors); e=${e:-unknown}
  log "$f: $(tail -1 "$f" | cut -c1-220)"
  if [ "$e" != 0 ]; then errors=$((errors + ${e//[^0-9]/1})); fi
done
{
  echo "Load: $(cat "$out/rate.txt"); the cluster used $cores of the machine's $(nproc) cores on average."
  echo
  /usr/bin/python3 "$here/soak_report.py" samples.csv "$errors" "$DURATION" "$out"
} | tee summary.md
log "samples, plot and summary in $out"
