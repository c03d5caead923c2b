#!/usr/bin/env bash
# CPU profile of the tunnel's small-request hot path: `otun dev` in front of the nginx backend of
# nginx-chain.sh (18080), wrk -c64 GET /hello through the ingress, and `dotnet-trace collect` with
# the sampled-thread-time profile (dotnet-trace 10's name for the EventPipe sample profiler of
# `collect`; its `cpu-sampling` profile exists only for `collect-linux`, kernel user_events, which
# this VM lacks) on the dev process while wrk runs. Samples of threads blocked in a wait are dropped
# by the summary, so the remaining samples approximate CPU. The trace is converted to speedscope and
# summarised by bench/profile_summary.py into shares and microseconds per request (the process's
# CPU per request measured from /proc over the same window). See bench/README.md, "Where the
# microseconds go".
#
# Usage: flock /tmp/otun-bench.lock bash bench/profile.sh
# Env:   DUR=10         seconds traced (wrk runs WARMUP + DUR + 2)
#        WARMUP=3       seconds of load before the trace starts
#        CONNS=64       wrk connections
#        GRAINS=        request-grain mode (always|on-demand|off; empty: the build's default)
#        TOP=25         frames in the self-time table
#        TRACE_PROFILE=dotnet-sampled-thread-time   dotnet-trace collect --profile; gc-verbose: an
#                       allocation trace, summarised by bench/allocs (bytes by type and allocating frame)
#        LOAD=wrk       wrk: HTTP/1.1 on the plain ingress; h2: h2load -c4 -m16 (H2LOAD_ARGS) on the TLS
#                       ingress (18453), the HTTP/2 visitor path of protocols.sh
#        OTUN_COPY=1 COPY_DIR=/tmp/bench-src READY_TIMEOUT=90   as in run.sh
# Output: bench/out/profile-<timestamp>/ (trace.nettrace, trace.speedscope.json, summary.md).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
shared_bench="${SHARED_BENCH:-$(cd "$repo/../shared/bench" 2>/dev/null && pwd || echo /work/shared/bench)}"
out="$here/out/profile-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$out"
cd "$out"
# shellcheck source=bench/common.sh
. "$here/common.sh"

DUR="${DUR:-10}"
WARMUP="${WARMUP:-3}"
CONNS="${CONNS:-64}"
GRAINS="${GRAINS:-}"
TOP="${TOP:-25}"
TRACE_PROFILE="${TRACE_PROFILE:-dotnet-sampled-thread-time}"
LOAD="${LOAD:-wrk}"
H2LOAD_ARGS="${H2LOAD_ARGS:--c 4 -m 16}"
H2_PORT=18453

nginx_started=0 wrk_pid=""
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  [ -n "$wrk_pid" ] && kill "$wrk_pid" 2>/dev/null || true
  bg_cleanup
  [ -n "$dev_pid" ] && stop_dev
  [ "$nginx_started" = 1 ] && bash "$shared_bench/nginx-chain.sh" stop >/dev/null 2>&1 || true
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

require_tools wrk nginx curl awk tar python3 dotnet
trace=$(COUNTERS_VERSION="${TRACE_VERSION:-10.0.750501}" ensure_dotnet_tool dotnet-trace) || die "dotnet-trace could not be installed"
log "raw output in $out"
build

require_free_ports 18080 18081 18082
bash "$shared_bench/nginx-chain.sh" start || die "nginx-chain start failed"
nginx_started=1
mapfile -t gargs < <(grain_args "$GRAINS" "$(dirname "$OTUN")")
if [ "$LOAD" = h2 ]; then
  require_tools h2load
  require_free_ports "$H2_PORT"
  start_dev profile --expose http://127.0.0.1:18080 --https-ingress "https://127.0.0.1:$H2_PORT" "${gargs[@]}"
  url="https://127.0.0.1:$H2_PORT/hello"
  curl -sfk --http2 "$url" >/dev/null || die "the tunnel's TLS ingress does not answer /hello"
  log "warm-up 3s (h2load $H2LOAD_ARGS)"
  # shellcheck disable=SC2086
  h2load $H2LOAD_ARGS -D 3 "$url" >/dev/null 2>&1 || true
  # shellcheck disable=SC2086
  h2load $H2LOAD_ARGS -D $((WARMUP + DUR + 2)) "$url" >"$out/h2load.txt" 2>&1 &
  wrk_pid=$!
