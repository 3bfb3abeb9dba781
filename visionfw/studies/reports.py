"""Reports of the comparisons: Markdown, CSV and JSON tables and the plots.

* ``visionfw compare`` (:func:`visionfw.studies.compare.compare_models`): :func:`format_compare_table`,
  :func:`write_compare_csv`, :func:`plot_psnr_vs_macs`, all three plus the JSON written by
  :func:`write_compare_reports`;
* ``visionfw rank-datasets`` (:func:`visionfw.studies.rank_datasets.rank_datasets`):
  :func:`format_rank_table` (and :func:`parse_rank_table`, its inverse, for checks),
  :func:`format_ranking` (the table with its title and protocol), :func:`plot_gain_distributions`,
  all written by :func:`write_rank_reports`;
* :func:`write_json`: atomic JSON files.

Every file here (and :mod:`visionfw.studies.report_html`'s page) is written by :func:`atomic_write`:
a killed process leaves the old file or the new one, and a disk error (full disk, read-only file
system) is a one-line :class:`visionfw.errors.TrainingError` naming the file.

Every table states the conventions its numbers follow (protocol, input size, device).
Plots use matplotlib's object-oriented API, which needs no pyplot backend, so a notebook's
backend is left alone.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "atomic_write",
    "write_json",
    "format_compare_table",
    "write_compare_csv",
    "plot_psnr_vs_macs",
    "write_compare_reports",
    "format_rank_table",
    "parse_rank_table",
    "format_ranking",
    "plot_gain_distributions",
    "write_rank_reports",
]


def _figure_class():
    """matplotlib's Figure: the object-oriented API needs no pyplot backend, so a notebook's backend is
    left alone.  A missing matplotlib (a dependency: a broken install) is one line naming the fix."""
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:
        from visionfw.errors import ConfigError

        raise ConfigError(
            f"plots need matplotlib ({exc}); reinstall visionfw (`pip install visionfw` brings "
            "it) or `pip install matplotlib`."
        ) from None
    return Figure


def atomic_write(path: str | Path, data: bytes | str) -> Path:
    """Writes a file atomically (via a temporary file and a rename), creating its folder.

    Args:
      path: the file.
      data: its content; text is written as UTF-8.

    Returns:
      ``path`` as a Path.

    Raises:
      TrainingError: the write failed (full disk, read-only file system...); the message names the file.
    """
    from visionfw.train.workdir import write_run_file

    payload = data.encode("utf-8") if isinstance(data, str) else data
    write_run_file(Path(path), lambda f: f.write(payload))
    return Path(path)


def write_json(path: str | Path, obj: Any, indent: int = 2) -> Path:
    """Writes ``obj`` as JSON atomically (:func:`atomic_write`).

    Args:
      path: the file.
      obj: JSON-able; floats such as numpy scalars are written as numbers.
      indent: the JSON indent.

    Returns:
      ``path`` as a Path.

    Raises:
      TrainingError: the write failed.
    """
    return atomic_write(path, json.dumps(obj, indent=indent, default=float))


def _save_figure(fig, path):
    """Saves a matplotlib figure atomically, in the format of ``path``'s suffix (PNG without one)."""
    buf = io.BytesIO()
    fig.savefig(buf, format=Path(path).suffix.lstrip(".").lower() or "png", dpi=110)
    return atomic_write(path, buf.getvalue())


# --------------------------------------------------------------------------- compare


def _columns(result):
    cols = ["model", "weights", "params", "GMACs", "latency_ms", "peak_mem_MB", "act_mem_MB"]
    for ds in result["datasets"]:
        cols += [f"{ds} PSNR", f"{ds} SSIM"]
    return cols


def _row_values(row, result):
    def num(v, fmt):
        return "-" if v is None else format(v, fmt)

    values = [
        row["model"],
        row["weights"],
        f"{row['params']:,}",
        num(None if row["macs"] is None else row["macs"] / 1e9, ".4g"),
        num(row["latency_ms"], ".2f"),
        num(row["peak_mem_mb"], ".1f"),
        num(row["act_mem_mb"], ".1f"),
    ]
    for ds in result["datasets"]:
        m = row["metrics"].get(ds)
        values += [num(m and m["psnr"], ".3f"), num(m and m["ssim"], ".4f")]
    return values


