"""The HTML of the reports' page: sortable tables, crop rows that zoom, and the page itself.

* :func:`table_html` / :func:`gain_table_html`: tables sortable by any column (click a header);
* :func:`build_page`: the page (sortable tables, inline SVG plots from :mod:`visionfw.studies.report_svg`,
  crop rows of :func:`visionfw.studies.report_images.image_entry` dicts that zoom together with
  nearest-neighbour scaling, images embedded as base64 PNG) under a size cap.

The page needs no network: no CDN, no external script or style sheet, no font download; its
JavaScript is inline and plain.  ``#zoom=N`` in the page's address sets the crops' zoom.
:mod:`visionfw.studies.report_html` fills it for the commands.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from visionfw.errors import ConfigError
from visionfw.studies.report_images import BASELINE

__all__ = ["table_html", "gain_table_html", "build_page", "DEFAULT_MAX_MB"]

DEFAULT_MAX_MB = 10.0

# --------------------------------------------------------------------------- HTML pieces

_CROP_COLORS = ["#e6194b", "#3cb44b", "#4363d8", "#f58231"]


def _e(text):
    """``text`` escaped for HTML text and attributes."""
    return html.escape(str(text), quote=True)


def _num(value, fmt):
    """A table cell: the formatted number shown, the exact value in ``data-v`` (sorting, checks)."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        shown = "-" if value is None else ("inf" if value > 0 else "-inf")
        return f'<td data-v="">{shown}</td>'
    return f'<td class="num" data-v="{float(value)!r}">{format(value, fmt)}</td>'


def table_html(
    columns: Sequence[str], rows: Iterable[Sequence[Any]], caption: str | None = None, cls: str = "sortable"
) -> str:
    """A table sortable by any column (click its header).

    Args:
      columns: the header cells.
      rows: lists of cells, each a string (text) or ``(number, format)`` (shown formatted, the exact
        value kept in ``data-v`` for sorting and checks).
      caption: a caption under the table.
      cls: the table's class (``sortable`` makes it sortable).

    Returns:
      The ``<table>`` element.
    """
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


def gain_table_html(entries: Sequence[Mapping[str, Any]], models: Sequence[str]) -> str:
    """Per image (rows) and model (columns): PSNR gain over bicubic in dB, coloured.

    Args:
      entries: :func:`visionfw.studies.report_images.image_entry` dicts.
      models: the model names, in column order.

    Returns:
      The ``<table>`` element.
    """
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


def _images_within(entries, sections, max_mb):
    """Which entries keep their images under the page's cap (in order, until it is reached), and the
    notice about the others."""
    budget = math.inf if max_mb is None else max_mb * 1e6
    used = sum(len(h) for _, h in sections) + 20000 + 3000 * len(entries)
    shown = []
    for e in entries:
        size = sum(len(t["uri"]) for c in e.get("crops") or () for t in c["tiles"]) + len(e.get("thumb") or "")
        keep = used + size <= budget
        used += size if keep else 0
        shown.append(keep)
    dropped = shown.count(False)
    if not dropped:
        return shown, []
    return shown, [
        f"report: the crops of {dropped} of {len(entries)} images were left out to keep the page "
        f"under {max_mb:g} MB; raise the cap (--report_max_mb) or test on fewer sets/models."
    ]


def _crop_sections(entries, models, shown):
    """One section per dataset: each image's numbers and, where ``shown``, its crops."""
    body = []
    for ds in dict.fromkeys(e["dataset"] for e in entries):
        what = "crops where the models differ" if len(models) != 1 else f"crops of {models[0]} vs bicubic"
        body.append(
            f'<h2>{_e(ds)}: {_e(what)}</h2>\n<p class="meta">Each row: HR | '
            "bicubic | each model on the same window, chosen automatically; the number under a crop "
            "is its PSNR on Y of the shown 8-bit crop (the image's PSNR is in its table).</p>"
        )
        body += [_image_html(e, models, keep) for e, keep in zip(entries, shown) if e["dataset"] == ds]
    return body


def build_page(
    title: str,
    *,
    meta_lines: Iterable[str] = (),
    notes: Iterable[str] = (),
    sections: Sequence[tuple[str, str]] = (),
    entries: Iterable[Mapping[str, Any]] = (),
    models: Iterable[str] = (),
    max_mb: float | None = DEFAULT_MAX_MB,
) -> tuple[str, list[str]]:
    """The report page as one HTML string, and the notices about what was left out.

    Images are embedded until the page would pass ``max_mb``; the rest are left out with a
    note saying so.

    Args:
      title: the page's title.
      meta_lines: plain lines under the title (protocol, scale, date...).
      notes: warnings shown highlighted.
      sections: (heading, HTML) pairs (tables, plots).
      entries: :func:`visionfw.studies.report_images.image_entry` dicts shown per dataset with
        the per-image gain view.
      models: the model names in column order.
      max_mb: the page's size cap in MB (None: no cap).

    Returns:
      ``(html, notices)``.

    Raises:
      ConfigError: ``max_mb`` is not positive.
    """
    if max_mb is not None and max_mb <= 0:
        raise ConfigError(f"report max size {max_mb} MB must be positive (e.g. 10).")
    entries, models = list(entries), list(models)
    shown, notices = _images_within(entries, sections, max_mb)
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
        body += _crop_sections(entries, models, shown)
    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<link rel="icon" href="data:,">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head>\n<body>\n"
        + "\n".join(body)
        + f"\n<script>{_JS}</script>\n</body></html>\n"
    )
    return page, notices
