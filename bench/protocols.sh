#!/usr/bin/env bash
# OrleansTunnel protocol benchmark: HTTP/2 (h2load), gRPC (unary, bidi ping-pong, server stream) and
# WebSocket echo, each through the tunnel (`otun dev`) and directly against the same backend, with
# the ratio tunnel / direct. See bench/README.md.
#
# Usage: bash bench/protocols.sh
# Env:   DUR=10          seconds per measured run (h2load -D, loadgen --duration)
#        WARMUP=2        seconds of warm-up before each measured run (not counted)
#        DEV_WARMUP=40   seconds of load on each fresh otun dev before its first measured run (its
#                        paths tiered-JIT and PGO-compiled, ~40 s as in run.sh; 0 skips)
#        H2LOAD_ARGS="-c 4 -m 16"   h2load connections / streams per connection (64 streams in all)
#        GRPC_C=64       concurrent unary calls; also the number of bidi ping-pong streams
#        GRPC_SIZE=64    bytes per gRPC unary/bidi message
#        SRV_STREAMS=4 SRV_SIZE=1024   server-stream rows (SRV_STREAMS=0 skips them)
#        WS_SOCKETS=64 WS_SIZE=64      WebSocket echo sockets and message size
#        GRAINS=         request-grain mode of every otun dev (always|on-demand|off; empty: the build's default)
#        ALLOC=1         0: no dotnet-counters session beside the tunnel runs
#        REFS=1          0: skip the nginx references (nginx-h2-chain.sh: h2 two hops 18443, grpc_pass two hops 18444)
#        OTUN_COPY=1 COPY_DIR=/tmp/bench-src READY_TIMEOUT=90   as in run.sh
# The tunnel's TLS ingress listens on 18453 here: 18443 is nginx-h2-chain.sh's HTTP/2 reference.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
out="$here/out/protocols-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$out"
cd "$out"
# shellcheck source=bench/common.sh
. "$here/common.sh"
shared_bench="${SHARED_BENCH:-$(cd "$repo/../shared/bench" 2>/dev/null && pwd || echo /work/shared/bench)}"
HTTPS_PORT=18453   # 18443 belongs to nginx-h2-chain.sh
GRAINS="${GRAINS:-}"
REFS="${REFS:-1}"

DUR="${DUR:-10}"
WARMUP="${WARMUP:-2}"
DEV_WARMUP="${DEV_WARMUP:-40}"
H2LOAD_ARGS="${H2LOAD_ARGS:--c 4 -m 16}"
GRPC_C="${GRPC_C:-64}"
GRPC_SIZE="${GRPC_SIZE:-64}"
SRV_STREAMS="${SRV_STREAMS:-4}"
SRV_SIZE="${SRV_SIZE:-1024}"
WS_SOCKETS="${WS_SOCKETS:-64}"
WS_SIZE="${WS_SIZE:-64}"

backend_pid=""
refs_started=0
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  bg_cleanup
  [ -n "$dev_pid" ] && stop_dev
  if [ "$refs_started" = 1 ]; then
    bash "$shared_bench/nginx-h2-chain.sh" stop >/dev/null 2>&1 || true
    bash "$shared_bench/nginx-chain.sh" stop >/dev/null 2>&1 || true
  fi
  if [ -n "$backend_pid" ]; then kill -TERM "$backend_pid" 2>/dev/null || true; wait "$backend_pid" 2>/dev/null || true; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

rows=()       # section|target|path|rate|unit|p50 ms|p99 ms|CPU us/req path|backend|alloc B/req|gen0/gen1+2|errors
warnings=()
declare -A RATE CPUUS

# CPU and allocations per request (common.sh): the caller sets CPU_PATH_PIDS, CPU_BACKEND_PIDS,
# CPU_PATH_MINUS_BACKEND and ALLOC_TARGET. h2load and loadgen warm up first: the load runs in the
# background and the window opens after WARMUP seconds and closes when the tool exits.
ALLOC_TARGET=""
set_cpu() { CPU_PATH_PIDS=$1 CPU_BACKEND_PIDS=$2 CPU_PATH_MINUS_BACKEND=$3 ALLOC_TARGET=$4; }
bg_window_begin() { sleep "$WARMUP"; alloc_begin "$ALLOC_TARGET" "$1" $((DUR + 1)); cpu_begin; }
cpu_cols() { echo "$CPU_PATH_US|$CPU_BACK_US|$ALLOC_B|$ALLOC_GC0 / $ALLOC_GC12"; }