def format_compare_table(result: Mapping[str, Any]) -> str:
    """The comparison as a Markdown table with the conventions stated under it.

    Args:
      result: :func:`visionfw.studies.compare.compare_models`' result.

    Returns:
      The Markdown text.
    """
    cols = _columns(result)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in result["rows"]:
        lines.append("| " + " | ".join(_row_values(row, result)) + " |")
    h, w = result["input_size"]
    s = result["scale"]
    lines += [
        "",
        f"Scale x{s}. PSNR/SSIM protocol: {result['protocol']} -- {result['protocol_description']}.",
        f"GMACs: multiply-accumulates (1e9) of one forward pass for a {h}x{w} LR input "
        f"({h * s}x{w * s} HR; pre-upsampled models such as SRCNN/VDSR are counted on the HR size); "
        "conv/dense layers only.",
        f"Latency: batch 1 at that size, median of {result['latency_runs']} runs after "
        f"{result['warmup']} warm-up runs of a cached tf.function, on {result['device']}.",
        f"peak_mem_MB: {result['memory_method']}; act_mem_MB: sum of all layer outputs in float32.",
    ]
    if result.get("partial"):
        lines.append(f"PARTIAL TABLE: {result['partial']}; run the same command again to finish it.")
    return "\n".join(lines)


def write_compare_csv(result: Mapping[str, Any], path: str | Path) -> Path:
    """Writes the comparison as CSV (atomically): one line per model, numbers unformatted.

    Args:
      result: :func:`visionfw.studies.compare.compare_models`' result.
      path: the file.

    Returns:
      ``path`` as a Path.

    Raises:
      TrainingError: the write failed.
    """
    fields = ["model", "weights", "params", "macs", "latency_ms", "peak_mem_mb", "act_mem_mb"]
    for ds in result["datasets"]:
        fields += [f"{ds}_psnr", f"{ds}_ssim", f"{ds}_bicubic_psnr"]
    fields += ["scale", "protocol", "input_size", "device"]
    text = io.StringIO(newline="")
    w = csv.DictWriter(text, fieldnames=fields)
    w.writeheader()
    for row in result["rows"]:
        line = {k: row.get(k) for k in fields[:7]}
        for ds in result["datasets"]:
            m = row["metrics"].get(ds, {})
            line[f"{ds}_psnr"] = m.get("psnr")
            line[f"{ds}_ssim"] = m.get("ssim")
            line[f"{ds}_bicubic_psnr"] = m.get("bicubic_psnr", m.get("psnr") if row["model"] == "bicubic" else None)
        line.update(
            scale=result["scale"],
            protocol=result["protocol"],
            input_size="x".join(map(str, result["input_size"])),
            device=result["device"],
        )
        w.writerow(line)
    return atomic_write(path, text.getvalue())


