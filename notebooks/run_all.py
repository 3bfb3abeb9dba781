"""Executes the notebooks top to bottom and saves them with their outputs.

    python notebooks/run_all.py                 # every notebook, full settings (tens of minutes on 2 cores)
    python notebooks/run_all.py quickstart      # one notebook
    python notebooks/run_all.py --smoke         # the seconds-long settings tests/test_notebooks.py uses
    python notebooks/run_all.py --inplace       # rewrite the tracked notebooks (what the repository commits)

The executed copies go to ``notebooks/runs/executed/<name>.ipynb`` (git ignores ``runs/``) unless
``--inplace`` asks to overwrite the tracked files, or ``--out=DIR`` names another folder.

Each notebook runs in this folder (its run directories go to ``runs/notebooks``, which git ignores)
with a fresh ``python3`` kernel.  TensorFlow's C++ start-up lines, which the kernel catches from
file descriptor 2, are dropped from the saved outputs: they are not results.  Outputs larger than
``--max_kb`` per notebook fail the run, so the committed files stay small.
"""
import argparse
import os
import re
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
NOTEBOOKS = ("quickstart", "zoo_tour", "dataset_ranking")
# lines TensorFlow/absl/CUDA write at start-up (and a GPU-less machine's failed cuInit)
_NOISE = re.compile(r"^(WARNING: All log messages before absl::InitializeLog\(\).*|[IWE]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ "
                    r"\S+:\d+\] .*|To enable the following instructions: .*)$")


def clean_outputs(nb):
    """Drops TensorFlow's start-up lines from stderr outputs (and stderr outputs left empty)."""
    for cell in nb.cells:
        kept = []
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream" and out.get("name") == "stderr":
                lines = [ln for ln in out["text"].splitlines(keepends=True) if not _NOISE.match(ln.rstrip("\n"))]
                if not "".join(lines).strip():
                    continue
                out["text"] = "".join(lines)
            kept.append(out)
        cell["outputs"] = kept
    return nb


def execute(nb, folder, smoke, timeout):
    """Runs ``nb`` (an nbformat notebook, changed in place) in a fresh ``python3`` kernel started in
    ``folder``, with ``VISIONFW_NOTEBOOK_SMOKE`` set from ``smoke`` (tests/test_notebooks.py uses it too)."""
    import nbclient

    env = {"VISIONFW_NOTEBOOK_SMOKE": "1" if smoke else "0", "TF_CPP_MIN_LOG_LEVEL": "3"}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # the kernel inherits this process's environment
    try:
        nbclient.NotebookClient(nb, timeout=timeout, kernel_name="python3",
                                resources={"metadata": {"path": str(folder)}}).execute()
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


OUT_DIR = HERE / "runs" / "executed"


def run(name, smoke=False, timeout=3600, max_kb=800, inplace=False, out_dir=None):
    """Executes ``notebooks/<name>.ipynb`` and saves it with its outputs to ``out_dir`` (default
    :data:`OUT_DIR`), or over the tracked file with ``inplace``; returns (seconds, size in kB, path)."""
    try:
        import nbclient  # noqa: F401  (checked here, used by execute())
        import nbformat
    except ImportError as exc:
        raise SystemExit(f"running the notebooks needs nbclient, nbformat and ipykernel ({exc}): "
                         "pip install 'visionfw[notebooks]'") from None

    path = HERE / f"{name}.ipynb"
    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    execute(nb, HERE, smoke=smoke, timeout=timeout)
    seconds = time.perf_counter() - start
    clean_outputs(nb)
    text = nbformat.writes(nb)
    size_kb = len(text.encode()) / 1024
    if size_kb > max_kb:
        sizes = sorted(((len(nbformat.writes(nbformat.v4.new_notebook(cells=[cell]))) / 1024, i)
                        for i, cell in enumerate(nb.cells)), reverse=True)[:3]
        largest = ", ".join(f"cell {i}: {kb:.0f} kB" for kb, i in sizes)
        raise SystemExit(f"{path.name}: {size_kb:.0f} kB with outputs (limit --max_kb={max_kb}; largest: {largest}); "
                         "make its outputs smaller (fewer or smaller figures, shorter tables) before committing it.")
    target = path if inplace else Path(out_dir or OUT_DIR) / path.name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    return seconds, size_kb, target


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help=f"notebooks to run (default: all of {', '.join(NOTEBOOKS)})")
    parser.add_argument("--smoke", action="store_true", help="the tests' small settings")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds per cell")
    parser.add_argument("--max_kb", type=int, default=800, help="largest saved notebook, in kB")
    parser.add_argument("--inplace", action="store_true",
                        help="overwrite the tracked notebooks (default: write copies to --out)")
    parser.add_argument("--out", default=str(OUT_DIR), help="folder of the executed copies")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.names) - set(NOTEBOOKS))
    if unknown:
        parser.error(f"unknown notebook(s) {unknown}; choose from {', '.join(NOTEBOOKS)}")
    for name in args.names or NOTEBOOKS:
        seconds, size_kb, path = run(name, smoke=args.smoke, timeout=args.timeout, max_kb=args.max_kb,
                                     inplace=args.inplace, out_dir=args.out)
        print(f"{name}.ipynb: executed in {seconds:.0f} s, saved with outputs to {path} ({size_kb:.0f} kB)",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
