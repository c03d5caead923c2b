#!/usr/bin/env bash
# Clustered-deployment benchmark: redis + 1 silo + 2 gateways (gw-a, gw-b) + 1 agent (connected to
# gw-b only) + an nginx backend, all separate processes. wrk measures the backend directly, the local
# path (visitor -> gw-b -> agent -> backend) and the cross-gateway path (visitor -> gw-a -> peer link
# -> gw-b -> agent -> backend), once per request-grain mode (GRAINS: the gateways and the agent are
# restarted per mode). Prints one table with the CPU per request of every process, the cross/local
# bar, the per-request cost of the request grain and the peak RSS (VmHWM) of silo, gateways and
# agent. See bench/README.md.
#
# Usage: bash bench/cluster.sh
# Env:   DUR=10s          wrk duration per measured run
#        WARMUP=30s       wrk warm-up of each tunnel path (local, then cross) before either is measured (not
#                         counted): a fresh .NET process compiles for ~40 s of load (dotnet-counters:
#                         dotnet.jit.compilation.time 0.5-0.9 s per 5 s at 15-30 s, 0.08 after 40 s)
#        CONNS=64         wrk connections;  THREADS=2  wrk threads
#        OTUN_COPY=1 COPY_DIR=/tmp/bench-src READY_TIMEOUT=90   as in run.sh
#        STOP_GRACE=40    seconds between SIGTERM and SIGKILL when stopping a process
#        GRAINS="always on-demand off"   request-grain modes, one phase each (gateways and agent
#                         restarted per phase); a build without Gateway:RequestGrains runs
#                         RecordRequests=true/false and measures on-demand/off once
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
out="$here/out/cluster-$(date +%Y%m%d-%H%M%S)"   # raw wrk output and process logs (git-ignored)
mkdir -p "$out"
cd "$out"
# log, die, require_free_ports, require_tools, build, vm, to_ms, ratio
# shellcheck source=bench/common.sh
. "$here/common.sh"

DUR="${DUR:-10s}"
WARMUP="${WARMUP:-30s}"
CONNS="${CONNS:-64}"
THREADS="${THREADS:-2}"
HOST=bench.test
PATH_Q=/hello

# Ports (loopback), apart from run.sh / protocols.sh / hol.sh and `otun cluster`'s defaults.
REDIS_PORT=16390
SILO_PORT_C=21211 SILO_GW_PORT_C=31100 SILO_ADMIN_PORT=19191
GWA_INGRESS=18180 GWA_TUNNEL=17170 GWA_ADMIN=19180
GWB_INGRESS=18280 GWB_TUNNEL=17270 GWB_ADMIN=19280
BACKEND_PORT=18380
CLUSTER_ID="bench-cluster-$$"

# ---------------------------------------------------------------- process bookkeeping
declare -A STOPS     # name+phase -> seconds from SIGTERM to exit (SIGKILL noted)
declare -A PID       # name -> pid of every process this script started and has not stopped yet
declare -A LOGF      # name -> log file prefix ($out/<name><phase>; .out = stdout, .err = stderr)
order=(agent gw-a gw-b silo redis nginx)   # stop order: agent first, backend last

