#!/usr/bin/env python3
"""Summarise a dotnet-trace cpu-sampling profile (speedscope JSON from `dotnet-trace convert
--format Speedscope`) into where the CPU goes: samples of threads blocked in a wait are dropped
(idle), the rest is split by owner (the leaf-most frame that belongs to a known component) and by
inclusive component, and each share is turned into microseconds per request with the process's CPU
per request measured beside the trace (/proc).

usage: profile_summary.py TRACE.speedscope.json CPU_US_PER_REQUEST [TOP]
"""
import json, re, sys
from collections import defaultdict

# A sample whose stack has one of these frames (near the leaf) is a thread waiting, not CPU.
WAIT = re.compile(r"WaitForSocketEvents|LowLevelLifoSemaphore\.Wait|WaitHandle\.Wait|WaitOneNoCheck|"
                  r"Thread\.Sleep|SleepInternal|Monitor\.Wait|LowLevelMonitor\.Wait|WaitSubsystem|"
                  r"Interop\+Sys\.Poll|WaitNative|TimerQueue\.TimerThread|PortableThreadPool\+GateThread|"
                  r"Console.*Read|ManualResetEventSlim\.Wait|SemaphoreSlim\.Wait\(|Task\.SpinThenBlockingWait|"
                  r"Task\.InternalWaitCore|WaitForPendingFinalizers|FinalizerThread|ThreadPoolWorkQueue\.Dispatch.*Semaphore|"
                  r"LinuxNetworkChange|Interop\+Sys\.Read\(|EventPipe|FileSystemWatcher\+RunningInstance\.TryReadEvent|"
                  r"GC\.RunFinalizers")

# Pseudo frames of the thread-time stacks (roots and the CPU_TIME / UNMANAGED_CODE_TIME leaf).
ROOTS = re.compile(r"^Process\d+ |^\(Non-Activities\)$|^Threads$|^Thread \(\d+\)$|^CPU_TIME$|^UNMANAGED_CODE_TIME$|^BLOCKED_TIME$")

# Owner components, checked from the leaf up: the first frame that matches names the owner.
OWNERS = [
    ("GC: thread parked at a GC poll (suspended for a collection)", r"PollGC"),
    ("lock contention (Monitor.Enter_Slowpath, Lock.TryEnterSlow)", r"Enter_Slowpath|TryEnterSlow"),
    ("GC / allocation (runtime helpers)", r"^(?:coreclr|libclrgc|GC_|WKS::|SVR::)|Allocat|JIT_New|RhpNew|gc_heap"),
    ("protobuf (Google.Protobuf)", r"^Google\.Protobuf"),
    ("gRPC (Grpc.*)", r"^Grpc\."),
    ("Orleans runtime (messaging, scheduling, activation)", r"^Orleans\.|^Microsoft\.Orleans"),
    ("OrleansTunnel request grain / tracker", r"RequestGrain|RequestTracker|RequestRecord"),
    ("OrleansTunnel multiplexer (protos/Mux*)", r"OrleansTunnel\..*Mux|OrleansTunnel\..*Frame"),
    ("OrleansTunnel agent forwarder", r"OrleansTunnel\.Agent"),
    ("OrleansTunnel gateway ingress", r"OrleansTunnel\.Gateway"),
    ("OrleansTunnel other", r"^OrleansTunnel\."),
    ("Kestrel (server, HTTP/1.1, HTTP/2)", r"Microsoft\.AspNetCore\.Server\.Kestrel"),
    ("ASP.NET Core (routing, hosting, middleware)", r"^Microsoft\.AspNetCore\."),
    ("HttpClient / SocketsHttpHandler", r"^System\.Net\.Http\."),
    ("sockets (System.Net.Sockets)", r"^System\.Net\.Sockets\.|Interop\+Sys\.(Send|Receive|Write|Read|Accept|Connect|Epoll|TryChangeSocketEventRegistration)"),
    ("TLS (SslStream)", r"System\.Net\.Security|Ssl|Interop\+Crypto|Interop\+OpenSsl"),
    ("metrics / diagnostics", r"System\.Diagnostics\.Metrics|System\.Diagnostics\.Activity|DiagnosticSource|Meter|Histogram|Counter`"),
    ("logging", r"Microsoft\.Extensions\.Logging"),
    ("pipelines / channels / streams", r"System\.IO\.Pipelines|System\.Threading\.Channels|System\.IO\.Stream"),
    ("thread pool, tasks, async machinery", r"System\.Threading\.|System\.Runtime\.CompilerServices\.|AsyncTaskMethodBuilder|ExecutionContext"),
    ("collections, strings, other BCL", r"^System\."),
    ("native / unmanaged (syscalls, runtime)", r"UNMANAGED_CODE_TIME|^\?|native"),
]
OWNERS = [(n, re.compile(p)) for n, p in OWNERS]