# ---------------------------------------------------------------- h2load
# run_h2load KEY LABEL PATHDESC URL [extra h2load args]
run_h2load() {
  local key=$1 label=$2 path=$3 url=$4 f="$out/h2load-$1.txt"; shift 4
  log "h2load $label: $H2LOAD_ARGS -D $DUR --warm-up-time $WARMUP $* $url"
  # shellcheck disable=SC2086
  h2load $H2LOAD_ARGS -D "$DUR" --warm-up-time "$WARMUP" "$@" "$url" >"$f" 2>&1 &
  local hp=$!; LOAD_PID=$hp
  bg_window_begin "$key"
  wait "$hp" || log "h2load exited non-zero for $key (see $f)"
  local rps total ok failed errored timeout codes mean err
  rps=$(sed -n 's/^finished in [^,]*, \([0-9.]*\) req\/s.*/\1/p' "$f")
  read -r total ok failed errored timeout < <(sed -n 's/^requests: \([0-9]*\) total, [0-9]* started, [0-9]* done, \([0-9]*\) succeeded, \([0-9]*\) failed, \([0-9]*\) errored, \([0-9]*\) timeout.*/\1 \2 \3 \4 \5/p' "$f") || true
  cpu_end "${ok:-0}"; alloc_end "${ok:-0}"
  codes=$(sed -n 's/^status codes: //p' "$f")
  mean=$(awk '/^time for request:/ {print $6}' "$f")   # "time for request:  min max mean sd +/- sd"
  err="none"
  if [ -z "$rps" ]; then err="no result (see $f)"; fi
  if [ "${failed:-0}" != 0 ] || [ "${errored:-0}" != 0 ] || [ "${timeout:-0}" != 0 ]; then err="failed ${failed:-?} errored ${errored:-?} timeout ${timeout:-?}"; fi
  case "$codes" in *" 0 3xx, 0 4xx, 0 5xx"*) ;; *) err="$err; status codes: $codes";; esac
  RATE[$key]=${rps:-0}; CPUUS[$key]=$CPU_PATH_US
  rows+=("HTTP/2 h2load|$label|$path|${rps:-?}|req/s|mean ${mean:-?}|-|$(cpu_cols)|$err")
}

# ---------------------------------------------------------------- loadgen
# run_lg KEY SECTION LABEL PATHDESC ARGS...
run_lg() {
  local key=$1 section=$2 label=$3 path=$4; shift 4
  local f="$out/loadgen-$key.txt" line rate p50 p99 errors first unit err n
  log "loadgen $label: $*"
  "$LOADGEN" "$@" --duration "$DUR" --warmup "$WARMUP" >"$f" 2>&1 &
  local lp=$!; LOAD_PID=$lp
  bg_window_begin "$key"
  wait "$lp" || log "loadgen exited non-zero for $key (see $f)"
  line=$(grep '^cmd=' "$f" | tail -1 || true)
  rate=$(kv "$line" rate); p50=$(kv "$line" p50_ms); p99=$(kv "$line" p99_ms); errors=$(kv "$line" errors)
  case "$1" in grpc-unary) unit="calls/s"; n=$(kv "$line" calls);; *) unit="msg/s"; n=$(kv "$line" messages);; esac
  cpu_end "${n:-0}"; alloc_end "${n:-0}"
  first=$(sed -n 's/.*first_error="\(.*\)"$/\1/p' <<<"$line")
  err="none"
  if [ -z "$line" ]; then err="no result (see $f)"; elif [ "${errors:-0}" != 0 ]; then err="$errors errors, first: $first"; fi
  RATE[$key]=${rate:-0}; CPUUS[$key]=$CPU_PATH_US
  rows+=("$section|$label|$path|${rate:-?}|$unit|${p50:-?}|${p99:-?}|$(cpu_cols)|$err")
  if [ -n "$dev_pid" ] && ! dev_alive; then warnings+=("otun dev died during $key (see $dev_err)"); fi
}