else
  start_dev profile --expose http://127.0.0.1:18080 "${gargs[@]}"
  url="http://127.0.0.1:$INGRESS_PORT/hello"
  curl -sf "$url" >/dev/null || die "the tunnel does not answer /hello"
  log "warm-up 3s"
  wrk -t1 -c"$CONNS" -d3s "$url" >/dev/null 2>&1 || true

  wrk -t1 -c"$CONNS" -d$((WARMUP + DUR + 2))s --latency "$url" >"$out/wrk.txt" 2>&1 &
  wrk_pid=$!
fi
sleep "$WARMUP"
log "tracing pid $dev_pid for ${DUR}s ($TRACE_PROFILE)"
# Requests served during the trace: wrk's total scaled by the window (wrk prints totals only);
# the /proc CPU is read over exactly the traced window.
c0=$(cpu_ticks "$dev_pid"); t0=$(date +%s.%N)
"$trace" collect -p "$dev_pid" --profile "$TRACE_PROFILE" --duration "00:00:00:$(printf '%02d' "$DUR")" \
  -o "$out/trace.nettrace" </dev/null >"$out/trace.log" 2>&1 || die "dotnet-trace collect failed (see $out/trace.log)"
c1=$(cpu_ticks "$dev_pid"); t1=$(date +%s.%N)
wait "$wrk_pid" || true; wrk_pid=""
stop_dev
if [ "$LOAD" = h2 ]; then
  rps=$(sed -n 's/^finished in [^,]*, \([0-9.]*\) req\/s.*/\1/p' "$out/h2load.txt")
else
  rps=$(awk '/^Requests\/sec:/ {print $2}' "$out/wrk.txt")
fi
secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.2f", b - a}')
reqs=$(awk -v r="${rps:-0}" -v s="$secs" 'BEGIN {printf "%d", r * s}')
us=$(us_per_req $((c1 - c0)) "$reqs")
if [ "$TRACE_PROFILE" = gc-verbose ]; then
  # An allocation trace: AllocationTick events by type and allocating frame (bench/allocs), no CPU samples.
  log "summarising allocations"
  source_rev
  {
    echo "# Allocations $(date '+%Y-%m-%d %H:%M'), source $rev, grains $(grain_label "$GRAINS" "$(dirname "$OTUN")")"
    echo
    echo "wrk -t1 -c$CONNS GET /hello through otun dev -> nginx 18080: ${rps} rps over the whole wrk run (tracing on); ~${reqs} requests in the ${secs}s trace window"
    echo
    dotnet run -c Release --project "$here/allocs" -- "$out/trace.nettrace" "$reqs" "$TOP"
  } >"$out/summary.md" 2>"$out/allocs.err" || die "bench/allocs failed (see $out/allocs.err)"
  cat "$out/summary.md"
  exit 0
fi
log "converting to speedscope"
"$trace" convert "$out/trace.nettrace" --format Speedscope -o "$out/trace" >"$out/convert.log" 2>&1 || die "convert failed (see $out/convert.log)"
sjson=$(ls "$out"/trace*.speedscope.json | head -1)
{
  source_rev
  echo "# Profile $(date '+%Y-%m-%d %H:%M'), source $rev, grains $(grain_label "$GRAINS" "$(dirname "$OTUN")")"
  echo
  if [ "$LOAD" = h2 ]; then
    echo "h2load $H2LOAD_ARGS GET /hello through otun dev's TLS ingress -> nginx 18080: ${rps} req/s over the whole h2load run (tracing on);"
  else
    echo "wrk -t1 -c$CONNS GET /hello through otun dev -> nginx 18080: ${rps} rps over the whole wrk run (tracing on);"
  fi
  echo "dev process CPU over the ${secs}s trace window: $(awk -v t=$((c1 - c0)) -v hz="$CLK_TCK" -v s="$secs" 'BEGIN {printf "%.2f cores", t / hz / s}'), ~${reqs} requests, ${us} us/request"
  echo
  python3 "$here/profile_summary.py" "$sjson" "${us#\~}" "$TOP"
} >"$out/summary.md"
cat "$out/summary.md"
