# Shared helpers of bench/run.sh, bench/protocols.sh and bench/hol.sh (sourced, not run).
# Expects: $here (bench dir), $repo, $out (raw output dir). Sets OTUN, LOADGEN, dev_pid, dev_out, dev_err.

OTUN_COPY="${OTUN_COPY:-1}"
COPY_DIR="${COPY_DIR:-/tmp/bench-src}"
READY_TIMEOUT="${READY_TIMEOUT:-90}"

# Unusual ports (same as run.sh) so a developer's own `otun dev` does not clash.
INGRESS_PORT=18090 H2C_PORT=18091 HTTPS_PORT=18443 TUNNEL_PORT=17070 ADMIN_PORT=19090
SILO_PORT=21111 SILO_GW_PORT=31000 GRPC_BACKEND_PORT=18300

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
require_free_ports() {
  local p busy=()
  for p in "$@"; do port_busy "$p" && busy+=("$p"); done
  [ ${#busy[@]} -eq 0 ] || die "port(s) ${busy[*]} on 127.0.0.1 already in use (a leftover otun dev or loadgen grpc-backend?)"
}
require_tools() {
  local t missing=()
  for t in "$@"; do command -v "$t" >/dev/null || missing+=("$t"); done
  [ ${#missing[@]} -eq 0 ] || die "missing tool(s): ${missing[*]} (apt-get install -y nginx-light wrk curl jq nghttp2-client)"
}

# Copy the working tree (as run.sh does), publish otun there; with WITH_LOADGEN=1 also build
# bench/loadgen (Release) into $COPY_DIR/.build/loadgen.
build() {
  local src
  if [ "$OTUN_COPY" = 1 ]; then
    log "copying the working tree to $COPY_DIR (without .git, bin, obj, .build)"
    mkdir -p "$COPY_DIR"
    find "$COPY_DIR" -mindepth 1 -maxdepth 1 ! -name .build -exec rm -rf {} +
    tar -C "$repo" -cf - --exclude=./.git --exclude=bin --exclude=obj --exclude=./.build --exclude=./bench/out . \
      | tar -C "$COPY_DIR" -xf -
    src="$COPY_DIR"
  else
    src="$repo"
  fi
  OTUN="$src/otun"
  log "building Release via $OTUN --help"
  "$OTUN" --help >/dev/null || die "build failed (see $src/.build/build.log)"
  if [ "${WITH_LOADGEN:-0}" = 1 ]; then
    log "building bench/loadgen (Release) into $src/.build/loadgen"
    dotnet build "$src/bench/loadgen/loadgen.csproj" -c Release -o "$src/.build/loadgen" --nologo \
      >"$out/loadgen-build.log" 2>&1 || { tail -30 "$out/loadgen-build.log" >&2; die "loadgen build failed"; }
    LOADGEN="$src/.build/loadgen/loadgen"
  fi
}

# start_dev NAME [extra otun dev args]: background `otun dev` on the unusual ports; waits for ready.
# OTUN_SET="Key=Value Key2=Value2" adds --set flags to every dev process (e.g. an A/B of
# Inspector:CaptureHeaders=false).
dev_pid=""
# Sets rev (short commit, "?" outside a git checkout, e.g. a source copy) and dirty (modified tracked
# files; 0 there) for a report's "source:" line, without failing under set -e/pipefail.
source_rev() {
  # A source copy without .git (OTUN_COPY=0 COPY_DIR=...) may carry its revision in .rev.
  rev="$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || cat "$repo/.rev" 2>/dev/null || echo '?')"
  dirty="$(git -C "$repo" status --porcelain --untracked-files=no 2>/dev/null | wc -l || true)"
}
start_dev() {
  local name=$1; shift
  local kv
  for kv in ${OTUN_SET:-}; do set -- "$@" --set "$kv"; done
  require_free_ports "$INGRESS_PORT" "$TUNNEL_PORT" "$ADMIN_PORT" "$SILO_PORT" "$SILO_GW_PORT"
  dev_out="$out/dev-$name.out"; dev_err="$out/dev-$name.err"
  "$OTUN" dev "$@" \
    --ingress "http://127.0.0.1:$INGRESS_PORT" --tunnel "http://127.0.0.1:$TUNNEL_PORT" \
    --admin "http://127.0.0.1:$ADMIN_PORT" \
    --set "Cluster:SiloPort=$SILO_PORT" --set "Cluster:GatewayPort=$SILO_GW_PORT" \
    >"$dev_out" 2>"$dev_err" &
  dev_pid=$!
  local deadline=$((SECONDS + READY_TIMEOUT))
  until grep -q 'otun dev: ready' "$dev_out" 2>/dev/null; do
    if ! kill -0 "$dev_pid" 2>/dev/null; then
      tail -20 "$dev_err" >&2; dev_pid=""; die "otun dev ($name) exited before ready"
    fi
    [ "$SECONDS" -lt "$deadline" ] || { tail -20 "$dev_err" >&2; die "otun dev ($name) not ready after ${READY_TIMEOUT}s (logs: $dev_err)"; }
    sleep 0.2
  done
  log "otun dev ($name) ready, pid $dev_pid"
}
stop_dev() {
  local pid=$dev_pid i
  dev_pid=""
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  if kill -0 "$pid" 2>/dev/null; then log "otun dev pid $pid ignored SIGTERM for 10s; SIGKILL"; kill -KILL "$pid" 2>/dev/null || true; fi
  wait "$pid" 2>/dev/null || true
}
dev_alive() { [ -n "$dev_pid" ] && kill -0 "$dev_pid" 2>/dev/null; }

vm() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status" 2>/dev/null || true; }   # kB

# wrk latency ("812.00us", "1.23ms", "2.10s") to milliseconds.
to_ms() {
  awk -v v="$1" 'BEGIN { n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
    m = (u == "us") ? 0.001 : (u == "ms") ? 1 : (u == "s") ? 1000 : (u == "m") ? 60000 : 1
    printf "%.3f", n * m }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.3f", a / b; else print "n/a" }'; }
# kv LINE KEY: the value of key=value in a loadgen result line.
kv() { sed -n "s/.*[[:space:]]$2=\([^[:space:]]*\).*/\1/p" <<<" $1" | head -1; }

# ---------------------------------------------------------------- grain mode
# GRAINS=always|on-demand|off picks the gateway's request-grain mode. A build that knows
# Gateway:RequestGrains gets --set Gateway:RequestGrains=MODE; an older build (b5b535c: only
# Gateway:RecordRequests) gets RecordRequests=true for `always` and false for `on-demand`/`off`
# (it has no on-demand mode: the label then says so). Empty GRAINS: the build's default, no flag.
# grain_args MODE [SRC]: prints the --set arguments, one per line (use with mapfile).
grain_key() {   # the configuration key the built source knows: RequestGrains or RecordRequests
  local src=${1:-${COPY_DIR:-$repo}}
  if grep -rqs 'RequestGrains' "$src/gateway/GatewayOptions.cs"; then echo RequestGrains; else echo RecordRequests; fi
}
grain_args() {
  local mode=$1 src=${2:-} key
  [ -n "$mode" ] || return 0
  key=$(grain_key "$src")
  case "$mode" in always|on-demand|off) ;; *) die "GRAINS must be always, on-demand or off (got '$mode')";; esac
  if [ "$key" = RequestGrains ]; then
    printf '%s\n' --set "Gateway:RequestGrains=$mode"
  else
    case "$mode" in always) printf '%s\n' --set Gateway:RecordRequests=true;;
                    *)      printf '%s\n' --set Gateway:RecordRequests=false;; esac
  fi
}
grain_label() {   # MODE -> what the build really runs, e.g. "on-demand (RecordRequests=false)"
  local mode=$1 key
  [ -n "$mode" ] || { echo "default"; return; }
  key=$(grain_key "${2:-}")
  if [ "$key" = RequestGrains ]; then echo "$mode"
  else case "$mode" in always) echo "always (RecordRequests=true)";; *) echo "$mode (RecordRequests=false)";; esac; fi
}

