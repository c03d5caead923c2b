#!/usr/bin/env bash
# OrleansTunnel benchmark: wrk against the backend directly, nginx (one and two hops), optionally
# YARP (two hops) and the tunnel (`otun dev`), then peak RSS of the dev process while 1 GiB moves
# each way. Prints one table and the ratios tunnel / two-hop nginx. See bench/README.md.
#
# Usage: bash bench/run.sh
# Env:   DUR=10s         wrk duration per measured run
#        WARMUP=40s      wrk warm-up of every .NET target (each tunnel process, YARP) before measuring: a fresh
#                        .NET process compiles for ~40 s of load before tiered JIT and dynamic PGO settle
#                        (dotnet-counters on `otun dev`: dotnet.jit.compilation.time 2.5-3 s per 5 s in the
#                        first 15 s, 0.5-0.9 s per 5 s at 15-35 s, 0.06-0.1 s after 40 s; 3 s of warm-up left
#                        the per-mode rows at ~0.4x of the same build warm); nginx needs none
#        YARP=1          0: skip the YARP two-hop reference
#        OTUN_COPY=1     1: build and run from a copy of the working tree in $COPY_DIR, so a
#                        concurrent `dotnet build` in the repo does not clash; 0: use ./otun in place
#        COPY_DIR=/tmp/bench-src
#        READY_TIMEOUT=90  seconds to wait for `otun dev: ready`
#        STRICT=0        1: exit 1 when a bar from the issue is missed
#        DIAG_DUR=3s     length of the status-counting re-run of a run that saw non-2xx answers
#        GRAINS="always on-demand off"   request-grain modes of the small tunnel row, one dev process
#                        each (Gateway:RequestGrains; an older build maps them to RecordRequests,
#                        and on-demand/off collapse into one row there). The 1 MiB, open-loop and
#                        1 GiB runs use the build's default mode.
#        ALLOC=1         0: no dotnet-counters session (allocations per request) beside the tunnel runs
#        OPEN_FRACTIONS="0.25 0.5"   open-loop runs at these fractions of the tunnel's closed-loop rps
#                        (default mode), tunnel and nginx two hops at the same absolute rate; "" skips
#        OPEN_DUR=10     seconds per open-loop run (after 2 s warm-up at the same rate)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
shared_bench="${SHARED_BENCH:-$(cd "$repo/../shared/bench" 2>/dev/null && pwd || echo /work/shared/bench)}"
DUR="${DUR:-10s}"
WARMUP="${WARMUP:-40s}"
YARP="${YARP:-1}"
STRICT="${STRICT:-0}"
DIAG_DUR="${DIAG_DUR:-3s}"
GRAINS="${GRAINS-always on-demand off}"
OPEN_FRACTIONS="${OPEN_FRACTIONS-0.25 0.5}"
OPEN_DUR="${OPEN_DUR:-10}"
GIB=1073741824

NGINX_PORTS=(18080 18081 18082)
YARP_PORTS=(18181 18182)

out="$here/out/$(date +%Y%m%d-%H%M%S)"   # raw wrk/curl/dev logs (bench/out/ is git-ignored)
mkdir -p "$out"
cd "$out"   # whatever a tool drops in its working directory stays with the raw output

# log, die, port checks, the ports of `otun dev` and build(): shared with protocols.sh and hol.sh.
# shellcheck source=bench/common.sh
source "$here/common.sh"

# ---------------------------------------------------------------- cleanup (always runs)
dev_pid=""
nginx_started=0
yarp_started=0
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  bg_cleanup
  [ -n "$dev_pid" ] && stop_dev
  [ "$yarp_started" = 1 ] && bash "$shared_bench/yarp-chain.sh" stop >/dev/null 2>&1 || true
  [ "$nginx_started" = 1 ] && bash "$shared_bench/nginx-chain.sh" stop >/dev/null 2>&1 || true
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM   # turn signals into an exit so the EXIT trap cleans up

# ---------------------------------------------------------------- helpers
# (port_busy, require_free_ports, require_tools, build, start_dev, stop_dev, vm and ratio come from common.sh)



