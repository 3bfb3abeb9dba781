"""Training-patch samplers (the patches live in a :class:`visionfw.data.patch_pool.PatchPool`).

Every sampler works on a pool of ``N`` patches addressed by an integer index and
exposes the same four methods (see :class:`Sampler`)::

    indices = sampler.draw(k)            # (k,) int32, pure TF, XLA-compilable
    sampler.update(indices, gains)       # feed back one score per drawn patch
    sampler.probabilities()              # (N,) float32, sums to 1
    sampler.get_config()                 # plain dict; make_sampler(**config) rebuilds it
                                         # (pic: also pass pic_values=; learnt P: checkpoint)

Samplers:

* :class:`UniformSampler` (``'uniform'``): every patch has probability ``1/N``;
  ``update`` is a no-op.
* :class:`PsnrHistSampler` (``'psnr_hist'``): the PSNR-gain histogram rule.  After a
  step on the sample ``S`` each patch ``i`` of ``S`` has a gain
  ``g_i = PSNR(model(LR_i), HR_i) - PSNR(bicubic(LR_i), HR_i)``; the gains of ``S``
  are binned into ``B`` equal-width bins in *ascending* order of gain and

      val(i) = sum_{j = b(i)}^{B} width(j) * f(j)
      P_i    = val(i) / sum_{s in S} val(s) * P_S,        P_S = sum_{s in S} P_s

  so ``S`` keeps its total mass and, because the sum runs from the patch's own bin
  up to the top bin, a **low-gain patch gets the most mass** (bin 1 sums over every
  bin) -- the model is shown more of what it does not yet beat bicubic on.
* :class:`PicSampler` (``'pic'``): BSR's Random Filter Sampling on the patch
  information content (PIC, sum of Sobel gradient magnitudes of the LR patch): the
  pool is split into equal-count PIC intervals and every batch holds a fixed quota
  per interval.

All draws use stateless RNG ops seeded by ``(seed, step counter)`` kept in a
``tf.Variable``, so a sampler can sit inside ``tf.function(jit_compile=True)``
without a host round trip, is reproducible, and checkpoints with
``tf.train.Checkpoint(sampler=sampler)`` (samplers are ``tf.Module``\\ s).

Distribution (``tf.distribute.MirroredStrategy``): create the sampler under
``strategy.scope()``.  Its variables are then mirrored with
``aggregation=ONLY_FIRST_REPLICA``.  Inside ``strategy.run`` every replica draws its own
indices (the replica id is folded into the seed) from the same ``P``; ``update``
first ``all_gather``\\ s the indices and gains of all replicas, so every replica
computes the *identical* update of the global sample, and keeping the first replica's
copy is therefore exact.  This is tested with a plain (non-XLA) ``tf.function``
around ``strategy.run``; the all_gather is not expected to compile under XLA there.
Calling ``update`` in cross-replica context with the concatenated global sample is
equivalent.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import tensorflow as tf

from visionfw.data.types import TensorLike
from visionfw.errors import ConfigError, DataError

__all__ = [
    "Sampler",
    "UniformSampler",
    "PsnrHistSampler",
    "PicSampler",
    "make_sampler",
    "per_patch_psnr_gain",
    "compute_pic",
    "SAMPLERS",
]

_SYNC = dict(
    synchronization=tf.VariableSynchronization.ON_WRITE,
    aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA,
)


# ----------------------------------------------------------------------------- metrics


def per_patch_psnr_gain(
    sr: TensorLike, hr: TensorLike, bicubic: TensorLike, shave: int = 0, eps: float = 1e-10
) -> tf.Tensor:
    """PSNR gain of ``sr`` over ``bicubic`` for every patch, shape ``(K,)`` float32.

    Protocol: RGB (all channels), peak 1.0, inputs NHWC in [0, 1] (``sr`` and
    ``bicubic`` are clipped to [0, 1] first), optional ``shave`` border pixels removed,
    MSE floored at ``eps`` so identical patches give a finite PSNR (100 dB for the
    default eps) instead of inf.  ``bicubic`` is whatever upscaled LR the caller
    passes (the project uses its MATLAB-compatible bicubic).
    """
    hr = tf.cast(hr, tf.float32)
    sr = tf.clip_by_value(tf.cast(sr, tf.float32), 0.0, 1.0)
    bicubic = tf.clip_by_value(tf.cast(bicubic, tf.float32), 0.0, 1.0)
    if shave:
        hr, sr, bicubic = (x[:, shave:-shave, shave:-shave, :] for x in (hr, sr, bicubic))

    def psnr(x):
        mse = tf.reduce_mean(tf.square(x - hr), axis=[1, 2, 3])
        return -10.0 * tf.math.log(tf.maximum(mse, eps)) / math.log(10.0)

    return psnr(sr) - psnr(bicubic)


def compute_pic(patches: TensorLike) -> tf.Tensor:
    """Patch information content: sum of Sobel gradient magnitudes, shape ``(K,)``.

    ``patches`` is NHWC (float in [0, 1], or uint8 which is scaled by 1/255).  The 3x3
    Sobel filters are applied per channel with VALID padding (interior pixels only, so
    a constant patch has PIC exactly 0 and borders add no artificial edges); the
    magnitude ``sqrt(gx^2 + gy^2)`` is summed over pixels and channels.
    """
    x = tf.convert_to_tensor(patches)
    if x.dtype == tf.uint8:
        x = tf.cast(x, tf.float32) / 255.0
    x = tf.cast(x, tf.float32)
    # Sobel as central difference then [1, 2, 1] smoothing (separable), written with
    # slices: a constant region gives exactly 0 (a conv kernel sum need not, in float32).
    dx = x[:, :, 2:, :] - x[:, :, :-2, :]  # (N, H, W-2, C)
    gx = dx[:, :-2] + 2.0 * dx[:, 1:-1] + dx[:, 2:]  # (N, H-2, W-2, C)
    dy = x[:, 2:, :, :] - x[:, :-2, :, :]  # (N, H-2, W, C)
    gy = dy[:, :, :-2] + 2.0 * dy[:, :, 1:-1] + dy[:, :, 2:]  # (N, H-2, W-2, C)
    return tf.reduce_sum(tf.sqrt(gx * gx + gy * gy), axis=[1, 2, 3])


# ----------------------------------------------------------------------------- samplers


def _replica_info():
    """(replica id, number of replicas) of the current replica context, or (0, 1)."""
    ctx = tf.distribute.get_replica_context()
    if ctx is None:  # cross-replica context: behave like a single replica
        return 0, 1
    return ctx.replica_id_in_sync_group, ctx.num_replicas_in_sync


def _check_positive_int(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ConfigError(f"{name}={value!r} must be a positive integer")
    return int(value)


class Sampler(tf.Module):
    """Base class: seeded stateless draws over ``N`` patches.

    The base behaviour is uniform sampling (with replacement: stateless uniform ints;
    without: top-k of uniform noise).  Subclasses override :meth:`draw`,
    :meth:`probabilities`, :meth:`get_config` and, where the sampler learns,
    :meth:`update`.  Variables are mirrored ``ONLY_FIRST_REPLICA`` under a strategy
    scope (see the module docstring).
    """

    name_key = "base"

    def __init__(self, num_patches: int, replacement: bool = True, seed: int | None = None):
        super().__init__()
        self.num_patches = _check_positive_int(num_patches, "num_patches")
        self.replacement = bool(replacement)
        if seed is None:
            seed = int(np.random.SeedSequence().generate_state(1)[0] & 0x7FFFFFFF)
        self.seed = int(seed)
        # One counter tick per draw; replica id is folded in so replicas differ.
        self._step = tf.Variable(tf.constant(0, tf.int64), trainable=False, name="draw_step", **_SYNC)

    # -- rng
    def _next_seed(self):
        """(stateless seed for this replica's draw, draw number) and tick the counter."""
        replica_id, num_replicas = _replica_info()
        step = self._step.read_value()
        self._step.assign_add(1)
        stream = step * num_replicas + tf.cast(replica_id, tf.int64)
        return tf.stack([tf.constant(self.seed, tf.int64), stream]), step

    def _check_k(self, k):
        if isinstance(k, (int, np.integer)):
            if k < 1:
                raise ConfigError(f"draw(k={k}) needs k >= 1")
            if not self.replacement and k > self.num_patches:
                raise ConfigError(
                    f"draw(k={k}) without replacement needs k <= num_patches={self.num_patches}; "
                    "use replacement=True or a larger pool"
                )

    # -- interface
    def draw(self, k: int) -> tf.Tensor:
        """Draw patch indices.

        Args:
            k: how many (a Python int or a scalar int tensor).

        Returns:
            int32 ``(k,)`` indices into the pool.
        """
        self._check_k(k)
        seed, _ = self._next_seed()
        if self.replacement:
            return tf.random.stateless_uniform([k], seed=seed, minval=0, maxval=self.num_patches, dtype=tf.int32)
        # Gumbel top-k of equal logits = uniform without replacement.
        noise = tf.random.stateless_uniform([self.num_patches], seed=seed)
        return tf.math.top_k(noise, k=k, sorted=False).indices

    def update(self, indices: TensorLike, gains: TensorLike) -> tf.Operation:
        """Feed back one score per drawn patch; the base sampler ignores it.

        Args:
            indices: the ``(k,)`` indices :meth:`draw` returned.
            gains: ``(k,)`` scores, e.g. :func:`per_patch_psnr_gain`.

        Returns:
            The update op (eagerly: already run).
        """
        return tf.no_op()

    def probabilities(self) -> tf.Tensor:
        """The ``(N,)`` float32 sampling probabilities (sum 1)."""
        return tf.fill([self.num_patches], 1.0 / self.num_patches)

    def get_config(self) -> dict:
        """Plain dict; ``make_sampler(**config)`` rebuilds the sampler (pic: also pass ``pic_values=``)."""
        return {
            "name": self.name_key,
            "num_patches": self.num_patches,
            "replacement": self.replacement,
            "seed": self.seed,
        }


class UniformSampler(Sampler):
    """Every patch equally likely; ``update`` does nothing."""

    name_key = "uniform"


class PsnrHistSampler(Sampler):
    """The PSNR-gain histogram sampler (see the module docstring for the rule).

    Args:
      num_patches: pool size ``N`` (tested up to 10^6; the state is one float32 (N,)
        vector).
      bins: histogram bins ``B``.
      replacement: ``draw`` with replacement (two-level float64 inverse CDF with a
        stateless uniform: O(N) memory-bound reads + O(k sqrt N)) or without (Gumbel
        top-k on ``log P``: O(N) noise + top-k, slower on CPU for N = 10^6).
      floor: probability floor as a fraction of ``1/N`` (0 <= floor <= 1).  With
        ``floor > 0`` the updated sample gets ``P_i = floor/N + (P_S - |S| floor/N) *
        val(i)/Agg``: the floor is reserved inside the sample's own mass, so no patch
        starves, ``P_S`` is still preserved exactly and no global renormalisation
        (an O(N) pass) is ever needed.  ``floor=0`` is the plain rule.
      init: ``'uniform'`` or an (N,) array of initial scores, e.g. the bicubic PSNR of
        every patch.  Scores go through the same histogram rule over the whole pool,
        so a lower score gets a higher initial probability.
      seed: RNG seed (int); None picks one.

    Conventions of ``update(indices, gains)``:
      * bins ascend in gain; ``val(i)`` sums ``width * count`` from the bin of ``i`` to
        the top bin, so the lowest gains gain mass.  Bins have equal width
        ``(max g - min g)/B`` (the top edge belongs to the last bin); a gain on an
        inner edge belongs to the upper bin.
      * all gains equal (zero-width histogram): ``val`` is uniform, so the sample's
        mass ``P_S`` is shared equally.
      * duplicates (drawing with replacement): each *unique* index counts once; its
        gain is the mean of its non-NaN gains; ``P_S`` sums each unique index once.
        Every copy is written the same new value, so scatter order is irrelevant.
        (Duplicates are found with a K x K comparison: fine for K up to a few 1000.)
      * NaN/inf gains: ignored; an index whose gains are all non-finite keeps its P
        and is left out of ``P_S`` and the histogram.
      * the probability vector may drift from sum 1 by float rounding over many
        updates; ``draw`` normalises by the total, and :meth:`renormalize` fixes it.
    """

    name_key = "psnr_hist"

    def __init__(
        self,
        num_patches: int,
        bins: int = 10,
        replacement: bool = True,
        floor: float = 0.0,
        init: str | TensorLike = "uniform",
        seed: int | None = None,
    ):
        super().__init__(num_patches, replacement=replacement, seed=seed)
        self.bins = _check_positive_int(bins, "bins")
        floor = float(floor)
        if not 0.0 <= floor <= 1.0:
            raise ConfigError(f"floor={floor} must lie in [0, 1] (a fraction of 1/N)")
        self.floor = floor
        n = self.num_patches
        if isinstance(init, str):
            if init != "uniform":
                raise ConfigError(f"init={init!r}: use 'uniform' or an array of {n} scores")
            p0 = np.full(n, 1.0 / n)
            self._init_kind = "uniform"
        else:
            scores = np.asarray(init, dtype=np.float64).reshape(-1)
            if scores.shape[0] != n:
                raise ConfigError(f"init has {scores.shape[0]} scores but num_patches={n}")
            if not np.all(np.isfinite(scores)):
                raise DataError("init scores contain NaN/inf; pass finite scores (e.g. bicubic PSNR)")
            val = _hist_val_numpy(scores, self.bins)
            p0 = self._floor_abs() + (1.0 - n * self._floor_abs()) * val / val.sum()
            self._init_kind = "scores"
        self._p = tf.Variable(tf.constant(p0, tf.float32), trainable=False, name="probabilities", **_SYNC)

    def _floor_abs(self):
        return self.floor / self.num_patches

    @property
    def variable(self) -> tf.Variable:
        """The raw (N,) float32 probability variable."""
        return self._p

    def probabilities(self) -> tf.Tensor:
        p = self._p.read_value()
        return p / tf.reduce_sum(p)

    def renormalize(self) -> tf.Variable:
        """Rescale P to sum exactly 1 (an O(N) pass; only needed against float drift)."""
        return self._p.assign(self._p / tf.reduce_sum(self._p))

    def draw(self, k: int) -> tf.Tensor:
        self._check_k(k)
        seed, _ = self._next_seed()
        p = self._p.read_value()
        if self.replacement:
            return self._draw_two_level(p, k, seed)
        # Gumbel top-k: argmax of log p + Gumbel noise, k times without repeats.
        u = tf.random.stateless_uniform([self.num_patches], seed=seed, minval=1e-20, maxval=1.0)
        gumbel = -tf.math.log(-tf.math.log(u))
        logits = tf.math.log(tf.maximum(p, 1e-38)) + gumbel
        logits = tf.where(p > 0, logits, tf.fill(tf.shape(logits), -np.inf))
        return tf.math.top_k(logits, k=k, sorted=False).indices

    def _draw_two_level(self, p, k, seed):
        """Inverse-CDF draw with replacement in O(N) reads + O(k sqrt N) work.

        A full cumsum + searchsorted costs O(N) scans plus O(k N) compares under XLA
        (~100 ms at N = 10^6 on CPU).  Instead P is viewed as R rows of C ~ sqrt(N):
        pick a row by the CDF of the row sums, then a patch by the CDF inside the row.
        CDFs are float64 (a float32 CDF over 10^6 entries would bias late patches).
        """
        n = self.num_patches
        cols = max(1, int(math.ceil(math.sqrt(n))))
        rows = -(-n // cols)
        grid = tf.reshape(tf.pad(p, [[0, rows * cols - n]]), [rows, cols])
        # Row sums of ~sqrt(N) terms are accurate in float32 (and 2-3x faster on CPU).
        row_cdf = tf.cumsum(tf.cast(tf.reduce_sum(grid, axis=1), tf.float64))
        u = tf.random.stateless_uniform([2, k], seed=seed, dtype=tf.float64)
        # Stay strictly below the top of each CDF so the pick has positive mass.
        below_one = 1.0 - 1e-12
        target = tf.minimum(u[0], below_one) * row_cdf[-1]
        row = tf.reduce_sum(tf.cast(row_cdf[None, :] <= target[:, None], tf.int32), axis=1)
        row = tf.minimum(row, rows - 1)
        row_start = tf.where(row > 0, tf.gather(row_cdf, tf.maximum(row - 1, 0)), tf.zeros_like(target))
        row_mass = tf.gather(row_cdf, row) - row_start
        frac = tf.clip_by_value((target - row_start) / tf.maximum(row_mass, 1e-300), 0.0, below_one)
        in_row_cdf = tf.cumsum(tf.cast(tf.gather(grid, row), tf.float64), axis=1)  # (k, C)
        in_target = frac * in_row_cdf[:, -1]
        col = tf.reduce_sum(tf.cast(in_row_cdf <= in_target[:, None], tf.int32), axis=1)
        col = tf.minimum(col, cols - 1)
        return tf.minimum(row * cols + col, n - 1)

    def update(self, indices: TensorLike, gains: TensorLike) -> tf.Operation:
        """Apply the histogram rule to the drawn ``indices`` with their ``gains``."""
        indices = tf.cast(tf.reshape(indices, [-1]), tf.int32)
        gains = tf.cast(tf.reshape(gains, [-1]), tf.float32)
        ctx = tf.distribute.get_replica_context()
        if ctx is not None and ctx.num_replicas_in_sync > 1:
            # Every replica updates with the global sample -> identical updates.
            indices = ctx.all_gather(indices, axis=0)
            gains = ctx.all_gather(gains, axis=0)
        new_values = self._new_values(self._p.read_value(), indices, gains)
        return self._p.scatter_update(tf.IndexedSlices(new_values, indices))

    def _new_values(self, p, indices, gains):
        """New P for every position of ``indices`` (copies of one index get one value)."""
        k = tf.shape(indices)[0]
        finite = tf.math.is_finite(gains)
        g0 = tf.where(finite, gains, tf.zeros_like(gains))
        same = tf.equal(indices[:, None], indices[None, :])  # (K, K)
        same_f = tf.cast(same, tf.float32)
        fin_f = tf.cast(finite, tf.float32)
        # Per-position mean gain of its index over finite gains (duplicates merged).
        n_fin = tf.linalg.matvec(same_f, fin_f)
        g_mean = tf.linalg.matvec(same_f, g0 * fin_f) / tf.maximum(n_fin, 1.0)
        # First occurrence of each index: the position that represents it.
        pos = tf.range(k)
        first_pos = tf.reduce_min(tf.where(same, pos[None, :], k), axis=1)
        is_first = tf.equal(first_pos, pos)
        active = tf.logical_and(is_first, n_fin > 0)
        active_f = tf.cast(active, tf.float32)
        n_active = tf.reduce_sum(active_f)

        p_old = tf.gather(p, indices)
        p_s = tf.reduce_sum(p_old * active_f)

        big = tf.constant(np.inf, tf.float32)
        lo = tf.reduce_min(tf.where(active, g_mean, big))
        hi = tf.reduce_max(tf.where(active, g_mean, -big))
        span = hi - lo
        nb = self.bins
        flat = tf.logical_not(span > 0)  # all equal (or nothing active)
        safe_span = tf.where(flat, tf.ones_like(span), span)
        # (g - lo) * B / span keeps a gain on an inner edge exactly on it.
        b = tf.cast(tf.floor((g_mean - lo) * nb / safe_span), tf.int32)
        b = tf.clip_by_value(tf.where(active, b, 0), 0, nb - 1)
        counts = tf.reduce_sum(tf.one_hot(b, nb, dtype=tf.float32) * active_f[:, None], axis=0)
        # count of active gains in bins >= j; equal widths cancel in val / Agg.
        count_ge = tf.cumsum(counts, reverse=True)
        val = tf.where(flat, tf.ones_like(g_mean), tf.gather(count_ge, b)) * active_f
        agg = tf.reduce_sum(val)
        fl = tf.constant(self._floor_abs(), tf.float32)
        free = tf.maximum(p_s - n_active * fl, 0.0)
        p_new = fl + free * val / tf.maximum(agg, 1e-30)
        p_new = tf.where(active, p_new, p_old)
        # Copies take their first occurrence's value so duplicate scatters agree.
        return tf.gather(p_new, first_pos)

    def get_config(self) -> dict:
        cfg = super().get_config()
        # init scores are not part of the config: the learnt state lives in the
        # variable (checkpoint it); the config rebuilds a fresh uniform sampler.
        cfg.update(bins=self.bins, floor=self.floor)
        return cfg


def _hist_val_numpy(scores: np.ndarray, bins: int) -> np.ndarray:
    """Host version of the rule's val() for init scores: count of scores in bins >= own."""
    lo, hi = scores.min(), scores.max()
    if not hi > lo:
        return np.ones_like(scores)
    b = np.clip(np.floor((scores - lo) * bins / (hi - lo)).astype(np.int64), 0, bins - 1)
    count_ge = np.cumsum(np.bincount(b, minlength=bins)[::-1])[::-1]
    return count_ge[b].astype(np.float64)


class PicSampler(Sampler):
    """BSR's Random Filter Sampling by patch information content (PIC).

    The pool's PIC values (:func:`compute_pic` of the LR patches) are sorted (stable,
    ties by index) and cut into ``intervals`` **equal-count** groups: group ``j`` holds
    sorted positions ``[floor(j N / I), floor((j+1) N / I))`` (so group sizes differ by
    at most 1 and equal PIC values may straddle a cut).  A batch of ``k`` gets
    ``k // I`` patches from every group, and the ``k % I`` extra slots go to the groups
    ``o, o+1, ..., o + k%I - 1 (mod I)`` where ``o = (draw number * k) mod I``: a
    deterministic round-robin, so over time every group gets the same share.  Within a
    group patches are drawn uniformly with replacement.  ``update`` is a no-op.

    Slot ``s`` of the returned batch comes from group ``(o + s) mod I`` (useful for
    checking quotas; shuffle if the order matters to you).
    """

    name_key = "pic"

    def __init__(
        self, num_patches: int, pic_values: TensorLike | None = None, intervals: int = 10, seed: int | None = None
    ):
        super().__init__(num_patches, replacement=True, seed=seed)
        self.intervals = _check_positive_int(intervals, "intervals")
        if pic_values is None:
            raise ConfigError(
                "PicSampler needs pic_values=(N,) PIC scores; "
                "compute them with compute_pic() or PatchPool.compute_pic()"
            )
        pic = np.asarray(pic_values, dtype=np.float64).reshape(-1)
        if pic.shape[0] != self.num_patches:
            raise ConfigError(f"pic_values has {pic.shape[0]} entries but num_patches={self.num_patches}")
        if self.intervals > self.num_patches:
            raise ConfigError(f"intervals={self.intervals} exceeds num_patches={self.num_patches}")
        if not np.all(np.isfinite(pic)):
            raise DataError("pic_values contain NaN/inf")
        order = np.argsort(pic, kind="stable").astype(np.int32)
        edges = (np.arange(self.intervals + 1, dtype=np.int64) * self.num_patches) // self.intervals
        self._order = tf.Variable(order, trainable=False, name="pic_order")
        self._starts = tf.Variable(edges[:-1].astype(np.int32), trainable=False, name="starts")
        self._sizes = tf.Variable(np.diff(edges).astype(np.int32), trainable=False, name="sizes")
        self._pic_edges = pic[order][np.minimum(edges, self.num_patches - 1)]

    @property
    def interval_of(self) -> np.ndarray:
        """(N,) interval id of every patch (host array)."""
        ids = np.empty(self.num_patches, np.int32)
        order = self._order.numpy()
        starts = self._starts.numpy()
        sizes = self._sizes.numpy()
        for j, (s, n) in enumerate(zip(starts, sizes)):
            ids[order[s : s + n]] = j
        return ids

    def draw(self, k: int) -> tf.Tensor:
        self._check_k(k)
        if not isinstance(k, (int, np.integer)):
            raise ConfigError("PicSampler.draw(k) needs a Python int batch size")
        seed, draw_no = self._next_seed()
        # Global slot number of this replica's first slot drives the round-robin.
        replica_id, num_replicas = _replica_info()
        total_slots = draw_no * (num_replicas * k) + tf.cast(replica_id, tf.int64) * k
        offset = tf.cast(total_slots % self.intervals, tf.int32)
        group = (offset + tf.range(k, dtype=tf.int32)) % self.intervals
        u = tf.random.stateless_uniform([k], seed=seed)
        sizes = tf.gather(self._sizes, group)
        within = tf.minimum(tf.cast(tf.floor(u * tf.cast(sizes, tf.float32)), tf.int32), sizes - 1)
        return tf.gather(self._order, tf.gather(self._starts, group) + within)

    def probabilities(self) -> tf.Tensor:
        # Long-run marginal: each group gets 1/I of the slots, spread over its members.
        per_group = 1.0 / (self.intervals * tf.cast(self._sizes, tf.float32))
        p_sorted = tf.repeat(per_group, self._sizes)
        return tf.scatter_nd(self._order[:, None], p_sorted, [self.num_patches])

    def get_config(self) -> dict:
        cfg = super().get_config()
        cfg.pop("replacement")
        cfg.update(intervals=self.intervals)  # rebuild with make_sampler(**cfg, pic_values=...)
        return cfg


SAMPLERS = {"uniform": UniformSampler, "psnr_hist": PsnrHistSampler, "pic": PicSampler}


def make_sampler(name: str, num_patches: int, **options: Any) -> Sampler:
    """Build a sampler by name.

    Args:
        name: 'uniform', 'psnr_hist' or 'pic' (a key of :data:`SAMPLERS`).
        num_patches: the pool size N.
        **options: the class's constructor options.

    Returns:
        The sampler.

    Raises:
        ConfigError: an unknown name or bad options.
    """
    try:
        cls = SAMPLERS[name]
    except KeyError:
        raise ConfigError(f"unknown sampler {name!r}; choose one of {sorted(SAMPLERS)}") from None
    try:
        return cls(num_patches, **options)
    except TypeError as err:
        raise ConfigError(f"bad options for sampler {name!r}: {err}") from None
