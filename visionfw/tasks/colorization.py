"""Colorization as classification (Zhang, Isola, Efros, ECCV 2016).

* CIE Lab from sRGB (D65, 2 degree observer), in numpy and TensorFlow: :func:`rgb_to_lab`,
  :func:`lab_to_rgb`.  L in [0, 100], a and b roughly in [-128, 127].
* Output space: the ab plane on a grid of 10, keeping the *in-gamut* cells.  A cell is the
  square ``centre +- 5`` around a multiple of 10; it is kept when the ab of at least one 8-bit
  sRGB colour falls in it.  The projection of the gamut solid onto ab equals the projection
  of its boundary, so the 6 faces of the RGB cube (6 x 256^2 colours) suffice; they give the
  same cells as all 256^3 colours.  Our count is **Q = 261**, not the paper's 313: the paper's
  ``pts_in_hull`` set is a looser superset (it spans b up to +100 and includes cells that no
  sRGB colour reaches under this Lab; its exact gamut test is not published; all 261 of ours
  are among its 313).  The networks take ``n_bins``: ``n_bins=313`` builds the paper's exact
  head, trained and decoded with the official centres (``ab_bins('official')``, read from the
  authors' ``pts_in_hull.npy`` on the data search path).
* Soft encoding: each ab goes to its 5 nearest bin centres with Gaussian weights (sigma 5),
  normalised to sum 1.
* Class rebalancing: ``w = ((1 - lambda) p~ + lambda / Q)^-1`` with lambda 0.5, p~ the empirical
  nearest-bin distribution of the training ab smoothed by a Gaussian (sigma 5) over the bin
  centres, normalised so ``sum_q p~_q w_q = 1``.  A pixel's weight is that of its nearest bin.
* Decoding: annealed mean ``softmax(log z / T)`` at T = 0.38, averaged over the bin centres.
* Metrics: RGB PSNR (uint8-quantised result vs the original, no shave) and the AuC of the
  ab accuracy: for thresholds t = 0..150 (step 1), the fraction of pixels whose ab (L2)
  error is <= t, averaged over the 151 thresholds (1.0 = perfect).
"""

from __future__ import annotations

import functools
import math

import numpy as np
import tensorflow as tf

from visionfw.data.image_io import to_float01, to_uint8
from visionfw.errors import ConfigError, DataError
from visionfw.tasks.base import Task, hr_of, register_task
from visionfw.tasks.options import typed_options

__all__ = [
    "rgb_to_lab",
    "lab_to_rgb",
    "ab_bins",
    "bins_for",
    "N_AB_BINS",
    "soft_encode",
    "soft_encode_np",
    "nearest_bin",
    "empirical_distribution",
    "rebalance_weights",
    "annealed_mean",
    "ab_auc",
    "rgb_psnr",
    "ColorizeObjective",
    "ColorizeTask",
    "sample_ab",
    "colorize",
]

# sRGB (linear) -> XYZ, D65; and the D65 reference white
_RGB_TO_XYZ = np.array(
    [[0.4124564, 0.3575761, 0.1804375], [0.2126729, 0.7151522, 0.0721750], [0.0193339, 0.1191920, 0.9503041]]
)
_XYZ_TO_RGB = np.linalg.inv(_RGB_TO_XYZ)
_WHITE = np.array([0.95047, 1.0, 1.08883])
_DELTA = 6.0 / 29.0
GRID = 10.0
N_AB_BINS = 261  # derived by ab_bins(); tests check it
SOFT_NEIGHBOURS = 5
SOFT_SIGMA = 5.0
REBALANCE_LAMBDA = 0.5
ANNEAL_T = 0.38


def _is_tf(x):
    return isinstance(x, (tf.Tensor, tf.Variable))


def _check3(img, fn):
    if img.shape[-1] != 3:
        raise DataError(f"{fn}: expected channels-last images with 3 channels, got shape {tuple(img.shape)}.")


