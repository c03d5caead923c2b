#!/usr/bin/env bash
# Head-of-line blocking (issue 4): latency of small requests (/hello) alone vs beside four concurrent
# 1 GiB downloads on the same agent connection (`otun dev` has exactly one), the p99 ratio
# beside/alone (bar < 1.5), peak RSS of the dev process and the tunnel's ping RTT under load.
#
# Usage: bash bench/hol.sh
# Env:   DUR=10s          wrk duration (alone and beside)
#        LIMITS="50M 0"   curl --limit-rate of each download, one "beside" run per value (0: unlimited)
#        LEAD=2           seconds the downloads run before wrk starts
#        OTUN_COPY=1 COPY_DIR=/tmp/bench-src READY_TIMEOUT=90   as in run.sh
#        GRAINS=          request-grain mode (always|on-demand|off; empty: the build's default)
#        RSS_BAR=250      MB: bar (issue 11) on the dev process's peak RSS beside the slow downloads
#        STRICT=0         1: exit 1 when a bar is missed
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
out="$here/out/hol-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$out"
cd "$out"
# shellcheck source=bench/common.sh
. "$here/common.sh"

DUR="${DUR:-10s}"
LIMITS="${LIMITS:-50M 0}"
LEAD="${LEAD:-2}"
STRICT="${STRICT:-0}"
GRAINS="${GRAINS:-}"
RSS_BAR="${RSS_BAR:-250}"
GIB=1073741824
dur_s=${DUR%s}

