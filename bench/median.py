#!/usr/bin/env python3
"""Medians over several outputs of one bench script (run.sh, protocols.sh, cluster.sh, hol.sh):
every markdown table row is keyed by its first cells (the non-numeric ones), every numeric cell
gets the median over the files (a leading "~" or "mean " kept out; units ms/us/s converted to ms
for the latency columns of wrk). Non-numeric cells come from the first file.

usage: python3 bench/median.py OUT1 OUT2 OUT3 [...]
"""
import re, statistics, sys
from collections import OrderedDict

NUM = re.compile(r"^(~|mean )?([0-9]+(?:\.[0-9]+)?)(us|ms|s)?(?: \(.*\))?$")


def to_num(cell):
    m = NUM.match(cell.strip())
    if not m:
        return None
    v = float(m.group(2)); u = m.group(3)
    if u == "us": v /= 1000
    elif u == "s": v *= 1000
    return v, (m.group(1) or ""), u


def tables(path):
    header, rows = None, []
    for line in open(path, errors="replace"):
        if not line.startswith("| "):
            if header and rows:
                yield header, rows
            header, rows = None, []
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if header is None:
            header = cells
        elif all(c.strip("-") == "" for c in cells):
            continue
        else:
            rows.append(cells)
    if header and rows:
        yield header, rows


def main():
    files = sys.argv[1:]
    merged = OrderedDict()   # (table header, row key) -> list of rows
    for f in files:
        seen = {}
        for header, rows in tables(f):
            for r in rows:
                key_cells = tuple(c for c in r[:3] if to_num(c) is None)
                k = (tuple(header), key_cells)
                seen[k] = seen.get(k, 0) + 1
                merged.setdefault((tuple(header), key_cells, seen[k]), []).append(r)
    last = None
    for (header, key, _), rs in merged.items():
        if header != last:
            print(); print("| " + " | ".join(header) + " | n |"); print("|" + "---|" * (len(header) + 1)); last = header
        out = []
        for i, c in enumerate(rs[0]):
            vals = [to_num(r[i]) for r in rs if i < len(r)]
            if vals and all(v is not None for v in vals) and len(vals) > 1:
                med = statistics.median(v[0] for v in vals)
                unit = " ms" if vals[0][2] else ""
                out.append(f"{vals[0][1]}{med:,.1f}{unit}" if med >= 10 else f"{vals[0][1]}{med:.2f}{unit}")
            else:
                out.append(c)
        print("| " + " | ".join(out) + f" | {len(rs)} |")


if __name__ == "__main__":
    main()
