"""Visual HTML reports: one self-contained page that opens from ``file://`` in any browser, offline.

* :func:`find_windows` / :func:`choose_crops`: pure functions that pick the crops worth looking
  at (where two models differ most, where the best model gains most over bicubic);
* :func:`image_entry`: one test image's HR, bicubic and model outputs, crops and numbers;
* :func:`build_page`: the page (sortable tables, inline SVG plots, crop rows that zoom
  together with nearest-neighbour scaling, images embedded as base64 PNG) under a size cap;
* :func:`write_compare_report` (``visionfw compare``), :func:`write_eval_report`
  (``visionfw test --report``) and :func:`write_rank_report` (``visionfw rank-datasets``).

The page needs no network: no CDN, no external script or style sheet, no font download; its
JavaScript is inline and plain.  ``#zoom=N`` in the page's address sets the crops' zoom.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from pathlib import Path

import numpy as np

from visionfw.errors import ConfigError

__all__ = [
    "find_windows",
    "choose_crops",
    "crop_psnr",
    "png_data_uri",
    "image_entry",
    "svg_scatter",
    "svg_histograms",
    "table_html",
    "gain_table_html",
    "build_page",
    "load_eval_entries",
    "compare_sections",
    "write_compare_report",
    "write_eval_report",
    "write_rank_report",
    "DEFAULT_MAX_MB",
    "REPORT_NAME",
]

REPORT_NAME = "report.html"
DEFAULT_MAX_MB = 10.0
BASELINE = "bicubic"
_LUMA = np.array([65.481, 128.553, 24.966]) / 255.0  # MATLAB rgb2ycbcr's Y row (offset irrelevant to errors)


# --------------------------------------------------------------------------- crops (pure)


def _as_rgb_float(img):
    """HxWx3 float64 in [0, 1] from HW/HWC uint8 or float (grey replicated)."""
    a = np.asarray(img)
    a = a.astype(np.float64) / 255.0 if a.dtype == np.uint8 else a.astype(np.float64)
    if a.ndim == 2:
        a = a[..., None]
    if a.shape[-1] == 1:
        a = np.repeat(a, 3, axis=-1)
    return a


def _luma(img):
    return _as_rgb_float(img) @ _LUMA + 16.0 / 255.0


def find_windows(score, size, count=1, avoid=()):
    """Top-left corners ``(y, x)`` of up to ``count`` non-overlapping ``size`` windows with the
    largest sum of ``score`` (2-D), best first.

    ``size``: ``h`` or ``(h, w)``, clipped to the map.  Windows are chosen greedily: the best,
    then the best that does not overlap it, and so on; none overlaps a window of the same size
    at the corners in ``avoid``.  Ties go to the top-left one.
    """
    score = np.asarray(score, np.float64)
    if score.ndim != 2 or score.size == 0:
        raise ConfigError(f"find_windows: score must be a non-empty 2-D map, got shape {score.shape}.")
    h, w = (size, size) if np.isscalar(size) else size
    h, w = max(1, min(int(h), score.shape[0])), max(1, min(int(w), score.shape[1]))
    integral = np.zeros((score.shape[0] + 1, score.shape[1] + 1))
    integral[1:, 1:] = score.cumsum(0).cumsum(1)
    sums = integral[h:, w:] - integral[:-h, w:] - integral[h:, :-w] + integral[:-h, :-w]

    def block(y, x):  # every window overlapping the one at (y, x)
        sums[max(0, y - h + 1) : y + h, max(0, x - w + 1) : x + w] = -np.inf

    for y, x in avoid:
        block(y, x)
    found = []
    for _ in range(int(count)):
        if not np.isfinite(sums).any():
            break
        y, x = (int(v) for v in np.unravel_index(int(np.argmax(sums)), sums.shape))
        found.append((y, x))
        block(y, x)
    return found


def crop_psnr(crop, hr_crop):
    """PSNR (dB) on Y of two crops (uint8 or float in [0, 1]); inf when they are equal."""
    mse = float(np.mean((_luma(crop) - _luma(hr_crop)) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(1.0 / mse)


def choose_crops(hr, outputs, size=48, border=0, psnr=None, baseline=BASELINE):
    """The crops of one image worth looking at, as ``[{'y', 'x', 'h', 'w', 'why'}]`` (HR pixels).

    ``outputs``: {name: image of the HR size}, the models' outputs and ``baseline`` (bicubic).
    Errors are squared differences to ``hr`` on Y, ``border`` pixels shaved (as the metrics).
    ``psnr``: {name: PSNR} that ranks the models (default: from those errors).

    With two or more models: (1) the window where the worst model's error exceeds the best
    model's most, (2) the window, not overlapping (1), where the best model gains most over
    ``baseline``.  With one model: (1) its largest gain over ``baseline``, (2) its largest
    remaining error.
    """
    hr_y = _luma(hr)
    b = int(border) if min(hr_y.shape) > 2 * int(border) + 1 else 0
    inner = (slice(b, hr_y.shape[0] - b), slice(b, hr_y.shape[1] - b))
    errors = {}
    for name, img in outputs.items():
        if np.asarray(img).shape[:2] != hr_y.shape:
            raise ConfigError(f"choose_crops: {name} is {np.asarray(img).shape[:2]}, the HR image {hr_y.shape}.")
        errors[name] = ((_luma(img) - hr_y) ** 2)[inner]
    models = [n for n in outputs if n != baseline]
    if not models:
        raise ConfigError("choose_crops: outputs hold no model besides the baseline.")
    quality = psnr or {n: -float(errors[n].mean()) for n in models}
    ranked = sorted(models, key=lambda n: quality[n], reverse=True)
    best, worst = ranked[0], ranked[-1]
    wanted = []
    if len(models) > 1:
        wanted.append((errors[worst] - errors[best], f"where {best} and {worst} differ most"))
    if baseline in errors:
        wanted.append((errors[baseline] - errors[best], f"largest gain of {best} over {baseline}"))
    if len(wanted) < 2:
        wanted.append((errors[best], f"largest remaining error of {best}"))
    h, w = min(size, errors[best].shape[0]), min(size, errors[best].shape[1])
    crops, taken = [], []
    for score, why in wanted:
        corner = find_windows(score, (h, w), 1, avoid=taken)
        if not corner:
            continue
        taken.append(corner[0])
        crops.append({"y": corner[0][0] + b, "x": corner[0][1] + b, "h": h, "w": w, "why": why})
    return crops


# --------------------------------------------------------------------------- images


def _to_uint8(a):
    a = np.asarray(a)
    return a if a.dtype == np.uint8 else np.clip(np.floor(a.astype(np.float64) * 255.0 + 0.5), 0, 255).astype(np.uint8)


def _uint8_rgb(img):
    return _to_uint8(_as_rgb_float(img))


def png_data_uri(img):
    """``data:image/png;base64,...`` of an image (HW/HWC, uint8 or float in [0, 1])."""
    from PIL import Image

    a = _to_uint8(img)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(a)).save(buf, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _thumbnail(img, longest):
    from PIL import Image

    a = _uint8_rgb(img)
    f = min(1.0, longest / max(a.shape[:2]))
    if f < 1.0:
        size = (max(1, round(a.shape[1] * f)), max(1, round(a.shape[0] * f)))
        a = np.asarray(Image.fromarray(a).resize(size, Image.LANCZOS))
    return a


def image_entry(dataset, name, hr, outputs, metrics=None, crop_size=48, border=0, thumb=192, baseline=BASELINE):
    """One image of the report: its crops (:func:`choose_crops`) as HR | ``baseline`` | each
    model, each labelled with its PSNR on the crop, a thumbnail, and its numbers.

    ``outputs``: {name: image} in display order (``baseline`` included); ``metrics``:
    {name: {'psnr', 'ssim', ...}} of the whole image (they also rank the models).
    """
    metrics = metrics or {}
    psnr = {n: metrics[n]["psnr"] for n in outputs if n != baseline and n in metrics} or None
    if psnr is not None and len(psnr) != len([n for n in outputs if n != baseline]):
        psnr = None
    crops = []
    order = [baseline] * (baseline in outputs) + [n for n in outputs if n != baseline]
    for c in choose_crops(hr, outputs, size=crop_size, border=border, psnr=psnr, baseline=baseline):
        box = (slice(c["y"], c["y"] + c["h"]), slice(c["x"], c["x"] + c["w"]))
        ref = np.asarray(hr)[box]
        tiles = [{"label": "HR", "uri": png_data_uri(_uint8_rgb(ref)), "psnr": None}]
        tiles += [
            {
                "label": n,
                "uri": png_data_uri(_uint8_rgb(np.asarray(outputs[n])[box])),
                "psnr": crop_psnr(np.asarray(outputs[n])[box], ref),
            }
            for n in order
        ]
        crops.append({**c, "tiles": tiles})
    return {
        "dataset": dataset,
        "name": name,
        "shape": list(np.asarray(hr).shape[:2]),
        "metrics": metrics,
        "crops": crops,
        "thumb": png_data_uri(_thumbnail(hr, thumb)) if thumb else None,
    }


# --------------------------------------------------------------------------- HTML pieces

_COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]
_CROP_COLORS = ["#e6194b", "#3cb44b", "#4363d8", "#f58231"]


def _e(text):
    return html.escape(str(text), quote=True)


def _num(value, fmt):
    """A table cell: the formatted number shown, the exact value in ``data-v`` (sorting, checks)."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        shown = "-" if value is None else ("inf" if value > 0 else "-inf")
        return f'<td data-v="">{shown}</td>'
    return f'<td class="num" data-v="{float(value)!r}">{format(value, fmt)}</td>'


