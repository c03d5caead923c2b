#!/usr/bin/env bash
# OrleansTunnel protocol benchmark: HTTP/2 (h2load), gRPC (unary, bidi ping-pong, server stream) and
# WebSocket echo, each through the tunnel (`otun dev`) and directly against the same backend, with
# the ratio tunnel / direct. See bench/README.md.
#
# Usage: bash bench/protocols.sh
# Env:   DUR=10          seconds per measured run (h2load -D, loadgen --duration)
#        WARMUP=2        seconds of warm-up before each measured run (not counted)
#        H2LOAD_ARGS="-c 4 -m 16"   h2load connections / streams per connection (64 streams in all)
#        GRPC_C=64       concurrent unary calls; also the number of bidi ping-pong streams
#        GRPC_SIZE=64    bytes per gRPC unary/bidi message
#        SRV_STREAMS=4 SRV_SIZE=1024   server-stream rows (SRV_STREAMS=0 skips them)
#        WS_SOCKETS=64 WS_SIZE=64      WebSocket echo sockets and message size
#        OTUN_COPY=1 COPY_DIR=/tmp/bench-src READY_TIMEOUT=90   as in run.sh
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
out="$here/out/protocols-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$out"
cd "$out"
# shellcheck source=bench/common.sh
. "$here/common.sh"

DUR="${DUR:-10}"
WARMUP="${WARMUP:-2}"
H2LOAD_ARGS="${H2LOAD_ARGS:--c 4 -m 16}"
GRPC_C="${GRPC_C:-64}"
GRPC_SIZE="${GRPC_SIZE:-64}"
SRV_STREAMS="${SRV_STREAMS:-4}"
SRV_SIZE="${SRV_SIZE:-1024}"
WS_SOCKETS="${WS_SOCKETS:-64}"
WS_SIZE="${WS_SIZE:-64}"

backend_pid=""
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  [ -n "$dev_pid" ] && stop_dev
  if [ -n "$backend_pid" ]; then kill -TERM "$backend_pid" 2>/dev/null || true; wait "$backend_pid" 2>/dev/null || true; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

rows=()       # section|target|path|rate|unit|p50 ms|p99 ms|errors
warnings=()
declare -A RATE

# ---------------------------------------------------------------- h2load
# run_h2load KEY LABEL PATHDESC URL
run_h2load() {
  local key=$1 label=$2 path=$3 url=$4 f="$out/h2load-$1.txt"
  log "h2load $label: $H2LOAD_ARGS -D $DUR --warm-up-time $WARMUP $url"
  # shellcheck disable=SC2086
  h2load $H2LOAD_ARGS -D "$DUR" --warm-up-time "$WARMUP" "$url" >"$f" 2>&1 || log "h2load exited non-zero for $key (see $f)"
  local rps total ok failed errored timeout codes mean err
  rps=$(sed -n 's/^finished in [^,]*, \([0-9.]*\) req\/s.*/\1/p' "$f")
  read -r total ok failed errored timeout < <(sed -n 's/^requests: \([0-9]*\) total, [0-9]* started, [0-9]* done, \([0-9]*\) succeeded, \([0-9]*\) failed, \([0-9]*\) errored, \([0-9]*\) timeout.*/\1 \2 \3 \4 \5/p' "$f") || true
  codes=$(sed -n 's/^status codes: //p' "$f")
  mean=$(awk '/^time for request:/ {print $6}' "$f")   # "time for request:  min max mean sd +/- sd"
  err="none"
  if [ -z "$rps" ]; then err="no result (see $f)"; fi
  if [ "${failed:-0}" != 0 ] || [ "${errored:-0}" != 0 ] || [ "${timeout:-0}" != 0 ]; then err="failed ${failed:-?} errored ${errored:-?} timeout ${timeout:-?}"; fi
  case "$codes" in *" 0 3xx, 0 4xx, 0 5xx"*) ;; *) err="$err; status codes: $codes";; esac
  RATE[$key]=${rps:-0}
  rows+=("HTTP/2 h2load|$label|$path|${rps:-?}|req/s|mean ${mean:-?}|-|$err")
}

# ---------------------------------------------------------------- loadgen
# run_lg KEY SECTION LABEL PATHDESC ARGS...
run_lg() {
  local key=$1 section=$2 label=$3 path=$4; shift 4
  local f="$out/loadgen-$key.txt" line rate p50 p99 errors first unit err
  log "loadgen $label: $*"
  "$LOADGEN" "$@" --duration "$DUR" --warmup "$WARMUP" >"$f" 2>&1 || log "loadgen exited non-zero for $key (see $f)"
  line=$(grep '^cmd=' "$f" | tail -1 || true)
  rate=$(kv "$line" rate); p50=$(kv "$line" p50_ms); p99=$(kv "$line" p99_ms); errors=$(kv "$line" errors)
  first=$(sed -n 's/.*first_error="\(.*\)"$/\1/p' <<<"$line")
  case "$1" in grpc-unary) unit="calls/s";; *) unit="msg/s";; esac
  err="none"
  if [ -z "$line" ]; then err="no result (see $f)"; elif [ "${errors:-0}" != 0 ]; then err="$errors errors, first: $first"; fi
  RATE[$key]=${rate:-0}
  rows+=("$section|$label|$path|${rate:-?}|$unit|${p50:-?}|${p99:-?}|$err")
  if [ -n "$dev_pid" ] && ! dev_alive; then warnings+=("otun dev died during $key (see $dev_err)"); fi
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

start_dev grpc --expose "h2c://127.0.0.1:$GRPC_BACKEND_PORT" \
  --h2c-ingress "http://127.0.0.1:$H2C_PORT" --https-ingress "https://127.0.0.1:$HTTPS_PORT" --data "$out/data-grpc"
