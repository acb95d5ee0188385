#!/usr/bin/env python3
"""Draws the thread-scaling curves from the table compare.sh writes.

    python3 benches/plot_scaling.py results.tsv scaling.svg

One panel per scaling workload (`with_timeout/concurrency=4000` and
`server_request`), throughput at N threads over throughput at 1 thread
against N, for Go, tokio-util and gocontext (and gocontext under a
`with_cancel_shared` root), next to the ideal N. The multi-thread rows
are wall time over all operations, so the speed-up at N threads is the
1-thread figure over the N-thread one. Plain Python, no third-party
packages; the loader is plot.py's.
"""

import math
import os
import sys
from html import escape

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from plot import IMPLS, load  # noqa: E402

PANELS = [
    ("with_timeout + cancel, 4000 pending", [("with_timeout/concurrency=4000", None)]),
    (
        "server request",
        [("server_request", None), ("server_request_shared", "gocontext, shared root")],
    ),
]
SHARED_COLOR = "#8fc98f"


def curves(rows, prefix):
    """{impl: [(threads, speed-up)]} for the rows `prefix/threads=N`."""
    by_impl = {}
    for name, vals in rows:
        head, _, tail = name.rpartition("/threads=")
        if head != prefix or not tail.isdigit():
            continue
        for key, v in vals.items():
            if v:
                by_impl.setdefault(key, {})[int(tail)] = v
    out = {}
    for key, ns in by_impl.items():
        if 1 in ns:
            out[key] = sorted((n, ns[1] / v) for n, v in ns.items())
    return out


def lines_of(rows, series):
    """(label, color, points) for every series of one panel."""
    drawn = []
    for prefix, shared_label in series:
        for key, points in curves(rows, prefix).items():
            name, color = next((n, c) for k, n, c in IMPLS if k == key)
            if shared_label:
                name, color = shared_label, SHARED_COLOR
            drawn.append((name, color, points))
    return drawn


def panel(x0, title, drawn, max_threads):
    w, h, top = 380, 280, 56
    hi = max([max_threads] + [s for _, _, p in drawn for _, s in p])

    def px(n):
        return x0 + 40 + (w - 60) * math.log2(n) / max(math.log2(max_threads), 1)

    def py(s):
        return top + h - 30 - (h - 60) * s / hi

    s = [f'<text x="{x0 + w / 2}" y="{top - 10}" text-anchor="middle" font-size="13">{escape(title)}</text>']
    doublings = [2**k for k in range(int(math.log2(max_threads)) + 1)]
    for n in doublings:
        s.append(f'<line x1="{px(n):.1f}" y1="{py(0):.1f}" x2="{px(n):.1f}" y2="{py(hi):.1f}" stroke="#eee"/>')
        s.append(f'<text x="{px(n):.1f}" y="{py(0) + 14:.1f}" text-anchor="middle">{n}</text>')
    for tick in range(0, int(hi) + 1, max(1, int(hi) // 8)):
        s.append(f'<text x="{x0 + 34}" y="{py(tick) + 4:.1f}" text-anchor="end">{tick}×</text>')
    ideal = " ".join(f"{px(n):.1f},{py(n):.1f}" for n in doublings)
    s.append(f'<polyline points="{ideal}" fill="none" stroke="#999" stroke-dasharray="4 3"/>')
    for _, color, points in drawn:
        pts = " ".join(f"{px(n):.1f},{py(v):.1f}" for n, v in points)
        s.append(f'<polyline points="{pts}" fill="none" stroke="{color}" stroke-width="2"/>')
        for n, v in points:
            s.append(f'<circle cx="{px(n):.1f}" cy="{py(v):.1f}" r="3" fill="{color}"/>')
    s.append(f'<text x="{x0 + w / 2}" y="{py(0) + 30:.1f}" text-anchor="middle">threads</text>')
    return s


def draw(rows):
    panels = [(title, lines_of(rows, series)) for title, series in PANELS]
    max_threads = max([2] + [n for _, d in panels for _, _, p in d for n, _ in p])
    width, height = 800, 396
    s = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        '<text x="400" y="16" text-anchor="middle" font-size="14">'
        "throughput at N threads ÷ throughput at 1 thread (dashed: N)</text>",
    ]
    for i, (title, drawn) in enumerate(panels):
        s += panel(10 + i * 400, title, drawn, max_threads)
    seen = []
    for _, d in panels:
        seen += [(name, color) for name, color, _ in d if (name, color) not in seen]
    for i, (name, color) in enumerate(seen):
        s.append(f'<rect x="{60 + i * 180}" y="{height - 22}" width="12" height="10" fill="{color}"/>')
        s.append(f'<text x="{76 + i * 180}" y="{height - 13}">{escape(name)}</text>')
    s.append("</svg>")
    return "\n".join(s) + "\n"


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: plot_scaling.py RESULTS.tsv OUT.svg")
    with open(sys.argv[2], "w") as f:
        f.write(draw(load(sys.argv[1])))


if __name__ == "__main__":
    main()