# warm_h2 URL [h2load args]: DEV_WARMUP seconds of h2load on a fresh dev process, not measured.
warm_h2() {
  [ "$DEV_WARMUP" -gt 0 ] || return 0
  log "warm-up of the dev process: h2load ${DEV_WARMUP}s $1"
  # shellcheck disable=SC2086
  h2load $H2LOAD_ARGS -D "$DEV_WARMUP" "$@" >>"$out/dev-warmup.txt" 2>&1 || log "warm-up h2load exited non-zero (see $out/dev-warmup.txt)"
}
# warm_lg LOADGEN-ARGS...: the same with loadgen (gRPC and WebSocket paths).
warm_lg() {
  [ "$DEV_WARMUP" -gt 0 ] || return 0
  log "warm-up of the dev process: loadgen ${DEV_WARMUP}s $1"
  "$LOADGEN" "$@" --duration "$DEV_WARMUP" --warmup 1 >>"$out/dev-warmup.txt" 2>&1 || log "warm-up loadgen exited non-zero (see $out/dev-warmup.txt)"
}

# ================================================================ main
require_tools curl awk tar dotnet
if ! command -v h2load >/dev/null; then
  log "h2load missing: apt-get install -y nghttp2-client"
  apt-get install -y nghttp2-client >/dev/null 2>&1 || die "could not install nghttp2-client"
fi
log "raw output in $out"
WITH_LOADGEN=1 build

# --- the gRPC backend (h2c only: gRPC service + GET /hello), direct and through the tunnel
require_free_ports "$GRPC_BACKEND_PORT" "$H2C_PORT" "$HTTPS_PORT"
"$LOADGEN" grpc-backend --port "$GRPC_BACKEND_PORT" >"$out/grpc-backend.out" 2>&1 &
backend_pid=$!
for _ in $(seq 1 100); do grep -q listening "$out/grpc-backend.out" 2>/dev/null && break; sleep 0.1; done
grep -q listening "$out/grpc-backend.out" || die "grpc-backend did not start (see $out/grpc-backend.out)"
mapfile -t gargs < <(grain_args "$GRAINS" "$(dirname "$OTUN")")
glabel=$(grain_label "$GRAINS" "$(dirname "$OTUN")")

# --- the issue's references: nginx terminating TLS + HTTP/2 as the first of two hops.
# 18443: h2 (TLS) -> nginx 18081 (HTTP/1.1 hop of nginx-chain.sh) -> nginx 18080 /hello.
# 18444: h2 (TLS) -> grpc_pass h2c 18445 -> grpc_pass h2c grpc-backend (the tunnel's gRPC backend).
np="" h2np=""
# otunbench.Payload{data: GRPC_SIZE zero bytes} as one gRPC frame (flag 0, 4-byte big-endian length).
grpc_body="$out/grpc-unary-body.bin"
python3 -c "import sys,struct; n=int(sys.argv[1]); m=b'\x0a'+bytes([n]) + bytes(n) if n < 128 else b'\x0a'+bytes([n & 0x7f | 0x80, n >> 7])+bytes(n); sys.stdout.buffer.write(b'\x00'+struct.pack('>I', len(m))+m)" "$GRPC_SIZE" >"$grpc_body"
if [ "$REFS" = 1 ]; then
  require_tools nginx wrk
  require_free_ports 18080 18081 18082 18443 18444 18445
  refs_started=1
  bash "$shared_bench/nginx-chain.sh" start || die "nginx-chain.sh start failed"
  GRPC_BACKEND="127.0.0.1:$GRPC_BACKEND_PORT" bash "$shared_bench/nginx-h2-chain.sh" start || die "nginx-h2-chain.sh start failed (see /tmp/nginx-h2-chain/error.log)"
  np=$(cat /tmp/nginx-chain/nginx.pid); h2np=$(cat /tmp/nginx-h2-chain/nginx.pid)
  curl -sfk --http2 https://127.0.0.1:18443/hello >/dev/null || die "nginx h2 chain (18443) does not answer /hello"
  # The nginx-chain worker serves the backend and the HTTP/1.1 hop: its own cost per /hello (wrk
  # straight at 18080) is subtracted from the h2 chain's figure.
  log "wrk nginx backend direct (its CPU per /hello): -t1 -c64 -d${DUR}s"
  set_cpu "" "$np" 0 ""
  cpu_begin
  wrk -t1 -c64 -d"${DUR}s" http://127.0.0.1:18080/hello >"$out/wrk-nginx-backend.txt" 2>&1 || true
  cpu_end "$(awk '$2 == "requests" && $3 == "in" {print $1}' "$out/wrk-nginx-backend.txt")"
  BACKEND_US_DIRECT=$CPU_BACK_US
  rows+=("HTTP/1.1 wrk|nginx backend direct c64|nginx 18080 (for its CPU per request)|$(awk '/^Requests\/sec:/ {print $2}' "$out/wrk-nginx-backend.txt")|req/s|-|-|-|$CPU_BACK_US|-|-|none")
  set_cpu "$h2np $np" "" 1 ""
  run_h2load h2-nginx "nginx h2 two hops (reference)" "h2 (TLS) -> nginx -> HTTP/1.1 nginx hop -> nginx 18080" "https://127.0.0.1:18443/hello"
  set_cpu "$h2np" "$backend_pid" 0 ""
  run_lg unary-nginx gRPC "unary c$GRPC_C, nginx grpc_pass two hops (reference)" "h2 (TLS) -> nginx -> h2c nginx -> grpc-backend" \
    grpc-unary --target "https://127.0.0.1:18444" --concurrency "$GRPC_C" --size "$GRPC_SIZE"

  # The same unary call as nginx-h2-chain.sh's own bench drives it: h2load POSTs one framed message
  # (no gRPC client; h2load checks the HTTP status only, the loadgen rows check the gRPC status).
  set_cpu "$h2np" "$backend_pid" 0 ""
  run_h2load h2grpc-nginx "gRPC unary as h2load POST, nginx grpc_pass two hops (reference)" "h2 (TLS) -> nginx -> h2c nginx -> grpc-backend" \
    "https://127.0.0.1:18444/otunbench.BenchSvc/Unary" -d "$grpc_body" -H 'content-type: application/grpc' -H 'te: trailers'

  # The tunnel in front of the same nginx backend for the HTTP/2 row: TLS ingress -> tunnel -> HTTP/1.1 nginx 18080.
  start_dev h2 --expose http://127.0.0.1:18080 --https-ingress "https://127.0.0.1:$HTTPS_PORT" --data "$out/data-h2" "${gargs[@]}"
  curl -sfk --http2 "https://127.0.0.1:$HTTPS_PORT/hello" >/dev/null || die "tunnel TLS ingress does not answer /hello (logs: $dev_err)"
  warm_h2 "https://127.0.0.1:$HTTPS_PORT/hello"
  set_cpu "$dev_pid" "$np" 0 "$dev_pid"
  run_h2load h2-tls-nginx "tunnel TLS ingress, grains $glabel" "h2 (TLS) -> tunnel -> HTTP/1.1 nginx 18080" "https://127.0.0.1:$HTTPS_PORT/hello"
  stop_dev
