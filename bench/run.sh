#!/usr/bin/env bash
# OrleansTunnel benchmark: wrk against the backend directly, nginx (one and two hops), optionally
# YARP (two hops) and the tunnel (`otun dev`), then peak RSS of the dev process while 1 GiB moves
# each way. Prints one table and the ratios tunnel / two-hop nginx. See bench/README.md.
#
# Usage: bash bench/run.sh
# Env:   DUR=10s         wrk duration per measured run
#        WARMUP=3s       wrk warm-up of the tunnel (and YARP) before measuring
#        YARP=1          0: skip the YARP two-hop reference
#        OTUN_COPY=1     1: build and run from a copy of the working tree in $COPY_DIR, so a
#                        concurrent `dotnet build` in the repo does not clash; 0: use ./otun in place
#        COPY_DIR=/tmp/bench-src
#        READY_TIMEOUT=90  seconds to wait for `otun dev: ready`
#        STRICT=0        1: exit 1 when a bar from the issue is missed
#        DIAG_DUR=3s     length of the status-counting re-run of a run that saw non-2xx answers
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
shared_bench="${SHARED_BENCH:-$(cd "$repo/../shared/bench" 2>/dev/null && pwd || echo /work/shared/bench)}"
DUR="${DUR:-10s}"
WARMUP="${WARMUP:-3s}"
YARP="${YARP:-1}"
STRICT="${STRICT:-0}"
DIAG_DUR="${DIAG_DUR:-3s}"
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

# Table rows: target|scenario|rps|2xx rps|p50|p99|bytes/s|errors
rows=()
diag_keys=()    # runs that saw non-2xx answers: re-run briefly with a status-counting script
declare -A RPS OK_RPS BPS

