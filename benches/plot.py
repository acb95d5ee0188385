#!/usr/bin/env python3
"""Draws docs/benchmarks.svg from the table compare.sh writes (results.tsv).

    python3 benches/plot.py docs/benchmarks.tsv docs/benchmarks.svg

One row per workload, one bar per implementation (Go, tokio-util,
gocontext), on a logarithmic nanosecond axis: shorter is faster. Plain
Python, no third-party packages.
"""

import csv
import math
import sys
from html import escape

IMPLS = [("go", "Go", "#00add8"), ("tokio-util", "tokio-util", "#c47f2c"), ("gocontext", "gocontext", "#3b7d3b")]


def load(path):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    out = []
    for r in rows:
        vals = {k: float(r[k]) if r.get(k) else None for k, _, _ in IMPLS}
        if any(v is not None and v > 0 for v in vals.values()):
            out.append((r["workload"], vals))
    return out


def fmt(x):
    if x < 10:
        return f"{x:.2f}"
    if x < 1000:
        return f"{x:.1f}"
    return f"{x:,.0f}"


def draw(rows, title):
    bar, gap, label_w, plot_w, right = 7, 8, 330, 560, 70
    top, bottom = 56, 40
    row_h = bar * len(IMPLS) + gap
    height = top + row_h * len(rows) + bottom
    width = label_w + plot_w + right
    positives = [v for _, vals in rows for v in vals.values() if v and v > 0]
    lo = 10 ** math.floor(math.log10(min(positives)))
    hi = 10 ** math.ceil(math.log10(max(positives)))
    span = math.log10(hi) - math.log10(lo)

    def x(v):
        return label_w + plot_w * (math.log10(v) - math.log10(lo)) / span

    s = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{width / 2}" y="18" text-anchor="middle" font-size="14">{escape(title)}</text>',
    ]
    # Legend.
    lx = label_w
    for _, name, color in IMPLS:
        s.append(f'<rect x="{lx}" y="28" width="12" height="10" fill="{color}"/>')
        s.append(f'<text x="{lx + 16}" y="37">{escape(name)}</text>')
        lx += 110
    # Decade grid.
    d = lo
    while d <= hi * 1.0001:
        gx = x(d)
        s.append(f'<line x1="{gx:.1f}" y1="{top - 6}" x2="{gx:.1f}" y2="{height - bottom}" stroke="#ddd"/>')
        unit = f"{d:g} ns" if d < 1e3 else (f"{d / 1e3:g} µs" if d < 1e6 else f"{d / 1e6:g} ms")
        s.append(f'<text x="{gx:.1f}" y="{height - bottom + 14}" text-anchor="middle">{unit}</text>')
        d *= 10
    for i, (name, vals) in enumerate(rows):
        y0 = top + i * row_h
        if i % 2 == 0:
            s.append(f'<rect x="0" y="{y0 - gap / 2}" width="{width}" height="{row_h}" fill="#f6f6f6"/>')
        s.append(
            f'<text x="{label_w - 6}" y="{y0 + row_h / 2 - 1}" text-anchor="end">{escape(name)}</text>'
        )
        for j, (key, _, color) in enumerate(IMPLS):
            v = vals[key]
            by = y0 + j * bar
            if v is None or v <= 0:
                s.append(f'<text x="{label_w + 3}" y="{by + bar - 1}" font-size="8" fill="#999">n/a</text>')
                continue
            w = max(x(v) - label_w, 1)
            s.append(f'<rect x="{label_w}" y="{by}" width="{w:.1f}" height="{bar - 1}" fill="{color}"/>')
            s.append(f'<text x="{label_w + w + 3:.1f}" y="{by + bar - 1}" font-size="8">{fmt(v)}</text>')
    s.append(
        f'<text x="{label_w + plot_w / 2}" y="{height - 8}" text-anchor="middle">'
        "ns per operation (latency rows: ns), log scale; shorter is faster</text>"
    )
    s.append("</svg>")
    return "\n".join(s) + "\n"


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: plot.py RESULTS.tsv OUT.svg")
    rows = load(sys.argv[1])
    with open(sys.argv[2], "w") as f:
        f.write(draw(rows, "gocontext vs Go context vs tokio-util CancellationToken"))


if __name__ == "__main__":
    main()
