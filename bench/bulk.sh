#!/usr/bin/env bash
# Bulk bytes through `otun dev` with curl: MiB/s and CPU per MiB of the tunnel process, each
# direction, with a backend in its own process whose CPU is counted apart (so the tunnel's own
# cost per byte is not mixed with the backend's). Medians of RUNS runs in one dev process after a
# warm-up of each direction. See bench/README.md, "Bulk bytes".
#
# Usage: flock /tmp/otun-bench.lock bash bench/bulk.sh
# Env:   BACKEND=nginx   nginx (own instance, port 28380) serves a SIZE_MIB file from /dev/shm for the
#                        download; `loadgen http-sink` (Kestrel, port 28381) discards the upload
#        BACKEND=sink    loadgen http-sink for both (download = zeros from one static buffer)
#        BACKEND=demo    the demo backend inside the dev process (its Fill / SHA-256 counted as tunnel)
#        SIZE_MIB=1024   body size;  RUNS=3  measured runs per direction;  WARMUP_MIB=128
#        DIRS="down up"  directions;  OTUN_SET="Key=Value ..."  --set flags for the dev process
#        REFS=1          with BACKEND=nginx: the same transfers (after the tunnel's) straight to the
#                        backends and through two chained nginx proxy hops (an nginx of its own, 2
#                        workers, proxy_buffering and proxy_request_buffering off, ports 28382/28383):
#                        what this machine moves with curl at all; REFS=0 skips them
#        TRACE=down|up   also record a dotnet-trace (sampled thread time) of one extra run of that
#                        direction and summarise it (bench/profile_summary.py, per-MiB figures)
#        OTUN_COPY=1 COPY_DIR=/tmp/bench-src-bulk READY_TIMEOUT=90   as in run.sh
# Ports: ingress 28090, tunnel 27070, admin 29090, HTTPS ingress 28443, dashboard 28091, silo
# 22111/32000, backends 28380/28381: none of run.sh's or otun dev's defaults.
# Output: bench/out/bulk-<timestamp>/ (curl output, dev logs, results.txt).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
out="$here/out/bulk-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$out"
COPY_DIR="${COPY_DIR:-/tmp/bench-src-bulk}"
# shellcheck source=bench/common.sh
. "$here/common.sh"
INGRESS_PORT=28090 TUNNEL_PORT=27070 ADMIN_PORT=29090 SILO_PORT=22111 SILO_GW_PORT=32000
HTTPS_PORT=28443 DASH_PORT=28091 NGINX_PORT=28380 SINK_PORT=28381

BACKEND="${BACKEND:-nginx}"
SIZE_MIB="${SIZE_MIB:-1024}"
RUNS="${RUNS:-3}"
WARMUP_MIB="${WARMUP_MIB:-128}"
DIRS="${DIRS:-down up}"
TRACE="${TRACE:-}"
REFS="${REFS:-1}"
CHAIN1_PORT=28382 CHAIN2_PORT=28383
size=$((SIZE_MIB * 1024 * 1024))
ndir=/dev/shm/otun-bulk-nginx

nginx_pid="" sink_pid=""
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  bg_cleanup
  [ -n "$dev_pid" ] && stop_dev
  [ -n "$sink_pid" ] && kill "$sink_pid" 2>/dev/null && wait "$sink_pid" 2>/dev/null || true
  [ -f "$ndir/nginx.pid" ] && kill "$(cat "$ndir/nginx.pid")" 2>/dev/null || true
  [ -f "$ndir/chain.pid" ] && kill "$(cat "$ndir/chain.pid")" 2>/dev/null || true
  rm -rf "$ndir"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

require_tools curl awk tar python3 dotnet
case "$BACKEND" in nginx) require_tools nginx;; sink|demo) ;; *) die "BACKEND must be nginx, sink or demo";; esac
require_free_ports "$HTTPS_PORT" "$DASH_PORT" "$NGINX_PORT" "$SINK_PORT" "$CHAIN1_PORT" "$CHAIN2_PORT"
log "raw output in $out"
[ "$BACKEND" = demo ] || WITH_LOADGEN=1
build

# ---------------------------------------------------------------- backends
down_url="" up_url="" back_pids="" expose=()
if [ "$BACKEND" != demo ]; then
  "$LOADGEN" http-sink --port "$SINK_PORT" >"$out/sink.out" 2>&1 &
  sink_pid=$!
  for _ in $(seq 1 100); do curl -sf -o /dev/null "http://127.0.0.1:$SINK_PORT/download?size=1" && break; sleep 0.1; done
  curl -sf -o /dev/null "http://127.0.0.1:$SINK_PORT/download?size=1" || die "loadgen http-sink did not start (see $out/sink.out)"
  back_pids="$sink_pid"
  expose=(--expose "http://127.0.0.1:$SINK_PORT")
  down_url="/download?size=$size" up_url="/upload"
