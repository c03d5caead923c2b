#!/usr/bin/env bash
# TCP and UDP services (issue 15): iperf3 through the tunnel against iperf3 direct and a two-hop socat
# relay (same run), 1 and 8 parallel streams; iperf3 -u at fixed rates through the tunnel (loss, jitter);
# small-message ping-pong latency (p50/p99) through the tunnel and the relay. Prints a table; also
# the otun dev process's CPU seconds per GiB relayed (from /proc/PID/stat).
# Run: flock /tmp/otun-bench.lock bash bench/tcp.sh      (DUR=5 seconds per row, RATES="10M 50M 100M")
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DUR="${DUR:-5}"
RATES="${RATES:-10M 50M 100M}"
BASE="${BASE:-24000}"
IPERF=$BASE; RELAY1=$((BASE+1)); RELAY2=$((BASE+2)); TUN=$((BASE+3)); PP_ECHO=$((BASE+4)); PP_TUN=$((BASE+5)); PP_RELAY1=$((BASE+6)); PP_RELAY2=$((BASE+7))
out="$root/bench/out/tcp-$(date +%Y%m%d-%H%M%S)"; mkdir -p "$out"
for tool in iperf3 socat python3; do command -v $tool >/dev/null || { echo "bench/tcp.sh: $tool is missing (apt-get install -y iperf3 socat)"; exit 1; }; done
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

iperf3 -s -p $IPERF >"$out/iperf3-server.log" 2>&1 & pids+=($!)
socat TCP-LISTEN:$RELAY2,fork,reuseaddr,nodelay TCP:127.0.0.1:$IPERF,nodelay & pids+=($!)
socat TCP-LISTEN:$RELAY1,fork,reuseaddr,nodelay TCP:127.0.0.1:$RELAY2,nodelay & pids+=($!)
# ping-pong echo backend and its relay chain
socat TCP-LISTEN:$PP_ECHO,fork,reuseaddr,nodelay EXEC:cat & pids+=($!)
socat TCP-LISTEN:$PP_RELAY2,fork,reuseaddr,nodelay TCP:127.0.0.1:$PP_ECHO,nodelay & pids+=($!)
socat TCP-LISTEN:$PP_RELAY1,fork,reuseaddr,nodelay TCP:127.0.0.1:$PP_RELAY2,nodelay & pids+=($!)

"$root/otun" --help >/dev/null   # build once
"$root/otun" dev --expose tcp://127.0.0.1:$IPERF --service iperf --tcp-port $TUN \
  --expose udp://127.0.0.1:$IPERF --service iperf-udp --udp-port $TUN \
  --expose tcp://127.0.0.1:$PP_ECHO --service echo --tcp-port $PP_TUN \
  --ingress http://127.0.0.1:$((BASE+10)) --tunnel http://127.0.0.1:$((BASE+11)) --admin http://127.0.0.1:$((BASE+12)) \
  --https-ingress "" --set Cluster:Dashboard= --set Cluster:SiloPort=$((BASE+13)) --set Cluster:GatewayPort=$((BASE+14)) \
  --set Logging:LogLevel:Default=Warning --data "$out/dev" >"$out/dev.log" 2>&1 & dev=$!; pids+=($dev)
for _ in $(seq 1 120); do grep -q "otun dev: ready" "$out/dev.log" && break; kill -0 $dev 2>/dev/null || { tail -20 "$out/dev.log"; exit 1; }; sleep 1; done
grep -q "otun dev: ready" "$out/dev.log" || { echo "otun dev did not get ready"; tail -20 "$out/dev.log"; exit 1; }
devpid=$(pgrep -P $dev -f "otun dev" | head -1 || true); devpid=${devpid:-$dev}
cpu() { awk '{print $14+$15}' /proc/$devpid/stat; }
tck=$(getconf CLK_TCK)

tcp_row() { # name port streams
  local c0 c1; c0=$(cpu)
  iperf3 -c 127.0.0.1 -p "$2" -P "$3" -t "$DUR" -J >"$out/$1-$3.json" 2>&1 || true
  c1=$(cpu)
  python3 - "$out/$1-$3.json" "$1" "$3" "$((c1-c0))" "$tck" <<'PY'
import json,sys
f,name,streams,ticks,tck=sys.argv[1],sys.argv[2],sys.argv[3],int(sys.argv[4]),int(sys.argv[5])
try:
    d=json.load(open(f)); e=d["end"]["sum_received"]; bps=e["bits_per_second"]; by=e["bytes"]
except Exception as ex:
    print(f"| {name} | {streams} | failed ({ex}) | | |"); sys.exit()
cpu = f"{ticks/tck/(by/2**30):.2f}" if name=="tunnel" and by>0 else "-"
print(f"| {name} | {streams} | {bps/1e9:.2f} Gbit/s | {by/2**20:.0f} MiB | {cpu} |")
PY
}
echo "## TCP throughput (iperf3, ${DUR} s per row)"
echo "| path | streams | throughput | transferred | otun CPU s per GiB |"
echo "|---|---|---|---|---|"
for streams in 1 8; do
  tcp_row direct $IPERF $streams
  tcp_row socat-2hop $RELAY1 $streams
  tcp_row tunnel $TUN $streams
done

echo
echo "## UDP through the tunnel (iperf3 -u, ${DUR} s, 1400 B datagrams)"
echo "| rate | received | loss | jitter |"
echo "|---|---|---|---|"
for rate in $RATES; do
  iperf3 -c 127.0.0.1 -p $TUN -u -b "$rate" -l 1400 -t "$DUR" -J >"$out/udp-$rate.json" 2>&1 || true
  python3 - "$out/udp-$rate.json" "$rate" <<'PY'
import json,sys
try:
    d=json.load(open(sys.argv[1])); s=d["end"]["sum"]
    print(f"| {sys.argv[2]} | {s['bits_per_second']/1e6:.1f} Mbit/s | {s['lost_percent']:.3f} % | {s['jitter_ms']:.3f} ms |")
except Exception as ex:
    print(f"| {sys.argv[2]} | failed ({ex}) | | |")
PY
done

echo
echo "## Ping-pong latency (64 B messages, 2000 round trips, one connection)"
echo "| path | p50 | p99 |"
echo "|---|---|---|"
for row in "socat-2hop:$PP_RELAY1" "tunnel:$PP_TUN"; do
  python3 - "${row%%:*}" "${row##*:}" <<'PY'
import socket,sys,time
name,port=sys.argv[1],int(sys.argv[2])
s=socket.create_connection(("127.0.0.1",port)); s.setsockopt(socket.IPPROTO_TCP,socket.TCP_NODELAY,1)
msg=b"x"*64; lat=[]
for i in range(2100):
    t=time.perf_counter(); s.sendall(msg); got=0
    while got<64: got+=len(s.recv(64-got))
    if i>=100: lat.append(time.perf_counter()-t)
lat.sort(); print(f"| {name} | {lat[len(lat)//2]*1e6:.0f} µs | {lat[int(len(lat)*0.99)]*1e6:.0f} µs |")
PY
done
echo
echo "raw output: $out"