def table_html(columns, rows, caption=None, cls="sortable"):
    """A table sortable by any column (click its header).  ``rows``: lists of cells, each a
    string (text) or ``(number, format)``."""
    head = "".join(f"<th>{_e(c)}</th>" for c in columns)
    body = []
    for row in rows:
        cells = []
        for cell in row:
            cells.append(_num(*cell) if isinstance(cell, tuple) else f"<td>{_e(cell)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    cap = f"<caption>{_e(caption)}</caption>" if caption else ""
    return f'<table class="{cls}">{cap}<thead><tr>{head}</tr></thead><tbody>' + "\n".join(body) + "</tbody></table>"


def _gain_cell(gain, scale=1.0):
    """A gain cell coloured green (helps) or red (hurts), saturating at ``scale`` dB."""
    if gain is None:
        return '<td data-v="">-</td>'
    t = max(-1.0, min(1.0, gain / scale)) if scale else 0.0
    colour = f"rgba(44,160,44,{abs(t) * 0.6:.2f})" if t >= 0 else f"rgba(214,39,40,{abs(t) * 0.6:.2f})"
    return f'<td class="num gain" style="background:{colour}" data-v="{float(gain)!r}">{gain:+.2f}</td>'


def gain_table_html(entries, models):
    """Per image (rows) and model (columns): PSNR gain over bicubic in dB, coloured."""
    gains = [e["metrics"].get(m, {}).get("gain_psnr") for e in entries for m in models]
    scale = max([abs(g) for g in gains if g is not None] or [1.0]) or 1.0
    head = "".join(f"<th>{_e(c)}</th>" for c in ["set", "image", "bicubic PSNR"] + list(models))
    body = []
    for e in entries:
        bic = e["metrics"].get(BASELINE, {}).get("psnr")
        cells = [f"<td>{_e(e['dataset'])}</td>", f"<td>{_e(e['name'])}</td>", _num(bic, ".2f")]
        cells += [_gain_cell(e["metrics"].get(m, {}).get("gain_psnr"), scale) for m in models]
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (
        '<table class="sortable gains"><thead><tr>'
        + head
        + "</tr></thead><tbody>"
        + "\n".join(body)
        + "</tbody></table>"
    )


def _ticks(lo, hi, n=5):
    span = hi - lo if hi > lo else 1.0
    step = 10 ** math.floor(math.log10(span / n))
    for m in (1, 2, 5, 10):
        if span / (step * m) <= n:
            step *= m
            break
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(int((hi - first) / step + 1e-9) + 1)]


