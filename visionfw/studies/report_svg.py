"""The plots of the HTML reports as inline SVG: no image files, no plotting library, no network.

* :func:`svg_scatter`: a labelled scatter plot (PSNR vs multiply-adds in ``visionfw compare``);
* :func:`svg_histograms`: step histograms, one per series (per-image gains in ``visionfw rank-datasets``).
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["svg_scatter", "svg_histograms"]

_COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]


def _e(text):
    """``text`` escaped for SVG text and attributes."""
    return html.escape(str(text), quote=True)


def _ticks(lo, hi, n=5):
    span = hi - lo if hi > lo else 1.0
    step = 10 ** math.floor(math.log10(span / n))
    for m in (1, 2, 5, 10):
        if span / (step * m) <= n:
            step *= m
            break
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(int((hi - first) / step + 1e-9) + 1)]


def _frame(title, width, height, margins):
    """The opening of a plot: the ``<svg>`` tag, the title and the plot area's frame."""
    left, right, top, bottom = margins
    return [
        f'<svg class="plot" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{_e(title)}">',
        f'<text x="{width / 2}" y="16" text-anchor="middle" class="ptitle">{_e(title)}</text>',
        f'<rect x="{left}" y="{top}" width="{width - left - right}" height="{height - top - bottom}" '
        'fill="none" stroke="#999"/>',
    ]


def _log_ticks(x0, x1):
    """Ticks of a log axis spanning 10**x0..10**x1: decades, or 1-2-5 steps when fewer than three decades show."""
    ticks = [10.0**k for k in range(math.ceil(x0), math.floor(x1) + 1)]
    if len(ticks) < 3:
        ticks = [
            m * 10.0**k
            for k in range(math.floor(x0), math.ceil(x1) + 1)
            for m in (1, 2, 5)
            if x0 <= math.log10(m * 10.0**k) <= x1
        ]
    return ticks


def _point(p, x, y, tip, colour):
    """One labelled circle of a scatter plot, its area growing with ``p['size']``, ``tip`` on hover."""
    r = 4 + 12 * math.sqrt(max(0.0, min(1.0, p.get("size", 0.0))))
    return (
        f'<g class="pt"><title>{_e(tip)}</title><circle cx="{x:.1f}" cy="{y:.1f}" r="{r:.1f}" '
        f'fill="{colour}" fill-opacity="0.55" stroke="{colour}"/>'
        f'<text x="{x:.1f}" y="{y - r - 3:.1f}" text-anchor="middle" class="plabel">{_e(p["label"])}'
        "</text></g>"
    )


def svg_scatter(
    points: Sequence[Mapping[str, Any]],
    title: str,
    xlabel: str,
    ylabel: str,
    *,
    logx: bool = True,
    hline: tuple[float, str] | None = None,
    width: int = 480,
    height: int = 320,
) -> str:
    """An inline SVG scatter plot, each point labelled and with a hover title.

    Args:
      points: ``[{'label', 'x', 'y', 'size' (0..1), 'note' (optional, in the hover title)}]``;
        points without x or y (or x <= 0 on a log axis) are left out.
      title: the plot's title.
      xlabel: the x axis' label.
      ylabel: the y axis' label.
      logx: a logarithmic x axis.
      hline: ``(y, label)`` drawn dashed.
      width: the plot's width in pixels.
      height: the plot's height in pixels.

    Returns:
      The ``<svg>`` element.
    """
    pts = [p for p in points if p["x"] and p["y"] is not None and (not logx or p["x"] > 0)]
    left, right, top, bottom = 56, 16, 28, 44
    fx = (lambda v: math.log10(v)) if logx else float
    xs = [fx(p["x"]) for p in pts] or [0.0, 1.0]
    ys = [p["y"] for p in pts] + ([hline[0]] if hline else []) or [0.0, 1.0]
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(ys), max(ys)
    padx, pady = max(0.15 * (x1 - x0), 0.3), max(0.12 * (y1 - y0), 0.2)
    x0, x1, y0, y1 = x0 - padx, x1 + padx, y0 - pady, y1 + pady

    def px(v):
        return left + (fx(v) - x0) / (x1 - x0) * (width - left - right)

    def py(v):
        return height - bottom - (v - y0) / (y1 - y0) * (height - top - bottom)

    out = _frame(title, width, height, (left, right, top, bottom))
    for v in _log_ticks(x0, x1) if logx else _ticks(x0, x1):
        x = px(v)
        out.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{height - bottom}" class="grid"/>'
            f'<text x="{x:.1f}" y="{height - bottom + 14}" text-anchor="middle">{v:.3g}</text>'
        )
    for v in _ticks(y0, y1):
        y = py(v)
        out.append(
            f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
            f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end">{v:.4g}</text>'
        )
    out.append(
        f'<text x="{(left + width - right) / 2}" y="{height - 8}" text-anchor="middle">{_e(xlabel)}</text>'
        f'<text transform="translate(14 {(top + height - bottom) / 2}) rotate(-90)" '
        f'text-anchor="middle">{_e(ylabel)}</text>'
    )
    if hline:
        y = py(hline[0])
        out.append(
            f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" stroke="#777" '
            f'stroke-dasharray="5 4"/><text x="{width - right - 4}" y="{y - 4:.1f}" text-anchor="end" '
            f'fill="#555">{_e(hline[1])} {hline[0]:.2f}</text>'
        )
    for i, p in enumerate(pts):
        tip = f"{p['label']}: {ylabel} {p['y']:.3f}, {xlabel} {p['x']:.4g}" + (
            f", {p['note']}" if p.get("note") else ""
        )
        out.append(_point(p, px(p["x"]), py(p["y"]), tip, _COLORS[i % len(_COLORS)]))
    out.append("</svg>")
    return "".join(out)


