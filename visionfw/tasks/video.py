"""Frame sequences, task-aware downscaling frame by frame, and a multi-frame SR task for the shared loop.

The thesis' video experiment: a TAD autoencoder's encoder is the downscaler of a video (every frame
on its own), and a video SR model restores the frames from the task-aware LR sequence.  Here:

* sequences are folders of frames (:func:`read_frames`, :func:`write_frames`) or synthetic: sliding
  crops of one large photo as a camera pan (:func:`synthetic_sequence`);
* :func:`downscale_frames` makes the LR sequence with MATLAB bicubic or a TAD encoder, stored as 8 bits;
* :class:`VideoSRTask` (``task='video_sr'``) trains a multi-frame model (``model_defs/video_sr.py``:
  ``frames`` LR frames on channels in, the HR centre frame out) in the shared training loop.  Its
  batches are HR patch sequences cut from the training images by a random pan (``max_motion`` HR
  pixels per frame on each axis), downscaled in the step by the chosen downscaler (a frozen encoder);
* :func:`super_resolve_sequence` and :func:`evaluate_sequence` run and score a model on a sequence.

Task options (``--task_options``): ``downscaler=bicubic`` (default) or the path of a trained TAD
``.keras`` model; ``max_motion=2`` (HR pixels per frame).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow as tf

from visionfw.data.image_io import to_float01
from visionfw.errors import ConfigError, DataError
from visionfw.tasks.base import Task, register_task

__all__ = [
    "read_frames",
    "write_frames",
    "synthetic_sequence",
    "pan_offsets",
    "quantize8",
    "load_downscaler",
    "downscale_frames",
    "stack_window",
    "super_resolve_sequence",
    "evaluate_sequence",
    "VideoSRTask",
]


# --------------------------------------------------------------------------- sequences


def read_frames(folder):
    """The frames of a sequence folder (image files sorted by name) as float32 HWC arrays in [0, 1]."""
    from visionfw.data.image_io import list_images, read_image

    paths = list_images(folder)
    if not paths:
        raise DataError(
            f"read_frames: no image files in {folder}; a sequence is a folder of frames "
            "(frame_0000.png, frame_0001.png, ...)."
        )
    frames = [read_image(p) for p in paths]
    if len({f.shape for f in frames}) != 1:
        raise DataError(
            f"read_frames: the frames of {folder} differ in size "
            f"({sorted({f.shape for f in frames})}); a sequence has one frame size."
        )
    return frames


def write_frames(frames, folder, prefix="frame"):
    """Writes ``frames`` (HWC float [0, 1] or uint8) as ``<prefix>_0000.png`` ...; returns the paths."""
    from visionfw.data.image_io import write_image

    return [write_image(Path(folder) / f"{prefix}_{i:04d}.png", f) for i, f in enumerate(frames)]


def pan_offsets(n_frames, velocity, jitter=0, seed=0):
    """(n_frames, 2) integer top-left offsets of a camera pan: ``t * velocity`` plus a random
    integer jitter in [-jitter, jitter] per frame and axis, shifted so the smallest offset is 0."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(n_frames))[:, None]
    off = np.round(t * np.asarray(velocity, np.float64)[None]).astype(np.int64)
    if jitter:
        off = off + rng.integers(-int(jitter), int(jitter) + 1, off.shape)
    return off - off.min(axis=0, keepdims=True)


