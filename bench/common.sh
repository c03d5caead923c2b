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
dev_pid=""
start_dev() {
  local name=$1; shift
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