# run_wrk KEY TARGET SCENARIO CONNS URL [extra wrk args]
run_wrk() {
  local key=$1 target=$2 scenario=$3 conns=$4 url=$5; shift 5
  local f="$out/wrk-$key.txt"
  log "wrk $target $scenario: -c$conns -d$DUR $url"
  wrk -t1 -c"$conns" -d"$DUR" --latency "$@" "$url" >"$f" 2>&1 || log "wrk exited non-zero for $key (see $f)"
  local rps p50 p99 tps non2xx sockerr reqs
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
  # wrk counts fast error answers (e.g. 503) as requests; the bar is about served requests.
  reqs=$(awk '$2 == "requests" && $3 == "in" {print $1}' "$f")
  OK_RPS[$key]=$(awk -v r="${rps:-0}" -v n="${reqs:-0}" -v e="${non2xx:-0}" 'BEGIN { printf "%.2f", (n > 0 ? r * (n - e) / n : 0) }')
  if [ -n "$non2xx" ]; then diag_keys+=("$key|$conns|$url"); fi
  BPS[$key]=$(to_bytes "${tps:-0}")
  rows+=("$target|$scenario|${rps:-?}|${OK_RPS[$key]}|${p50:-?}|${p99:-?}|${BPS[$key]} (${tps:-?})|$(IFS=';'; echo "${errs[*]}")")
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
  "$@" & cpid=$!
  while kill -0 "$cpid" 2>/dev/null; do
    cur=$(vm "$dev_pid" VmRSS); [ -n "$cur" ] && [ "$cur" -gt "$peak" ] && peak=$cur
    sleep 0.1
  done
  wait "$cpid" || rc=$?
  t1=$(date +%s.%N)
  hwm=$(vm "$dev_pid" VmHWM)
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

build

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

# --- the tunnel in front of the same nginx backend
start_dev wrk --expose http://127.0.0.1:18080
curl -sf "http://127.0.0.1:$INGRESS_PORT/hello" >/dev/null || die "the tunnel does not answer /hello (logs: $dev_err)"

# JIT and connection set-up of the .NET processes should not count against them.
log "warm-up ($WARMUP each)"
warmup "http://127.0.0.1:$INGRESS_PORT/hello" 64
warmup "http://127.0.0.1:$INGRESS_PORT/1m.bin" 8
if [ "$yarp_started" = 1 ]; then
  warmup "http://127.0.0.1:18182/hello" 64
  warmup "http://127.0.0.1:18182/1m.bin" 8
fi

# Small responses (5 bytes) at 64 connections.
run_wrk small-direct  "backend direct" "small c64" 64 "http://127.0.0.1:18080/hello"
run_wrk small-nginx1  "nginx 1 hop"    "small c64" 64 "http://127.0.0.1:18081/hello"
run_wrk small-nginx2  "nginx 2 hops"   "small c64" 64 "http://127.0.0.1:18082/hello"
if [ "$yarp_started" = 1 ]; then run_wrk small-yarp2 "YARP 2 hops" "small c64" 64 "http://127.0.0.1:18182/hello"; fi
run_wrk small-tunnel  "tunnel"         "small c64" 64 "http://127.0.0.1:$INGRESS_PORT/hello"
# 1 MiB responses at 8 connections.
run_wrk big-direct    "backend direct" "1MiB c8"   8  "http://127.0.0.1:18080/1m.bin"
run_wrk big-nginx2    "nginx 2 hops"   "1MiB c8"   8  "http://127.0.0.1:18082/1m.bin"
if [ "$yarp_started" = 1 ]; then run_wrk big-yarp2 "YARP 2 hops" "1MiB c8" 8 "http://127.0.0.1:18182/1m.bin"; fi
run_wrk big-tunnel    "tunnel"         "1MiB c8"   8  "http://127.0.0.1:$INGRESS_PORT/1m.bin"
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
small_ratio=$(ratio "${OK_RPS[small-tunnel]}" "${OK_RPS[small-nginx2]}")
small_ratio_raw=$(ratio "${RPS[small-tunnel]}" "${RPS[small-nginx2]}")
big_ratio=$(ratio "${BPS[big-tunnel]}" "${BPS[big-nginx2]}")

echo
rev="$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo '?')"
dirty="$(git -C "$repo" status --porcelain --untracked-files=no 2>/dev/null | wc -l)"
echo "OrleansTunnel bench  $(date '+%Y-%m-%d %H:%M')  $(nproc) CPUs  wrk -t1 -d$DUR --latency  (raw: $out)"
echo "source: $rev with $dirty modified tracked file(s) in the working tree at copy time"
echo
{
  echo "target|scenario|rps|2xx rps|p50|p99|bytes/s (wrk)|errors"
  echo "---|---|---|---|---|---|---|---"
  printf '%s\n' "${rows[@]}"
} | column -t -s '|' -o ' | ' | sed 's/^/| /; s/$/ |/'
echo
fails=0
verdict() { awk -v r="$1" -v bar="$2" 'BEGIN { print ((r != "n/a" && r + 0 >= bar) ? "PASS" : "FAIL") }'; }
v=$(verdict "$small_ratio" 0.25); [ "$v" = PASS ] || fails=1
echo "ratio tunnel / nginx 2 hops, small 2xx rps:   $small_ratio   (bar >= 0.25: $v; counting all answers: $small_ratio_raw)"
echo "ratio tunnel / nginx 2 hops, 1 MiB bytes/s:   $big_ratio"
if [ -n "${RPS[small-yarp2]:-}" ]; then
  echo "ratio tunnel / YARP 2 hops,  small 2xx rps:   $(ratio "${OK_RPS[small-tunnel]}" "${OK_RPS[small-yarp2]}")"
  echo "ratio tunnel / YARP 2 hops,  1 MiB bytes/s:   $(ratio "${BPS[big-tunnel]}" "${BPS[big-yarp2]}")"
fi
if [ -n "$yarp_note" ]; then echo "($yarp_note)"; fi
echo
echo "peak RSS of the otun dev process (silo+gateway+agent+backend), 1 GiB each way:"
for d in download upload; do
  if [ -n "${RSS[$d.peak]:-}" ]; then
    v=$([ "${RSS[$d.peak]}" -lt 300 ] && [ "${RSS[$d.hwm]}" -lt 300 ] && echo PASS || echo FAIL)
    [ "$v" = PASS ] || fails=1
    printf '  %-8s baseline %4d MB  peak(sampled) %4d MB  VmHWM %4d MB  %s in %ss (%s)  (bar < 300 MB: %s)\n' \
      "$d" "${RSS[$d.base]}" "${RSS[$d.peak]}" "${RSS[$d.hwm]}" "1 GiB" "${RSS[$d.secs]}" "${RSS[$d.rate]}" "$v"
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
