"""What a model costs: multiply-accumulates, latency and peak memory of one forward pass.

* :func:`count_macs`: multiply-accumulates of one forward pass for a stated input size.
  Convention: the input size is the **LR** size (e.g. 64x64); pre-upsampled models (SRCNN,
  VDSR) are counted on the **HR** size (``scale`` times larger, :func:`model_input_shape`),
  so every model produces the same output size.  Only layers that multiply by weights count:
  Conv (per output pixel ``k*k*C_in/groups*C_out``), transposed Conv (per *input* pixel
  ``k*k*C_in*C_out``), depthwise/separable Conv, Dense (per position), RCAN's channel
  attention (its two dense layers, once per image).  Element-wise work (activations, PReLU,
  Add, BatchNorm, MeanShift, PixelShuffle) is not counted.  1 GMAC = 1e9 MACs (= 2e9 FLOPs).
  ``activation_bytes`` is the analytic sum of every layer's float32 output at that size,
  which does not depend on the allocator;
* :func:`measure_latency`: batch 1, the median of ``runs`` timed calls of the model's cached
  ``tf.function`` (:func:`visionfw.inference.forward_fn`) after ``warmup`` untimed calls;
* :func:`measure_peak_memory`: on GPU the allocator's peak
  (``tf.config.experimental.get_memory_info``) above the level before the call; on CPU the
  process's peak resident memory above the level before the call, polled every 0.5 ms from
  ``/proc/self/statm`` during the first calls at that size (TF's allocations are invisible
  to ``tracemalloc``; ``resource.getrusage``'s lifetime maximum is the fallback off Linux);
* :func:`measure_cost`: all of the above for one model, as one table row;
* :func:`device_name`: what the numbers were measured on.
"""

from __future__ import annotations

import os
import statistics
import sys
import threading
import time
from typing import Any

import numpy as np

from visionfw.errors import ConfigError
from visionfw.inference import forward_numpy

__all__ = [
    "parse_input_size",
    "model_input_shape",
    "count_macs",
    "measure_latency",
    "measure_peak_memory",
    "measure_cost",
    "device_name",
]


def parse_input_size(text: str | int | tuple[int, int] | list[int]) -> tuple[int, int]:
    """Reads an LR input size.

    Args:
      text: ``'HxW'``, one number for a square, or an (h, w) pair.

    Returns:
      (h, w).

    Raises:
      ConfigError: not a size.
    """
    if isinstance(text, (tuple, list)):
        h, w = text
        return int(h), int(w)
    s = str(text).lower().replace(" ", "")
    try:
        parts = [int(p) for p in s.split("x")] if "x" in s else [int(s)] * 2
    except ValueError:
        parts = []
    if len(parts) != 2 or min(parts) < 1:
        raise ConfigError(f"input_size={text!r}: use HxW in LR pixels, e.g. 64x64.")
    return parts[0], parts[1]


def model_input_shape(spec: dict, input_size: str | tuple[int, int], scale: int) -> tuple[int, int, int]:
    """The input shape a model takes for an LR input size.

    Args:
      spec: the model's spec dict.
      input_size: the LR size (see :func:`parse_input_size`).
      scale: SR factor (pre-upsampled models take the HR size).

    Returns:
      (H, W, C).
    """
    h, w = parse_input_size(input_size)
    meta = spec.get("meta", {})
    if meta.get("upsampled_input"):
        s = int(meta.get("scale") or scale)
        h, w = h * s, w * s
    channels = spec["inputs"][0][-1]
    return int(h), int(w), int(channels)


def _fixed_model(model_or_spec, input_shape):
    """A model whose input has the fixed shape ``input_shape`` (H, W, C), so every layer's
    output shape is static."""
    import keras

    from visionfw.zoo.builder import build_model

    if isinstance(model_or_spec, dict):
        spec = dict(model_or_spec)
        if len(spec["inputs"]) != 1:
            raise ConfigError("count_macs: single-input models only.")
        spec["inputs"] = [tuple(input_shape)]
        return build_model(spec)
    model = model_or_spec
    config = model.get_config()
    for layer in config.get("layers", []):
        if layer.get("class_name") == "InputLayer":
            layer["config"]["batch_shape"] = [None, *input_shape]
    try:
        return keras.Model.from_config(config)
    except Exception as exc:  # noqa: BLE001 - any rebuild failure means: give the spec instead
        raise ConfigError(
            f"count_macs: cannot rebuild model {model.name!r} on a fixed input ({exc}); pass its spec dict instead."
        ) from None


def _shape(t):
    return tuple(int(d) for d in t.shape[1:])