# ---------------------------------------------------------------- CPU per request
# CPU time (user+sys, from /proc/PID/stat) of processes and all their descendants, in clock ticks.
CLK_TCK=$(getconf CLK_TCK 2>/dev/null || echo 100)
proc_tree() {   # PID... -> those pids and every descendant, one per line
  local all
  all=$(ps -e -o pid=,ppid= 2>/dev/null)
  awk -v roots="$*" 'BEGIN { n = split(roots, r, " "); for (i = 1; i <= n; i++) if (r[i] != "") keep[r[i]] = 1 }
    { par[$1] = $2; ids[NR] = $1 }
    END { do { changed = 0; for (i in ids) { p = ids[i]; if (!(p in keep) && (par[p] in keep)) { keep[p] = 1; changed = 1 } } } while (changed)
          for (p in keep) print p }' <<<"$all"
}
# cpu_ticks PID...: utime+stime+cutime+cstime summed over the processes and their descendants
# (cutime/cstime: reaped children, e.g. an nginx worker that exited). Missing pids count 0.
cpu_ticks() {
  local p t=0 v
  [ $# -gt 0 ] || { echo 0; return; }
  for p in $(proc_tree "$@"); do
    v=$(sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null | awk '{print $12 + $13 + $14 + $15}') || v=0
    t=$((t + ${v:-0}))
  done
  echo "$t"
}
# us_per_req TICKS REQUESTS -> microseconds of CPU per request ("-" when not measurable)
us_per_req() {
  awk -v t="$1" -v n="$2" -v hz="$CLK_TCK" 'BEGIN { if (n > 0 && t != "") printf "%.1f", t / hz * 1e6 / n; else print "-" }'
}
# Process groups on the measured path, set by the caller before a run:
#   CPU_PATH_PIDS  the proxies/tunnel processes (the path);  CPU_BACKEND_PIDS  the backend.
# CPU_PATH_MINUS_BACKEND=1: the backend lives in the path's process (nginx-chain.sh's single nginx
# worker serves 18080, 18081 and 18082): the path's figure is its total minus the backend's
# µs/request measured on the direct row (BACKEND_US_DIRECT), marked with "~".
CPU_PATH_PIDS="" CPU_BACKEND_PIDS="" CPU_PATH_MINUS_BACKEND=0 BACKEND_US_DIRECT=""
cpu_begin() { CPU_T0_PATH=$(cpu_ticks $CPU_PATH_PIDS); CPU_T0_BACK=$(cpu_ticks $CPU_BACKEND_PIDS); CPU_W0=$(date +%s.%N); }
cpu_end() {   # REQUESTS -> sets CPU_PATH_US, CPU_BACK_US, CPU_WALL (seconds), CPU_PATH_CORES
  local n=$1 tp tb
  tp=$(( $(cpu_ticks $CPU_PATH_PIDS) - CPU_T0_PATH )); tb=$(( $(cpu_ticks $CPU_BACKEND_PIDS) - CPU_T0_BACK ))
  CPU_WALL=$(awk -v a="$CPU_W0" -v b="$(date +%s.%N)" 'BEGIN {printf "%.2f", b - a}')
  CPU_PATH_CORES=$(awk -v t="$tp" -v w="$CPU_WALL" -v hz="$CLK_TCK" -v p="$CPU_PATH_PIDS" 'BEGIN { if (w > 0 && p != "") printf "%.2f", t / hz / w; else print "-" }')
  CPU_BACK_US=$( [ -n "$CPU_BACKEND_PIDS" ] && us_per_req "$tb" "$n" || echo "-")
  if [ -z "$CPU_PATH_PIDS" ]; then CPU_PATH_US="-"
  elif [ "$CPU_PATH_MINUS_BACKEND" = 1 ]; then
    CPU_PATH_US=$(awk -v t="$tp" -v n="$n" -v hz="$CLK_TCK" -v b="${BACKEND_US_DIRECT:-0}" \
      'BEGIN { if (n > 0) printf "~%.1f", t / hz * 1e6 / n - b; else print "-" }')
    CPU_BACK_US="~${BACKEND_US_DIRECT:-?}"
  else CPU_PATH_US=$(us_per_req "$tp" "$n"); fi
}

# ---------------------------------------------------------------- allocations per request
# dotnet-counters (a global dotnet tool, 10.0.750501 here) collects System.Runtime from one .NET
# process while a run lasts; alloc_end sums the allocated bytes and gen0 collections it saw.
# ALLOC=0 turns it off (no EventPipe session beside the measurement).
ALLOC="${ALLOC:-1}"
DOTNET_TOOLS="${DOTNET_TOOLS:-$HOME/.dotnet/tools}"
COUNTERS_VERSION="${COUNTERS_VERSION:-10.0.750501}"
ensure_dotnet_tool() {   # NAME: install the global tool when missing; prints its path
  local t=$1
  if [ ! -x "$DOTNET_TOOLS/$t" ]; then
    log "installing $t $COUNTERS_VERSION (dotnet tool install -g)"
    dotnet tool install -g "$t" --version "$COUNTERS_VERSION" >&2 || dotnet tool install -g "$t" >&2 || return 1
  fi
  echo "$DOTNET_TOOLS/$t"
}
ALLOC_PID="" ALLOC_CSV=""
# alloc_begin PID NAME SECONDS: collect System.Runtime (1 s refresh) for SECONDS from now; returns
# once the session is up. dotnet-counters writes its CSV when it stops (--duration; a signal can
# lose the file), so the window is fixed up front: make it the measured run plus a second.
alloc_begin() {
  ALLOC_PID="" ALLOC_CSV=""
  [ "$ALLOC" = 1 ] && [ -n "${1:-}" ] || return 0
  local dc secs=${3:-12}; dc=$(ensure_dotnet_tool dotnet-counters) || { log "dotnet-counters unavailable: no allocation figures"; ALLOC=0; return 0; }
  ALLOC_CSV="$out/counters-$2.csv"; rm -f "$ALLOC_CSV"
  "$dc" collect -p "$1" --refresh-interval 1 --format csv -o "$ALLOC_CSV" \
    --duration "$(printf '00:00:%02d:%02d' $((secs / 60)) $((secs % 60)))" \
    --counters System.Runtime \
    </dev/null >"$out/counters-$2.log" 2>&1 &
  ALLOC_PID=$!
  local i; for i in $(seq 1 100); do grep -q 'Starting a counter session' "$out/counters-$2.log" 2>/dev/null && break; sleep 0.1; done
}
alloc_end() {   # REQUESTS -> sets ALLOC_B (bytes/request), ALLOC_GC0 and ALLOC_GC12 (GCs in the window)
  ALLOC_B="-" ALLOC_GC0="-" ALLOC_GC12="-"
  [ -n "$ALLOC_PID" ] || return 0
  local i; for i in $(seq 1 150); do kill -0 "$ALLOC_PID" 2>/dev/null || break; sleep 0.1; done
  kill -TERM "$ALLOC_PID" 2>/dev/null || true; wait "$ALLOC_PID" 2>/dev/null || true; ALLOC_PID=""
  [ -s "$ALLOC_CSV" ] || return 0
  read -r ALLOC_B ALLOC_GC0 ALLOC_GC12 < <(alloc_sum "$ALLOC_CSV" "$1")
}
# alloc_sum CSV REQUESTS -> "bytes/request gen0-collections". The CSV rows are per-interval rates
# ("Rate / 1 sec") of the cumulative counters: their sum is the total over the window.
alloc_sum() {
  awk -F, -v n="$2" '
    /total_allocated/ { b += $NF }
    /gc.collections/ && /generation=gen0/ { g0 += $NF }
    /gc.collections/ && /generation=gen[12]/ { g12 += $NF }
    END { if (n > 0) printf "%.0f %d %d\n", b / n, g0, g12; else print "- - -" }' "$1"
}

# Background load tools and collectors a script must not leave behind (called from its cleanup).
LOAD_PID=""
bg_cleanup() {
  local p
  for p in ${ALLOC_PID:-} ${LOAD_PID:-}; do kill "$p" 2>/dev/null || true; done
}