curl_pids=()
cleanup() {
  local rc=$? p
  trap - EXIT INT TERM
  for p in "${curl_pids[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -n "$dev_pid" ] && stop_dev
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

rows=()     # run|downloads|rps|p50 ms|p99 ms|p99 ratio|rtt median/max ms|peak RSS MB|errors
warnings=()
declare -A P99 PEAK

# Samplers (background): /tunnels every second (rttMs, activeStreams, queuedControlFrames) and the
# dev process's VmRSS every 100 ms. Each writes one value per line to its file.
sample_tunnels() {
  while :; do
    curl -s --max-time 1 "http://127.0.0.1:$ADMIN_PORT/tunnels" \
      | jq -r '.[0] | "\(.rttMs // "null") \(.activeStreams) \(.queuedControlFrames)"' 2>/dev/null >>"$1" || echo "error" >>"$1"
    sleep 1
  done
}
sample_rss() { while :; do vm "$dev_pid" VmRSS >>"$1"; sleep 0.1; done; }
stats() {   # FILE COLUMN -> "median max" of the numeric values
  awk -v c="$2" '$c ~ /^[0-9.]+$/ {print $c}' "$1" | sort -g \
    | awk '{a[NR] = $1} END { if (NR == 0) { print "n/a n/a"; exit } m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2; printf "%.2f %.2f\n", m, a[NR] }'
}

# measure NAME LIMIT: LIMIT "" = alone; otherwise four downloads with that --limit-rate (0 = none).
measure() {
  local name=$1 limit=$2 f="$out/wrk-$1.txt" i spid rpid
  local tf="$out/tunnels-$name.txt" rf="$out/rss-$name.txt"
  : >"$tf"; : >"$rf"
  curl_pids=()
  if [ -n "$limit" ]; then
    local rate_arg=()
    [ "$limit" != 0 ] && rate_arg=(--limit-rate "$limit")
    for i in 1 2 3 4; do
      curl -s -o /dev/null "${rate_arg[@]}" --max-time $((LEAD + dur_s + 3)) \
        -w '%{http_code} %{size_download} %{time_total} %{speed_download}\n' \
        "http://127.0.0.1:$INGRESS_PORT/download?size=$GIB" >"$out/curl-$name-$i.txt" 2>&1 &
      curl_pids+=($!)
    done
    sleep "$LEAD"
  fi
  sample_tunnels "$tf" & spid=$!
  sample_rss "$rf" & rpid=$!
  log "wrk $name: -t1 -c16 -d$DUR --latency /hello${limit:+ beside 4 x 1 GiB downloads (limit-rate ${limit/#0/none})}"
  wrk -t1 -c16 -d"$DUR" --latency "http://127.0.0.1:$INGRESS_PORT/hello" >"$f" 2>&1 || log "wrk exited non-zero ($f)"
  kill "$spid" "$rpid" 2>/dev/null || true; wait "$spid" "$rpid" 2>/dev/null || true
  local dl="-" dlerr=""
  if [ -n "$limit" ]; then
    local p code size t speed ok=0 mb=0
    for p in "${curl_pids[@]}"; do wait "$p" 2>/dev/null || true; done
    curl_pids=()
    for i in 1 2 3 4; do
      read -r code size t speed <"$out/curl-$name-$i.txt" || true
      # A download cut by --max-time (still running when wrk ended) is expected; non-200 is not.
      [ "${code:-}" = 200 ] || dlerr+="download $i: HTTP ${code:-?}; "
      [ "${size:-0}" = "$GIB" ] && ok=$((ok + 1))
      mb=$(awk -v a="$mb" -v s="${speed:-0}" 'BEGIN {printf "%.0f", a + s / 1048576}')
    done
    dl="4 x 1 GiB, limit ${limit/#0/none}: ${mb} MiB/s total, $ok/4 complete"
  fi
  local rps p50 p99 non2xx sockerr err rtt rttmax as qcf peak
  rps=$(awk '/^Requests\/sec:/ {print $2}' "$f")
  p50=$(to_ms "$(awk '$1 == "50%" {print $2}' "$f")")
  p99=$(to_ms "$(awk '$1 == "99%" {print $2}' "$f")")
  non2xx=$(awk -F': *' '/Non-2xx or 3xx responses/ {print $2}' "$f")
  sockerr=$(sed -n 's/^ *Socket errors: *//p' "$f")
  err="${non2xx:+non-2xx $non2xx; }${sockerr:+socket errors: $sockerr; }$dlerr"
  P99[$name]=$p99
  read -r rtt rttmax < <(stats "$tf" 1)
  as=$(stats "$tf" 2 | cut -d' ' -f2); qcf=$(stats "$tf" 3 | cut -d' ' -f2)
  peak=$(sort -n "$rf" | tail -1); peak=$(( ${peak:-0} / 1024 ))
  PEAK[$name]=$peak
  local r="-"
  [ -n "$limit" ] && r=$(ratio "$p99" "${P99[alone]:-0}")
  rows+=("$name|$dl|${rps:-?}|$p50|$p99|$r|$rtt / $rttmax ($(grep -c . "$tf") samples)|$as / $qcf|$peak|${err:-none}")
  dev_alive || warnings+=("otun dev died during $name (see $dev_err)")
}

# ================================================================ main
require_tools wrk curl jq awk tar dotnet
log "raw output in $out"
build
mapfile -t gargs < <(grain_args "$GRAINS" "$(dirname "$OTUN")")
start_dev hol --set Gateway:HeartbeatInterval=00:00:01 "${gargs[@]}"
curl -sf "http://127.0.0.1:$INGRESS_PORT/hello" >/dev/null || die "the tunnel does not answer /hello (logs: $dev_err)"
log "warm-up 3s"
wrk -t1 -c16 -d3s "http://127.0.0.1:$INGRESS_PORT/hello" >/dev/null 2>&1 || true
sleep 2   # let a heartbeat or two land so rttMs is set
rss_base=$(( $(vm "$dev_pid" VmRSS) / 1024 ))

measure alone ""
for l in $LIMITS; do
  measure "beside-${l/#0/unlimited}" "$l"
done
hwm=$(( $(vm "$dev_pid" VmHWM) / 1024 ))
stop_dev

echo
source_rev
echo "OrleansTunnel HOL bench  $(date '+%Y-%m-%d %H:%M')  $(nproc) CPUs  wrk -t1 -c16 -d$DUR --latency /hello; downloads start ${LEAD}s before wrk  (raw: $out)"
echo "source: $rev with $dirty modified tracked file(s); otun dev (demo backend) with Gateway:HeartbeatInterval=00:00:01, grains $(grain_label "$GRAINS" "$(dirname "$OTUN")"); one agent connection"
echo
{
  echo "run|downloads|rps|p50 ms|p99 ms|p99 / alone|ping RTT ms median / max|activeStreams / queuedControlFrames max|peak RSS MB|errors"
  echo "---|---|---|---|---|---|---|---|---|---"
  printf '%s\n' "${rows[@]}"
} | column -t -s '|' -o ' | ' | sed 's/^/| /; s/$/ |/'
echo
echo "dev process RSS: ${rss_base} MB after warm-up, VmHWM ${hwm} MB over the whole run"
fails=0
for l in $LIMITS; do
  n="beside-${l/#0/unlimited}"
  r=$(ratio "${P99[$n]:-0}" "${P99[alone]:-0}")
  v=$(awk -v r="$r" 'BEGIN { print ((r != "n/a" && r + 0 < 1.5) ? "PASS" : "FAIL") }')
  [ "$v" = PASS ] || fails=1
  echo "p99 $n / alone: $r   (bar < 1.5: $v)"
done
for l in $LIMITS; do
  n="beside-${l/#0/unlimited}"
  v=$([ "${PEAK[$n]:-999999}" -le "$RSS_BAR" ] && echo PASS || echo FAIL)
  [ "$v" = PASS ] || fails=1
  echo "peak RSS of otun dev beside 4 x 1 GiB downloads (limit ${l/#0/none}): ${PEAK[$n]:-?} MB  (bar <= $RSS_BAR MB, issue 11: $v)"
done
v=$([ "${hwm:-999999}" -le "$RSS_BAR" ] && echo PASS || echo FAIL)
echo "VmHWM of otun dev over the whole run: $hwm MB  (bar <= $RSS_BAR MB: $v)"
for w in "${warnings[@]}"; do echo "WARNING $w"; done
for r in "${rows[@]}"; do
  case "$r" in *"|none") ;; *) echo "WARNING errors in ${r%%|*}: ${r##*|}";; esac
done
if [ "$STRICT" = 1 ] && [ "$fails" = 1 ]; then exit 1; fi
exit 0
