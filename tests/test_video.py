"""Video TAD: frame folders, the synthetic camera pan, per-frame downscaling, the multi-frame SR model and
the 'video_sr' task in the shared training loop (bicubic and TAD downscalers)."""

import csv

import keras
import numpy as np
import pytest
import tensorflow as tf

import visionfw
from visionfw.errors import ConfigError, DataError
from visionfw.tasks import video
from visionfw.train import TrainConfig, train


def _photo(h=72, w=96, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.random((h, w, 3)) * 255).astype(np.uint8)


def test_synthetic_sequence_is_a_camera_pan():
    img = _photo()
    frames, off = video.synthetic_sequence(img, n_frames=5, size=(32, 40), velocity=(1, 2))
    assert len(frames) == 5 and frames[0].shape == (32, 40, 3) and frames[0].dtype == np.float32
    assert off.tolist() == [[0, 0], [1, 2], [2, 4], [3, 6], [4, 8]]
    for a, b in zip(frames, frames[1:]):  # the next frame is the previous one moved by the velocity
        np.testing.assert_array_equal(b[:-1, :-2], a[1:, 2:])
    back, off = video.synthetic_sequence(img, n_frames=3, velocity=(-1, 0), multiple_of=4)
    assert off.tolist() == [[2, 0], [1, 0], [0, 0]] and back[0].shape == (68, 96, 3)
    np.testing.assert_array_equal(back[1], img[1:69].astype(np.float32) / 255)
    with pytest.raises(DataError, match="do not fit"):
        video.synthetic_sequence(img, n_frames=9, size=(70, 96), velocity=(1, 1))


def test_frames_folder_round_trip_and_errors(tmp_path):
    frames, _ = video.synthetic_sequence(_photo(), n_frames=3, size=(16, 20))
    paths = video.write_frames(frames, tmp_path / "seq")
    assert [p.name for p in paths] == ["frame_0000.png", "frame_0001.png", "frame_0002.png"]
    back = video.read_frames(tmp_path / "seq")
    for a, b in zip(frames, back):
        np.testing.assert_allclose(a, b, atol=0.5 / 255 + 1e-6)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no image files"):
        video.read_frames(tmp_path / "empty")
    video.write_frames([np.zeros((8, 8, 3), np.float32)], tmp_path / "seq", prefix="zz")
    with pytest.raises(DataError, match="differ in size"):
        video.read_frames(tmp_path / "seq")


def test_downscale_frames_and_windows():
    from visionfw.data.imresize import imresize

    frames, _ = video.synthetic_sequence(_photo(), n_frames=4, size=(32, 40))
    lr = video.downscale_frames(frames, 2)
    assert lr[0].shape == (16, 20, 3)
    np.testing.assert_allclose(lr[0] * 255, np.round(lr[0] * 255), atol=1e-4)  # stored as 8 bits
    ref = np.clip(np.round(imresize(frames[2], scale=0.5).numpy() * 255), 0, 255) / 255
    np.testing.assert_allclose(lr[2], ref, atol=1e-6)
    first = video.stack_window(lr, 0, 3)
    assert first.shape == (16, 20, 9)
    np.testing.assert_array_equal(first[..., :3], lr[0])  # the sequence's end is repeated
    np.testing.assert_array_equal(video.stack_window(lr, 2, 3)[..., 6:], lr[3])
    with pytest.raises(ConfigError, match="bicubic"):
        video.load_downscaler("no_such_model.keras", 2)


def test_video_sr_model_adds_the_bicubic_centre_frame():
    from visionfw.data.imresize import imresize
    from visionfw.model_defs.video_sr import video_sr

    model = visionfw.build_model(video_sr(frames=3, filters=8, n_layers=2, scale=2))
    last = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)][-1]
    last.set_weights([np.zeros_like(w) for w in last.get_weights()])  # no detail: bicubic of the centre
    x = np.random.default_rng(0).random((1, 9, 11, 9), dtype=np.float32)
    np.testing.assert_allclose(np.asarray(model(x)), imresize(x[..., 3:6], scale=2.0).numpy(), atol=1e-5)
    assert visionfw.get_model("video_sr", scale=2).count_params() == 270_668


def _config(shared_data, tmp_path, name, **kw):
    base = dict(
        model="video_sr",
        scale=2,
        task="video_sr",
        model_kwargs={"filters": 16, "n_layers": 3},
        train_data=str(shared_data / "train" / "T91"),
        val_data=[],
        steps=60,
        batch_size=8,
        lr_patch=12,
        lr=1e-3,
        log_every=15,
        ckpt_every=0,
        val_every=0,
        workdir=str(tmp_path / name),
        resume="never",
        progress=False,
        tensorboard=False,
        seed=2,
    )
    base.update(kw)
    return TrainConfig(**base)


def test_video_task_batches_are_pans_and_training_lowers_the_loss(shared_data, tmp_path):
    from visionfw.tasks.base import get_task
    from visionfw.train.resolve import resolve_config

    config = resolve_config(_config(shared_data, tmp_path, "bicubic", task_options={"max_motion": 3}))
    task = get_task("video_sr")(config)
    (seq,) = next(iter(task.make_dataset(0)))
    assert tuple(seq.shape) == (8, 3, 24, 24, 3)
    seq = seq.numpy()
    for b in range(4):  # frame 2 is frame 1 moved by v, frame 0 by -v, |v| <= 3 on each axis
        found = [
            (dy, dx)
            for dy in range(-3, 4)
            for dx in range(-3, 4)
            if np.array_equal(
                seq[b, 2][max(0, -dy) : 24 - max(0, dy), max(0, -dx) : 24 - max(0, dx)],
                seq[b, 1][max(0, dy) : 24 - max(0, -dy), max(0, dx) : 24 - max(0, -dx)],
            )
        ]
        assert found, b
    x = task.lr_stack(tf.constant(seq))
    assert tuple(x.shape) == (8, 12, 12, 9)

    result = train(_config(shared_data, tmp_path, "bicubic2", val_data=["Set5"]))
    with open(tmp_path / "bicubic2" / "train_log.csv", newline="") as f:
        losses = [float(r["loss"]) for r in csv.DictReader(f)]
    assert losses[-1] < losses[0], losses
    assert result["val"]["Set5"]["psnr"] > 25
    model = keras.saving.load_model(result["model_path"], safe_mode=True)
    assert model.input_shape[-1] == 9


def test_video_task_with_a_tad_encoder_as_downscaler(shared_data, tmp_path):
    tad = visionfw.get_model("aetad_very_small", scale=2)
    path = tmp_path / "tad.keras"
    tad.save(path)
    result = train(_config(shared_data, tmp_path, "tad", steps=10, log_every=5, task_options={"downscaler": str(path)}))
    assert np.isfinite(result["final_loss"])
    with pytest.raises(ConfigError, match="x4 TAD model"):
        video.load_downscaler(str(path), 4)


def test_video_task_rejects_single_frame_models_and_unknown_options():
    from visionfw.tasks.base import get_task
    from visionfw.train.resolve import resolve_config

    with pytest.raises(ConfigError, match="not a multi-frame model"):
        get_task("video_sr")(resolve_config(TrainConfig(model="espcn", task="video_sr")))
    with pytest.raises(ConfigError, match="not video_sr options"):
        get_task("video_sr")(resolve_config(TrainConfig(model="video_sr", task="video_sr", task_options={"speed": 3})))