# wrk's binary units (format_binary: 1024-based) to bytes.
to_bytes() {
  awk -v v="$1" 'BEGIN {
    n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
    m = (u == "KB") ? 1024 : (u == "MB") ? 1048576 : (u == "GB") ? 1073741824 : (u == "TB") ? 1099511627776 : 1
    printf "%.0f", n * m }'
}

# Table rows: target|scenario|rps|2xx rps|p50|p99|bytes/s|CPU us/req path|backend|path cores|alloc B/req|gen0 GCs|errors
rows=()
diag_keys=()    # runs that saw non-2xx answers: re-run briefly with a status-counting script
declare -A RPS OK_RPS BPS P99MS CPUUS

# Per-row CPU accounting (common.sh): CPU_PATH_PIDS / CPU_BACKEND_PIDS / CPU_PATH_MINUS_BACKEND are set
# by the caller; ALLOC_TARGET is the .NET process whose allocations are collected (empty: none).
ALLOC_TARGET=""
nginx_pids() { cat /tmp/nginx-chain/nginx.pid 2>/dev/null; }
yarp_pids() { cat /tmp/yarp-chain/hop1.pid /tmp/yarp-chain/hop2.pid 2>/dev/null | tr '\n' ' '; }
set_cpu() {   # PATH_PIDS BACKEND_PIDS MINUS_BACKEND(0/1) ALLOC_TARGET
  CPU_PATH_PIDS=$1 CPU_BACKEND_PIDS=$2 CPU_PATH_MINUS_BACKEND=$3 ALLOC_TARGET=$4
}