# Inclusive components (overlapping): share of CPU samples whose stack contains the frame.
INCL = [
    ("request grain calls + grain work (RequestGrain/RequestTracker)", r"RequestGrain|RequestTracker"),
    ("Orleans (any frame)", r"^Orleans\."),
    ("gateway ingress forwarder (IngressForwarder)", r"IngressForwarder"),
    ("agent BackendForwarder", r"BackendForwarder"),
    ("multiplexer connection/stream (Mux*)", r"OrleansTunnel\..*Mux"),
    ("Kestrel HTTP/1.1 connection (visitor side)", r"Kestrel\.Core\.Internal\.Http\.Http1"),
    ("Kestrel HTTP/2 (tunnel listener side)", r"Kestrel\.Core\.Internal\.Http2"),
    ("SocketsHttpHandler HTTP/1.1 (agent -> backend)", r"System\.Net\.Http\.HttpConnection\.|Http1"),
    ("SocketsHttpHandler HTTP/2 (agent -> gateway tunnel)", r"System\.Net\.Http\.Http2"),
    ("gRPC (any frame)", r"^Grpc\."),
    ("protobuf (any frame)", r"^Google\.Protobuf"),
    ("metrics (System.Diagnostics.Metrics)", r"System\.Diagnostics\.Metrics"),
    ("logging (Microsoft.Extensions.Logging)", r"Microsoft\.Extensions\.Logging"),
    ("socket send/receive syscalls", r"Interop\+Sys\.(Send|Receive|Write|Read)|SocketAsyncContext\.(Send|Receive)|SocketPal\.(Send|Receive)"),
    ("epoll event loop dispatch", r"SocketAsyncEngine"),
    ("thread pool dispatch (WorkerThreadStart/Dispatch)", r"ThreadPoolWorkQueue\.Dispatch"),
    ("GC / allocation helpers", r"Allocat|JIT_New|gc_heap|GarbageCollect"),
]
INCL = [(n, re.compile(p)) for n, p in INCL]


def main():
    path, us_req = sys.argv[1], float(sys.argv[2])
    top = int(sys.argv[3]) if len(sys.argv) > 3 else 25
    d = json.load(open(path))
    # dotnet-trace names frames "Module!Namespace.Type.Method(args)": match on the part after "!"
    frames = [f["name"].split("!", 1)[-1] for f in d["shared"]["frames"]]
    lock_w = defaultdict(float)
    owner_w = defaultdict(float); incl_w = defaultdict(float); self_w = defaultdict(float)
    cpu = idle = 0.0
    owner_of = {}
    for prof in d["profiles"]:
        if prof.get("type") != "evented":
            continue
        stack, last = [], None
        for ev in prof["events"]:
            at = ev["at"]
            if last is not None and stack and at > last:
                w = at - last
                leafs = [frames[i] for i in stack[-6:]]
                pseudo = frames[stack[-1]]
                # "?" right under SocketAsyncEngine.EventLoop is epoll_wait: the socket engine idling
                epoll = len(stack) > 2 and frames[stack[-2]] == "?" and "SocketAsyncEngine.EventLoop" in frames[stack[-3]]
                if epoll or any(WAIT.search(n) for n in leafs) or pseudo in ("BLOCKED_TIME", "IDLE_TIME"):
                    idle += w
                else:
                    cpu += w
                    # drop the pseudo frames: process/thread roots and the CPU_TIME /
                    # UNMANAGED_CODE_TIME leaf (kept as a native marker for the owner split)
                    names = [frames[i] for i in stack if not ROOTS.search(frames[i])]
                    if pseudo == "UNMANAGED_CODE_TIME":
                        names.append("UNMANAGED_CODE_TIME")
                    if not names:
                        names = ["(no managed frames)"]
                    leaf = names[-1] if names[-1] != "UNMANAGED_CODE_TIME" or len(names) == 1 else names[-2] + " [native]"
                    self_w[leaf] += w
                    key = tuple(stack)
                    o = owner_of.get(key)
                    if o is None:
                        o = "unattributed"
                        for n in reversed(names[:-1] if names[-1] == "UNMANAGED_CODE_TIME" and len(names) > 1 else names):
                            m = next((on for on, rx in OWNERS if rx.search(n)), None)
                            if m:
                                o = m; break
                        owner_of[key] = o
                    owner_w[o] += w
                    if o.startswith("lock contention"):
                        caller = next((n for n in reversed(names) if not re.search(
                            r"Enter_Slowpath|TryEnterSlow|Monitor\.|Lock\.Enter|UNMANAGED_CODE_TIME|^\?$", n)), "?")
                        lock_w[caller[:110]] += w
                    for cn, rx in INCL:
                        if any(rx.search(n) for n in names):
                            incl_w[cn] += w
            last = at
            if ev["type"] == "O":
                stack.append(ev["frame"])
            elif ev["type"] == "C":
                # close the matching frame (speedscope events are properly nested)
                if stack and stack[-1] == ev["frame"]:
                    stack.pop()
                elif ev["frame"] in stack:
                    del stack[len(stack) - 1 - stack[::-1].index(ev["frame"]):]
    if cpu <= 0:
        print("no CPU samples"); return
    print(f"CPU samples {cpu:.0f} ms, waiting threads {idle:.0f} ms (dropped); "
          f"{us_req:.1f} us CPU/request measured beside the trace (/proc)\n")
    print("| owner (leaf-most known frame) | share | us/request |")
    print("|---|---|---|")
    for n, w in sorted(owner_w.items(), key=lambda kv: -kv[1]):
        print(f"| {n} | {100 * w / cpu:.1f} % | {us_req * w / cpu:.1f} |")
    print("\n| inclusive (stack contains) | share | us/request |")
    print("|---|---|---|")
    for n, w in sorted(incl_w.items(), key=lambda kv: -kv[1]):
        print(f"| {n} | {100 * w / cpu:.1f} % | {us_req * w / cpu:.1f} |")
    print("\n| lock contention: the frame that took the lock | share of all CPU samples |")
    print("|---|---|")
    for n, w in sorted(lock_w.items(), key=lambda kv: -kv[1])[:10]:
        print(f"| `{n.replace('|', '/')}` | {100 * w / cpu:.1f} % |")
    print(f"\ntop {top} frames by self time:\n")
    print("| frame | self share |")
    print("|---|---|")
    for n, w in sorted(self_w.items(), key=lambda kv: -kv[1])[:top]:
        print(f"| `{n[:140].replace('|', '/')}` | {100 * w / cpu:.1f} % |")


if __name__ == "__main__":
    main()