def svg_histograms(
    values: Mapping[str, Sequence[float]],
    title: str,
    xlabel: str = "PSNR gain over bicubic (dB), per image",
    width: int = 480,
    height: int = 300,
) -> str:
    """An inline SVG of step histograms, one per series, each with its mean dashed.

    Args:
      values: {label: [numbers]}.
      title: the plot's title.
      xlabel: the x axis' label.
      width: the plot's width in pixels.
      height: the plot's height in pixels.

    Returns:
      The ``<svg>`` element.
    """
    allv = [float(v) for vs in values.values() for v in vs]
    lo, hi = (min(allv), max(allv)) if allv else (0.0, 1.0)
    if hi - lo < 1e-6:
        lo, hi = lo - 0.5, hi + 0.5
    nbins = max(6, min(30, len(allv) // 2))
    edges = np.linspace(lo, hi, nbins + 1)
    counts = {k: np.histogram(np.asarray(v, np.float64), bins=edges)[0] for k, v in values.items()}
    cmax = max([int(c.max()) for c in counts.values()] or [1]) or 1
    left, right, top, bottom = 44, 12, 28, 44
    out = _frame(title, width, height, (left, right, top, bottom))

    def px(v):
        return left + (v - lo) / (hi - lo) * (width - left - right)

    def py(c):
        return height - bottom - c / cmax * (height - top - bottom)

    for v in _ticks(lo, hi):
        out.append(f'<text x="{px(v):.1f}" y="{height - bottom + 14}" text-anchor="middle">{v:.3g}</text>')
    for c in _ticks(0, cmax):
        if c == int(c):
            out.append(f'<text x="{left - 4}" y="{py(c) + 4:.1f}" text-anchor="end">{int(c)}</text>')
    out.append(f'<text x="{(left + width - right) / 2}" y="{height - 8}" text-anchor="middle">{_e(xlabel)}</text>')
    for i, (label, c) in enumerate(counts.items()):
        colour = _COLORS[i % len(_COLORS)]
        pts = [f"{px(edges[0]):.1f},{py(0):.1f}"]
        for k, n in enumerate(c):
            pts += [f"{px(edges[k]):.1f},{py(n):.1f}", f"{px(edges[k + 1]):.1f},{py(n):.1f}"]
        pts.append(f"{px(edges[-1]):.1f},{py(0):.1f}")
        mean = float(np.mean(values[label])) if len(values[label]) else float("nan")
        out.append(
            f"<g><title>{_e(label)}: mean {mean:+.3f} dB over {len(values[label])} images</title>"
            f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{" ".join(pts)}"/>'
            f'<line x1="{px(mean):.1f}" x2="{px(mean):.1f}" y1="{top}" y2="{height - bottom}" '
            f'stroke="{colour}" stroke-dasharray="2 3"/></g>'
            f'<text x="{left + 6}" y="{top + 14 + 14 * i}" fill="{colour}">{_e(label)} '
            f"(mean {mean:+.2f})</text>"
        )
    out.append("</svg>")
    return "".join(out)
