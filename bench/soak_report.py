#!/usr/bin/env python3
"""Summary and plot of bench/soak.sh's samples.csv.

usage: soak_report.py samples.csv ERRORS DURATION OUTDIR
Prints a markdown table (per process: RSS, threads, fds, GC heap in the second and the last quarter;
the cluster's activations) and the verdict; draws OUTDIR/soak.png with matplotlib when it is installed
(apt-get install python3-matplotlib), otherwise says so.
Pass: ERRORS == 0, and for every process the last quarter's mean RSS and the mean activations are at
most 10 % above the second quarter's.
"""
import csv
import sys
from collections import defaultdict


def mean(values):
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def num(text):
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def main():
    path, errors, duration, outdir = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    rows = list(csv.DictReader(open(path)))
    if not rows:
        print("no samples")
        return 1
    end = max(int(r["t_s"]) for r in rows)
    q = end / 4

    def quarter(t):
        return min(3, int(t / q)) if q > 0 else 0

    by_process = defaultdict(list)
    activations = {}
    for r in rows:
        by_process[r["process"]].append(r)
        if num(r["activations"]) is not None:
            activations[int(r["t_s"])] = num(r["activations"])

    ok = errors == 0
    lines = [f"Soak {duration} ({end} s sampled, {len(rows)} samples), failed requests the mix did not ask for: {errors}", "",
             "| process | RSS MiB Q2 | RSS MiB Q4 | Q4/Q2 | threads Q2 → Q4 | fds Q2 → Q4 | GC heap MiB Q2 → Q4 |",
             "|---|---|---|---|---|---|---|"]

    def q_mean(samples, key, qi, scale=1.0):
        m = mean([num(s[key]) for s in samples if quarter(int(s["t_s"])) == qi])
        return m / scale if m is not None else None

    def fmt(v, digits=1):
        return "–" if v is None else f"{v:.{digits}f}"

    for name in sorted(by_process):
        s = by_process[name]
        r2, r4 = q_mean(s, "rss_kb", 1, 1024), q_mean(s, "rss_kb", 3, 1024)
        ratio = r4 / r2 if r2 and r4 else None
        if ratio is not None and ratio > 1.10:
            ok = False
        lines.append(f"| {name} | {fmt(r2)} | {fmt(r4)} | {fmt(ratio, 3)} | {fmt(q_mean(s, 'threads', 1), 0)} → {fmt(q_mean(s, 'threads', 3), 0)} "
                     f"| {fmt(q_mean(s, 'fds', 1), 0)} → {fmt(q_mean(s, 'fds', 3), 0)} "
                     f"| {fmt(q_mean(s, 'gc_heap_bytes', 1, 1 << 20))} → {fmt(q_mean(s, 'gc_heap_bytes', 3, 1 << 20))} |")
    a2 = mean([v for t, v in activations.items() if quarter(t) == 1])
    a4 = mean([v for t, v in activations.items() if quarter(t) == 3])
    if a2 and a4 and a4 / a2 > 1.10:
        ok = False
    lines.append("")
    lines.append(f"Grain activations (cluster): Q2 mean {fmt(a2)}, Q4 mean {fmt(a4)}"
                 + (f", Q4/Q2 {a4 / a2:.3f}" if a2 and a4 else " (not sampled)"))
    lines.append("")
    lines.append(f"Verdict: {'PASS' if ok else 'FAIL'} (no unasked failures; Q4 RSS and activations <= Q2 + 10 %)")
    print("\n".join(lines))

    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("\n(no plot: python3-matplotlib is not installed)")
        return 0 if ok else 1
    fig, axes = plt.subplots(3, 1, figsize=(10, 10), sharex=True)
    for name in sorted(by_process):
        s = by_process[name]
        t = [int(x["t_s"]) / 60 for x in s]
        axes[0].plot(t, [(num(x["rss_kb"]) or 0) / 1024 for x in s], label=name)
        axes[1].plot(t, [num(x["threads"]) or 0 for x in s], label=name)
    ts = sorted(activations)
    axes[2].plot([t / 60 for t in ts], [activations[t] for t in ts], label="grain activations", color="black")
    for name in sorted(by_process):
        s = [x for x in by_process[name] if num(x["in_flight"]) is not None]
        if s:
            axes[2].plot([int(x["t_s"]) / 60 for x in s], [num(x["in_flight"]) for x in s], label=f"{name} in flight", linestyle="--")
    axes[0].set_ylabel("RSS (MiB)")
    axes[1].set_ylabel("threads")
    axes[2].set_ylabel("count")
    axes[2].set_xlabel("minutes")
    for ax in axes:
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7, ncol=4)
        for k in range(1, 4):
            ax.axvline(k * q / 60, color="grey", linewidth=0.5)
    fig.suptitle(f"OrleansTunnel soak ({duration}) through otun cluster --lb")
    fig.tight_layout()
    fig.savefig(f"{outdir}/soak.png", dpi=90)
    print(f"\nplot: {outdir}/soak.png")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