# stop_proc NAME [GRACE_SECONDS]: SIGTERM, wait (default STOP_GRACE, 40 s: longer than the
# gateway's own 30 s shutdown deadline), then SIGKILL.
STOP_GRACE="${STOP_GRACE:-40}"
stop_proc() {
  local name=$1 grace=${2:-$STOP_GRACE} pid i t0 key
  pid=${PID[$name]:-}
  key="$(basename "${LOGF[$name]:-$name}")"
  unset "PID[$name]"
  [ -n "$pid" ] || return 0
  if kill -0 "$pid" 2>/dev/null; then
    t0=$(date +%s.%N)
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < grace * 10; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    STOPS[$key]=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}')
    if kill -0 "$pid" 2>/dev/null; then
      log "$name (pid $pid) still running ${grace}s after SIGTERM; SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      STOPS[$key]+=" (SIGKILL)"
    fi
  fi
  wait "$pid" 2>/dev/null || true
}
cleanup() {
  local rc=$? n
  trap - EXIT INT TERM
  for n in "${order[@]}"; do [ -n "${PID[$n]:-}" ] && stop_proc "$n" 10; done
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start_proc NAME READY_PATTERN CMD...: CMD in the background (stdout/stderr to $out/NAME$PHASE.out/.err),
# then wait until READY_PATTERN shows in its stdout (an empty pattern: no waiting).
PHASE=""
start_proc() {
  local name=$1 pattern=$2; shift 2
  LOGF[$name]="$out/$name$PHASE"
  "$@" >"${LOGF[$name]}.out" 2>"${LOGF[$name]}.err" &
  PID[$name]=$!
  if [ -n "$pattern" ]; then wait_for "$name" "grep -q '$pattern' '${LOGF[$name]}.out'" "'$pattern' in its output"; fi
  log "$name started, pid ${PID[$name]}"
}
# wait_for NAME CONDITION WHAT: poll CONDITION (a shell command) until true; die when NAME's process
# exits or READY_TIMEOUT seconds pass.
wait_for() {
  local name=$1 cond=$2 what=$3 deadline=$((SECONDS + READY_TIMEOUT)) pid
  pid=${PID[$name]:-}
  until eval "$cond" >/dev/null 2>&1; do
    if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
      tail -20 "${LOGF[$name]}.err" "${LOGF[$name]}.out" >&2 2>/dev/null || true
      unset "PID[$name]"
      die "$name exited before $what (logs: ${LOGF[$name]}.out, .err)"
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      tail -20 "${LOGF[$name]}.err" "${LOGF[$name]}.out" >&2 2>/dev/null || true
      die "$name: no $what within ${READY_TIMEOUT}s (logs: ${LOGF[$name]}.out, .err)"
    fi
    sleep 0.2
  done
}

redis_pong() (   # subshell: fd 3 stays out of the script
  exec 3<>"/dev/tcp/127.0.0.1/$REDIS_PORT" && printf 'PING\r\n' >&3 && read -r -t 2 l <&3 && [ "${l%$'\r'}" = "+PONG" ]
)
ingress_ok() { [ "$(curl -s -o /dev/null --max-time 5 -w '%{http_code}' -H "Host: $HOST" "http://127.0.0.1:$1$PATH_Q")" = 200 ]; }

# ---------------------------------------------------------------- the processes
start_nginx() {
  mkdir -p "$out/nginx"
  cat >"$out/nginx/nginx.conf" <<CONF
worker_processes 1; pid $out/nginx/nginx.pid; error_log $out/nginx/error.log;
events { worker_connections 4096; }
http {
  access_log off; keepalive_requests 1000000;
  client_body_temp_path $out/nginx; proxy_temp_path $out/nginx; fastcgi_temp_path $out/nginx;
  uwsgi_temp_path $out/nginx; scgi_temp_path $out/nginx;
  server { listen 127.0.0.1:$BACKEND_PORT; location = $PATH_Q { default_type text/plain; return 200 "hello"; } }
}
CONF
  # daemon off: the master stays our child, so its pid is known and SIGTERM stops it and its worker.
  start_proc nginx "" nginx -e "$out/nginx/error.log" -p "$out/nginx" -c "$out/nginx/nginx.conf" -g 'daemon off;'
  wait_for nginx "curl -sf --max-time 2 http://127.0.0.1:$BACKEND_PORT$PATH_Q" "answer on :$BACKEND_PORT"
}

cluster_args=()
start_gateway() {   # NAME INGRESS TUNNEL ADMIN [extra args]
  local name=$1 ingress=$2 tunnel=$3 admin=$4; shift 4
  start_proc "$name" 'otun gateway: ready' "$OTUN_BIN" gateway "${cluster_args[@]}" \
    --gateway-id "$name" --ingress "http://127.0.0.1:$ingress" --tunnel "http://127.0.0.1:$tunnel" \
    --admin "http://127.0.0.1:$admin" --route "$HOST=bench" --agent "bench-agent:$TOKEN_SHA:bench" "$@"
}

start_gateways() {   # [extra args]; log files get the suffix $PHASE
  require_free_ports "$GWA_INGRESS" "$GWA_TUNNEL" "$GWA_ADMIN" "$GWB_INGRESS" "$GWB_TUNNEL" "$GWB_ADMIN"
  start_gateway gw-a "$GWA_INGRESS" "$GWA_TUNNEL" "$GWA_ADMIN" "$@"
  start_gateway gw-b "$GWB_INGRESS" "$GWB_TUNNEL" "$GWB_ADMIN" "$@"
}

wait_paths() {   # both ingresses answer 200 for Host: bench.test (the agent may be reconnecting)
  local t0=$SECONDS
  wait_for gw-b "ingress_ok $GWB_INGRESS" "200 from :$GWB_INGRESS (Host: $HOST, local path)"
  wait_for gw-a "ingress_ok $GWA_INGRESS" "200 from :$GWA_INGRESS (Host: $HOST, cross-gateway path)"
  log "both ingresses answer 200 ($((SECONDS - t0))s)"
}

# ---------------------------------------------------------------- wrk
rows=()   # key|path|grain mode
declare -A RPS P50 P99 ERR CPU
CPU_PROCS=(gw-a gw-b agent silo nginx redis)   # CPU per request of each, per run
warm_wrk() {   # KEY PORT: WARMUP of load on one path, not measured
  log "warm-up $1: $WARMUP"
  wrk -t"$THREADS" -c"$CONNS" -d"$WARMUP" -H "Host: $HOST" "http://127.0.0.1:$2$PATH_Q" >"$out/wrk-$1-warmup.txt" 2>&1 || true
}
run_wrk() {   # KEY PATH RECORD PORT (warm-up, if any, is warm_wrk's)
  local key=$1 what=$2 rec=$3 port=$4 f="$out/wrk-$1.txt" url="http://127.0.0.1:$4$PATH_Q"
  local rps non2xx sockerr err
  log "wrk $key: -t$THREADS -c$CONNS -d$DUR --latency -H 'Host: $HOST' $url"
  local n c0=()
  for n in "${CPU_PROCS[@]}"; do c0+=("$(cpu_ticks "${PID[$n]:-}")"); done
  wrk -t"$THREADS" -c"$CONNS" -d"$DUR" --latency -H "Host: $HOST" "$url" >"$f" 2>&1 || log "wrk exited non-zero for $key (see $f)"
  local reqs i=0; reqs=$(awk '$2 == "requests" && $3 == "in" {print $1}' "$f")
  for n in "${CPU_PROCS[@]}"; do
    CPU[$key.$n]=$(us_per_req $(( $(cpu_ticks "${PID[$n]:-}") - ${c0[$i]} )) "${reqs:-0}"); i=$((i + 1))
  done
  CPU[$key.tunnel]=$(awk -v a="${CPU[$key.gw-a]}" -v b="${CPU[$key.gw-b]}" -v c="${CPU[$key.agent]}" -v d="${CPU[$key.silo]}" \
    'BEGIN { printf "%.1f", a + b + c + d }')
  rps=$(awk '/^Requests\/sec:/ {print $2}' "$f")
  P50[$key]=$(to_ms "$(awk '$1 == "50%" {print $2}' "$f")")
  P99[$key]=$(to_ms "$(awk '$1 == "99%" {print $2}' "$f")")
  non2xx=$(awk -F': *' '/Non-2xx or 3xx responses/ {print $2}' "$f")
  sockerr=$(sed -n 's/^ *Socket errors: *//p' "$f")
  err="${non2xx:+non-2xx $non2xx; }${sockerr:+socket errors: $sockerr; }"
  if [ "$port" != "$BACKEND_PORT" ]; then
    local t; t=$(tunnels)
    [ "$t" = "gw-a 0 gw-b 1" ] || err+="agent tunnels after the run: $t; "
  fi
  err="${err%; }"
  RPS[$key]=${rps:-0}
  ERR[$key]=${err:-none}
  rows+=("$key|$what|$rec")
}

start_agent() {
  OTUN_Agent__Token="$TOKEN" start_proc agent 'otun agent: ready' "$OTUN_BIN" agent --agent-id bench-agent \
    --gateway "http://127.0.0.1:$GWB_TUNNEL" --connections 1 --expose "http://127.0.0.1:$BACKEND_PORT" --service bench
}

# The agent's tunnels per gateway (GET /tunnels on the admin port): "gw-a N gw-b M".
tunnels() {
  local a b
  a=$(curl -s --max-time 5 "http://127.0.0.1:$GWA_ADMIN/tunnels" | grep -o '"agent":"bench-agent"' | wc -l)
  b=$(curl -s --max-time 5 "http://127.0.0.1:$GWB_ADMIN/tunnels" | grep -o '"agent":"bench-agent"' | wc -l)
  echo "gw-a $a gw-b $b"
}
# The cross path is only a cross path while the agent's one tunnel is on gw-b.
check_topology() {
  local t; t=$(tunnels)
  [ "$t" = "gw-a 0 gw-b 1" ] || die "the agent's tunnels are not (gw-a 0, gw-b 1) but ($t): the paths would not be what the table says"
}

# Log lines (warn/fail/crit) the running processes wrote while wrk ran: snap_logs before, new_log_lines after.
declare -A LOGPOS
snap_logs() { local n; for n in "${!PID[@]}"; do LOGPOS[$n]=$(wc -l <"${LOGF[$n]}.err" 2>/dev/null || echo 0); done; }
declare -A DURING
new_log_lines() {   # PHASE_NAME: writes $out/during-PHASE.log, sets DURING[PHASE]
  local phase=$1 n f="$out/during-$1.log" c
  : >"$f"
  for n in "${!PID[@]}"; do
    [ -f "${LOGF[$n]}.err" ] || continue
    tail -n +"$(( ${LOGPOS[$n]:-0} + 1 ))" "${LOGF[$n]}.err" | sed "s/^/[$n] /" >>"$f"
  done
  c=$(grep -cE ' (warn|fail|crit): ' "$f" || true)
  DURING[$phase]="$c warn/fail/crit line(s)"
  if [ "$c" -gt 0 ]; then DURING[$phase]+=" (see $f)"; fi
}

# peak RSS in MB (VmHWM) of a running process; "?" when gone
hwm_mb() { local k; k=$(vm "${PID[$1]:-0}" VmHWM); [ -n "$k" ] && echo $((k / 1024)) || echo "?"; }
declare -A HWM

# ================================================================ main
require_tools wrk nginx curl awk tar redis-server column
loadavg="$(cut -d' ' -f1-3 /proc/loadavg)"
log "raw output in $out"
require_free_ports "$REDIS_PORT" "$SILO_PORT_C" "$SILO_GW_PORT_C" "$SILO_ADMIN_PORT" "$BACKEND_PORT" \
  "$GWA_INGRESS" "$GWA_TUNNEL" "$GWA_ADMIN" "$GWB_INGRESS" "$GWB_TUNNEL" "$GWB_ADMIN"

build
OTUN_BIN="$(dirname "$OTUN")/.build/otun/otun"   # the published binary: its pid is the process itself
[ -x "$OTUN_BIN" ] || OTUN_BIN="$OTUN"

TOKEN="$("$OTUN_BIN" new-token)" || die "otun new-token failed"
TOKEN_SHA="$("$OTUN_BIN" hash-token "$TOKEN")" || die "otun hash-token failed"

start_nginx
start_proc redis "" redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$out"
wait_for redis redis_pong "PONG on :$REDIS_PORT"
cluster_args=(--redis "127.0.0.1:$REDIS_PORT" --cluster-id "$CLUSTER_ID")
start_proc silo 'otun silo: ready' "$OTUN_BIN" silo "${cluster_args[@]}" \
  --silo-port "$SILO_PORT_C" --gateway-port "$SILO_GW_PORT_C" --silo-admin "http://127.0.0.1:$SILO_ADMIN_PORT"

# ---- one phase per request-grain mode: agent and both gateways (re)started with the mode. The
# agent is restarted too: it learns gw-a's address from gw-b's welcome frames, and a running agent
# whose gateway goes away fails over to gw-a, which would swap the local and cross paths.
GRAINS="${GRAINS-always on-demand off}"
src_dir="$(dirname "$OTUN")"
phases=() seen=()
declare -A PHASE_OF LABEL
first=1
for mode in $GRAINS; do
  mapfile -t gargs < <(grain_args "$mode" "$src_dir")
  dup=""
  for sa in "${seen[@]}"; do IFS='|' read -r sm sg <<<"$sa"; [ "$sg" = "${gargs[*]}" ] && dup=$sm; done
  if [ -n "$dup" ]; then log "grain mode $mode runs as ${gargs[*]}: measured already as $dup"; PHASE_OF[$mode]=$dup; continue; fi
  seen+=("$mode|${gargs[*]}"); phases+=("$mode"); PHASE_OF[$mode]=$mode
  LABEL[$mode]=$(grain_label "$mode" "$src_dir")
  if [ "$first" = 0 ]; then
    log "restarting the agent and both gateways with grains ${LABEL[$mode]}"
    stop_proc agent; stop_proc gw-a; stop_proc gw-b
  fi
  PHASE="-$mode"
  start_gateways "${gargs[@]}"
  start_agent
  wait_paths
  check_topology
  snap_logs
  if [ "$first" = 1 ]; then run_wrk direct "backend direct (nginx)" "-" "$BACKEND_PORT"; first=0; fi
  # Both paths are warmed before either is measured: gw-a serves only the cross path, and measured
  # right after its own first load it was still compiling (tier-up and PGO) while gw-b was not.
  warm_wrk "local-$mode" "$GWB_INGRESS"
  warm_wrk "cross-$mode" "$GWA_INGRESS"
  run_wrk "local-$mode" "local: gw-b -> agent"         "${LABEL[$mode]}" "$GWB_INGRESS"
  run_wrk "cross-$mode" "cross: gw-a -> gw-b -> agent" "${LABEL[$mode]}" "$GWA_INGRESS"
  new_log_lines "$mode"
  HWM[gw-a.$mode]=$(hwm_mb gw-a); HWM[gw-b.$mode]=$(hwm_mb gw-b); HWM[agent.$mode]=$(hwm_mb agent); HWM[silo.$mode]=$(hwm_mb silo)
done
HWM[silo]=$(hwm_mb silo); HWM[redis]=$(hwm_mb redis)
silo_rss=$(( $(vm "${PID[silo]}" VmRSS) / 1024 ))

dead=()
for n in agent gw-a gw-b silo redis nginx; do
  { [ -n "${PID[$n]:-}" ] && kill -0 "${PID[$n]}" 2>/dev/null; } || dead+=("$n died during the run (see ${LOGF[$n]}.err)")
done
for n in agent gw-a gw-b silo redis nginx; do stop_proc "$n"; done

# ---------------------------------------------------------------- report
echo
source_rev
echo "OrleansTunnel cluster bench  $(date '+%Y-%m-%d %H:%M')  $(nproc) CPUs  load avg at start $loadavg, at end $(cut -d' ' -f1-3 /proc/loadavg)"
echo "wrk -t$THREADS -c$CONNS -d$DUR --latency -H 'Host: $HOST' GET $PATH_Q (warm-up $WARMUP of each tunnel path before both are measured)  (raw: $out)"
echo "source: $rev with $dirty modified tracked file(s); redis + 1 silo + gw-a + gw-b + 1 agent (1 connection, to gw-b only) + nginx backend"
echo
{
  echo "path|grains|rps|p50 ms|p99 ms|rps / local (same mode)|CPU us/req gw-a|gw-b|agent|silo|tunnel total|nginx backend|redis|errors"
  echo "---|---|---|---|---|---|---|---|---|---|---|---|---|---"
  for r in "${rows[@]}"; do
    IFS='|' read -r k what rec <<<"$r"
    m=${k#*-}; lk="local-$m"; [ "$k" = direct ] && lk=direct
    echo "$what|$rec|${RPS[$k]}|${P50[$k]}|${P99[$k]}|$(ratio "${RPS[$k]}" "${RPS[$lk]}")|${CPU[$k.gw-a]}|${CPU[$k.gw-b]}|${CPU[$k.agent]}|${CPU[$k.silo]}|${CPU[$k.tunnel]}|${CPU[$k.nginx]}|${CPU[$k.redis]}|${ERR[$k]}"
  done
} | column -t -s '|' -o ' | ' | sed 's/^/| /; s/$/ |/'
echo "CPU: user+sys (/proc/PID/stat) of each process over the wrk run / requests served; tunnel total = gw-a + gw-b + agent + silo."
echo
fails=0
echo "bars (issue 11): cross-gateway / local rps >= 0.8, same mode, same run:"
for m in "${phases[@]}"; do
  r=$(ratio "${RPS[cross-$m]}" "${RPS[local-$m]}")
  v=$(awk -v r="$r" 'BEGIN { print ((r != "n/a" && r + 0 >= 0.8) ? "PASS" : "FAIL") }'); [ "$v" = PASS ] || fails=1
  echo "  grains ${LABEL[$m]}: $r  ($v)"
done
cost() {   # WITH WITHOUT -> microseconds of wall time per request (1/rps_with - 1/rps_without)
  awk -v a="$1" -v b="$2" 'BEGIN { if (a > 0 && b > 0) printf "%.1f", (1 / a - 1 / b) * 1e6; else print "n/a" }'
}
off=${PHASE_OF[off]:-}; al=${PHASE_OF[always]:-}
if [ -n "$off" ] && [ -n "$al" ] && [ "$off" != "$al" ]; then
  for pth in local cross; do
    echo "request grain cost, $pth, always vs off: $(cost "${RPS[$pth-$al]}" "${RPS[$pth-$off]}") us wall/request, CPU $(awk -v a="${CPU[$pth-$al.tunnel]}" -v b="${CPU[$pth-$off.tunnel]}" 'BEGIN {printf "%.1f", a - b}') us/request (tunnel total), rps x$(ratio "${RPS[$pth-$off]}" "${RPS[$pth-$al]}") without"
  done
fi
echo
printf 'peak RSS (VmHWM, MB):'
for m in "${phases[@]}"; do printf ' [%s] gw-a %s gw-b %s agent %s silo %s;' "$m" "${HWM[gw-a.$m]}" "${HWM[gw-b.$m]}" "${HWM[agent.$m]}" "${HWM[silo.$m]}"; done
echo " silo at the end ${HWM[silo]} (VmRSS ${silo_rss}); redis ${HWM[redis]}"
printf 'log lines while wrk ran:'; for m in "${phases[@]}"; do printf ' %s: %s;' "$m" "${DURING[$m]}"; done; echo
printf 'seconds from SIGTERM to exit:'
for k in "${!STOPS[@]}"; do printf ' %s %s;' "$k" "${STOPS[$k]}"; done
echo
# Everything the processes logged (stderr, "HH:MM:SS.fff warn|fail|crit: ..."), start-up and shutdown included.
echo "log lines over the whole run (fail+crit / warn):"
for f in "$out"/silo.err "$out"/gw-*.err "$out"/agent*.err; do
  [ -f "$f" ] || continue; n=$(basename "$f" .err)
  printf '  %-11s %s / %s\n' "$n" "$(grep -cE ' (fail|crit): ' "$f" 2>/dev/null || true)" "$(grep -cE ' warn: ' "$f" 2>/dev/null || true)"
done
for w in "${dead[@]}"; do echo "WARNING $w"; done
for r in "${rows[@]}"; do
  k=${r%%|*}
  [ "${ERR[$k]}" = none ] || echo "WARNING errors in $k: ${ERR[$k]}"
done
if [ "${STRICT:-0}" = 1 ] && [ "$fails" = 1 ]; then exit 1; fi
exit 0