fi

start_dev grpc --expose "h2c://127.0.0.1:$GRPC_BACKEND_PORT" \
  --h2c-ingress "http://127.0.0.1:$H2C_PORT" --https-ingress "https://127.0.0.1:$HTTPS_PORT" --data "$out/data-grpc" "${gargs[@]}"
curl -sf --http2-prior-knowledge "http://127.0.0.1:$H2C_PORT/hello" >/dev/null || die "tunnel h2c ingress does not answer /hello (logs: $dev_err)"
curl -sfk --http2 "https://127.0.0.1:$HTTPS_PORT/hello" >/dev/null || die "tunnel TLS ingress does not answer /hello (logs: $dev_err)"

direct="http://127.0.0.1:$GRPC_BACKEND_PORT" h2c="http://127.0.0.1:$H2C_PORT" tls="https://127.0.0.1:$HTTPS_PORT"
warm_h2 "$tls/hello"
warm_lg grpc-unary --target "$tls" --concurrency "$GRPC_C" --size "$GRPC_SIZE"
bk="grpc-backend (Kestrel h2c)"
set_cpu "" "$backend_pid" 0 ""
run_h2load h2-direct "direct" "$bk" "$direct/hello"
set_cpu "$dev_pid" "$backend_pid" 0 "$dev_pid"
run_h2load h2-h2c    "tunnel h2c ingress" "h2c -> tunnel -> h2c $bk" "$h2c/hello"
run_h2load h2-tls    "tunnel TLS ingress" "h2 (TLS) -> tunnel -> h2c $bk" "$tls/hello"

set_cpu "" "$backend_pid" 0 ""
run_lg unary-direct gRPC "unary c$GRPC_C, direct" "$bk" grpc-unary --target "$direct" --concurrency "$GRPC_C" --size "$GRPC_SIZE"
set_cpu "$dev_pid" "$backend_pid" 0 "$dev_pid"
run_lg unary-h2c    gRPC "unary c$GRPC_C, tunnel h2c" "h2c ingress" grpc-unary --target "$h2c" --concurrency "$GRPC_C" --size "$GRPC_SIZE"
run_lg unary-tls    gRPC "unary c$GRPC_C, tunnel TLS, grains $glabel" "TLS ingress" grpc-unary --target "$tls" --concurrency "$GRPC_C" --size "$GRPC_SIZE"
run_h2load h2grpc-tls "gRPC unary as h2load POST, tunnel TLS ingress" "h2 (TLS) -> tunnel -> h2c grpc-backend" \
  "$tls/otunbench.BenchSvc/Unary" -d "$grpc_body" -H 'content-type: application/grpc' -H 'te: trailers'