def rgb_to_lab(rgb):
    """sRGB in [0, 1] (HWC/NHWC, numpy or tf) -> Lab (L in [0, 100]); same kind out, float32."""
    _check3(rgb, "rgb_to_lab")
    if _is_tf(rgb):
        x = tf.cast(rgb, tf.float32)
        lin = tf.where(x <= 0.04045, x / 12.92, tf.pow((tf.maximum(x, 0.04045) + 0.055) / 1.055, 2.4))
        xyz = tf.tensordot(lin, tf.constant((_RGB_TO_XYZ / _WHITE[:, None]).T, tf.float32), axes=1)
        f = tf.where(xyz > _DELTA**3, tf.pow(tf.maximum(xyz, _DELTA**3), 1.0 / 3.0), xyz / (3 * _DELTA**2) + 4.0 / 29.0)
        return tf.stack(
            [116.0 * f[..., 1] - 16.0, 500.0 * (f[..., 0] - f[..., 1]), 200.0 * (f[..., 1] - f[..., 2])], axis=-1
        )
    x = np.asarray(rgb, np.float64)
    lin = np.where(x <= 0.04045, x / 12.92, ((np.maximum(x, 0.04045) + 0.055) / 1.055) ** 2.4)
    xyz = lin @ (_RGB_TO_XYZ / _WHITE[:, None]).T
    f = np.where(xyz > _DELTA**3, np.cbrt(xyz), xyz / (3 * _DELTA**2) + 4.0 / 29.0)
    lab = np.stack([116.0 * f[..., 1] - 16.0, 500.0 * (f[..., 0] - f[..., 1]), 200.0 * (f[..., 1] - f[..., 2])], -1)
    return lab.astype(np.float32)


def lab_to_rgb(lab):
    """Lab -> sRGB in [0, 1] (clipped), numpy or tf, float32."""
    _check3(lab, "lab_to_rgb")
    if _is_tf(lab):
        x = tf.cast(lab, tf.float32)
        fy = (x[..., 0] + 16.0) / 116.0
        f = tf.stack([fy + x[..., 1] / 500.0, fy, fy - x[..., 2] / 200.0], axis=-1)
        xyz = tf.where(f > _DELTA, f**3, 3 * _DELTA**2 * (f - 4.0 / 29.0)) * tf.constant(_WHITE, tf.float32)
        lin = tf.tensordot(xyz, tf.constant(_XYZ_TO_RGB.T, tf.float32), axes=1)
        rgb = tf.where(lin <= 0.0031308, 12.92 * lin, 1.055 * tf.pow(tf.maximum(lin, 0.0031308), 1 / 2.4) - 0.055)
        return tf.clip_by_value(rgb, 0.0, 1.0)
    x = np.asarray(lab, np.float64)
    fy = (x[..., 0] + 16.0) / 116.0
    f = np.stack([fy + x[..., 1] / 500.0, fy, fy - x[..., 2] / 200.0], -1)
    xyz = np.where(f > _DELTA, f**3, 3 * _DELTA**2 * (f - 4.0 / 29.0)) * _WHITE
    lin = xyz @ _XYZ_TO_RGB.T
    rgb = np.where(lin <= 0.0031308, 12.92 * lin, 1.055 * np.maximum(lin, 0.0031308) ** (1 / 2.4) - 0.055)
    return np.clip(rgb, 0.0, 1.0).astype(np.float32)


@functools.lru_cache(maxsize=1)
def _ab_bins_cached():
    v = np.arange(256, dtype=np.float64) / 255.0
    g, h = np.meshgrid(v, v, indexing="ij")
    g, h = g.ravel(), h.ravel()
    faces = []
    for axis in range(3):
        for value in (0.0, 1.0):
            cols = [g, h]
            cols.insert(axis, np.full(g.size, value))
            faces.append(np.stack(cols, -1))
    ab = rgb_to_lab(np.concatenate(faces))[:, 1:].astype(np.float64)
    cells = np.unique(np.round(ab / GRID).astype(np.int64), axis=0)
    return (cells * GRID).astype(np.float32)


OFFICIAL_BINS_FILE = "colorization/pts_in_hull.npy"  # under a weights folder of the data search path


