"""``mixed_precision='auto'``: bfloat16 where the hardware computes it fast, float32 elsewhere.

Mixed bfloat16 (Keras ``mixed_bfloat16``: bf16 compute, float32 weights and optimizer state, float32
loss) trains ESPCN and EDSR-baseline to the PSNR of float32 training (paired seeds,
``experiments/mixed_precision_psnr.py``), and it is only faster where the device has bf16 units:
CPUs with AVX512_BF16 or AMX, NVIDIA GPUs of compute capability 8.0 (Ampere) and later.  Elsewhere
bf16 is emulated and slower than float32, so 'auto' keeps float32 there.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["cpu_has_fast_bf16", "gpu_has_fast_bf16", "resolve_mixed_precision"]

_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_has_fast_bf16(cpuinfo="/proc/cpuinfo"):
    """Whether the CPU lists a bf16 instruction set (AVX512_BF16 or AMX-BF16); False when unknown."""
    try:
        text = Path(cpuinfo).read_text(errors="replace")
    except OSError:
        return False
    flags = set()
    for line in text.splitlines():
        if line.startswith("flags"):
            flags.update(line.split(":", 1)[-1].split())
    return any(f in flags for f in _CPU_FLAGS)


def gpu_has_fast_bf16():
    """(any GPU, all GPUs have compute capability >= 8.0)."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return False, False
    capable = []
    for gpu in gpus:
        details = tf.config.experimental.get_device_details(gpu)
        capable.append(tuple(details.get("compute_capability") or (0, 0)) >= (8, 0))
    return True, all(capable)


def resolve_mixed_precision(value):
    """(policy name or None, the reason in words) for a ``mixed_precision`` option value."""
    if value != "auto":
        return value, ("float32 (mixed_precision unset)" if value is None else f"{value} (asked for)")
    has_gpu, fast_gpu = gpu_has_fast_bf16()
    if has_gpu:
        if fast_gpu:
            return "bfloat16", "auto: bfloat16 (GPU of compute capability >= 8.0)"
        return None, "auto: float32 (a GPU without fast bfloat16, compute capability < 8.0)"
    if cpu_has_fast_bf16():
        return "bfloat16", "auto: bfloat16 (CPU with AVX512_BF16/AMX)"
    return None, "auto: float32 (no bfloat16 units on this CPU)"