def svg_scatter(points, title, xlabel, ylabel, logx=True, hline=None, width=480, height=320):
    """An inline SVG scatter plot; ``points``: [{'label', 'x', 'y', 'size' (0..1)}], each point
    labelled and with a hover title; ``hline``: (y, label) drawn dashed."""
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

    out = [
        f'<svg class="plot" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{_e(title)}">',
        f'<text x="{width / 2}" y="16" text-anchor="middle" class="ptitle">{_e(title)}</text>',
        f'<rect x="{left}" y="{top}" width="{width - left - right}" height="{height - top - bottom}" '
        'fill="none" stroke="#999"/>',
    ]
    if logx:  # decades, or 1-2-5 steps when fewer than three decades show
        xt = [10.0**k for k in range(math.ceil(x0), math.floor(x1) + 1)]
        if len(xt) < 3:
            xt = [
                m * 10.0**k
                for k in range(math.floor(x0), math.ceil(x1) + 1)
                for m in (1, 2, 5)
                if x0 <= math.log10(m * 10.0**k) <= x1
            ]
    else:
        xt = _ticks(x0, x1)
    for v in xt:
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
        x, y = px(p["x"]), py(p["y"])
        r = 4 + 12 * math.sqrt(max(0.0, min(1.0, p.get("size", 0.0))))
        tip = f"{p['label']}: {ylabel} {p['y']:.3f}, {xlabel} {p['x']:.4g}" + (
            f", {p['note']}" if p.get("note") else ""
        )
        out.append(
            f'<g class="pt"><title>{_e(tip)}</title><circle cx="{x:.1f}" cy="{y:.1f}" r="{r:.1f}" '
            f'fill="{_COLORS[i % len(_COLORS)]}" fill-opacity="0.55" stroke="{_COLORS[i % len(_COLORS)]}"/>'
            f'<text x="{x:.1f}" y="{y - r - 3:.1f}" text-anchor="middle" class="plabel">{_e(p["label"])}'
            "</text></g>"
        )
    out.append("</svg>")
    return "".join(out)


