"""What does bfloat16 inference cost on the official weights? (bf16 where parity holds)

For every zoo model whose official weights are found on the data search path, evaluates the
pretrained model on Set5 and Set14 under its published protocol twice: in float32 and computing in
bfloat16 with a float32 output head (:func:`visionfw.inference.with_precision`, the opt-in
``visionfw test --precision=bfloat16``).  The metric is computed in float64 on the uint8-rounded
output both times.  Speed lives in ``benchmarks/inference_speed.py``.

    python experiments/bf16_inference.py [--models=imdn,lapsrn] [--out=experiments/results/bf16_inference]

Writes ``<out>/summary.md`` (and prints it): PSNR per (model, scale, set), the difference, the
largest |difference|.  Models without weights here are listed as skipped.
"""

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default="", help="comma-separated zoo names (default: every one with weights)")
    ap.add_argument("--sets", default="Set5,Set14")
    ap.add_argument("--out", default="experiments/results/bf16_inference")
    args = ap.parse_args()

    import visionfw
    from visionfw.errors import VisionFWError
    from visionfw.evaluate import evaluate_model

    names = [m for m in args.models.split(",") if m] or visionfw.list_models()
    rows, skipped = [], []
    for name in names:
        info = visionfw.model_info(name)
        for scale in info.scales or ():
            if not info.weights_for(scale):
                continue
            try:
                model = visionfw.get_model(name, scale=scale, pretrained=True)
            except VisionFWError as exc:
                skipped.append(f"{name} x{scale}: {str(exc).splitlines()[0][:120]}")
                continue
            protocol = info.published_protocol or "srcnn"
            result = {
                p: evaluate_model(model, args.sets, scale, protocol=protocol, progress=False, precision=p)
                for p in ("float32", "bfloat16")
            }
            for ds in result["float32"]:
                a, b = result["float32"][ds]["psnr"], result["bfloat16"][ds]["psnr"]
                rows.append(
                    {
                        "model": name,
                        "scale": scale,
                        "set": ds,
                        "protocol": protocol,
                        "fp32": a,
                        "bf16": b,
                        "diff": b - a,
                    }
                )
                print(f"{name} x{scale} {ds}: fp32 {a:.3f}  bf16 {b:.3f}  ({b - a:+.3f} dB)", flush=True)

    lines = [
        "PSNR (dB, Y of BT.601, shave = scale, MATLAB bicubic LR, each model's published protocol) of the "
        "official weights computed in float32 and in bfloat16 with a float32 output head; metric in float64 "
        "on the uint8-rounded output.",
        "",
        "| model | scale | set | protocol | float32 | bfloat16 | difference |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['model']} | x{r['scale']} | {r['set']} | {r['protocol']} | {r['fp32']:.3f} | {r['bf16']:.3f} | "
        f"{r['diff']:+.3f} |"
        for r in rows
    ]
    if rows:
        diffs = [r["diff"] for r in rows]
        lines += [
            "",
            f"- mean difference {sum(diffs) / len(diffs):+.3f} dB, largest |difference| "
            f"{max(map(abs, diffs)):.3f} dB over {len(rows)} (model, scale, set) cells",
        ]
    lines += [f"- skipped {s}" for s in skipped]
    text = "\n".join(lines) + "\n"
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.md").write_text(text)
    (out / "summary.json").write_text(json.dumps({"rows": rows, "skipped": skipped}, indent=1))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