def plot_psnr_vs_macs(result: Mapping[str, Any], path: str | Path) -> Path:
    """Plots PSNR (y) against GMACs (x, log) per dataset, bubble area ~ parameters (PNG, atomically).

    Args:
      result: :func:`visionfw.studies.compare.compare_models`' result.
      path: the image file.

    Returns:
      ``path`` as a Path.

    Raises:
      TrainingError: the write failed.
    """
    Figure = _figure_class()

    rows = [r for r in result["rows"] if r["macs"]]
    datasets = result["datasets"]
    fig = Figure(figsize=(5.5 * len(datasets), 4.5))
    axes = fig.subplots(1, len(datasets), squeeze=False)
    max_params = max([r["params"] for r in rows] or [1])
    for ax, ds in zip(axes[0], datasets):
        for r in rows:
            m = r["metrics"].get(ds)
            if not m:
                continue
            size = 30 + 1500 * (r["params"] / max_params) ** 0.5
            ax.scatter(r["macs"] / 1e9, m["psnr"], s=size, alpha=0.5)
            # the label sits just above the bubble (its radius in points is sqrt(area) / 2)
            ax.annotate(
                r["model"],
                (r["macs"] / 1e9, m["psnr"]),
                fontsize=8,
                ha="center",
                va="bottom",
                xytext=(0, size**0.5 / 2 + 2),
                textcoords="offset points",
            )
        bic = next((r for r in result["rows"] if r["model"] == "bicubic"), None)
        if bic and ds in bic["metrics"]:
            ax.axhline(bic["metrics"][ds]["psnr"], color="grey", ls="--", lw=1, label="bicubic")
            ax.legend(loc="lower right", fontsize=8)
        ax.set_xscale("log")
        ax.margins(x=0.15, y=0.15)
        h, w = result["input_size"]
        ax.set_xlabel(f"GMACs ({h}x{w} LR input)")
        ax.set_ylabel("PSNR (dB)")
        ax.set_title(f"{ds} x{result['scale']} ({result['protocol']} protocol); bubble = parameters", fontsize=9)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return _save_figure(fig, path)