fi
if [ "$BACKEND" = nginx ]; then
  mkdir -p "$ndir/www"
  log "writing a ${SIZE_MIB} MiB file to $ndir/www (tmpfs)"
  head -c "$size" /dev/zero >"$ndir/www/big.bin"
  head -c $((WARMUP_MIB * 1024 * 1024)) /dev/zero >"$ndir/www/warm.bin"
  cat >"$ndir/nginx.conf" <<CONF
worker_processes 1; pid $ndir/nginx.pid; error_log $ndir/error.log; daemon on;
events { worker_connections 256; }
http {
  access_log off; sendfile on; tcp_nopush on;
  server { listen 127.0.0.1:$NGINX_PORT; root $ndir/www; }
}
CONF
  nginx -c "$ndir/nginx.conf" || die "nginx did not start"
  for _ in $(seq 1 50); do [ -s "$ndir/nginx.pid" ] && break; sleep 0.1; done
  back_pids="$sink_pid $(cat "$ndir/nginx.pid")"
  # Uploads go straight to the sink (nginx would only add a hop); downloads come from nginx.
  expose=(--expose "http://127.0.0.1:$NGINX_PORT" --host nginx.localhost --expose "http://127.0.0.1:$SINK_PORT" --host sink.localhost)
  down_url="/big.bin" up_url="/upload"
fi

start_dev bulk "${expose[@]}" --https-ingress "https://127.0.0.1:$HTTPS_PORT" \
  --set "Cluster:Dashboard=http://127.0.0.1:$DASH_PORT" --data "$out/data"
base="http://127.0.0.1:$INGRESS_PORT"
down_host=() up_host=()
if [ "$BACKEND" = nginx ]; then down_host=(-H "Host: nginx.localhost") up_host=(-H "Host: sink.localhost"); fi
if [ "$BACKEND" = demo ]; then down_url="/download?size=$size" up_url="/upload"; fi