def _layer_macs(layer):
    cls = type(layer).__name__
    if cls in ("Conv2D", "EdgePadConv2D", "Conv1D", "Conv3D"):
        out = _shape(layer.output)
        cin = int(layer.input.shape[-1])
        k = int(np.prod(layer.kernel_size))
        groups = int(getattr(layer, "groups", 1) or 1)
        return int(np.prod(out[:-1])) * out[-1] * k * cin // groups
    if cls in ("Conv2DTranspose", "Conv1DTranspose", "Conv3DTranspose"):
        inp = _shape(layer.input)
        return int(np.prod(inp[:-1])) * inp[-1] * int(np.prod(layer.kernel_size)) * int(layer.filters)
    if cls == "DepthwiseConv2D":
        out = _shape(layer.output)
        return int(np.prod(out)) * int(np.prod(layer.kernel_size))
    if cls == "SeparableConv2D":
        out = _shape(layer.output)
        cin = int(layer.input.shape[-1])
        mult = int(layer.depth_multiplier)
        pix = int(np.prod(out[:-1]))
        return pix * cin * mult * int(np.prod(layer.kernel_size)) + pix * cin * mult * out[-1]
    if cls == "Dense":
        inp = _shape(layer.input)
        return int(np.prod(inp[:-1])) * inp[-1] * int(layer.units)
    if cls == "ChannelAttention":
        c = int(layer.input.shape[-1])
        hidden = max(1, c // layer.reduction)
        return 2 * c * hidden
    return 0


def count_macs(model_or_spec: Any, input_shape: tuple[int, int, int], per_layer: bool = False) -> dict[str, Any]:
    """Multiply-accumulates of one forward pass of batch 1 (counting convention: module docstring).

    Args:
      model_or_spec: a spec dict (rebuilt with the fixed input) or a functional ``keras.Model``
        (rebuilt from its config).
      input_shape: (H, W, C).
      per_layer: also list every layer's count.

    Returns:
      {'macs', 'activation_bytes', 'params', 'input_shape', 'layers': [(name, class, macs)]}
      (``layers`` filled only with ``per_layer=True``).

    Raises:
      ConfigError: not (H, W, C), a multi-input model, a model that cannot be rebuilt on a fixed
        input, or a layer whose output shape stays dynamic.
    """
    import keras

    if len(input_shape) != 3:
        raise ConfigError(f"count_macs: input_shape {input_shape} must be (H, W, C).")
    model = _fixed_model(model_or_spec, input_shape)
    total, act = 0, 0
    rows = []

    def walk(m):
        nonlocal total, act
        for layer in m.layers:
            if isinstance(layer, keras.Model):
                walk(layer)
                continue
            if type(layer).__name__ == "InputLayer":
                continue
            macs = _layer_macs(layer)
            total += macs
            outputs = layer.output if isinstance(layer.output, (list, tuple)) else [layer.output]
            for o in outputs:
                if any(d is None for d in o.shape[1:]):
                    raise ConfigError(
                        f"count_macs: layer {layer.name!r} has a dynamic output shape "
                        f"{o.shape} even on a fixed input; cannot count it."
                    )
                act += int(np.prod(o.shape[1:])) * 4
            if per_layer:
                rows.append((layer.name, type(layer).__name__, macs))

    walk(model)
    return {
        "macs": int(total),
        "activation_bytes": int(act),
        "params": int(model.count_params()),
        "input_shape": tuple(input_shape),
        "layers": rows,
    }


def _has_gpu():
    import tensorflow as tf

    return bool(tf.config.list_logical_devices("GPU"))


def device_name() -> str:
    """What the numbers are measured on.

    Returns:
      'GPU: <name>' or 'CPU: <n> threads'.
    """
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        details = tf.config.experimental.get_device_details(gpus[0])
        return f"GPU: {details.get('device_name', gpus[0].name)}"
    return f"CPU: {os.cpu_count()} threads"


def measure_latency(
    model: Any, input_shape: tuple[int, int, int], runs: int = 10, warmup: int = 3, seed: int = 0
) -> dict[str, Any]:
    """Median wall time of one forward pass, batch 1, after ``warmup`` untimed calls.

    The output is fetched to the host (``.numpy()``) inside the timing, so asynchronous GPU
    execution is included.  The forward pass is evaluation's cached ``tf.function``
    (:func:`visionfw.inference.forward_fn`), so a model is traced once for both.

    Args:
      model: a Keras model.
      input_shape: (H, W, C) of the random input.
      runs: timed calls (at least 1).
      warmup: untimed calls before.
      seed: seed of the random input.

    Returns:
      {'median_ms', 'runs_ms', 'warmup', 'runs'}.
    """
    x = np.random.default_rng(seed).random((1, *input_shape), dtype=np.float32)
    for _ in range(max(0, int(warmup))):
        forward_numpy(model, x)
    times = []
    for _ in range(max(1, int(runs))):
        t0 = time.perf_counter()
        forward_numpy(model, x)
        times.append((time.perf_counter() - t0) * 1e3)
    return {"median_ms": float(statistics.median(times)), "runs_ms": times, "warmup": int(warmup), "runs": len(times)}


def _rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter


def _malloc_trim():
    """Hands freed heap memory back to the OS (glibc), so earlier models' freed buffers do not
    hide this model's allocations from the RSS measurement.

    ``malloc_trim`` alone is not enough: glibc raises its mmap threshold each time a large
    block is freed (up to 32 MiB), after which large tensors come from the heap and, once
    freed, are reused by the next model without growing RSS (LapSRN measured 0.0 MiB after
    VDSR, 41 MiB alone).  A fixed threshold keeps every block over 256 KiB in its own mapping,
    returned to the OS when freed."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(_M_MMAP_THRESHOLD, 256 * 1024)
        libc.malloc_trim(0)
    except (OSError, AttributeError):
        pass


def measure_peak_memory(model: Any, input_shape: tuple[int, int, int], runs: int = 2, seed: int = 0) -> dict[str, Any]:
    """Peak memory of a batch-1 forward pass above the level just before it.

    GPU: ``get_memory_info('GPU:0')['peak']`` after ``reset_memory_stats``.  CPU: peak
    RSS polled every 0.5 ms during ``runs`` calls (``/proc/self/statm``, after glibc's
    ``malloc_trim``), or the ``getrusage`` max-RSS delta where /proc is absent.  The
    function is traced on a tiny input first so graph building is not counted.  Call it
    before other calls at this size: TF's CPU buffers are reused after the first call, so
    later calls add little.

    Args:
      model: a Keras model.
      input_shape: (H, W, C) of the random input.
      runs: calls measured.
      seed: seed of the random input.

    Returns:
      {'peak_mb' (MiB), 'method' (how it was measured, in words)}.
    """
    import tensorflow as tf

    forward_numpy(model, np.zeros((1, 8, 8, input_shape[-1]), np.float32))
    x = np.random.default_rng(seed).random((1, *input_shape), dtype=np.float32)
    if _has_gpu():
        tf.config.experimental.reset_memory_stats("GPU:0")
        before = tf.config.experimental.get_memory_info("GPU:0")["current"]
        for _ in range(runs):
            forward_numpy(model, x)
        peak = tf.config.experimental.get_memory_info("GPU:0")["peak"]
        return {"peak_mb": (peak - before) / 2**20, "method": "GPU allocator peak above the pre-call level"}
    if os.path.exists("/proc/self/statm"):
        _malloc_trim()
        base = _rss_bytes()
        peak = [base]
        stop = threading.Event()

        def poll():
            while not stop.is_set():
                peak[0] = max(peak[0], _rss_bytes())
                time.sleep(0.0005)

        t = threading.Thread(target=poll, daemon=True)
        t.start()
        try:
            for _ in range(runs):
                forward_numpy(model, x)
        finally:
            stop.set()
            t.join()
        peak[0] = max(peak[0], _rss_bytes())
        return {
            "peak_mb": (peak[0] - base) / 2**20,
            "method": "CPU process RSS peak above the pre-call level during the first calls at this "
            "size, polled every 0.5 ms",
        }
    import resource

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for _ in range(runs):
        forward_numpy(model, x)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    unit = 1 if sys.platform == "darwin" else 1024
    return {"peak_mb": (after - before) * unit / 2**20, "method": "getrusage max-RSS delta (lower bound)"}


def measure_cost(
    model: Any, spec: dict, input_shape: tuple[int, int, int], runs: int = 10, warmup: int = 3, seed: int = 0
) -> dict[str, Any]:
    """One cost row of a model: size, MACs, latency and peak memory.

    Args:
      model: the Keras model built from ``spec``.
      spec: its spec dict (for the MAC count).
      input_shape: (H, W, C).
      runs: timed calls of the latency (see :func:`measure_latency`).
      warmup: untimed calls before them.
      seed: seed of the random input.

    Returns:
      {'params', 'macs', 'act_mem_mb', 'latency_ms', 'latency_runs_ms', 'peak_mem_mb', 'memory_method'}.
    """
    macs = count_macs(spec, input_shape)
    # memory first: only the first call at a new size allocates (pools are reused after)
    mem = measure_peak_memory(model, input_shape, seed=seed)
    lat = measure_latency(model, input_shape, runs=runs, warmup=warmup, seed=seed)
    return {
        "params": int(model.count_params()),
        "macs": macs["macs"],
        "act_mem_mb": macs["activation_bytes"] / 2**20,
        "latency_ms": lat["median_ms"],
        "latency_runs_ms": lat["runs_ms"],
        "peak_mem_mb": mem["peak_mb"],
        "memory_method": mem["method"],
    }