def write_compare_reports(result: dict[str, Any], out: str | Path, plot: bool = True) -> dict[str, str]:
    """Writes compare.md, compare.csv, psnr_vs_macs.png and compare.json in ``out``, each atomically.

    Args:
      result: :func:`visionfw.studies.compare.compare_models`' result; the files' paths are added
        to its ``files``.
      out: the output folder.
      plot: also write the plot.

    Returns:
      ``result['files']``.

    Raises:
      TrainingError: a write failed.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files = result.setdefault("files", {})
    atomic_write(out / "compare.md", format_compare_table(result) + "\n")
    files["markdown"] = str(out / "compare.md")
    files["csv"] = str(write_compare_csv(result, out / "compare.csv"))
    files["json"] = str(out / "compare.json")
    if plot:
        files["plot"] = str(plot_psnr_vs_macs(result, out / "psnr_vs_macs.png"))
    write_json(out / "compare.json", result)
    return files


# --------------------------------------------------------------------------- rank-datasets


def format_rank_table(table: Mapping[str, Any], digits: int = 3) -> str:
    """The ranking as a Markdown table: one row per test set ("gain (rank)" per training set, best
    set, min diff), then rows for the mean gain, mean rank and overall rank of each training set.

    Args:
      table: :func:`visionfw.studies.rank_datasets.rank_matrix`'s result.
      digits: decimals of the gains.

    Returns:
      The Markdown text.
    """
    trains = table["trains"]
    head = ["test set \\ train set"] + trains + ["best", "min diff"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for t in table["tests"]:
        cells = [f"{table['gains'][t][tr]:+.{digits}f} ({table['ranks'][t][tr]})" for tr in trains]
        md = table["min_diff"][t]
        lines.append(
            "| " + " | ".join([t] + cells + [table["best"][t], "-" if md is None else f"{md:.{digits}f}"]) + " |"
        )
    lines.append("| mean gain | " + " | ".join(f"{table['mean_gain'][tr]:+.{digits}f}" for tr in trains) + " | | |")
    lines.append("| mean rank | " + " | ".join(f"{table['mean_rank'][tr]:.2f}" for tr in trains) + " | | |")
    lines.append("| overall rank | " + " | ".join(str(table["overall_rank"][tr]) for tr in trains) + " | | |")
    lines += [
        "",
        "Cells: mean PSNR gain over bicubic in dB (rank of the training set for that test set, 1 = best). "
        "min diff: best minus second-best gain. Overall: by mean rank, ties by mean gain.",
        "Overall ranking: " + " > ".join(table["overall"]),
    ]
    return "\n".join(lines)


def parse_rank_table(markdown: str) -> dict[str, dict[str, float]]:
    """Reads the gains back from :func:`format_rank_table`'s text (for checks).

    Args:
      markdown: the table's text.

    Returns:
      ``{test: {train: gain}}``.
    """
    rows = [ln for ln in markdown.splitlines() if ln.startswith("|")]
    header = [c.strip() for c in rows[0].strip("|").split("|")]
    trains = header[1:-2]
    gains = {}
    for ln in rows[2:]:
        cells = [c.strip() for c in ln.strip("|").split("|")]
        if cells[0] in ("mean gain", "mean rank", "overall rank"):
            continue
        gains[cells[0]] = {tr: float(c.split(" ")[0]) for tr, c in zip(trains, cells[1 : 1 + len(trains)])}
    return gains


def plot_gain_distributions(
    per_image: Mapping[str, Mapping[str, Sequence[float]]], path: str | Path, title: str = ""
) -> Path:
    """Plots, per test set, a histogram of per-image PSNR gains for each training set (PNG, atomically).

    Args:
      per_image: ``{test: {train: [gains]}}``.
      path: the image file.
      title: added to every panel's title.

    Returns:
      ``path`` as a Path.

    Raises:
      TrainingError: the write failed.
    """
    Figure = _figure_class()

    tests = list(per_image)
    fig = Figure(figsize=(5 * len(tests), 3.8))
    axes = fig.subplots(1, len(tests), squeeze=False)
    for ax, t in zip(axes[0], tests):
        values = [v for vs in per_image[t].values() for v in vs]
        lo, hi = (min(values), max(values)) if values else (0.0, 1.0)
        if hi - lo < 1e-6:
            lo, hi = lo - 0.5, hi + 0.5
        bins = np.linspace(lo, hi, max(6, min(30, len(values) // 2)))
        for train, vs in per_image[t].items():
            _, _, patches = ax.hist(vs, bins=bins, histtype="step", lw=1.8, label=f"{train} (mean {np.mean(vs):+.2f})")
            ax.axvline(float(np.mean(vs)), ls=":", lw=1, color=patches[0].get_edgecolor())
        ax.set_xlabel("PSNR gain over bicubic (dB), per image")
        ax.set_ylabel("images")
        ax.set_title(f"test set {t}" + (f" -- {title}" if title else ""), fontsize=9)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return _save_figure(fig, path)


def format_ranking(result: Mapping[str, Any]) -> str:
    """The ranking report: what was trained, :func:`format_rank_table`, bicubic PSNR and protocol.

    Args:
      result: :func:`visionfw.studies.rank_datasets.rank_datasets`' result.

    Returns:
      The Markdown text.
    """
    kwargs = result.get("model_kwargs") or {}
    return (
        f"Training-set ranking: {result['model']} {json.dumps(kwargs) if kwargs else ''} x{result['scale']}, "
        f"{result['steps']} steps, seed {result['seed']}; rows = test sets, columns = training sets.\n\n"
        + format_rank_table(result["table"])
        + f"\n\nBicubic PSNR: {', '.join(f'{t} {v:.3f} dB' for t, v in result['bicubic_psnr'].items())}. "
        f"Protocol: {result['protocol']} -- {result['protocol_description']}."
    )


def write_rank_reports(result: dict[str, Any], out: str | Path, plot: bool = True) -> dict[str, str]:
    """Writes ranking.md, gain_distributions.png and ranking.json in ``out``, each atomically.

    Args:
      result: :func:`visionfw.studies.rank_datasets.rank_datasets`' result; the files' paths are
        added to its ``files``.
      out: the output folder.
      plot: also write the plot.

    Returns:
      ``result['files']``.

    Raises:
      TrainingError: a write failed.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files = result.setdefault("files", {})
    atomic_write(out / "ranking.md", result["markdown"] + "\n")
    files["markdown"] = str(out / "ranking.md")
    files["json"] = str(out / "ranking.json")
    if plot:
        title = f"{result['model']} x{result['scale']}, {result['steps']} steps"
        files["plot"] = str(plot_gain_distributions(result["per_image"], out / "gain_distributions.png", title))
    write_json(out / "ranking.json", result)
    return files