def svg_histograms(values, title, xlabel="PSNR gain over bicubic (dB), per image", width=480, height=300):
    """An inline SVG of step histograms, one per series; ``values``: {label: [numbers]}."""
    allv = [float(v) for vs in values.values() for v in vs]
    lo, hi = (min(allv), max(allv)) if allv else (0.0, 1.0)
    if hi - lo < 1e-6:
        lo, hi = lo - 0.5, hi + 0.5
    nbins = max(6, min(30, len(allv) // 2))
    edges = np.linspace(lo, hi, nbins + 1)
    counts = {k: np.histogram(np.asarray(v, np.float64), bins=edges)[0] for k, v in values.items()}
    cmax = max([int(c.max()) for c in counts.values()] or [1]) or 1
    left, right, top, bottom = 44, 12, 28, 44
    out = [
        f'<svg class="plot" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{_e(title)}">',
        f'<text x="{width / 2}" y="16" text-anchor="middle" class="ptitle">{_e(title)}</text>',
        f'<rect x="{left}" y="{top}" width="{width - left - right}" height="{height - top - bottom}" '
        'fill="none" stroke="#999"/>',
    ]

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


# --------------------------------------------------------------------------- the page

_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:16px 24px;color:#222;background:#fff}
h1{font-size:1.4em;margin:0 0 4px} h2{font-size:1.15em;margin:28px 0 8px;border-bottom:1px solid #ddd}
h3{font-size:1em;margin:18px 0 6px} .meta{color:#555;font-size:.9em;margin:2px 0}
.note{background:#fff4d6;border:1px solid #e0b84c;padding:6px 10px;margin:8px 0;font-size:.9em}
table{border-collapse:collapse;font-size:.85em;margin:6px 0}
th,td{border:1px solid #ddd;padding:3px 7px;text-align:left} td.num{text-align:right;font-variant-numeric:tabular-nums}
table.sortable th{cursor:pointer;background:#f3f3f3;user-select:none} table.sortable th:hover{background:#e6e6e6}
th.asc::after{content:' \\25B2'} th.desc::after{content:' \\25BC'}
caption{caption-side:bottom;text-align:left;color:#555;font-size:.9em;padding-top:4px}
.plots{display:flex;flex-wrap:wrap;gap:12px} svg.plot{background:#fff;font-size:11px}
svg .grid{stroke:#eee} svg .ptitle{font-size:12px;font-weight:600} svg .plabel{font-size:11px;fill:#222}
.image{border-top:1px solid #eee;padding-top:8px;margin-top:14px}
.imagehead{display:flex;gap:16px;align-items:flex-start;flex-wrap:wrap}
.croprow{margin:10px 0;--zoom:3} .croprow .why{font-size:.85em;color:#333;margin-bottom:4px}
.tiles{display:flex;flex-wrap:wrap;gap:8px;align-items:flex-start}
figure{margin:0;text-align:center;font-size:.8em}
img.crop{display:block;image-rendering:crisp-edges;image-rendering:pixelated;cursor:zoom-in;
 width:calc(var(--w) * var(--zoom) * 1px);height:calc(var(--h) * var(--zoom) * 1px);border:2px solid var(--c,#ccc)}
figcaption{margin-top:2px} figcaption b{font-weight:600}
.zoomctl{font-size:.85em;color:#444;margin-left:10px} .zoomctl input{vertical-align:middle;width:120px}
.controls{position:sticky;top:0;background:#fafafa;border:1px solid #ddd;padding:4px 8px;z-index:2;font-size:.9em}
"""

_JS = """
(function(){
  'use strict';
  function setZoom(row, z){
    z = Math.max(1, Math.min(8, parseInt(z, 10) || 1));
    row.style.setProperty('--zoom', z);
    var s = row.querySelector('input.zoom'); if (s) { s.value = z; }
    var o = row.querySelector('output'); if (o) { o.textContent = z + 'x'; }
  }
  function zoomAll(z){
    document.querySelectorAll('.croprow').forEach(function(row){ setZoom(row, z); });
    var g = document.getElementById('zoomall'); if (g) { g.value = z; }
    var o = document.getElementById('zoomallout'); if (o) { o.textContent = z + 'x'; }
  }
  document.querySelectorAll('.croprow').forEach(function(row){
    var s = row.querySelector('input.zoom');
    if (s) { s.addEventListener('input', function(){ setZoom(row, s.value); }); }
    row.querySelectorAll('img.crop').forEach(function(img){
      img.addEventListener('click', function(){
        var z = parseInt(getComputedStyle(row).getPropertyValue('--zoom'), 10) || 1;
        setZoom(row, z >= 8 ? 1 : z * 2);
      });
    });
  });
  var g = document.getElementById('zoomall');
  if (g) { g.addEventListener('input', function(){ zoomAll(g.value); }); }
  function fromHash(){
    var m = /(?:^#|&)zoom=(\\d+)/.exec(location.hash);
    if (m) { zoomAll(parseInt(m[1], 10)); }
  }
  window.addEventListener('hashchange', fromHash);
  fromHash();
  function key(td){
    var v = td.getAttribute('data-v');
    if (v !== null && v !== '') { return [0, parseFloat(v)]; }
    if (v === '') { return [2, 0]; }
    return [1, td.textContent.trim().toLowerCase()];
  }
  function cmp(a, b){ return a[0] - b[0] || (a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0); }
  document.querySelectorAll('table.sortable').forEach(function(table){
    var heads = table.tHead.rows[0].cells;
    Array.prototype.forEach.call(heads, function(th, col){
      th.title = 'sort by ' + th.textContent;
      th.addEventListener('click', function(){
        var asc = !th.classList.contains('asc');
        Array.prototype.forEach.call(heads, function(h){ h.classList.remove('asc', 'desc'); });
        th.classList.add(asc ? 'asc' : 'desc');
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows).map(function(r, i){ return [r, i]; });
        rows.sort(function(a, b){
          var ka = key(a[0].cells[col]), kb = key(b[0].cells[col]);
          var c = ka[0] !== kb[0] ? ka[0] - kb[0] : (asc ? cmp(ka, kb) : cmp(kb, ka));
          return c || a[1] - b[1];
        });
        rows.forEach(function(r){ body.appendChild(r[0]); });
      });
    });
  });
})();
"""


def _fmt_psnr(v):
    return "-" if v is None else ("inf" if not math.isfinite(v) else f"{v:.2f} dB")


def _image_html(entry, models, with_images=True):
    """One image: its numbers, a thumbnail with the crop boxes, and a row of crops per box."""
    m = entry["metrics"]
    rows = []
    for name in [BASELINE] + list(models):
        if name in m:
            r = m[name]
            rows.append(
                [
                    name,
                    (r.get("psnr"), ".3f"),
                    (r.get("ssim"), ".4f"),
                    (None if name == BASELINE else r.get("gain_psnr"), "+.3f"),
                ]
            )
    numbers = table_html(["model", "PSNR", "SSIM", "gain"], rows, cls="sortable perimage")
    h, w = entry["shape"]
    parts = [
        f'<div class="image" id="{_e(entry["dataset"])}-{_e(entry["name"])}">',
        f'<h3>{_e(entry["dataset"])} / {_e(entry["name"])} <span class="meta">({w}x{h} HR)</span></h3>',
        '<div class="imagehead">',
        numbers,
    ]
    crops = entry.get("crops") or []
    if with_images and entry.get("thumb"):
        tw = 192 if w >= h else round(192 * w / h)
        th = round(tw * h / w)
        rects = "".join(
            f'<rect x="{c["x"]}" y="{c["y"]}" width="{c["w"]}" height="{c["h"]}" fill="none" '
            f'stroke="{_CROP_COLORS[i % 4]}" stroke-width="{max(3, w // 64)}"/>'
            for i, c in enumerate(crops)
        )
        parts.append(
            f'<svg class="thumb" xmlns="http://www.w3.org/2000/svg" width="{tw}" height="{th}" '
            f'viewBox="0 0 {w} {h}"><image href="{entry["thumb"]}" width="{w}" height="{h}" '
            f'preserveAspectRatio="none"/>{rects}</svg>'
        )
    parts.append("</div>")
    if with_images:
        for i, c in enumerate(crops):
            colour = _CROP_COLORS[i % 4]
            tiles = []
            for t in c["tiles"]:
                label = f"<b>{_e(t['label'])}</b>" + ("" if t["psnr"] is None else f"<br>{_fmt_psnr(t['psnr'])}")
                v = "" if t["psnr"] is None else f' data-psnr="{float(t["psnr"])!r}"'
                tiles.append(
                    f'<figure><img class="crop" alt="{_e(t["label"])}" src="{t["uri"]}" '
                    f'style="--w:{c["w"]};--h:{c["h"]};--c:{colour}" data-model="{_e(t["label"])}"{v}>'
                    f"<figcaption>{label}</figcaption></figure>"
                )
            parts.append(
                f'<div class="croprow"><div class="why"><span style="color:{colour}">&#9632;</span> '
                f"{_e(c['why'])}: {c['w']}x{c['h']} px at x={c['x']}, y={c['y']}"
                '<label class="zoomctl">zoom <input type="range" class="zoom" min="1" max="8" step="1" '
                'value="3"> <output>3x</output></label> <span class="meta">(click a crop: 2x more)</span>'
                f'</div><div class="tiles">{"".join(tiles)}</div></div>'
            )
    parts.append("</div>")
    return "\n".join(parts)


def build_page(title, meta_lines=(), notes=(), sections=(), entries=(), models=(), max_mb=DEFAULT_MAX_MB):
    """The report page as one HTML string, and the notices about what was left out.

    ``meta_lines``: plain lines under the title (protocol, scale, date...); ``notes``: warnings
    shown highlighted; ``sections``: (heading, HTML) pairs (tables, plots); ``entries``:
    :func:`image_entry` dicts shown per dataset with the per-image gain view; ``models``: the
    model names in column order.  Images are embedded until the page would pass ``max_mb``;
    the rest are left out with a note saying so.

    Returns ``(html, notices)``.
    """
    if max_mb is not None and max_mb <= 0:
        raise ConfigError(f"report max size {max_mb} MB must be positive (e.g. 10).")
    entries, models = list(entries), list(models)
    notices = []
    budget = math.inf if max_mb is None else max_mb * 1e6
    fixed = sum(len(h) for _, h in sections) + 20000 + 3000 * len(entries)
    used, shown = fixed, []
    for e in entries:
        size = sum(len(t["uri"]) for c in e.get("crops") or () for t in c["tiles"]) + len(e.get("thumb") or "")
        keep = used + size <= budget
        used += size if keep else 0
        shown.append(keep)
    dropped = shown.count(False)
    if dropped:
        notices.append(
            f"report: the crops of {dropped} of {len(entries)} images were left out to keep the page "
            f"under {max_mb:g} MB; raise the cap (--report_max_mb) or test on fewer sets/models."
        )
    body = [f"<h1>{_e(title)}</h1>"] + [f'<p class="meta">{_e(line)}</p>' for line in meta_lines]
    body += [f'<p class="note">{_e(n)}</p>' for n in list(notes) + notices]
    if any(e.get("crops") for e in entries):
        body.append(
            '<div class="controls">zoom of all crops <input type="range" id="zoomall" min="1" max="8" '
            'step="1" value="3"> <output id="zoomallout">3x</output> <span class="meta">nearest-neighbour; '
            "each row has its own slider; #zoom=N in the address sets it; click a table header to sort"
            "</span></div>"
        )
    for heading, content in sections:
        body.append(f"<h2>{_e(heading)}</h2>\n{content}")
    if entries:
        body.append(
            '<h2>Gain over bicubic per image</h2>\n<p class="meta">PSNR gain in dB (green: the model '
            "helps, red: it hurts; colour saturates at the largest gain).</p>\n" + gain_table_html(entries, models)
        )
        for ds in dict.fromkeys(e["dataset"] for e in entries):
            what = "crops where the models differ" if len(models) != 1 else f"crops of {models[0]} vs bicubic"
            body.append(
                f'<h2>{_e(ds)}: {_e(what)}</h2>\n<p class="meta">Each row: HR | '
                "bicubic | each model on the same window, chosen automatically; the number under a crop "
                "is its PSNR on Y of the shown 8-bit crop (the image's PSNR is in its table).</p>"
            )
            body += [_image_html(e, models, keep) for e, keep in zip(entries, shown) if e["dataset"] == ds]
    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<link rel="icon" href="data:,">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head>\n<body>\n"
        + "\n".join(body)
        + f"\n<script>{_JS}</script>\n</body></html>\n"
    )
    return page, notices


# --------------------------------------------------------------------------- the commands' pages


def _bicubic_rgb(hr, scale):
    """What bicubic shows: the HR image (RGB) down and up again with MATLAB's bicubic, in float."""
    from visionfw.data.imresize import imresize_numpy

    x = _as_rgb_float(hr)
    return np.clip(imresize_numpy(imresize_numpy(x, 1.0 / scale), float(scale)), 0.0, 1.0)


def load_eval_entries(sources, scale, sr_dirs, metrics, data_dir=None, crop_size=48):
    """:func:`image_entry` dicts for every image of the sets, read from the SR images that
    :func:`visionfw.evaluate.evaluate_model` saved (``save_images``).

    ``sources``: {set name: name or folder}; ``sr_dirs``: {model: folder holding
    ``<set>/x<scale>/<image>.png``}; ``metrics``: {model: {set: [per-image rows of
    evaluate_model]}} (bicubic's numbers are taken from those rows).
    """
    from visionfw.data.image_io import read_image_uint8
    from visionfw.errors import DataError
    from visionfw.evaluate import load_eval_set

    entries = []
    for ds, source in sources.items():
        for rec in load_eval_set(source, scale, data_dir=data_dir):
            outputs = {BASELINE: _bicubic_rgb(rec.hr, scale)}
            numbers = {}
            for model, folder in sr_dirs.items():
                path = Path(folder) / ds / f"x{scale}" / f"{rec.name}.png"
                if not path.is_file():
                    raise DataError(
                        f"report: {model}'s output {path} is missing; run the evaluation again with the report on."
                    )
                outputs[model] = read_image_uint8(path)
                row = next((r for r in metrics.get(model, {}).get(ds, ()) if r["name"] == rec.name), None)
                if row is not None:
                    numbers[model] = dict(row)
                    numbers.setdefault(BASELINE, {"psnr": row["bicubic_psnr"], "ssim": row["bicubic_ssim"]})
            entries.append(image_entry(ds, rec.name, rec.hr, outputs, numbers, crop_size=crop_size, border=scale))
    return entries


def _write_page(path, page, notices):
    from visionfw.console import say

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    for n in notices:
        say(n)
    return path


def _compare_table(result):
    cols = ["model", "weights", "params", "GMACs", "latency_ms", "peak_mem_MB", "act_mem_MB"]
    for ds in result["datasets"]:
        cols += [f"{ds} PSNR", f"{ds} SSIM"]
    rows = []
    for r in result["rows"]:
        cells = [
            r["model"],
            r["weights"],
            (r["params"], ",d"),
            (None if r["macs"] is None else r["macs"] / 1e9, ".4g"),
            (r["latency_ms"], ".2f"),
            (r["peak_mem_mb"], ".1f"),
            (r["act_mem_mb"], ".1f"),
        ]
        for ds in result["datasets"]:
            m = r["metrics"].get(ds) or {}
            cells += [(m.get("psnr"), ".3f"), (m.get("ssim"), ".4f")]
        rows.append(cells)
    return table_html(cols, rows)


def _weights_notes(rows):
    trained = [r["model"] for r in rows if str(r.get("weights") or "").startswith("trained")]
    random_ = [r["model"] for r in rows if r.get("weights") == "random"]
    notes = []
    if trained:
        notes.append(
            f"The numbers of {', '.join(trained)} come from models trained here (see the weights "
            "column), not from official weights: they are not the papers' numbers."
        )
    if random_:
        notes.append(f"{', '.join(random_)} kept random weights: their numbers mean nothing.")
    return notes


def compare_sections(result):
    """(meta lines, notes, sections) of a comparison's page: its conventions, the trained-here
    and random-weights notes, the sortable table and the PSNR-vs-MACs plots."""
    from visionfw.studies.reports import format_compare_table

    rows = [r for r in result["rows"] if r["model"] != BASELINE]
    meta_lines = format_compare_table(result).split("\n\n", 1)[1].splitlines()
    meta_lines.append(f"Date {result.get('date', '')}; sets {', '.join(result['datasets'])}.")
    plots = []
    max_params = max([r["params"] for r in rows if r["macs"]] or [1]) or 1
    h, w = result["input_size"]
    for ds in result["datasets"]:
        points = [
            {
                "label": r["model"],
                "x": r["macs"] / 1e9,
                "y": r["metrics"][ds]["psnr"],
                "size": r["params"] / max_params,
                "note": f"{r['params']:,} parameters",
            }
            for r in rows
            if r["macs"] and ds in r["metrics"]
        ]
        bic = next((r for r in result["rows"] if r["model"] == BASELINE), None)
        hline = (bic["metrics"][ds]["psnr"], "bicubic") if bic and ds in bic["metrics"] else None
        plots.append(
            svg_scatter(
                points,
                f"{ds} x{result['scale']}: PSNR vs GMACs (circle area ~ parameters)",
                f"GMACs ({h}x{w} LR input)",
                "PSNR (dB)",
                hline=hline,
            )
        )
    sections = [
        (
            "Comparison",
            _compare_table(result) + '<p class="meta">Click a column header to sort. Same numbers as compare.json.</p>',
        ),
        (
            "PSNR vs multiply-adds",
            f'<div class="plots">{"".join(plots)}</div><p class="meta">Hover a circle for its numbers.</p>',
        ),
    ]
    return meta_lines, _weights_notes(rows), sections


def write_compare_report(result, out, data_dir=None, crop_size=48, max_mb=DEFAULT_MAX_MB):
    """``out/report.html`` for a :func:`visionfw.studies.compare.compare_models` result whose rows carry
    ``sr_images`` (the folder of each model's outputs); returns its path."""
    rows = [r for r in result["rows"] if r["model"] != BASELINE]
    models = [r["model"] for r in rows]
    sources = dict(zip(result["datasets"], result.get("test_data") or result["datasets"]))
    with_images = {r["model"]: r["sr_images"] for r in rows if r.get("sr_images")}
    metrics = {r["model"]: {ds: m.get("images", []) for ds, m in r["metrics"].items()} for r in rows}
    entries = (
        load_eval_entries(sources, result["scale"], with_images, metrics, data_dir, crop_size) if with_images else []
    )
    meta_lines, notes, sections = compare_sections(result)
    page, notices = build_page(
        f"visionfw compare: {', '.join(models)} x{result['scale']}",
        meta_lines=meta_lines,
        notes=notes,
        sections=sections,
        entries=entries,
        models=models,
        max_mb=max_mb,
    )
    return _write_page(Path(out) / REPORT_NAME, page, notices)


def write_eval_report(
    results, model_name, sr_dir, path, sources=None, data_dir=None, weights=None, crop_size=48, max_mb=DEFAULT_MAX_MB
):
    """The report page of one model (``visionfw test --report``): its numbers per set and per
    image, and crops HR | bicubic | model where it gains most and where its error is largest.

    ``results``: :func:`visionfw.evaluate.evaluate_model`'s, run with ``save_images=sr_dir``;
    ``sources``: the sets as given to it (names or folders; default: the result's names)."""
    first = next(iter(results.values()))
    scale = first["scale"]
    if isinstance(sources, str):
        sources = [d.strip() for d in sources.split(",") if d.strip()]
    sources = {Path(str(d)).name if Path(str(d)).is_dir() else str(d): str(d) for d in sources or results}
    metrics = {model_name: {ds: r["images"] for ds, r in results.items()}}
    entries = load_eval_entries(
        {ds: sources.get(ds, ds) for ds in results}, scale, {model_name: sr_dir}, metrics, data_dir, crop_size
    )
    rows = [
        [
            ds,
            (r["n_images"], "d"),
            (r["psnr"], ".3f"),
            (r["ssim"], ".4f"),
            (r["bicubic_psnr"], ".3f"),
            (r["bicubic_ssim"], ".4f"),
            (r["gain_psnr"], "+.3f"),
        ]
        for ds, r in results.items()
    ]
    table = table_html(["set", "images", "PSNR", "SSIM", "bicubic PSNR", "bicubic SSIM", "gain"], rows)
    notes = [] if weights else [f"{model_name} has random weights: its numbers mean nothing."]
    page, notices = build_page(
        f"visionfw test: {model_name} x{scale}",
        meta_lines=[
            f"Weights: {weights or 'random'}.",
            f"Scale x{scale}. PSNR/SSIM protocol: {first['protocol']} -- {first['protocol_description']}.",
        ],
        notes=notes,
        sections=[("Results", table)],
        entries=entries,
        models=[model_name],
        max_mb=max_mb,
    )
    return _write_page(path, page, notices)


def write_rank_report(result, out):
    """``out/report.html`` of ``visionfw rank-datasets``: the gain matrix (sortable) and the
    per-image gain histograms of every test set."""
    t = result["table"]
    trains = t["trains"]
    rows = [
        [test] + [(t["gains"][test][tr], "+.3f") for tr in trains] + [t["best"][test], (t["min_diff"][test], ".3f")]
        for test in t["tests"]
    ]
    matrix = table_html(
        ["test set \\ train set"] + trains + ["best", "min diff"],
        rows,
        caption="Mean PSNR gain over bicubic in dB; min diff: best minus second-best gain.",
    )
    overall = table_html(
        ["train set", "mean gain", "mean rank", "overall rank"],
        [
            [tr, (t["mean_gain"][tr], "+.3f"), (t["mean_rank"][tr], ".2f"), (t["overall_rank"][tr], "d")]
            for tr in trains
        ],
    )
    plots = [svg_histograms(per_train, f"test set {test}") for test, per_train in result["per_image"].items()]
    kwargs = result.get("model_kwargs") or {}
    page, notices = build_page(
        f"visionfw rank-datasets: {result['model']} x{result['scale']}",
        meta_lines=[
            f"{result['model']} {json.dumps(kwargs) if kwargs else ''} x{result['scale']}, "
            f"{result['steps']} steps per training set, seed {result['seed']}.",
            f"Protocol: {result['protocol']} -- {result['protocol_description']}.",
            "Bicubic PSNR: " + ", ".join(f"{k} {v:.3f} dB" for k, v in result["bicubic_psnr"].items()) + ".",
            "Overall ranking: " + " > ".join(t["overall"]),
        ],
        notes=[
            f"Every number comes from models trained here ({result['steps']} steps each), not from official weights."
        ],
        sections=[
            ("Gain matrix", matrix),
            ("Training sets overall", overall),
            ("Per-image gains", f'<div class="plots">{"".join(plots)}</div>'),
        ],
        max_mb=None,
    )
    return _write_page(Path(out) / REPORT_NAME, page, notices)
