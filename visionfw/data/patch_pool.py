"""A device-resident pool of equal-size HR training patches, for the samplers of :mod:`visionfw.data.sampling`."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import tensorflow as tf

from visionfw.data.sampling import compute_pic
from visionfw.data.types import TensorLike
from visionfw.errors import DataError

__all__ = ["PatchPool"]


class PatchPool(tf.Module):
    """A device-resident pool of equal-size HR training patches.

    Two storages, same ``gather``:

    * :meth:`from_patches`: pre-extracted uint8 patches ``[N, h, w, C]``.  Memory
      ``N*h*w*C`` bytes (10^5 patches of 96x96x3 = 2.8 GB) -- fine up to ~10^5.
    * :meth:`from_images`: the HR images, zero-padded into one uint8 tensor
      ``[M, Hmax, Wmax, C]``, plus int32 crop coordinates ``(y, x, image_id)`` per patch
      (12 bytes/patch: 10^6 patches = 12 MB on top of the images, e.g. DIV2K train
      800 images ~ 6.6 GB padded).  ``gather`` builds the index grid of every crop and
      uses one ``tf.gather_nd``.

    ``gather(indices)`` returns ``(lr, hr)`` float32 NHWC in [0, 1]; ``lr =
    downscale_fn(hr)`` (a TF function, e.g. the project's MATLAB bicubic), or ``lr =
    None`` when no ``downscale_fn`` was given.
    """

    def __init__(
        self,
        patch_size: int | tuple[int, int],
        downscale_fn: Callable | None = None,
        *,
        patches: tf.Tensor | None = None,
        images: tf.Tensor | None = None,
        coords: tf.Tensor | None = None,
        name: str | None = None,
    ):
        super().__init__(name=name)
        h, w = (patch_size, patch_size) if isinstance(patch_size, int) else tuple(patch_size)
        self.patch_size = (int(h), int(w))
        self.downscale_fn = downscale_fn
        self._patches = None
        self._images = None
        if patches is not None:
            self._patches = patches
            self.num_patches = int(patches.shape[0])
        else:
            if images is None or coords is None:
                raise DataError("PatchPool needs patches=, or images= and coords=; use from_patches/from_images.")
            self._images = images
            self._coords = coords
            self.num_patches = int(coords.shape[0])
            self._grid_y = tf.range(h, dtype=tf.int32)
            self._grid_x = tf.range(w, dtype=tf.int32)

    @classmethod
    def from_patches(cls, patches: TensorLike, downscale_fn: Callable | None = None) -> PatchPool:
        """Pool of pre-extracted patches.

        Args:
            patches: uint8 ``[N, h, w, C]``.
            downscale_fn: makes the LR batch from the HR one in :meth:`gather`, or None.

        Returns:
            The pool.
        """
        arr = tf.convert_to_tensor(patches)
        if arr.dtype != tf.uint8 or arr.shape.rank != 4:
            raise DataError(f"patches must be uint8 [N, h, w, C], got {arr.dtype.name} {arr.shape}")
        return cls(tuple(arr.shape[1:3]), downscale_fn, patches=arr)

    @classmethod
    def from_images(
        cls,
        images: Sequence,
        coords: TensorLike,
        patch_size: int | tuple[int, int],
        downscale_fn: Callable | None = None,
    ) -> PatchPool:
        """Pool of crops ``coords[i] = (y, x, image_id)`` of size ``patch_size`` from ``images``.

        Args:
            images: a list of uint8 HWC arrays (sizes may differ) or one uint8 ``[M, H, W, C]`` array.
            coords: ``(N, 3)`` ints; every crop must lie inside its (unpadded) image.
            patch_size: side, or (h, w).
            downscale_fn: as in :meth:`from_patches`.

        Returns:
            The pool.
        """
        h, w = (patch_size, patch_size) if isinstance(patch_size, int) else tuple(patch_size)
        imgs = [np.asarray(im) for im in images]
        if not imgs or any(im.dtype != np.uint8 or im.ndim != 3 for im in imgs):
            raise DataError("images must be a non-empty list of uint8 HWC arrays")
        chans = {im.shape[2] for im in imgs}
        if len(chans) != 1:
            raise DataError(f"images have different channel counts {sorted(chans)}; convert them first")
        coords = np.asarray(coords, dtype=np.int64).reshape(-1, 3)
        sizes = np.array([im.shape[:2] for im in imgs])
        ids = coords[:, 2]
        if ids.min() < 0 or ids.max() >= len(imgs):
            raise DataError(f"coords image_id out of range [0, {len(imgs)})")
        bad = (
            (coords[:, 0] < 0)
            | (coords[:, 1] < 0)
            | (coords[:, 0] + h > sizes[ids, 0])
            | (coords[:, 1] + w > sizes[ids, 1])
        )
        if bad.any():
            raise DataError(
                f"{int(bad.sum())} crops of size {h}x{w} fall outside their image "
                f"(first: coords[{int(np.argmax(bad))}]); clamp the coordinates"
            )
        hmax, wmax = sizes.max(axis=0)
        padded = np.zeros((len(imgs), hmax, wmax, chans.pop()), np.uint8)
        for i, im in enumerate(imgs):
            padded[i, : im.shape[0], : im.shape[1]] = im
        return cls((h, w), downscale_fn, images=tf.constant(padded), coords=tf.constant(coords.astype(np.int32)))

    @staticmethod
    def random_coords(
        image_sizes: TensorLike, patch_size: int | tuple[int, int], num_patches: int, seed: int = 0
    ) -> np.ndarray:
        """``num_patches`` uniformly random crop coordinates ``(y, x, image_id)``, int32.

        Images are picked with probability proportional to their number of crop
        positions, so every position of every image is equally likely.

        Args:
            image_sizes: ``(M, 2)`` (height, width) of the images.
            patch_size: side, or (h, w).
            num_patches: how many crops.
            seed: numpy seed.

        Returns:
            ``(num_patches, 3)`` int32 coordinates.
        """
        h, w = (patch_size, patch_size) if isinstance(patch_size, int) else tuple(patch_size)
        sizes = np.asarray(image_sizes, dtype=np.int64).reshape(-1, 2)
        positions = np.maximum(sizes[:, 0] - h + 1, 0) * np.maximum(sizes[:, 1] - w + 1, 0)
        if positions.sum() == 0:
            raise DataError(f"no image is at least {h}x{w}; use a smaller patch_size")
        rng = np.random.default_rng(seed)
        ids = rng.choice(len(sizes), size=num_patches, p=positions / positions.sum())
        ys = rng.integers(0, sizes[ids, 0] - h + 1)
        xs = rng.integers(0, sizes[ids, 1] - w + 1)
        return np.stack([ys, xs, ids], axis=1).astype(np.int32)

    def gather_hr(self, indices: TensorLike) -> tf.Tensor:
        """HR patches ``[k, h, w, C]`` float32 in [0, 1] of the ``(k,)`` ``indices``."""
        indices = tf.cast(indices, tf.int32)
        if self._patches is not None:
            hr = tf.gather(self._patches, indices)
        else:
            c = tf.gather(self._coords, indices)  # (k, 3)
            ys = c[:, 0:1] + self._grid_y[None, :]  # (k, h)
            xs = c[:, 1:2] + self._grid_x[None, :]  # (k, w)
            h, w = self.patch_size
            k = tf.shape(indices)[0]
            grid = tf.stack(
                [
                    tf.broadcast_to(c[:, 2, None, None], [k, h, w]),
                    tf.broadcast_to(ys[:, :, None], [k, h, w]),
                    tf.broadcast_to(xs[:, None, :], [k, h, w]),
                ],
                axis=-1,
            )
            hr = tf.gather_nd(self._images, grid)
        return tf.cast(hr, tf.float32) / 255.0

    def gather(self, indices: TensorLike) -> tuple[tf.Tensor | None, tf.Tensor]:
        """``(lr, hr)`` float32 batches for ``indices``; ``lr`` is None without downscale_fn."""
        hr = self.gather_hr(indices)
        lr = self.downscale_fn(hr) if self.downscale_fn is not None else None
        return lr, hr

    def compute_pic(self, batch_size: int = 1024, use_lr: bool = True) -> np.ndarray:
        """PIC of every pool patch (of its LR version when ``use_lr`` and a downscale_fn exist).

        Args:
            batch_size: patches per graph call.
            use_lr: score the LR patches (when there is a downscale_fn) rather than the HR ones.

        Returns:
            ``(N,)`` PIC values.
        """
        use_lr = use_lr and self.downscale_fn is not None

        @tf.function
        def chunk(idx):
            lr, hr = self.gather(idx) if use_lr else (None, self.gather_hr(idx))
            return compute_pic(lr if use_lr else hr)

        out = []
        for start in range(0, self.num_patches, batch_size):
            idx = tf.range(start, min(start + batch_size, self.num_patches), dtype=tf.int32)
            out.append(chunk(idx).numpy())
        return np.concatenate(out)