# run_wrk KEY TARGET SCENARIO CONNS URL [extra wrk args]
run_wrk() {
  local key=$1 target=$2 scenario=$3 conns=$4 url=$5; shift 5
  local f="$out/wrk-$key.txt" secs=${DUR%s}
  log "wrk $target $scenario: -c$conns -d$DUR $url"
  alloc_begin "$ALLOC_TARGET" "$key" $((secs + 1))
  cpu_begin
  wrk -t1 -c"$conns" -d"$DUR" --latency "$@" "$url" >"$f" 2>&1 || log "wrk exited non-zero for $key (see $f)"
  local rps p50 p99 tps non2xx sockerr reqs
  reqs=$(awk '$2 == "requests" && $3 == "in" {print $1}' "$f")
  cpu_end "${reqs:-0}"
  alloc_end "${reqs:-0}"
  local -a errs
  rps=$(awk '/^Requests\/sec:/ {print $2}' "$f")
  p50=$(awk '$1 == "50%" {print $2}' "$f")
  p99=$(awk '$1 == "99%" {print $2}' "$f")
  tps=$(awk '/^Transfer\/sec:/ {print $2}' "$f")
  non2xx=$(awk -F': *' '/Non-2xx or 3xx responses/ {print $2}' "$f")
  sockerr=$(sed -n 's/^ *Socket errors: *//p' "$f")
  errs=()
  if [ -n "$non2xx" ]; then errs+=("non-2xx/3xx $non2xx"); fi
  if [ -n "$sockerr" ]; then errs+=("socket errors: $sockerr"); fi
  if [ ${#errs[@]} -eq 0 ]; then errs=("none"); fi
  RPS[$key]=${rps:-0}
  P99MS[$key]=$(to_ms "${p99:-0}")
  CPUUS[$key]=$CPU_PATH_US
  # wrk counts fast error answers (e.g. 503) as requests; the bar is about served requests.
  OK_RPS[$key]=$(awk -v r="${rps:-0}" -v n="${reqs:-0}" -v e="${non2xx:-0}" 'BEGIN { printf "%.2f", (n > 0 ? r * (n - e) / n : 0) }')
  if [ -n "$non2xx" ]; then diag_keys+=("$key|$conns|$url"); fi
  BPS[$key]=$(to_bytes "${tps:-0}")
  local bcol="-"; [ "$conns" = 8 ] && bcol="${BPS[$key]} (${tps:-?})"
  rows+=("$target|$scenario|${rps:-?}|${OK_RPS[$key]}|${p50:-?}|${p99:-?}|$bcol|$CPU_PATH_US|$CPU_BACK_US|$CPU_PATH_CORES|$ALLOC_B|$ALLOC_GC0 / $ALLOC_GC12|$(IFS=';'; echo "${errs[*]}")")
}

# Which statuses were the non-2xx answers, and what did the first one say? wrk's Lua hooks slow it
# down, so this is a separate short run, not part of the measurement.
status_lua() {
  cat >"$out/status.lua" <<'LUA'
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) statuses = {} end
function response(status, headers, body)
  statuses[tostring(status)] = (statuses[tostring(status)] or 0) + 1
  if status >= 300 and not sample then sample = status .. " " .. string.sub(body or "", 1, 200) end
end
function done(summary, latency, requests)
  for _, t in ipairs(threads) do
    for k, v in pairs(t:get("statuses")) do io.write(string.format("    status %s: %d\n", k, v)) end
    local s = t:get("sample")
    if s then io.write("    first non-2xx: " .. string.gsub(s, "%s+$", "") .. "\n") end
  end
end
LUA
}
diagnose() {
  local key=$1 conns=$2 url=$3
  echo "  $key (re-run ${DIAG_DUR}, -c$conns $url):"
  wrk -t1 -c"$conns" -d"$DIAG_DUR" -s "$out/status.lua" "$url" 2>&1 | grep -E '^    (status|first)' || echo "    (no status lines)"
}

warmup() { wrk -t1 -c"$2" -d"$WARMUP" "$1" >/dev/null 2>&1 || true; }

# ---------------------------------------------------------------- RSS under a 1 GiB transfer

declare -A RSS
# measure_rss NAME CMD...: run CMD in the background, sample the dev process's VmRSS every 100 ms.
measure_rss() {
  local name=$1; shift
  local base peak=0 cur hwm t0 t1 cpid rc=0
  base=$(vm "$dev_pid" VmRSS)
  t0=$(date +%s.%N)
  local c0; c0=$(cpu_ticks "$dev_pid")
  "$@" & cpid=$!
  while kill -0 "$cpid" 2>/dev/null; do
    cur=$(vm "$dev_pid" VmRSS); [ -n "$cur" ] && [ "$cur" -gt "$peak" ] && peak=$cur
    sleep 0.1
  done
  wait "$cpid" || rc=$?
  t1=$(date +%s.%N)
  hwm=$(vm "$dev_pid" VmHWM)
  RSS[$name.cpu]=$(us_per_req $(( $(cpu_ticks "$dev_pid") - c0 )) 1024)
  RSS[$name.base]=$((base / 1024)); RSS[$name.peak]=$((peak / 1024)); RSS[$name.hwm]=$((${hwm:-0} / 1024))
  RSS[$name.secs]=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", b - a}')
  RSS[$name.rate]=$(awk -v a="$t0" -v b="$t1" -v n="$GIB" 'BEGIN {printf "%.1f MiB/s", n / (b - a) / 1048576}')
  return "$rc"
}

download_1g() {
  curl -s --max-time 600 -o /dev/null -w '%{http_code} %{size_download}\n' \
    "http://127.0.0.1:$INGRESS_PORT/download?size=$GIB" >"$out/download.txt"
}
upload_1g() {
  head -c "$GIB" /dev/zero | curl -s --max-time 600 -T - -X POST -o "$out/upload.json" -w '%{http_code}\n' \
    "http://127.0.0.1:$INGRESS_PORT/upload" >"$out/upload.txt"
}

# ================================================================ main
require_tools wrk nginx curl awk tar
[ -x "$shared_bench/nginx-chain.sh" ] || [ -f "$shared_bench/nginx-chain.sh" ] || die "no nginx-chain.sh in $shared_bench (set SHARED_BENCH)"
log "raw output in $out"

if [ -n "$OPEN_FRACTIONS" ]; then WITH_LOADGEN=1 build; else build; fi

# --- references: nginx direct / 1 hop / 2 hops (and YARP 2 hops if it builds)
require_free_ports "${NGINX_PORTS[@]}"
bash "$shared_bench/nginx-chain.sh" start || die "nginx-chain start failed (see /tmp/nginx-chain/error.log)"
nginx_started=1
for p in "${NGINX_PORTS[@]}"; do curl -sf "http://127.0.0.1:$p/hello" >/dev/null || die "nginx on $p does not answer /hello"; done

yarp_note=""
if [ "$YARP" = 1 ]; then
  if port_busy "${YARP_PORTS[0]}" || port_busy "${YARP_PORTS[1]}"; then
    yarp_note="YARP skipped: ports ${YARP_PORTS[*]} busy"
  else
    yarp_started=1   # set before start so a half-started chain is stopped too
    log "starting the YARP chain (dotnet publish into /tmp/yarp-chain; may take a minute)"
    if bash "$shared_bench/yarp-chain.sh" start >"$out/yarp-start.txt" 2>&1; then
      :
    else
      yarp_note="YARP skipped: yarp-chain.sh start failed (see $out/yarp-start.txt)"
      bash "$shared_bench/yarp-chain.sh" stop >/dev/null 2>&1 || true
      yarp_started=0
    fi
  fi
  if [ -n "$yarp_note" ]; then log "$yarp_note"; fi
else
  yarp_note="YARP skipped (YARP=0)"
fi

# --- references first (same run): small answers at 64 connections, 1 MiB bodies at 8.
if [ "$yarp_started" = 1 ]; then
  log "YARP warm-up ($WARMUP each)"
  warmup "http://127.0.0.1:18182/hello" 64
  warmup "http://127.0.0.1:18182/1m.bin" 8
fi
np=$(nginx_pids)
set_cpu "" "$np" 0 ""
run_wrk small-direct  "backend direct" "small c64" 64 "http://127.0.0.1:18080/hello"
BACKEND_US_DIRECT=$CPU_BACK_US   # the nginx worker's own cost per /hello: subtracted from the hop rows
set_cpu "$np" "" 1 ""
run_wrk small-nginx1  "nginx 1 hop"    "small c64" 64 "http://127.0.0.1:18081/hello"
run_wrk small-nginx2  "nginx 2 hops"   "small c64" 64 "http://127.0.0.1:18082/hello"
if [ "$yarp_started" = 1 ]; then
  set_cpu "$(yarp_pids)" "$np" 0 ""
  run_wrk small-yarp2 "YARP 2 hops" "small c64" 64 "http://127.0.0.1:18182/hello"
fi
set_cpu "" "$np" 0 ""
run_wrk big-direct    "backend direct" "1MiB c8"   8  "http://127.0.0.1:18080/1m.bin"
big_back_us=$CPU_BACK_US
set_cpu "$np" "" 1 ""
BACKEND_US_DIRECT_SMALL=$BACKEND_US_DIRECT; BACKEND_US_DIRECT=$big_back_us
run_wrk big-nginx2    "nginx 2 hops"   "1MiB c8"   8  "http://127.0.0.1:18082/1m.bin"
BACKEND_US_DIRECT=$BACKEND_US_DIRECT_SMALL
if [ "$yarp_started" = 1 ]; then
  set_cpu "$(yarp_pids)" "$np" 0 ""
  run_wrk big-yarp2 "YARP 2 hops" "1MiB c8" 8 "http://127.0.0.1:18182/1m.bin"
fi

# --- the tunnel in front of the same nginx backend, one dev process per request-grain mode.
# On a build without Gateway:RequestGrains, on-demand and off both mean RecordRequests=false: one row.
declare -A MODE_KEY   # mode -> row key (small-tunnel-MODE) that measured it
seen_args=()
for mode in $GRAINS; do
  mapfile -t gargs < <(grain_args "$mode" "$(dirname "$OTUN")")
  label=$(grain_label "$mode" "$(dirname "$OTUN")")
  dup=""
  for sa in "${seen_args[@]}"; do IFS='|' read -r sm sg <<<"$sa"; [ "$sg" = "${gargs[*]}" ] && dup=$sm; done
  if [ -n "$dup" ]; then log "grain mode $mode runs as ${gargs[*]}, measured already as $dup"; MODE_KEY[$mode]=${MODE_KEY[$dup]}; continue; fi
  seen_args+=("$mode|${gargs[*]}")
  start_dev "small-$mode" --expose http://127.0.0.1:18080 "${gargs[@]}"
  curl -sf "http://127.0.0.1:$INGRESS_PORT/hello" >/dev/null || die "the tunnel does not answer /hello (logs: $dev_err)"
  log "warm-up ($WARMUP)"
  warmup "http://127.0.0.1:$INGRESS_PORT/hello" 64
  set_cpu "$dev_pid" "$np" 0 "$dev_pid"
  run_wrk "small-tunnel-$mode" "tunnel, grains $label" "small c64" 64 "http://127.0.0.1:$INGRESS_PORT/hello"
  MODE_KEY[$mode]="small-tunnel-$mode"
  stop_dev
done

# The build's default mode: 1 MiB bodies, then the open-loop runs.
start_dev wrk --expose http://127.0.0.1:18080
curl -sf "http://127.0.0.1:$INGRESS_PORT/hello" >/dev/null || die "the tunnel does not answer /hello (logs: $dev_err)"
log "warm-up ($WARMUP each)"
warmup "http://127.0.0.1:$INGRESS_PORT/hello" 64
warmup "http://127.0.0.1:$INGRESS_PORT/1m.bin" 8
set_cpu "$dev_pid" "$np" 0 "$dev_pid"
run_wrk big-tunnel    "tunnel, grains default" "1MiB c8"   8  "http://127.0.0.1:$INGRESS_PORT/1m.bin"
run_wrk small-tunnel  "tunnel, grains default" "small c64" 64 "http://127.0.0.1:$INGRESS_PORT/hello"

# --- open loop (fixed rate, latency from each request's due time: queueing vs stalls)
open_rows=()   # target|rate asked|rate served|p50|p90|p99|p99.9|max|CPU us/req|errors
run_open() {   # KEY TARGET URL RATE
  local key=$1 target=$2 url=$3 rate=$4 f="$out/open-$1.txt" line n
  log "open loop $target at $rate req/s for ${OPEN_DUR}s: $url"
  "$LOADGEN" http-rate --target "$url" --rate "$rate" --duration "$OPEN_DUR" --warmup 2 --connections 64 >"$f" 2>&1 &
  local lp=$!; LOAD_PID=$lp
  sleep 2.2   # the warm-up at the same rate is not counted
  cpu_begin
  wait "$lp" || log "loadgen http-rate exited non-zero for $key (see $f)"
  line=$(grep '^cmd=' "$f" | tail -1 || true)
  n=$(kv "$line" requests)
  cpu_end "${n:-0}"
  local err; err=$(kv "$line" errors); [ "${err:-0}" = 0 ] && err=none || err="$err errors: $(sed -n 's/.*first_error="\(.*\)"$/\1/p' <<<"$line")"
  open_rows+=("$target|$rate|$(kv "$line" rate)|$(kv "$line" p50_ms)|$(kv "$line" p90_ms)|$(kv "$line" p99_ms)|$(kv "$line" p999_ms)|$(kv "$line" max_ms)|$CPU_PATH_US|${err:-?}")
}
if [ -n "$OPEN_FRACTIONS" ]; then
  base_rps=${OK_RPS[small-tunnel]:-0}
  for fr in $OPEN_FRACTIONS; do
    rate=$(awk -v r="$base_rps" -v f="$fr" 'BEGIN { printf "%d", r * f / 100 + 0.5 }'); rate=$((rate * 100))
    [ "$rate" -gt 0 ] || continue
    set_cpu "$dev_pid" "$np" 0 ""
    run_open "tunnel-$fr" "tunnel, grains default (${fr} x its c64 rps)" "http://127.0.0.1:$INGRESS_PORT/hello" "$rate"
    set_cpu "$np" "" 1 ""
    run_open "nginx2-$fr" "nginx 2 hops (same rate)" "http://127.0.0.1:18082/hello" "$rate"
  done
fi
diag_report=""
if [ ${#diag_keys[@]} -gt 0 ]; then
  status_lua
  for d in "${diag_keys[@]}"; do
    IFS='|' read -r k c u <<<"$d"
    log "diagnosing non-2xx answers of $k"
    diag_report+="$(diagnose "$k" "$c" "$u")"$'\n'
  done
fi
stop_dev

# --- peak RSS: a fresh dev process (demo backend) per direction, so each peak is its own.
rss_notes=()
start_dev download
sleep 1   # let start-up allocations settle before the baseline
if measure_rss download download_1g; then
  read -r code size <"$out/download.txt" || true
  [ "${code:-}" = 200 ] && [ "${size:-}" = "$GIB" ] || rss_notes+=("download: HTTP ${code:-?}, ${size:-?} bytes (expected 200, $GIB)")
else
  rss_notes+=("download: curl failed (rc $?)")
fi
stop_dev

start_dev upload
sleep 1
if measure_rss upload upload_1g; then
  code=$(cat "$out/upload.txt" 2>/dev/null || true)
  grep -q "\"length\":$GIB" "$out/upload.json" 2>/dev/null \
    || rss_notes+=("upload: HTTP ${code:-?}, answer $(head -c 200 "$out/upload.json" 2>/dev/null) (expected length $GIB)")
else
  rss_notes+=("upload: curl failed (rc $?)")
fi
stop_dev

# ---------------------------------------------------------------- report
echo
source_rev
echo "OrleansTunnel bench  $(date '+%Y-%m-%d %H:%M')  $(nproc) CPUs  load avg $(cut -d' ' -f1-3 /proc/loadavg)  wrk -t1 -d$DUR --latency  (raw: $out)"
echo "source: $rev with $dirty modified tracked file(s) in the working tree at copy time; grain key: Gateway:$(grain_key "$(dirname "$OTUN")")"
echo
{
  echo "target|scenario|rps|2xx rps|p50|p99|bytes/s (wrk)|CPU us/req (path)|CPU us/req (backend)|path cores|alloc B/req|gen0 / gen1+2 GCs|errors"
  echo "---|---|---|---|---|---|---|---|---|---|---|---|---"
  printf '%s\n' "${rows[@]}"
} | column -t -s '|' -o ' | ' | sed 's/^/| /; s/$/ |/'
echo "CPU: user+sys from /proc/PID/stat over the run (process and descendants) / requests served. Path = otun dev"
echo "(silo+gateway+agent in one process), the two YARP processes, or the nginx process minus the backend's own"
echo "cost per request from the direct row (\"~\": nginx-chain.sh serves backend and both hops in one worker)."
echo "Allocations: dotnet-counters System.Runtime dotnet.gc.heap.total_allocated over the run (+1 s) / requests."
if [ ${#open_rows[@]} -gt 0 ]; then
  echo
  echo "open loop (loadgen http-rate, fixed rate, 64 connections, latency from each request's due time, ${OPEN_DUR}s):"
  {
    echo "target|rate asked|rate served|p50 ms|p90 ms|p99 ms|p99.9 ms|max ms|CPU us/req (path)|errors"
    echo "---|---|---|---|---|---|---|---|---|---"
    printf '%s\n' "${open_rows[@]}"
  } | column -t -s '|' -o ' | ' | sed 's/^/| /; s/$/ |/'
fi
echo
fails=0
verdict() { awk -v r="$1" -v bar="$2" 'BEGIN { print ((r != "n/a" && r + 0 >= bar) ? "PASS" : "FAIL") }'; }
verdict_le() { awk -v r="$1" -v bar="$2" 'BEGIN { print ((r != "n/a" && r + 0 <= bar) ? "PASS" : "FAIL") }'; }
bar() {   # TEXT RATIO OP BAR
  local v; if [ "$3" = ">=" ]; then v=$(verdict "$2" "$4"); else v=$(verdict_le "$2" "$4"); fi
  [ "$v" = PASS ] || fails=1
  printf '  %-58s %6s   (bar %s %s: %s)\n' "$1" "$2" "$3" "$4" "$v"
}
echo "bars (issue 11; ratios of this run):"
od=${MODE_KEY[on-demand]:-small-tunnel}; al=${MODE_KEY[always]:-}
bar "small c64 2xx rps, grains on-demand / nginx 2 hops" "$(ratio "${OK_RPS[$od]:-0}" "${OK_RPS[small-nginx2]:-0}")" ">=" 0.6
bar "small c64 p99, grains on-demand / nginx 2 hops" "$(ratio "${P99MS[$od]:-0}" "${P99MS[small-nginx2]:-0}")" "<=" 3
if [ -n "$al" ]; then bar "small c64 2xx rps, grains always / nginx 2 hops" "$(ratio "${OK_RPS[$al]:-0}" "${OK_RPS[small-nginx2]:-0}")" ">=" 0.35; fi
echo "  (on a build without Gateway:RequestGrains, on-demand = RecordRequests=false; default = RecordRequests=true)"
if [ -n "${RPS[big-yarp2]:-}" ]; then
  bar "1 MiB c8 bytes/s, tunnel default / YARP 2 hops" "$(ratio "${BPS[big-tunnel]}" "${BPS[big-yarp2]}")" ">=" 1.0
else echo "  1 MiB bar needs the YARP row (${yarp_note:-missing})"; fails=1; fi
echo "other ratios: small default / nginx 2 hops $(ratio "${OK_RPS[small-tunnel]}" "${OK_RPS[small-nginx2]}"); 1 MiB / nginx 2 hops $(ratio "${BPS[big-tunnel]}" "${BPS[big-nginx2]}")"
if [ -n "${RPS[small-yarp2]:-}" ]; then echo "  small default / YARP 2 hops $(ratio "${OK_RPS[small-tunnel]}" "${OK_RPS[small-yarp2]}")"; fi
echo "  CPU per small request, tunnel default / nginx 2 hops: $(ratio "${CPUUS[small-tunnel]#\~}" "${CPUUS[small-nginx2]#\~}")"
if [ -n "$yarp_note" ]; then echo "($yarp_note)"; fi
echo
echo "peak RSS of the otun dev process (silo+gateway+agent+backend), 1 GiB each way:"
for d in download upload; do
  if [ -n "${RSS[$d.peak]:-}" ]; then
    v=$([ "${RSS[$d.peak]}" -lt 300 ] && [ "${RSS[$d.hwm]}" -lt 300 ] && echo PASS || echo FAIL)
    [ "$v" = PASS ] || fails=1
    printf '  %-8s baseline %4d MB  peak(sampled) %4d MB  VmHWM %4d MB  %s in %ss (%s)  (bar < 300 MB: %s)\n' \
      "$d" "${RSS[$d.base]}" "${RSS[$d.peak]}" "${RSS[$d.hwm]}" "1 GiB" "${RSS[$d.secs]}" "${RSS[$d.rate]}" "$v"
    gbar=400; [ "$d" = upload ] && gbar=300
    v=$(verdict "${RSS[$d.rate]%% *}" "$gbar"); [ "$v" = PASS ] || fails=1
    printf '  %-8s 1 GiB with curl: %s, CPU %s us/MiB  (bar >= %s MiB/s: %s)\n' "$d" "${RSS[$d.rate]}" "${RSS[$d.cpu]:--}" "$gbar" "$v"
  else
    echo "  $d: not measured"; fails=1
  fi
done
for n in "${rss_notes[@]}"; do echo "  WARNING $n"; fails=1; done
for r in "${rows[@]}"; do
  case "$r" in *"|none") ;; *) echo "WARNING errors in: ${r%%|*} / $(cut -d'|' -f2 <<<"$r"): ${r##*|}";; esac
done
if [ -n "$diag_report" ]; then
  echo "non-2xx answers by status (short re-runs after the measurement):"
  printf '%s' "$diag_report"
fi
if [ "$STRICT" = 1 ] && [ "$fails" = 1 ]; then exit 1; fi
exit 0