set_cpu "" "$backend_pid" 0 ""
run_lg bidi-direct  gRPC "bidi ping-pong x$GRPC_C, direct" "$bk" grpc-stream --mode bidi --target "$direct" --streams "$GRPC_C" --size "$GRPC_SIZE"
set_cpu "$dev_pid" "$backend_pid" 0 "$dev_pid"
run_lg bidi-h2c     gRPC "bidi ping-pong x$GRPC_C, tunnel h2c" "h2c ingress" grpc-stream --mode bidi --target "$h2c" --streams "$GRPC_C" --size "$GRPC_SIZE"
run_lg bidi-tls     gRPC "bidi ping-pong x$GRPC_C, tunnel TLS" "TLS ingress" grpc-stream --mode bidi --target "$tls" --streams "$GRPC_C" --size "$GRPC_SIZE"
if [ "$SRV_STREAMS" -gt 0 ]; then
  set_cpu "" "$backend_pid" 0 ""
  run_lg srv-direct gRPC "server stream x$SRV_STREAMS ${SRV_SIZE}B, direct" "$bk" grpc-stream --mode server --target "$direct" --streams "$SRV_STREAMS" --size "$SRV_SIZE"
  set_cpu "$dev_pid" "$backend_pid" 0 "$dev_pid"
  run_lg srv-h2c    gRPC "server stream x$SRV_STREAMS ${SRV_SIZE}B, tunnel h2c" "h2c ingress" grpc-stream --mode server --target "$h2c" --streams "$SRV_STREAMS" --size "$SRV_SIZE"
fi
dev_alive || warnings+=("otun dev (grpc) was not running at the end of its runs (see $dev_err)")
stop_dev
kill -TERM "$backend_pid" 2>/dev/null || true; wait "$backend_pid" 2>/dev/null || true; backend_pid=""

# --- WebSocket echo: demo backend, through the HTTP/1.1 and TLS ingresses and directly. The demo
# backend runs inside the dev process, so the tunnel rows' CPU includes the backend's echo.
start_dev ws --https-ingress "https://127.0.0.1:$HTTPS_PORT" --data "$out/data-ws" "${gargs[@]}"
demo_url=$(sed -n 's/.*service *demo -> \(http:\/\/127\.0\.0\.1:[0-9]*\).*/\1/p' "$dev_out" | head -1)
[ -n "$demo_url" ] || die "no 'service demo -> URL' line in $dev_out"
ws_direct="ws://${demo_url#http://}/ws"
warm_lg ws-echo --target "ws://127.0.0.1:$INGRESS_PORT/ws" --sockets "$WS_SOCKETS" --size "$WS_SIZE"
set_cpu "$dev_pid" "" 0 "$dev_pid"
run_lg ws-direct WebSocket "echo x$WS_SOCKETS ${WS_SIZE}B, direct" "demo backend ${demo_url#http://} (CPU: dev process)" ws-echo --target "$ws_direct" --sockets "$WS_SOCKETS" --size "$WS_SIZE"
run_lg ws-http   WebSocket "echo x$WS_SOCKETS ${WS_SIZE}B, tunnel ws://" "HTTP/1.1 ingress (CPU incl. backend)" ws-echo --target "ws://127.0.0.1:$INGRESS_PORT/ws" --sockets "$WS_SOCKETS" --size "$WS_SIZE"
run_lg ws-tls    WebSocket "echo x$WS_SOCKETS ${WS_SIZE}B, tunnel wss://" "TLS ingress (CPU incl. backend)" ws-echo --target "wss://127.0.0.1:$HTTPS_PORT/ws" --sockets "$WS_SOCKETS" --size "$WS_SIZE"
dev_alive || warnings+=("otun dev (ws) was not running at the end of its runs (see $dev_err)")
stop_dev

