"""LPIPS, the learned perceptual distance of Zhang et al. (CVPR 2018), with user-supplied weights.

``LPIPS(net)`` computes, for two images ``a`` and ``b`` (NHWC float in [0, 1]):

1. ``x * 2 - 1`` (LPIPS expects [-1, 1]), then the LPIPS v0.1 ``ScalingLayer``
   ``(x - shift) / scale`` with shift (-.030, -.088, -.188) and scale (.458, .448, .450);
2. the backbone's features at the LPIPS taps -- VGG16: relu1_2, relu2_2, relu3_3, relu4_3,
   relu5_3; AlexNet: relu1 .. relu5 of torchvision's AlexNet;
3. each feature unit-normalised over channels, ``f / (sqrt(sum f^2) + 1e-10)``;
4. the squared difference, weighted by the tap's non-negative 1x1 "lin" conv (no bias),
   averaged over space, and summed over taps: one distance per image pair.

No weights ship with visionfw.  Two files are needed, given by path or found by their names in
``$VISIONFW_WEIGHTS`` (or its ``lpips/`` folder) or ``~/.visionfw/weights/lpips/``:

* the backbone: torchvision's ImageNet state dict, ``vgg16-397923af.pth`` or
  ``alexnet-owt-7be5be79.pth`` (keys ``features.N.weight/bias``; the hash prefix in the name is
  checked against the file's sha256);
* the LPIPS linear layers: ``weights/v0.1/vgg.pth`` or ``alex.pth`` of the official ``lpips``
  package (keys ``lin{k}.model.1.weight``, shaped (1, C, 1, 1)).

Both are read without torch (:func:`visionfw.weights.read_state_dict`).  ``download=True``
fetches missing files from their official URLs (never done by default).  ``random_weights=True``
builds a randomly initialised metric for tests: its ``protocol`` says so, and its numbers are
not LPIPS.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from visionfw.errors import DataError, WeightsError

__all__ = [
    "LPIPS",
    "lpips_distance",
    "build_backbone",
    "find_lpips_weights",
    "lpips_weight_dirs",
    "NETS",
    "TAPS",
    "LPIPS_SHIFT",
    "LPIPS_SCALE",
]

LPIPS_SHIFT = (-0.030, -0.088, -0.188)
LPIPS_SCALE = (0.458, 0.448, 0.450)
_EPS = 1e-10  # lpips.normalize_tensor


@dataclass(frozen=True)
class _WeightsFile:
    name: str
    url: str
    sha256_prefix: str = ""  # torchvision puts the first 8 hex digits of the sha256 in the name


@dataclass(frozen=True)
class _Net:
    # torchvision ``features`` as (index, kind, args); a "tap" is the ReLU whose output LPIPS reads
    layers: tuple
    taps: tuple  # torchvision indices of the tapped ReLUs
    channels: tuple  # channels at each tap (the lin layers' input size)
    min_size: int  # smallest H/W for which every tap is non-empty
    backbone: _WeightsFile
    lin: _WeightsFile


def _vgg16_layers():
    layers, index, cin = [], 0, 3
    for block in ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512)):
        for cout in block:
            layers += [(index, "conv", (cin, cout, 3, 1, 1)), (index + 1, "relu", ())]
            index, cin = index + 2, cout
        layers.append((index, "maxpool", (2, 2)))
        index += 1
    return tuple(layers[:-1])  # LPIPS stops at relu5_3; the last pool is never used


_ALEX_LAYERS = (
    (0, "conv", (3, 64, 11, 4, 2)),
    (1, "relu", ()),
    (2, "maxpool", (3, 2)),
    (3, "conv", (64, 192, 5, 1, 2)),
    (4, "relu", ()),
    (5, "maxpool", (3, 2)),
    (6, "conv", (192, 384, 3, 1, 1)),
    (7, "relu", ()),
    (8, "conv", (384, 256, 3, 1, 1)),
    (9, "relu", ()),
    (10, "conv", (256, 256, 3, 1, 1)),
    (11, "relu", ()),
)

_LIN_URL = "https://github.com/richzhang/PerceptualSimilarity/raw/master/lpips/weights/v0.1/{}.pth"

NETS = {
    "vgg": _Net(
        _vgg16_layers(),
        taps=(3, 8, 15, 22, 29),
        channels=(64, 128, 256, 512, 512),
        min_size=16,
        backbone=_WeightsFile(
            "vgg16-397923af.pth", "https://download.pytorch.org/models/vgg16-397923af.pth", "397923af"
        ),
        lin=_WeightsFile("vgg.pth", _LIN_URL.format("vgg")),
    ),
    "alex": _Net(
        _ALEX_LAYERS,
        taps=(1, 4, 7, 9, 11),
        channels=(64, 192, 384, 256, 256),
        min_size=31,
        backbone=_WeightsFile(
            "alexnet-owt-7be5be79.pth", "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth", "7be5be79"
        ),
        lin=_WeightsFile("alex.pth", _LIN_URL.format("alex")),
    ),
}
TAPS = {name: net.taps for name, net in NETS.items()}


def _net(name):
    if name not in NETS:
        raise DataError(f"LPIPS: net={name!r} is unknown; use one of {sorted(NETS)}.")
    return NETS[name]


# --------------------------------------------------------------------------- backbone


def build_backbone(net: str) -> Any:
    """The LPIPS backbone as a Keras model: (None, None, 3) in, the 5 tapped ReLU outputs out.

    Conv layers are named ``features_N`` after their torchvision index.  torchvision pads every
    conv symmetrically; 'same' does that for stride 1 and odd kernels, AlexNet's stride-4 conv1
    gets an explicit ``ZeroPadding2D``.  Pools are 'valid' (torch's floor mode).

    Args:
      net: "alex" or "vgg".

    Returns:
      The ``keras.Model`` (weights not loaded).
    """
    import keras

    spec = _net(net)
    inp = keras.Input((None, None, 3), name="scaled_rgb")
    x, outputs = inp, []
    for index, kind, args in spec.layers:
        if kind == "conv":
            _, cout, k, stride, pad = args
            same = stride == 1 and pad == (k - 1) // 2
            if not same and pad:
                x = keras.layers.ZeroPadding2D(pad, name=f"features_{index}_pad")(x)
            x = keras.layers.Conv2D(
                cout, k, strides=stride, padding="same" if same else "valid", name=f"features_{index}"
            )(x)
        elif kind == "relu":
            x = keras.layers.ReLU(name=f"features_{index}")(x)
            if index in spec.taps:
                outputs.append(x)
        else:
            size, stride = args
            x = keras.layers.MaxPooling2D(size, strides=stride, padding="valid", name=f"features_{index}")(x)
    return keras.Model(inp, outputs, name=f"lpips_{net}_backbone")


def _load_backbone(model, net, state, source):
    """Copies torchvision ``features.N.weight/bias`` (OIHW) into the ``features_N`` convs (HWIO);
    ``classifier.*`` keys are ignored (LPIPS reads only the conv features)."""
    for index, kind, args in _net(net).layers:
        if kind != "conv":
            continue
        cin, cout, k = args[:3]
        w_key, b_key = f"features.{index}.weight", f"features.{index}.bias"
        missing = [key for key in (w_key, b_key) if key not in state]
        if missing:
            raise WeightsError(
                f"{source}: keys {missing} missing; it is not torchvision's {net} state dict "
                f"({_net(net).backbone.name})."
            )
        w, b = np.asarray(state[w_key]), np.asarray(state[b_key])
        if w.shape != (cout, cin, k, k) or b.shape != (cout,):
            raise WeightsError(
                f"{source}: {w_key} has shape {w.shape} (bias {b.shape}), expected "
                f"{(cout, cin, k, k)} ({(cout,)}) for torchvision's {net}."
            )
        model.get_layer(f"features_{index}").set_weights(
            [np.transpose(w, (2, 3, 1, 0)).astype(np.float32), b.astype(np.float32)]
        )


def _lin_kernels(net, state, source):
    """The 5 lin weights as (C,) float32 vectors from ``lin{k}.model.1.weight`` (1, C, 1, 1)."""
    kernels = []
    for k, channels in enumerate(_net(net).channels):
        key = f"lin{k}.model.1.weight"
        if key not in state:
            raise WeightsError(
                f"{source}: key {key!r} missing; expected the official LPIPS v0.1 linear layers "
                f"({_net(net).lin.name}, keys lin0..lin4.model.1.weight)."
            )
        w = np.asarray(state[key], dtype=np.float32)
        if w.shape != (1, channels, 1, 1):
            raise WeightsError(
                f"{source}: {key} has shape {w.shape}, expected {(1, channels, 1, 1)} for net={net!r}; "
                "are these the lin weights of another backbone?"
            )
        kernels.append(w.reshape(channels))
    return kernels


# --------------------------------------------------------------------------- finding files


def lpips_weight_dirs() -> list[Path]:
    """Folders searched for LPIPS weights.

    Returns:
      The folders, in search order (existing or not).
    """
    from visionfw.weights.pretrained import ENV, USER_CACHE

    dirs = []
    if os.environ.get(ENV):
        dirs += [Path(os.environ[ENV]) / "lpips", Path(os.environ[ENV])]
    return dirs + [Path(USER_CACHE).expanduser() / "lpips"]


def _check_prefix(path, wfile):
    from visionfw.weights.formats import file_sha256

    if wfile.sha256_prefix:
        digest = file_sha256(path)
        if not digest.startswith(wfile.sha256_prefix):
            raise WeightsError(
                f"{path}: sha256 {digest[:16]}... does not start with {wfile.sha256_prefix}, the hash "
                f"in torchvision's file name {wfile.name}: the file is corrupt or another release. "
                f"Delete it and fetch {wfile.url}."
            )
    return path


def _download(wfile):
    import keras

    from visionfw.weights.pretrained import USER_CACHE

    folder = Path(USER_CACHE).expanduser() / "lpips"
    # get_file's file_hash wants a whole digest; torchvision only publishes a prefix, checked after
    path = keras.utils.get_file(
        fname=wfile.name, origin=wfile.url, cache_dir=str(folder.parent), cache_subdir=folder.name
    )
    return _check_prefix(Path(path), wfile)


def find_lpips_weights(net: str, which: str, path: str | Path | None = None, download: bool = False) -> Path:
    """The file of the ``which`` weights of ``net``.

    Args:
      net: "alex" or "vgg".
      which: "backbone" or "lin".
      path: the file, if the caller has one; else the official file name is looked up in
        :func:`lpips_weight_dirs`.
      download: fetch a missing file from its official URL (prefix of its sha256 checked).

    Returns:
      The file's path.

    Raises:
      WeightsError: the file is absent (the message says where to put it) or its hash is wrong.
    """
    wfile = getattr(_net(net), which)
    if path is not None:
        path = Path(path).expanduser()
        if not path.is_file():
            raise WeightsError(
                f"LPIPS {net} {which} weights: {path} does not exist. Pass the path of {wfile.name} ({wfile.url})."
            )
        return path
    looked = [folder / wfile.name for folder in lpips_weight_dirs()]
    for candidate in looked:
        if candidate.is_file():
            return _check_prefix(candidate, wfile)
    if download:
        return _download(wfile)
    raise WeightsError(_missing_message(net, which, wfile, looked))


def _missing_message(net, which, wfile, looked):
    arg = "backbone_weights" if which == "backbone" else "lin_weights"
    origin = "torchvision's ImageNet weights" if which == "backbone" else "the official lpips package (weights/v0.1)"
    return (
        f"LPIPS net={net!r} needs the {which} weights {wfile.name} ({origin}); visionfw ships none. "
        f"Looked in: {'; '.join(map(str, looked))}. Fix: download {wfile.url} into ~/.visionfw/weights/lpips/ "
        f"(or $VISIONFW_WEIGHTS), pass {arg}='path/to/{wfile.name}', or pass download=True."
    )


# --------------------------------------------------------------------------- the metric


class LPIPS:
    """LPIPS v0.1 distance.  ``LPIPS(net)(a, b)`` -> (N,) float32 tensor, lower = more similar.

    Args:
      net: "alex" (the paper's recommended "LPIPS" default) or "vgg".
      backbone_weights, lin_weights: paths of the torchvision backbone and LPIPS lin state
        dicts (``.pth`` or ``.npz``); None -> looked up by their official names (module docstring).
      download: fetch missing files from the official URLs into ``~/.visionfw/weights/lpips``.
      random_weights: random backbone and lin weights (tests only; ``protocol`` then says so).
      seed: seed of the random weights.

    Inputs: NHWC (or HWC) RGB, float in [0, 1] (or uint8); 1-channel images are repeated to RGB.
    Images are used at their size (no resizing); H, W >= 16 (vgg) / 31 (alex).
    """

    def __init__(
        self,
        net: str = "alex",
        backbone_weights: str | Path | None = None,
        lin_weights: str | Path | None = None,
        download: bool = False,
        random_weights: bool = False,
        seed: int = 0,
    ) -> None:
        _net(net)  # DataError for an unknown net before anything is built
        self.net = net
        self.backbone = build_backbone(net)
        if random_weights:
            if backbone_weights is not None or lin_weights is not None:
                raise WeightsError("LPIPS: random_weights=True cannot be combined with weight files.")
            self._lin = self._random_init(seed)
            self.weights = None
        else:
            from visionfw.weights.formats import read_state_dict

            b_path = find_lpips_weights(net, "backbone", backbone_weights, download)
            l_path = find_lpips_weights(net, "lin", lin_weights, download)
            _load_backbone(self.backbone, net, read_state_dict(b_path), str(b_path))
            self._lin = _lin_kernels(net, read_state_dict(l_path), str(l_path))
            self.weights = (b_path, l_path)
        self.random_weights = bool(random_weights)

    def _random_init(self, seed):
        rng = np.random.default_rng(seed)
        for layer in self.backbone.layers:
            if layer.weights:
                kernel, bias = layer.get_weights()
                fan_in = np.prod(kernel.shape[:3])
                layer.set_weights(
                    [
                        rng.normal(0, np.sqrt(2.0 / fan_in), kernel.shape).astype(np.float32),
                        rng.normal(0, 0.01, bias.shape).astype(np.float32),
                    ]
                )
        return [np.abs(rng.normal(0, 1.0 / c, c)).astype(np.float32) for c in _net(self.net).channels]

    @property
    def protocol(self) -> str:
        """How the numbers are measured (every reported LPIPS carries this)."""
        if self.random_weights:
            return f"LPIPS formula with RANDOM {self.net} weights (test only; these numbers are NOT LPIPS)"
        spec = _net(self.net)
        return (
            f"LPIPS v0.1 (Zhang et al. 2018), net={self.net} (torchvision {spec.backbone.name} + lpips "
            f"v0.1/{spec.lin.name}), RGB [0,1] -> [-1,1], full image, no resizing, spatial mean"
        )

    def __call__(self, a: Any, b: Any) -> Any:
        """LPIPS distance of each pair in the batches.

        Args:
          a: NHWC (or HWC) images, as in the class docstring.
          b: the others, same shape.

        Returns:
          A (N,) float32 tensor.
        """
        from keras import ops

        a, b = _prepare(a, self.net), _prepare(b, self.net)
        if tuple(a.shape) != tuple(b.shape):
            raise DataError(f"LPIPS: images differ in shape {tuple(a.shape)} vs {tuple(b.shape)}.")
        feats = self.backbone(ops.concatenate([_scale(a), _scale(b)], axis=0))
        n = ops.shape(a)[0]
        total = 0.0
        for f, lin in zip(feats, self._lin):
            f = f / (ops.sqrt(ops.sum(f * f, axis=-1, keepdims=True)) + _EPS)
            diff = (f[:n] - f[n:]) ** 2
            total = total + ops.mean(ops.sum(diff * lin, axis=-1), axis=(1, 2))
        return total

    def distance(self, a: ArrayLike, b: ArrayLike) -> float | np.ndarray:
        """LPIPS as numpy.

        Args:
          a: an HWC image or NHWC batch (see the class docstring).
          b: the other, same shape.

        Returns:
          A float for an HWC pair; a float64 array (N,) for NHWC batches.
        """
        single = np.ndim(a) == 3
        d = np.asarray(self(a, b), dtype=np.float64)
        return float(d[0]) if single else d


def _prepare(x, net):
    """Any image(s) -> NHWC float32 RGB tensor in [0, 1], size checked."""
    from keras import ops

    from visionfw.metrics.psnr_ssim import to_float01

    arr = ops.convert_to_tensor(x)
    if len(arr.shape) == 3:
        arr = arr[None]
    if len(arr.shape) != 4 or arr.shape[-1] not in (1, 3):
        raise DataError(f"LPIPS: expected NHWC/HWC images with 1 or 3 channels, got shape {tuple(arr.shape)}.")
    if "uint8" in str(arr.dtype):  # a file's pixels
        arr = ops.convert_to_tensor(to_float01(ops.convert_to_numpy(arr)), "float32")
    else:
        arr = ops.cast(arr, "float32")
    if arr.shape[-1] == 1:
        arr = ops.repeat(arr, 3, axis=-1)
    h, w = arr.shape[1], arr.shape[2]
    least = _net(net).min_size
    if h is not None and w is not None and min(h, w) < least:
        raise DataError(f"LPIPS net={net!r}: images of {h}x{w} are too small; every tap needs H, W >= {least}.")
    return arr


def _scale(x):
    from keras import ops

    shift = ops.convert_to_tensor(np.array(LPIPS_SHIFT, np.float32))
    scale = ops.convert_to_tensor(np.array(LPIPS_SCALE, np.float32))
    return (x * 2.0 - 1.0 - shift) / scale


def lpips_distance(a: ArrayLike, b: ArrayLike, net: str = "alex", **kwargs: Any) -> float | np.ndarray:
    """One-shot ``LPIPS(net, **kwargs).distance(a, b)`` (builds the metric each call).

    Args:
      a: an HWC image or NHWC batch.
      b: the other, same shape.
      net: "alex" or "vgg".
      **kwargs: :class:`LPIPS`'s other options.

    Returns:
      As :meth:`LPIPS.distance`.
    """
    return LPIPS(net, **kwargs).distance(a, b)