# one_run DIR URL-SUFFIX BYTES NAME -> prints "MiB/s cpu_ms_per_MiB_tunnel cpu_ms_per_MiB_backend"
one_run() {
  local dir=$1 target=$2 bytes=$3 name=$4 c0 b0 c1 b1 res rate got
  c0=$(cpu_ticks "$dev_pid"); b0=$(cpu_ticks $back_pids)
  if [ "$dir" = down ]; then
    res=$(curl -s "${down_host[@]}" -o /dev/null -w '%{http_code} %{size_download} %{speed_download}' "$base$target")
  else
    res=$(head -c "$bytes" /dev/zero | curl -s "${up_host[@]}" -X POST -H 'Content-Type: application/octet-stream' \
      -H 'Expect:' -T - -o "$out/$name.json" -w '%{http_code} %{size_upload} %{speed_upload}' "$base$up_url")
  fi
  c1=$(cpu_ticks "$dev_pid"); b1=$(cpu_ticks $back_pids)
  read -r code got rate <<<"$res"
  # (an upload's size_upload counts curl's chunk framing: the backend's answer is checked instead)
  [ "$code" = 200 ] && { [ "$dir" = up ] || [ "$got" = "$bytes" ]; } || die "$name: HTTP $code, $got bytes (expected 200, $bytes)"
  if [ "$dir" = up ]; then
    grep -q "\"length\":$bytes" "$out/$name.json" || die "$name: the backend saw $(cat "$out/$name.json")"
  fi
  awk -v r="$rate" -v t=$((c1 - c0)) -v b=$((b1 - b0)) -v n="$bytes" -v hz="$CLK_TCK" 'BEGIN {
    mib = n / 1048576; printf "%.1f %.2f %.2f\n", r / 1048576, t / hz * 1000 / mib, b / hz * 1000 / mib }'
}
median() { sort -n | awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else if (NR % 2) print v[(NR + 1) / 2]; else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

declare -A RESULTS
for dir in $DIRS; do
  if [ "$dir" = down ]; then
    warm_target=$([ "$BACKEND" = nginx ] && echo /warm.bin || echo "/download?size=$((WARMUP_MIB * 1024 * 1024))")
  else warm_target=$up_url; fi
  log "warm-up: $dir ${WARMUP_MIB} MiB"
  one_run "$dir" "$warm_target" $((WARMUP_MIB * 1024 * 1024)) "warm-$dir" >/dev/null
  : >"$out/$dir.txt"
  for i in $(seq 1 "$RUNS"); do
    r=$(one_run "$dir" "$down_url" "$size" "$dir-$i")
    log "$dir run $i: MiB/s, CPU ms/MiB tunnel, backend = $r"
    echo "$r" >>"$out/$dir.txt"
  done
  RESULTS[$dir]="$(awk '{print $1}' "$out/$dir.txt" | median) $(awk '{print $2}' "$out/$dir.txt" | median) $(awk '{print $3}' "$out/$dir.txt" | median)"
  RESULTS[$dir.all]="$(awk '{printf "%s%s", (NR > 1 ? ", " : ""), $1}' "$out/$dir.txt") MiB/s; $(awk '{printf "%s%s", (NR > 1 ? ", " : ""), $2}' "$out/$dir.txt") ms/MiB"
done

if [ -n "$TRACE" ]; then
  # dotnet-trace stops by --duration (a background process ignores SIGINT): the traced transfer
  # (TRACE_MIB, default SIZE_MIB) runs beside a trace of TRACE_SECS seconds that starts 1 s in.
  trace=$(COUNTERS_VERSION="${TRACE_VERSION:-10.0.750501}" ensure_dotnet_tool dotnet-trace) || die "dotnet-trace could not be installed"
  tbytes=$(( ${TRACE_MIB:-$SIZE_MIB} * 1024 * 1024 ))
  ttarget=$([ "$TRACE" = down ] && [ "$BACKEND" != nginx ] && echo "/download?size=$tbytes" || echo "$down_url")
  [ "$TRACE" = down ] && [ "$BACKEND" = nginx ] && tbytes=$size
  log "tracing ${TRACE_SECS:-5}s of a $TRACE transfer (dotnet-sampled-thread-time)"
  one_run "$TRACE" "$ttarget" "$tbytes" "trace-$TRACE" >"$out/trace-run.txt" &
  trun=$!
  sleep 1
  c0=$(cpu_ticks "$dev_pid"); t0=$(date +%s.%N)
  "$trace" collect -p "$dev_pid" --profile dotnet-sampled-thread-time --duration "00:00:00:$(printf '%02d' "${TRACE_SECS:-5}")" \
    -o "$out/trace.nettrace" </dev/null >"$out/trace.log" 2>&1 || die "dotnet-trace failed (see $out/trace.log)"
  c1=$(cpu_ticks "$dev_pid"); t1=$(date +%s.%N)
  wait "$trun" || die "the traced transfer failed"
  log "traced transfer: $(cat "$out/trace-run.txt") (MiB/s, CPU ms/MiB tunnel, backend)"
  "$trace" convert "$out/trace.nettrace" --format Speedscope -o "$out/trace" >"$out/convert.log" 2>&1 || die "convert failed (see $out/convert.log)"
  sjson=$(ls "$out"/trace*.speedscope.json | head -1)
  # profile_summary.py scales shares by a cost per unit: here the median CPU ms per MiB of the runs
  # (its "us/request" column then reads as ms of CPU per MiB).
  cores=$(awk -v t=$((c1 - c0)) -v hz="$CLK_TCK" -v a="$t0" -v b="$t1" 'BEGIN {printf "%.2f", t / hz / (b - a)}')
  { echo "trace of a $TRACE transfer, dev process at $cores cores during the trace; the us/request column is ms CPU per MiB"
    python3 "$here/profile_summary.py" "$sjson" "$(awk '{print $2}' <<<"${RESULTS[$TRACE]}")" "${TOP:-40}"; } >"$out/trace-summary.md"
  log "trace summary: $out/trace-summary.md"
fi

stop_dev

# ---------------------------------------------------------------- references (same files, same curl)
# ref_run DIR URL BYTES NAME PIDS -> "MiB/s cpu_ms_per_MiB(PIDS)"
ref_run() {
  local dir=$1 url=$2 bytes=$3 name=$4 pids=$5 c0 c1 res code got rate
  c0=$(cpu_ticks $pids)
  if [ "$dir" = down ]; then
    res=$(curl -s -o /dev/null -w '%{http_code} %{size_download} %{speed_download}' "$url")
  else
    res=$(head -c "$bytes" /dev/zero | curl -s -X POST -H 'Content-Type: application/octet-stream' \
      -H 'Expect:' -T - -o "$out/$name.json" -w '%{http_code} %{size_upload} %{speed_upload}' "$url")
  fi
  c1=$(cpu_ticks $pids)
  read -r code got rate <<<"$res"
  [ "$code" = 200 ] && { [ "$dir" = up ] || [ "$got" = "$bytes" ]; } || die "$name: HTTP $code, $got bytes (expected 200, $bytes)"
  if [ "$dir" = up ]; then
    grep -q "\"length\":$bytes" "$out/$name.json" || die "$name: the backend saw $(cat "$out/$name.json")"
  fi
  awk -v r="$rate" -v t=$((c1 - c0)) -v n="$bytes" -v hz="$CLK_TCK" 'BEGIN {
    mib = n / 1048576; printf "%.1f %.2f\n", r / 1048576, t / hz * 1000 / mib }'
}
declare -A REF
if [ "$REFS" = 1 ] && [ "$BACKEND" = nginx ]; then
  cat >"$ndir/chain.conf" <<CONF