def synthetic_sequence(
    image, n_frames=7, *, size=None, velocity=(1, 2), jitter=0, seed=0, multiple_of=1, origin=(0, 0)
):
    """Sliding crops of one large photo, as if a camera panned over it: ``(frames, offsets)``.

    ``size``: (h, w) of a frame (default: the largest that fits the pan), rounded down to a multiple
    of ``multiple_of`` (the SR scale); ``velocity``: HR pixels per frame (dy, dx); ``jitter``: a random
    shake per frame; ``origin``: where the pan's bounding box starts, (y, x) or ``'centre'`` (the
    middle of the photo).  Frames are float32 HWC in [0, 1] (uint8 images are divided by 255);
    ``offsets`` are the frames' top-left corners in the photo.
    """
    img = np.asarray(image)
    img = to_float01(img)
    if img.ndim == 2:
        img = img[..., None]
    off = pan_offsets(n_frames, velocity, jitter, seed)
    span = off.max(axis=0)
    room = (img.shape[0] - span[0], img.shape[1] - span[1])
    h, w = size if size is not None else room
    h, w = (int(h) // multiple_of) * multiple_of, (int(w) // multiple_of) * multiple_of
    if h < 1 or w < 1 or h > room[0] or w > room[1]:
        raise DataError(
            f"synthetic_sequence: frames of {(h, w)} with a pan of {tuple(span)} px do not fit the "
            f"image of {img.shape[:2]}; use a smaller size, fewer frames or a slower velocity."
        )
    if isinstance(origin, str):
        if origin not in ("centre", "center"):
            raise ConfigError(f"synthetic_sequence: origin={origin!r}; use (y, x) or 'centre'.")
        origin = ((room[0] - h) // 2, (room[1] - w) // 2)
    oy, ox = (int(v) for v in origin)
    if not (0 <= oy <= room[0] - h and 0 <= ox <= room[1] - w):
        raise DataError(f"synthetic_sequence: origin {(oy, ox)} puts the pan outside the image of {img.shape[:2]}.")
    off = off + np.array([[oy, ox]])
    return [img[y : y + h, x : x + w] for y, x in off], off


def quantize8(x):
    """Rounds to 8 bits (values in [0, 1]), as a stored frame is."""
    return tf.round(tf.clip_by_value(x, 0.0, 1.0) * 255.0) / 255.0


def load_downscaler(downscaler, scale):
    """``fn(hr NHWC float) -> 8-bit LR`` and a name: ``'bicubic'`` (MATLAB bicubic ``1/scale``) or the path
    of a trained TAD ``.keras`` model (its encoder, frozen; its scale must equal ``scale``)."""
    from visionfw.data.imresize import imresize

    if downscaler in (None, "", "bicubic"):
        return (lambda hr: quantize8(imresize(tf.cast(hr, tf.float32), scale=1.0 / scale))), "bicubic"
    path = Path(str(downscaler))
    if path.suffix != ".keras" or not path.is_file():
        raise ConfigError(
            f"downscaler={downscaler!r}: use 'bicubic' or the path of a trained TAD .keras model "
            "(e.g. runs/tad/model.keras from `visionfw train --task=tad`)."
        )
    import keras

    from visionfw.tasks import tad
    from visionfw.weights.keras_files import verify_keras_file

    verify_keras_file(path)  # truncated, CRC, NaN: said before Keras reads it
    model = keras.saving.load_model(path, safe_mode=True)
    try:
        times = max(1, len(model.get_layer("encoder")._inbound_nodes))  # x4 calls the x2 encoder twice
    except ValueError:
        raise ConfigError(
            f"downscaler={downscaler}: not a TAD model (no 'encoder' sub-model); pass the "
            "model.keras of a `visionfw train --task=tad` run."
        ) from None
    encoder, _ = tad.split_model(model, times)
    encoder.trainable = False
    probe = encoder(np.zeros((1, 8 * scale, 8 * scale, 3), np.float32), training=False)
    if tuple(probe.shape[1:]) != (8, 8, 3):
        raise ConfigError(
            f"downscaler={downscaler}: its encoder maps {8 * scale}x{8 * scale} RGB to "
            f"{tuple(probe.shape[1:])}; the video task at scale {scale} needs an RGB x{scale} TAD "
            f"model (e.g. aetad_skip2 trained with --scale={scale})."
        )
    return (lambda hr: quantize8(encoder(tf.cast(hr, tf.float32), training=False))), f"tad:{path.name}"


def downscale_frames(frames, scale, downscaler="bicubic"):
    """The 8-bit LR sequence of HR ``frames`` (each made on its own): float32 HWC arrays.

    ``downscaler``: 'bicubic', a TAD ``.keras`` path, or a function from :func:`load_downscaler`.
    """
    fn = downscaler if callable(downscaler) else load_downscaler(downscaler, scale)[0]
    return [np.asarray(fn(np.asarray(f, np.float32)[None]))[0] for f in frames]


def stack_window(lr_frames, index, window=3):
    """The ``window`` frames centred on ``index`` concatenated on channels (frame-major); the first and
    last frames are repeated at the sequence's ends."""
    c = window // 2
    picks = [min(max(index + k - c, 0), len(lr_frames) - 1) for k in range(window)]
    return np.concatenate([np.asarray(lr_frames[i], np.float32) for i in picks], axis=-1)


def super_resolve_sequence(model, lr_frames, window=None):
    """SR frames (float32 HWC, clipped to [0, 1]) of an LR sequence with a multi-frame model."""
    if window is None:
        window = int(model.input_shape[-1]) // int(np.shape(lr_frames[0])[-1])
    out = []
    for i in range(len(lr_frames)):
        x = stack_window(lr_frames, i, window)[None]
        out.append(np.clip(np.asarray(model(x, training=False))[0], 0.0, 1.0))
    return out


def evaluate_sequence(sr_frames, hr_frames, scale, protocol="edsr"):
    """Mean PSNR/SSIM over the frames (Y, ``scale`` px shaved, ``protocol``) and the per-frame PSNRs."""
    from visionfw.metrics import psnr_ssim as metrics

    if len(sr_frames) != len(hr_frames):
        raise DataError(f"evaluate_sequence: {len(sr_frames)} SR frames for {len(hr_frames)} HR frames.")
    results = [metrics.evaluate_pair(s, h, scale, protocol=protocol) for s, h in zip(sr_frames, hr_frames)]
    mean = metrics.mean_metrics(results)
    mean["per_frame"] = [r["psnr"] for r in results]
    return mean


# --------------------------------------------------------------------------- the training task


class VideoSRTask(Task):
    """``task='video_sr'``: a multi-frame SR model on LR sequences made by a (frozen) downscaler.

    A batch is ``(hr_seq,)`` of shape (B, T, P, P, 3): T crops of one training patch along a random
    pan of up to ``max_motion`` HR pixels per frame (integer, per axis), P = ``lr_patch * scale``.  The
    step downscales every frame (bicubic or the TAD encoder, then 8 bits), stacks the T LR frames on
    channels and trains the model to give the HR centre frame (``config.loss``).
    """

    name = "video_sr"

    def __init__(self, config):
        super().__init__(config)
        from visionfw.tasks.losses import parse_loss

        opts = dict(getattr(config, "task_options", None) or {})
        unknown = set(opts) - {"downscaler", "max_motion"}
        if unknown:
            raise ConfigError(
                f"task_options: {sorted(unknown)} are not video_sr options; use downscaler=bicubic "
                "or downscaler=PATH.keras (a TAD model) and max_motion=N (HR px per frame)."
            )
        self.scale = int(config.scale)
        if "frames" not in self.meta:
            raise ConfigError(
                f"task video_sr: model {config.model!r} is not a multi-frame model (its spec states no "
                "'frames'); use model=video_sr or a family written like model_defs/video_sr.py."
            )
        self.frames = int(self.meta["frames"])
        self.max_motion = int(opts.get("max_motion", 2))
        if self.max_motion < 0:
            raise ConfigError(f"task_options max_motion={self.max_motion} must be >= 0.")
        self.downscaler_name = opts.get("downscaler", "bicubic")
        self._downscale = None
        self.loss_fn = parse_loss(config.loss)

    @property
    def downscale(self):
        if self._downscale is None:
            self._downscale, self.downscaler_label = load_downscaler(self.downscaler_name, self.scale)
        return self._downscale

    def build_model(self, dtype_policy=None):
        self.downscale  # noqa: B018  (load the encoder where the model is built: the strategy's scope)
        return super().build_model(dtype_policy)

    # -- data ----------------------------------------------------------------------------
    def make_dataset(self, start_step=0):
        hr_patch = int(self.config.lr_patch) * self.scale
        margin = self.max_motion * (self.frames // 2)
        ds = self.hr_patch_dataset(hr_patch + 2 * margin, start_step)
        seed = int(self.config.seed)
        t_rel = tf.constant([t - self.frames // 2 for t in range(self.frames)], tf.int32)
        m, frames = self.max_motion, self.frames

        def cut(step, batch):
            hr = batch[0]
            n = tf.shape(hr)[0]
            # a pan per sample: velocity in [-m, m]^2 HR px per frame, seeded by (seed, step)
            v = tf.random.stateless_uniform(
                [n, 2], seed=[seed, tf.cast(step, tf.int32)], minval=-m, maxval=m + 1, dtype=tf.int32
            )
            off = margin + t_rel[None, :, None] * v[:, None, :]  # (n, T, 2)
            ramp = tf.range(hr_patch, dtype=tf.int32)
            rows = tf.reshape(off[..., 0:1] + ramp, [n, frames * hr_patch])
            cols = off[..., 1:2] + ramp  # (n, T, P)
            seq = tf.gather(hr, rows, axis=1, batch_dims=1)  # (n, T*P, W, C)
            seq = tf.reshape(seq, [n, frames, hr_patch, tf.shape(hr)[2], tf.shape(hr)[3]])
            seq = tf.gather(seq, cols, axis=3, batch_dims=2)  # (n, T, P, P, C)
            seq.set_shape([None, frames, hr_patch, hr_patch, 3])  # static sizes: the fast bicubic path
            return (seq,)

        return ds.enumerate(start=int(start_step)).map(cut, num_parallel_calls=tf.data.AUTOTUNE)

    def lr_stack(self, hr_seq):
        """(B, T, P, P, C) HR sequences -> (B, p, p, T*C) 8-bit LR frames on channels (frame-major)."""
        _, t, ph, pw, c = hr_seq.shape  # static: the dataset sets them
        b = tf.shape(hr_seq)[0]
        lr = self.downscale(tf.reshape(hr_seq, [b * t, ph, pw, c]))
        lr = tf.stop_gradient(tf.cast(lr, tf.float32))
        lh, lw = (lr.shape[k] if lr.shape[k] is not None else tf.shape(lr)[k] for k in (1, 2))
        lr = tf.transpose(tf.reshape(lr, [b, t, lh, lw, c]), [0, 2, 3, 1, 4])
        return tf.reshape(lr, [b, lh, lw, t * c])

    # -- step ----------------------------------------------------------------------------
    def compute_loss(self, model, batch, training):
        hr_seq = tf.cast(batch[0], tf.float32)
        x = self.lr_stack(hr_seq)
        sr = model(x, training=training)
        loss = self.loss_fn(hr_seq[:, self.frames // 2], sr)
        return tf.cast(loss, tf.float32), {"_outputs": sr}

    # -- validation ----------------------------------------------------------------------
    def validate(self, model):
        """Per validation set: every image as a 3-frame pan (velocity (1, 2) HR px), the centre frame scored."""
        from visionfw.data.benchmarks import load_benchmark
        from visionfw.metrics import psnr_ssim as metrics

        out = {}
        for name in list(getattr(self.config, "val_data", None) or []):
            results = []
            for rec in load_benchmark(name, self.scale, getattr(self.config, "data_dir", None)):
                hr = (
                    rec.hr
                    if rec.hr.ndim == 3 and rec.hr.shape[-1] == 3
                    else np.repeat(rec.hr.reshape(rec.hr.shape[:2] + (1,)), 3, -1)
                )
                frames, _ = synthetic_sequence(hr, self.frames, velocity=(1, 2), multiple_of=self.scale)
                lr = downscale_frames(frames, self.scale, self.downscale)
                c = self.frames // 2
                sr = np.clip(np.asarray(model(stack_window(lr, c, self.frames)[None], training=False))[0], 0, 1)
                results.append(metrics.evaluate_pair(sr, frames[c], self.scale, protocol="edsr"))
            mean = metrics.mean_metrics(results)
            out[name] = {"psnr": mean["psnr"], "ssim": mean["ssim"], "bicubic_psnr": float("nan")}
            out["protocol"] = mean["protocol"] + "; centre frame of a 3-frame pan"
        return out


register_task("video_sr", VideoSRTask)