def ab_bins(source="derived", data_dir=None):
    """(Q, 2) float32 ab bin centres.

    ``source='derived'``: the in-gamut cells of our gamut test (Q = 261, sorted by a then b).
    ``source='official'``: the paper's 313 centres, read from ``weights/colorization/pts_in_hull.npy``
    on the data search path (:mod:`visionfw.data.paths`) or from ``source`` given as a path.  The
    261 derived cells are all among the official 313 (tested); the other 52 lie where no 8-bit
    sRGB colour reaches under this Lab, so the official set cannot be derived from the gamut alone
    (it is not shipped either: it is the authors' file).
    """
    if source == "derived":
        return _ab_bins_cached().copy()
    if source == "official":
        from visionfw.data.paths import find

        path = find("weights", OFFICIAL_BINS_FILE, data_dir, what="the official 313 ab bins (pts_in_hull.npy)")
    else:
        path = source
    try:
        bins = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read the ab bins ({exc}); give a .npy of shape (Q, 2).") from exc
    if bins.ndim != 2 or bins.shape[1] != 2:
        raise DataError(f"{path}: ab bins must have shape (Q, 2), got {bins.shape}.")
    return bins.astype(np.float32)


def bins_for(n_outputs, data_dir=None):
    """The bins a colorization head of ``n_outputs`` classes was built for (261: derived, 313: official)."""
    if n_outputs == N_AB_BINS:
        return ab_bins("derived")
    if n_outputs == 313:
        return ab_bins("official", data_dir)
    raise ConfigError(
        f"a colorization head with {n_outputs} classes matches neither the derived {N_AB_BINS} "
        "bins nor the official 313; pass bins= explicitly."
    )