curl -sf --http2-prior-knowledge "http://127.0.0.1:$H2C_PORT/hello" >/dev/null || die "tunnel h2c ingress does not answer /hello (logs: $dev_err)"
curl -sfk --http2 "https://127.0.0.1:$HTTPS_PORT/hello" >/dev/null || die "tunnel TLS ingress does not answer /hello (logs: $dev_err)"

direct="http://127.0.0.1:$GRPC_BACKEND_PORT" h2c="http://127.0.0.1:$H2C_PORT" tls="https://127.0.0.1:$HTTPS_PORT"
bk="grpc-backend (Kestrel h2c)"
run_h2load h2-direct "direct" "$bk" "$direct/hello"
run_h2load h2-h2c    "tunnel h2c ingress" "h2c -> tunnel -> h2c $bk" "$h2c/hello"
run_h2load h2-tls    "tunnel TLS ingress" "h2 (TLS) -> tunnel -> h2c $bk" "$tls/hello"

run_lg unary-direct gRPC "unary c$GRPC_C, direct" "$bk" grpc-unary --target "$direct" --concurrency "$GRPC_C" --size "$GRPC_SIZE"
run_lg unary-h2c    gRPC "unary c$GRPC_C, tunnel h2c" "h2c ingress" grpc-unary --target "$h2c" --concurrency "$GRPC_C" --size "$GRPC_SIZE"
run_lg unary-tls    gRPC "unary c$GRPC_C, tunnel TLS" "TLS ingress" grpc-unary --target "$tls" --concurrency "$GRPC_C" --size "$GRPC_SIZE"
run_lg bidi-direct  gRPC "bidi ping-pong x$GRPC_C, direct" "$bk" grpc-stream --mode bidi --target "$direct" --streams "$GRPC_C" --size "$GRPC_SIZE"
run_lg bidi-h2c     gRPC "bidi ping-pong x$GRPC_C, tunnel h2c" "h2c ingress" grpc-stream --mode bidi --target "$h2c" --streams "$GRPC_C" --size "$GRPC_SIZE"
run_lg bidi-tls     gRPC "bidi ping-pong x$GRPC_C, tunnel TLS" "TLS ingress" grpc-stream --mode bidi --target "$tls" --streams "$GRPC_C" --size "$GRPC_SIZE"
if [ "$SRV_STREAMS" -gt 0 ]; then
  run_lg srv-direct gRPC "server stream x$SRV_STREAMS ${SRV_SIZE}B, direct" "$bk" grpc-stream --mode server --target "$direct" --streams "$SRV_STREAMS" --size "$SRV_SIZE"
  run_lg srv-h2c    gRPC "server stream x$SRV_STREAMS ${SRV_SIZE}B, tunnel h2c" "h2c ingress" grpc-stream --mode server --target "$h2c" --streams "$SRV_STREAMS" --size "$SRV_SIZE"
fi
dev_alive || warnings+=("otun dev (grpc) was not running at the end of its runs (see $dev_err)")
stop_dev
kill -TERM "$backend_pid" 2>/dev/null || true; wait "$backend_pid" 2>/dev/null || true; backend_pid=""

# --- WebSocket echo: demo backend, through the HTTP/1.1 and TLS ingresses and directly
start_dev ws --https-ingress "https://127.0.0.1:$HTTPS_PORT" --data "$out/data-ws"
demo_url=$(sed -n 's/.*service *demo -> \(http:\/\/127\.0\.0\.1:[0-9]*\).*/\1/p' "$dev_out" | head -1)
[ -n "$demo_url" ] || die "no 'service demo -> URL' line in $dev_out"
ws_direct="ws://${demo_url#http://}/ws"
run_lg ws-direct WebSocket "echo x$WS_SOCKETS ${WS_SIZE}B, direct" "demo backend ${demo_url#http://}" ws-echo --target "$ws_direct" --sockets "$WS_SOCKETS" --size "$WS_SIZE"
run_lg ws-http   WebSocket "echo x$WS_SOCKETS ${WS_SIZE}B, tunnel ws://" "HTTP/1.1 ingress" ws-echo --target "ws://127.0.0.1:$INGRESS_PORT/ws" --sockets "$WS_SOCKETS" --size "$WS_SIZE"
run_lg ws-tls    WebSocket "echo x$WS_SOCKETS ${WS_SIZE}B, tunnel wss://" "TLS ingress" ws-echo --target "wss://127.0.0.1:$HTTPS_PORT/ws" --sockets "$WS_SOCKETS" --size "$WS_SIZE"
dev_alive || warnings+=("otun dev (ws) was not running at the end of its runs (see $dev_err)")
stop_dev

# ---------------------------------------------------------------- report
echo
rev="$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo '?')"
dirty="$(git -C "$repo" status --porcelain --untracked-files=no 2>/dev/null | wc -l)"
echo "OrleansTunnel protocols bench  $(date '+%Y-%m-%d %H:%M')  $(nproc) CPUs  ${DUR}s per run after ${WARMUP}s warm-up  (raw: $out)"
echo "source: $rev with $dirty modified tracked file(s); h2load $H2LOAD_ARGS; gRPC messages ${GRPC_SIZE}B; WebSocket ${WS_SOCKETS} sockets x ${WS_SIZE}B"
echo
{
  echo "protocol|run|path / backend|rate|unit|p50 ms|p99 ms|errors"
  echo "---|---|---|---|---|---|---|---"
  printf '%s\n' "${rows[@]}"
} | column -t -s '|' -o ' | ' | sed 's/^/| /; s/$/ |/'
echo
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
exit 0
