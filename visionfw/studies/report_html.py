"""Visual HTML reports of the commands: one self-contained page that opens from ``file://`` in any
browser, offline (:mod:`visionfw.studies.report_page` builds it).

* :func:`write_compare_report` (``visionfw compare``), with :func:`compare_sections`;
* :func:`write_eval_report` (``visionfw test --report``);
* :func:`write_rank_report` (``visionfw rank-datasets``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from visionfw.studies.report_images import BASELINE, load_eval_entries
from visionfw.studies.report_page import DEFAULT_MAX_MB, build_page, table_html
from visionfw.studies.report_svg import svg_histograms, svg_scatter

__all__ = ["compare_sections", "write_compare_report", "write_eval_report", "write_rank_report", "REPORT_NAME"]

REPORT_NAME = "report.html"

# --------------------------------------------------------------------------- the commands' pages


def _write_page(path, page, notices):
    """Writes the page (atomically) and prints the notices about what it left out."""
    from visionfw.console import say
    from visionfw.studies.reports import atomic_write

    path = atomic_write(path, page)
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


def compare_sections(result: Mapping[str, Any]) -> tuple[list[str], list[str], list[tuple[str, str]]]:
    """The parts of a comparison's page.

    Args:
      result: :func:`visionfw.studies.compare.compare_models`' result.

    Returns:
      ``(meta lines, notes, sections)``: its conventions, the trained-here and random-weights
      notes, and the sortable table and the PSNR-vs-MACs plots.
    """
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


def write_compare_report(
    result: Mapping[str, Any],
    out: str | Path,
    data_dir: str | None = None,
    crop_size: int = 48,
    max_mb: float | None = DEFAULT_MAX_MB,
) -> Path:
    """Writes ``out/report.html`` for a comparison.

    Args:
      result: :func:`visionfw.studies.compare.compare_models`' result; rows that carry
        ``sr_images`` (the folder of the model's outputs) get crops.
      out: the output folder.
      data_dir: first root of the data search path (the benchmark sets).
      crop_size: the crops' side in HR pixels.
      max_mb: the page's size cap in MB.

    Returns:
      The page's path.

    Raises:
      TrainingError: the page cannot be written.
    """
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
    results: Mapping[str, Mapping[str, Any]],
    model_name: str,
    sr_dir: str | Path,
    path: str | Path,
    *,
    sources: str | Sequence[str] | None = None,
    data_dir: str | None = None,
    weights: str | None = None,
    crop_size: int = 48,
    max_mb: float | None = DEFAULT_MAX_MB,
) -> Path:
    """Writes the report page of one model (``visionfw test --report``): its numbers per set and per
    image, and crops HR | bicubic | model where it gains most and where its error is largest.

    Args:
      results: :func:`visionfw.evaluate.evaluate_model`'s, run with ``save_images=sr_dir``.
      model_name: the model's name on the page.
      sr_dir: the folder of the saved SR images.
      path: the page's path.
      sources: the sets as given to the evaluation (names or folders, list or comma string;
        default: the result's names).
      data_dir: first root of the data search path.
      weights: what the weights are (None: random, said on the page).
      crop_size: the crops' side in HR pixels.
      max_mb: the page's size cap in MB.

    Returns:
      The page's path.

    Raises:
      TrainingError: the page cannot be written.
    """
    first = next(iter(results.values()))
    scale = first["scale"]
    if isinstance(sources, str):
        sources = [d.strip() for d in sources.split(",") if d.strip()]
    by_name = {Path(str(d)).name if Path(str(d)).is_dir() else str(d): str(d) for d in sources or results}
    metrics = {model_name: {ds: r["images"] for ds, r in results.items()}}
    entries = load_eval_entries(
        {ds: by_name.get(ds, ds) for ds in results}, scale, {model_name: sr_dir}, metrics, data_dir, crop_size
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


def write_rank_report(result: Mapping[str, Any], out: str | Path) -> Path:
    """Writes ``out/report.html`` of ``visionfw rank-datasets``: the gain matrix (sortable) and the
    per-image gain histograms of every test set.

    Args:
      result: :func:`visionfw.studies.rank_datasets.rank_datasets`' result.
      out: the output folder.

    Returns:
      The page's path.

    Raises:
      TrainingError: the page cannot be written.
    """
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