def nearest_bin(ab, bins):
    """Index of the nearest bin centre for each ab (numpy, ``(..., 2)`` -> ``(...)``)."""
    ab = np.asarray(ab, np.float32)
    bins = np.asarray(bins, np.float32)
    flat = ab.reshape(-1, 2)
    # Fast path for grid bins: the nearest centre is the rounded cell when that cell is kept.
    cells = np.round(bins / GRID).astype(np.int64)
    out = np.full(len(flat), -1, np.int64)
    if np.allclose(cells * GRID, bins):
        lo = cells.min(0)
        size = cells.max(0) - lo + 1
        table = np.full(size, -1, np.int64)
        table[cells[:, 0] - lo[0], cells[:, 1] - lo[1]] = np.arange(len(bins))
        c = np.round(flat / GRID).astype(np.int64) - lo
        inside = np.all((c >= 0) & (c < size), axis=1)
        out[inside] = table[c[inside, 0], c[inside, 1]]
    rest = np.flatnonzero(out < 0)
    for chunk in np.array_split(rest, max(1, len(rest) // 65536)):
        if len(chunk):
            out[chunk] = ((flat[chunk, None, :] - bins) ** 2).sum(-1).argmin(-1)
    return out.reshape(ab.shape[:-1])


def soft_encode_np(ab, bins, k=SOFT_NEIGHBOURS, sigma=SOFT_SIGMA):
    """numpy soft encoding ``(..., 2)`` -> ``(..., Q)``: k nearest bins, Gaussian weights, sum 1."""
    ab = np.asarray(ab, np.float64)
    d2 = ((ab[..., None, :] - np.asarray(bins, np.float64)) ** 2).sum(-1)
    idx = np.argsort(d2, axis=-1)[..., :k]
    w = np.exp(-np.take_along_axis(d2, idx, -1) / (2 * sigma**2))
    w /= w.sum(-1, keepdims=True)
    out = np.zeros(d2.shape)
    np.put_along_axis(out, idx, w, -1)
    return out.astype(np.float32)


def soft_encode(ab, bins, k=SOFT_NEIGHBOURS, sigma=SOFT_SIGMA):
    """TensorFlow soft encoding (same as :func:`soft_encode_np`), for the training loss."""
    ab = tf.cast(ab, tf.float32)
    c = tf.constant(bins, tf.float32)
    d2 = tf.reduce_sum(tf.square(ab[..., None, :] - c), axis=-1)
    neg, idx = tf.math.top_k(-d2, k=k)
    w = tf.nn.softmax(neg / (2 * sigma**2), axis=-1)  # exp(-d2/2s^2) normalised
    return tf.reduce_sum(tf.one_hot(idx, len(bins), dtype=tf.float32) * w[..., None], axis=-2)


def empirical_distribution(ab_samples, bins, sigma=SOFT_SIGMA):
    """Smoothed empirical bin distribution p~ of ab samples ``(N, 2)`` (sums to 1)."""
    ab_samples = np.asarray(ab_samples, np.float32).reshape(-1, 2)
    if ab_samples.size == 0:
        raise DataError("empirical_distribution: no ab samples given.")
    counts = np.bincount(nearest_bin(ab_samples, bins), minlength=len(bins)).astype(np.float64)
    p = counts / counts.sum()
    d2 = ((bins[:, None, :] - bins[None, :, :]) ** 2).sum(-1).astype(np.float64)
    kernel = np.exp(-d2 / (2 * sigma**2))
    smooth = kernel @ p
    return smooth / smooth.sum()


def rebalance_weights(p, lam=REBALANCE_LAMBDA):
    """Class weights ``((1-lam) p + lam/Q)^-1`` normalised so that ``sum p w = 1``."""
    p = np.asarray(p, np.float64)
    if not 0.0 <= lam <= 1.0:
        raise ConfigError(f"rebalance_weights: lambda={lam} must lie in [0, 1].")
    w = 1.0 / ((1.0 - lam) * p + lam / len(p))
    return (w / np.sum(p * w)).astype(np.float32)


def annealed_mean(probs, bins, t=ANNEAL_T):
    """ab from bin probabilities ``(..., Q)``: mean of ``softmax(log z / T)`` over the centres."""
    if _is_tf(probs):
        logz = tf.math.log(tf.maximum(tf.cast(probs, tf.float32), 1e-12)) / t
        z = tf.nn.softmax(logz, axis=-1)
        return tf.tensordot(z, tf.constant(bins, tf.float32), axes=1)
    logz = np.log(np.maximum(np.asarray(probs, np.float64), 1e-12)) / t
    logz -= logz.max(-1, keepdims=True)
    z = np.exp(logz)
    z /= z.sum(-1, keepdims=True)
    return (z @ np.asarray(bins, np.float64)).astype(np.float32)


def ab_auc(pred_ab, true_ab, max_threshold=150):
    """AuC of the ab accuracy: mean over t = 0..max_threshold of P(||ab error||_2 <= t), in [0, 1]."""
    err = np.sqrt(((np.asarray(pred_ab, np.float64) - np.asarray(true_ab, np.float64)) ** 2).sum(-1)).ravel()
    thresholds = np.arange(0, max_threshold + 1)
    acc = (err[None, :] <= thresholds[:, None]).mean(axis=1)
    return float(acc.mean())


def rgb_psnr(pred, true):
    """PSNR over all RGB channels of two [0, 1] images after rounding both to uint8, no shave."""
    a = to_uint8(np.asarray(pred, np.float64)).astype(np.float64)
    b = to_uint8(np.asarray(true, np.float64)).astype(np.float64)
    mse = np.mean((a - b) ** 2)
    return float("inf") if mse == 0 else float(10 * math.log10(255.0**2 / mse))


# --------------------------------------------------------------------------- training objective


def _avg_pool_ab(ab, factor):
    """ab at the network's output resolution (1/factor), by averaging factor x factor blocks."""
    if factor == 1:
        return ab
    return tf.nn.avg_pool2d(ab, factor, factor, "VALID")


class ColorizeObjective:
    """Class-rebalanced multinomial cross-entropy on soft-encoded ab at the output resolution.

    ``compute_loss(model, batch, training)``: ``batch`` is an NHWC RGB batch in [0, 1] (or the
    pipeline's ``(hr,)`` tuple, see :func:`visionfw.tasks.base.hr_of`); the model takes L
    (N, H, W, 1) in [0, 100] and returns bin probabilities at (H/f, W/f, Q).
    """

    def __init__(self, bins, weights=None, factor=4):
        self.bins = np.asarray(bins, np.float32)
        q = len(self.bins)
        self.weights = tf.constant(np.ones(q, np.float32) if weights is None else weights, tf.float32)
        if int(self.weights.shape[0]) != q:
            raise ConfigError(f"ColorizeObjective: {self.weights.shape[0]} weights for {q} bins.")
        self.factor = int(factor)

    def compute_loss(self, model, batch, training):
        rgb = tf.cast(hr_of(batch), tf.float32)
        lab = rgb_to_lab(rgb)
        probs = tf.cast(model(lab[..., :1], training=training), tf.float32)
        ab = _avg_pool_ab(lab[..., 1:], self.factor)
        target = soft_encode(ab, self.bins)
        pixel_w = tf.gather(self.weights, tf.argmax(target, axis=-1))
        ce = -tf.reduce_sum(target * tf.math.log(tf.maximum(probs, 1e-8)), axis=-1)
        loss = tf.reduce_mean(pixel_w * ce)
        return loss, {"ce": tf.reduce_mean(ce)}


class ColorizeTask(Task):
    """``visionfw train --task=colorize``: Zhang et al.'s loss on RGB patches of the shared input
    pipeline (``config.train_data``, or the embedded photos when it is None).

    The rebalancing weights come from the same training images (smoothed bin distribution of
    their ab at the output resolution); ``config.task_options`` may set ``lam`` (default 0.5).
    The cross-entropy without the weights is logged as ``train_ce``.
    """

    name = "colorize"
    metric_names = ("ce",)

    def __init__(self, config):
        super().__init__(config)
        self._objective = None

    def _training_images(self):
        """The training images as float32 RGB in [0, 1], read by the pipeline's own loader."""
        from visionfw.data.pipeline import load_train_images

        source = self.config.train_data
        if source is not None and str(source).lower().endswith((".h5", ".hdf5")):
            raise ConfigError(
                f"task colorize needs a folder of RGB images as train_data (or None for the "
                f"embedded photos), not the patch file {source}."
            )
        _, images, _ = load_train_images(self.hr_data_config(int(self.config.lr_patch)))
        return [to_float01(im) for im in images]

    @property
    def objective(self):
        if self._objective is None:
            opts = typed_options(getattr(self.config, "task_options", None), {"lam": float}, "colorize")
            # the bins follow the model's head: 261 derived, 313 the paper's (model_kwargs n_bins=313)
            bins = bins_for(int(self.spec()["meta"]["n_bins"]), self.config.data_dir)
            p = empirical_distribution(sample_ab(self._training_images(), 4), bins)
            self._objective = ColorizeObjective(bins, rebalance_weights(p, opts.get("lam", REBALANCE_LAMBDA)))
        return self._objective

    def make_dataset(self, start_step=0):
        self.objective  # noqa: B018 - built here, eagerly, not while the training step is traced
        return self.hr_patch_dataset(int(self.config.lr_patch), start_step)

    def compute_loss(self, model, batch, training):
        return self.objective.compute_loss(model, batch, training)


register_task("colorize", ColorizeTask)


def sample_ab(images, factor=4, max_pixels=2_000_000, seed=0):
    """ab values of RGB images at 1/factor resolution (block means), for the bin distribution."""
    out = []
    for img in images:
        h, w = (img.shape[0] // factor) * factor, (img.shape[1] // factor) * factor
        ab = rgb_to_lab(img[:h, :w])[..., 1:]
        ab = ab.reshape(h // factor, factor, w // factor, factor, 2).mean(axis=(1, 3))
        out.append(ab.reshape(-1, 2))
    ab = np.concatenate(out)
    if len(ab) > max_pixels:
        ab = ab[np.random.default_rng(seed).choice(len(ab), max_pixels, replace=False)]
    return ab


# --------------------------------------------------------------------------- inference


def colorize(model, rgb_or_l, bins=None, t=ANNEAL_T):
    """Colourise one image: HWC RGB in [0, 1] (its L is used) or HW1 L in [0, 100] -> RGB in [0, 1].

    H and W must be multiples of 8 (the network's stride).  The predicted ab (annealed mean at
    1/4 resolution) is bilinearly upsampled and recombined with the input L.
    """
    bins = bins_for(int(model.output_shape[-1])) if bins is None else bins
    x = np.asarray(rgb_or_l, np.float32)
    lum = rgb_to_lab(x)[..., :1] if x.shape[-1] == 3 else x
    h, w = lum.shape[:2]
    if h % 8 or w % 8:
        raise DataError(f"colorize: image size {h}x{w} must be a multiple of 8; crop it first.")
    probs = model(lum[None], training=False)
    ab = annealed_mean(probs, bins, t)
    ab = tf.image.resize(ab, (h, w), method="bilinear")[0].numpy()
    return lab_to_rgb(np.concatenate([lum, ab], -1))