worker_processes 2; pid $ndir/chain.pid; error_log $ndir/chain-error.log; daemon on;
events { worker_connections 256; }
http {
  access_log off; client_max_body_size 0;
  upstream origin { server 127.0.0.1:$NGINX_PORT; keepalive 8; }
  upstream sink { server 127.0.0.1:$SINK_PORT; keepalive 8; }
  upstream hop1 { server 127.0.0.1:$CHAIN1_PORT; keepalive 8; }
  server { listen 127.0.0.1:$CHAIN1_PORT;
    location /upload { proxy_pass http://sink; proxy_http_version 1.1; proxy_set_header Connection ""; proxy_buffering off; proxy_request_buffering off; }
    location / { proxy_pass http://origin; proxy_http_version 1.1; proxy_set_header Connection ""; proxy_buffering off; proxy_request_buffering off; } }
  server { listen 127.0.0.1:$CHAIN2_PORT;
    location / { proxy_pass http://hop1; proxy_http_version 1.1; proxy_set_header Connection ""; proxy_buffering off; proxy_request_buffering off; } }
}
CONF
  nginx -c "$ndir/chain.conf" || die "the reference nginx chain did not start"
  for _ in $(seq 1 50); do [ -s "$ndir/chain.pid" ] && break; sleep 0.1; done
  chain_pids="$(cat "$ndir/chain.pid") $(pgrep -P "$(cat "$ndir/chain.pid")" | tr '\n' ' ')"
  for dir in $DIRS; do
    if [ "$dir" = down ]; then direct="http://127.0.0.1:$NGINX_PORT/big.bin" chained="http://127.0.0.1:$CHAIN2_PORT/big.bin"
    else direct="http://127.0.0.1:$SINK_PORT/upload" chained="http://127.0.0.1:$CHAIN2_PORT/upload"; fi
    for ref in direct chained; do
      url=${!ref}
      warm_url=$([ "$dir" = down ] && echo "${url%/big.bin}/warm.bin" || echo "$url")
      ref_run "$dir" "$warm_url" $((WARMUP_MIB * 1024 * 1024)) "ref-$ref-$dir-warm" "$back_pids" >/dev/null
      : >"$out/ref-$ref-$dir.txt"
      for i in $(seq 1 "$RUNS"); do
        r=$(ref_run "$dir" "$url" "$size" "ref-$ref-$dir-$i" "$chain_pids")
        log "reference $ref $dir run $i: MiB/s, CPU ms/MiB of the proxies = $r"
        echo "$r" >>"$out/ref-$ref-$dir.txt"
      done
      REF[$ref.$dir]="$(awk '{print $1}' "$out/ref-$ref-$dir.txt" | median) $(awk '{print $2}' "$out/ref-$ref-$dir.txt" | median)"
      REF[$ref.$dir.all]="$(awk '{printf "%s%s", (NR > 1 ? ", " : ""), $1}' "$out/ref-$ref-$dir.txt") MiB/s"
    done
  done
fi

{
  source_rev
  echo "bulk $(date '+%Y-%m-%d %H:%M')  source $rev ($dirty modified)  load avg $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "backend $BACKEND, ${SIZE_MIB} MiB per run, medians of $RUNS runs; OTUN_SET='${OTUN_SET:-}'"
  echo "| direction | MiB/s | CPU ms/MiB tunnel (otun dev) | CPU ms/MiB backend | runs |"
  echo "|---|---|---|---|---|"
  for dir in $DIRS; do
    read -r a b c <<<"${RESULTS[$dir]}"
    echo "| $dir | $a | $b | $c | ${RESULTS[$dir.all]} |"
  done
  if [ -n "${REF[direct.${DIRS%% *}]:-}" ]; then
    echo
    echo "references, same files and curl, after the tunnel's runs (CPU: the two nginx proxy hops' processes)"
    echo "| direction | path | MiB/s | CPU ms/MiB proxies | tunnel / this | runs |"
    echo "|---|---|---|---|---|---|"
    for dir in $DIRS; do
      read -r t _ <<<"${RESULTS[$dir]}"
      for ref in direct chained; do
        read -r a b <<<"${REF[$ref.$dir]}"
        label=$([ "$ref" = direct ] && echo "curl to the backend" || echo "two nginx proxy hops")
        [ "$ref" = direct ] && b="-"
        echo "| $dir | $label | $a | $b | $(awk -v t="$t" -v a="$a" 'BEGIN {printf "%.2fx", t / a}') | ${REF[$ref.$dir.all]} |"
      done
    done
  fi
} | tee "$out/results.txt"