# ---------------------------------------------------------------- report
echo
source_rev
echo "OrleansTunnel protocols bench  $(date '+%Y-%m-%d %H:%M')  $(nproc) CPUs  ${DUR}s per run after ${WARMUP}s warm-up, each dev process warmed ${DEV_WARMUP}s first  (raw: $out)"
echo "source: $rev with $dirty modified tracked file(s); h2load $H2LOAD_ARGS; gRPC messages ${GRPC_SIZE}B; WebSocket ${WS_SOCKETS} sockets x ${WS_SIZE}B"
echo
{
  echo "protocol|run|path / backend|rate|unit|p50 ms|p99 ms|CPU us/req (path)|CPU us/req (backend)|alloc B/req|gen0 / gen1+2 GCs|errors"
  echo "---|---|---|---|---|---|---|---|---|---|---|---"
  printf '%s\n' "${rows[@]}"
} | column -t -s '|' -o ' | ' | sed 's/^/| /; s/$/ |/'
echo
echo "CPU: user+sys (/proc) of the path's processes over the measured window / requests; path = otun dev, or the"
echo "nginx reference processes (\"~\": minus the nginx backend's own cost per request, same worker). Allocations:"
echo "dotnet-counters (System.Runtime total allocated) of the dev process over the window (+1 s) / requests."
echo
fails=0
if [ "$REFS" = 1 ]; then
  echo "bars (issue 11; ratios of this run):"
  r=$(ratio "${RATE[h2-tls-nginx]:-0}" "${RATE[h2-nginx]:-0}"); v=$(awk -v r="$r" 'BEGIN { print ((r != "n/a" && r + 0 >= 0.5) ? "PASS" : "FAIL") }'); [ "$v" = PASS ] || fails=1
  echo "  HTTP/2 h2load $H2LOAD_ARGS, tunnel TLS ingress / nginx h2 two hops (same nginx backend): $r  (bar >= 0.5: $v)"
  r=$(ratio "${RATE[unary-tls]:-0}" "${RATE[unary-nginx]:-0}"); v=$(awk -v r="$r" 'BEGIN { print ((r != "n/a" && r + 0 >= 0.5) ? "PASS" : "FAIL") }'); [ "$v" = PASS ] || fails=1
  echo "  gRPC unary c$GRPC_C, tunnel TLS ingress / nginx grpc_pass two hops (same grpc-backend): $r  (bar >= 0.5: $v)"
  r=$(ratio "${RATE[h2grpc-tls]:-0}" "${RATE[h2grpc-nginx]:-0}"); v=$(awk -v r="$r" 'BEGIN { print ((r != "n/a" && r + 0 >= 0.5) ? "PASS" : "FAIL") }')
  echo "  gRPC unary as h2load POST $H2LOAD_ARGS (nginx-h2-chain.sh's way), tunnel TLS / nginx grpc_pass: $r  (bar >= 0.5: $v)"
  echo "  CPU per request, tunnel / nginx: HTTP/2 $(ratio "${CPUUS[h2-tls-nginx]#\~}" "${CPUUS[h2-nginx]#\~}"), gRPC unary $(ratio "${CPUUS[unary-tls]#\~}" "${CPUUS[unary-nginx]#\~}")"
  echo
fi
echo "ratios tunnel / direct (same backend, same run):"
pr() { printf '  %-34s %s\n' "$1" "$(ratio "${RATE[$2]:-0}" "${RATE[$3]:-0}")"; }
pr "HTTP/2 h2c ingress req/s"      h2-h2c h2-direct
pr "HTTP/2 TLS ingress req/s"      h2-tls h2-direct
pr "gRPC unary h2c calls/s"        unary-h2c unary-direct
pr "gRPC unary TLS calls/s"        unary-tls unary-direct
pr "gRPC bidi ping-pong h2c msg/s" bidi-h2c bidi-direct
pr "gRPC bidi ping-pong TLS msg/s" bidi-tls bidi-direct
if [ "$SRV_STREAMS" -gt 0 ]; then pr "gRPC server stream h2c msg/s" srv-h2c srv-direct; fi
pr "WebSocket echo ws:// msg/s"    ws-http ws-direct
pr "WebSocket echo wss:// msg/s"   ws-tls ws-direct
for r in "${rows[@]}"; do
  case "$r" in *"|none") ;; *) echo "WARNING errors in: $(cut -d'|' -f2 <<<"$r"): ${r##*|}";; esac
done
for w in "${warnings[@]}"; do echo "WARNING $w"; done
if [ "${STRICT:-0}" = 1 ] && [ "$fails" = 1 ]; then exit 1; fi
exit 0
