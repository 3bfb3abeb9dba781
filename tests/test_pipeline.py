"""Tests of the training input pipeline (visionfw.data.pipeline) and the embedded set."""

import os
import socket

import h5py
import numpy as np
import pytest
from PIL import Image

from visionfw.data import pipeline
from visionfw.data.h5_dataset import make_h5_dataset
from visionfw.data.imresize import imresize, imresize_numpy
from visionfw.data.pipeline import TrainDataConfig, make_train_dataset, skip_batches
from visionfw.errors import ConfigError, DataError

RNG = np.random.default_rng(1234)


def _noise(h, w, c=3):
    """uint8 noise: every patch of it is unique, so a patch tells where it came from."""
    img = RNG.integers(0, 256, size=(h, w, c), dtype=np.uint8)
    return img[..., 0] if c == 1 else img


def _save(folder, name, arr, **kw):
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(folder / name, **kw)


def _batches(ds, n):
    return [(lr.numpy(), hr.numpy()) for lr, hr in ds.take(n)]


def _locate(patch, images, step=1):
    """All (image index, y, x) where ``patch`` (HxWxC) sits exactly in one of ``images``."""
    size = patch.shape[0]
    hits = []
    for i, img in enumerate(images):
        if img.shape[0] < size or img.shape[1] < size:
            continue
        win = np.lib.stride_tricks.sliding_window_view(img, (size, size), axis=(0, 1))
        # win: (H-size+1, W-size+1, C, size, size)
        eq = np.all(win == np.transpose(patch, (2, 0, 1))[None, None], axis=(2, 3, 4))
        hits += [(i, int(y), int(x)) for y, x in zip(*np.nonzero(eq)) if y % step == 0 and x % step == 0]
    return hits


_DIHEDRAL = [lambda a, k=k, t=t: np.rot90(a.transpose(1, 0, 2) if t else a, k) for t in (0, 1) for k in range(4)]


@pytest.fixture(scope="module")
def rgb_folder(tmp_path_factory):
    """Four RGB noise PNGs of different sizes (not multiples of 2 or 3)."""
    folder = tmp_path_factory.mktemp("rgb")
    images = {f"im{i}.png": _noise(h, w) for i, (h, w) in enumerate([(31, 29), (40, 26), (25, 37), (33, 33)])}
    for name, arr in images.items():
        _save(folder, name, arr)
    return folder, [images[n] for n in sorted(images)]


def _cfg(source, **kw):
    base = dict(
        source=str(source),
        scale=2,
        lr_patch=6,
        batch_size=8,
        augment=False,
        patches_per_image=4,
        seed=7,
        num_read_threads=2,
    )
    base.update(kw)
    return TrainDataConfig(**base)


# ---------------------------------------------------------------- formats, shapes, channels


def test_mixed_formats_shapes_dtypes_ranges(tmp_path):
    folder = tmp_path / "mixed"
    rgb = _noise(30, 34)
    _save(folder, "a.png", rgb)
    _save(folder, "b.jpg", _noise(28, 30), quality=95)
    _save(folder, "c.bmp", _noise(26, 27))
    _save(folder, "d_grey.png", _noise(25, 25, 1))
    _save(folder, "e_rgba.png", np.dstack([_noise(24, 26), np.full((24, 26), 7, np.uint8)]))
    grey16 = (RNG.integers(0, 65536, size=(29, 31))).astype(np.uint16)
    Image.fromarray(grey16).save(folder / "f16.png")
    for channels, c in (("rgb", 3), ("y", 1)):
        ds = make_train_dataset(_cfg(folder, channels=channels, lr_patch=5, scale=4, augment=True))
        assert ds.element_spec[0].shape.as_list() == [8, 5, 5, c]
        assert ds.element_spec[1].shape.as_list() == [8, 20, 20, c]
        for lr, hr in _batches(ds, 4):
            assert lr.dtype == np.float32 and hr.dtype == np.float32
            assert lr.shape == (8, 5, 5, c) and hr.shape == (8, 20, 20, c)
            assert hr.min() >= 0.0 and hr.max() <= 1.0 and lr.min() >= 0.0 and lr.max() <= 1.0
            assert hr.std() > 0.1  # noise content, not a constant
            # uint8 cache: every value is k/255
            np.testing.assert_allclose(hr * 255, np.round(hr * 255), atol=1e-4)
    names, hr_images, _ = pipeline.load_train_images(_cfg(folder, channels="rgb"))
    assert names == ["a.png", "b.jpg", "c.bmp", "d_grey.png", "e_rgba.png", "f16.png"]
    np.testing.assert_array_equal(hr_images[0], rgb)
    grey = hr_images[3]
    assert grey.shape == (25, 25, 3) and np.array_equal(grey[..., 0], grey[..., 2])
    assert hr_images[4].shape == (24, 26, 3)  # alpha dropped
    np.testing.assert_array_equal(hr_images[5][..., 0], np.floor(grey16 / 257.0 + 0.5).astype(np.uint8))
    # Y of RGB: MATLAB rgb2ycbcr of the uint8 image, rounded; grey is its own Y
    _, y_images, _ = pipeline.load_train_images(_cfg(folder, channels="y"))
    r, g, b = (rgb[..., k].astype(np.float64) for k in range(3))
    want_y = np.floor(16 + (65.481 * r + 128.553 * g + 24.966 * b) / 255 + 0.5)
    np.testing.assert_array_equal(y_images[0][..., 0], want_y)
    assert y_images[3].shape == (25, 25, 1)


# ---------------------------------------------------------------- LR/HR alignment


@pytest.mark.parametrize("cache_dtype", ["uint8", "float32"])
def test_downscale_then_crop_is_crop_of_downscaled_image(rgb_folder, cache_dtype):
    folder, images = rgb_folder
    s = 3
    cfg = _cfg(folder, scale=s, lr_patch=4, cache_dtype=cache_dtype)
    _, hr_images, _ = pipeline.load_train_images(cfg)
    hr_images = [im[: im.shape[0] // s * s, : im.shape[1] // s * s] for im in hr_images]
    # whole images are downscaled with the numpy MATLAB bicubic (uint8 -> MATLAB uint8)
    lr_images = [imresize_numpy(im, scale=1 / s) for im in hr_images]
    if cache_dtype == "uint8":
        lr_images = [im.astype(np.float32) / 255 for im in lr_images]
        hr_images = [im.astype(np.float32) / 255 for im in hr_images]
    else:
        np.testing.assert_allclose(hr_images[0], images[0][:30, :27] / 255.0, atol=1e-7)
    for lr, hr in _batches(make_train_dataset(cfg), 3):
        for k in range(len(hr)):
            hits = _locate(hr[k], hr_images)
            assert len(hits) == 1
            i, y, x = hits[0]
            assert y % s == 0 and x % s == 0, "HR crop must start on the LR grid"
            np.testing.assert_array_equal(lr[k], lr_images[i][y // s : y // s + 4, x // s : x // s + 4])


def test_crop_then_downscale_is_downscaled_crop(rgb_folder):
    folder, images = rgb_folder
    cfg = _cfg(folder, patch_order="crop_then_downscale", cache_dtype="float32")
    _, hr_images, _ = pipeline.load_train_images(cfg)
    offsets = set()
    for lr, hr in _batches(make_train_dataset(cfg), 3):
        np.testing.assert_allclose(lr, imresize(hr, scale=0.5).numpy(), atol=1e-6)
        for k in range(len(hr)):
            hits = _locate(hr[k], hr_images)
            assert len(hits) == 1
            offsets.add((hits[0][1] % 2, hits[0][2] % 2))
    assert len(offsets) > 1, "HR crops should start anywhere, not only on the LR grid"


def test_uint8_crop_then_downscale_rounds_like_matlab(rgb_folder):
    folder, _ = rgb_folder
    cfg = _cfg(folder, patch_order="crop_then_downscale", scale=2)
    for lr, hr in _batches(make_train_dataset(cfg), 2):
        want = imresize(np.round(hr * 255).astype(np.uint8), scale=0.5).numpy()
        np.testing.assert_array_equal(np.round(lr * 255).astype(np.uint8), want)


def test_augmentation_keeps_alignment_and_uses_all_transforms(rgb_folder):
    folder, _ = rgb_folder
    s, p = 2, 5
    cfg = _cfg(folder, scale=s, lr_patch=p, augment=True, batch_size=16, cache_dtype="float32")
    _, hr_images, _ = pipeline.load_train_images(cfg)
    hr_images = [im[: im.shape[0] // s * s, : im.shape[1] // s * s] for im in hr_images]
    lr_images = [imresize_numpy(im, scale=1 / s) for im in hr_images]
    used = set()
    for lr, hr in _batches(make_train_dataset(cfg), 3):
        for k in range(len(hr)):
            found = []
            for d, op in enumerate(_DIHEDRAL):
                inverse_hits = [(d, *h) for h in _locate(hr[k], [op(im) for im in hr_images])]
                found += inverse_hits
            assert len(found) == 1
            d, i, y, x = found[0]
            used.add(d)
            op = _DIHEDRAL[d]
            lr_t, hr_t = op(lr_images[i]), op(hr_images[i])
            assert y % s == 0 and x % s == 0
            np.testing.assert_array_equal(hr[k], hr_t[y : y + p * s, x : x + p * s])
            np.testing.assert_array_equal(lr[k], lr_t[y // s : y // s + p, x // s : x // s + p])
    assert len(used) >= 6, f"only transforms {used} seen in 48 patches"


@pytest.mark.parametrize("order", ["downscale_then_crop", "crop_then_downscale"])
def test_upsample_input(rgb_folder, order):
    folder, _ = rgb_folder
    s, p = 2, 5
    cfg = _cfg(folder, scale=s, lr_patch=p, patch_order=order, upsample_input=True, cache_dtype="float32")
    _, hr_images, _ = pipeline.load_train_images(cfg)
    hr_images = [im[: im.shape[0] // s * s, : im.shape[1] // s * s] for im in hr_images]
    ((lr, hr),) = _batches(make_train_dataset(cfg), 1)
    assert lr.shape == hr.shape == (8, 10, 10, 3)
    if order == "crop_then_downscale":  # the patch down then up
        np.testing.assert_allclose(lr, imresize(imresize(hr, scale=1 / s), scale=s).numpy(), atol=1e-6)
    else:  # whole image down then up, then cropped
        ups = [imresize_numpy(imresize_numpy(im, scale=1 / s), scale=s) for im in hr_images]
        for k in range(len(hr)):
            ((i, y, x),) = _locate(hr[k], hr_images)
            np.testing.assert_array_equal(lr[k], ups[i][y : y + 10, x : x + 10])
    # bicubic down+up of noise is close to, but not equal to, the target
    assert 0.01 < np.abs(lr - hr).mean() < 0.3


# ---------------------------------------------------------------- order, determinism, resuming


def test_epoch_covers_every_image_patches_per_image_times(rgb_folder):
    folder, _ = rgb_folder
    cfg = _cfg(folder, repeat=2, batch_size=4, patches_per_image=3)
    _, hr_images, _ = pipeline.load_train_images(cfg)
    hr_images = [im.astype(np.float32) / 255 for im in hr_images]
    batches = _batches(make_train_dataset(cfg), 100)
    assert len(batches) == 2 * 4 * 3 // 4  # 2 epochs of 12 patches
    owners = [_locate(hr[k], hr_images)[0][0] for _, hr in batches for k in range(len(hr))]
    for epoch in (owners[:12], owners[12:]):
        assert sorted(epoch) == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]
    assert owners[:12] != owners[12:], "each epoch gets its own permutation"
    # unshuffled order is image 0,1,2,3,0,1,2,3,...
    cfg = _cfg(folder, repeat=1, batch_size=4, patches_per_image=3, shuffle=False)
    owners = [_locate(hr[k], hr_images)[0][0] for _, hr in _batches(make_train_dataset(cfg), 3) for k in range(4)]
    assert owners == [0, 1, 2, 3] * 3


def test_same_seed_same_batches_and_start_step(rgb_folder):
    folder, _ = rgb_folder
    cfg = _cfg(folder, augment=True, patches_per_image=2)  # epoch = 8 patches = 1 batch
    ds = make_train_dataset(cfg)
    first = _batches(ds, 6)
    again = _batches(make_train_dataset(cfg), 6)
    for (a_lr, a_hr), (b_lr, b_hr) in zip(first, again):
        np.testing.assert_array_equal(a_lr, b_lr)
        np.testing.assert_array_equal(a_hr, b_hr)
    other = _batches(make_train_dataset(_cfg(folder, augment=True, patches_per_image=2, seed=8)), 2)
    assert not np.array_equal(other[0][1], first[0][1])
    assert not np.array_equal(first[0][1], first[1][1])
    # resume at batch 3 (crosses epoch boundaries) without replaying
    resumed = _batches(make_train_dataset(cfg, start_step=3), 3)
    for (a_lr, a_hr), (b_lr, b_hr) in zip(first[3:], resumed):
        np.testing.assert_array_equal(a_lr, b_lr)
        np.testing.assert_array_equal(a_hr, b_hr)
    skipped = _batches(skip_batches(ds, 4), 1)
    np.testing.assert_array_equal(skipped[0][1], first[4][1])
    # a batch that straddles epochs (batch 12 > epoch 8) resumes too
    cfg = _cfg(folder, batch_size=12, patches_per_image=2)
    full = _batches(make_train_dataset(cfg), 3)
    np.testing.assert_array_equal(_batches(make_train_dataset(cfg, start_step=2), 1)[0][1], full[2][1])


def test_start_step_past_end_and_bad_values(rgb_folder):
    folder, _ = rgb_folder
    with pytest.raises(ConfigError, match="start_step"):
        make_train_dataset(_cfg(folder, repeat=1), start_step=2)  # epoch = 16 patches = 2 batches
    with pytest.raises(ConfigError, match="start_step"):
        make_train_dataset(_cfg(folder), start_step=-1)
    with pytest.raises(ConfigError, match="channels"):
        TrainDataConfig(channels="ycbcr")
    with pytest.raises(ConfigError, match="crop_then_downscale"):
        TrainDataConfig(lr_source=str(folder), patch_order="crop_then_downscale")
    with pytest.raises(ConfigError, match="lr_patch"):
        TrainDataConfig(lr_patch=0)


# ---------------------------------------------------------------- folders: errors, too small, LR pairing


def test_missing_and_empty_folders(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        make_train_dataset(_cfg(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no images here")
    with pytest.raises(DataError, match="no image"):
        make_train_dataset(_cfg(tmp_path / "empty"))


def test_too_small_images_are_skipped_or_fatal(tmp_path):
    folder = tmp_path / "small"
    _save(folder, "big.png", _noise(30, 30))
    _save(folder, "tiny.png", _noise(11, 40))  # mod-crop 10 < HR patch 12
    _save(folder, "narrow.png", _noise(40, 12))  # exactly one patch wide: kept
    with pytest.warns(UserWarning, match=r"Skipping 1 training image.*tiny\.png \(40x10\)"):
        ds = make_train_dataset(_cfg(folder, repeat=1, batch_size=2, patches_per_image=2))
    assert len(_batches(ds, 10)) == 2  # 2 images x 2 patches
    only_small = tmp_path / "only_small"
    _save(only_small, "tiny.png", _noise(11, 40))
    with pytest.raises(DataError, match=r"No usable training image.*tiny\.png"):
        make_train_dataset(_cfg(only_small))


def test_lr_folder_pairing(tmp_path):
    hr_dir, lr_dir = tmp_path / "HR", tmp_path / "LR_X2"
    hr = {"0001": _noise(24, 30), "0002": _noise(21, 27)}  # 0002: odd sizes, HR cropped to 20x26
    lr = {"0001": _noise(12, 15), "0002": _noise(10, 13)}  # arbitrary LR content: must be used as is
    for stem in hr:
        _save(hr_dir, f"{stem}.png", hr[stem])
    _save(lr_dir, "0001x2.png", lr["0001"])
    _save(lr_dir, "0002.png", lr["0002"])
    cfg = _cfg(hr_dir, lr_source=str(lr_dir), lr_patch=5, augment=True)
    hr_list = [hr["0001"].astype(np.float32) / 255, hr["0002"][:20, :26].astype(np.float32) / 255]
    lr_list = [lr["0001"].astype(np.float32) / 255, lr["0002"].astype(np.float32) / 255]
    for lr_b, hr_b in _batches(make_train_dataset(cfg), 2):
        for k in range(len(hr_b)):
            found = [(d, *h) for d, op in enumerate(_DIHEDRAL) for h in _locate(hr_b[k], [op(im) for im in hr_list])]
            ((d, i, y, x),) = found
            np.testing.assert_array_equal(lr_b[k], _DIHEDRAL[d](lr_list[i])[y // 2 : y // 2 + 5, x // 2 : x // 2 + 5])
    # an HR image without LR partner
    _save(hr_dir, "0003.png", _noise(24, 24))
    with pytest.raises(DataError, match=r"no LR image.*0003\.png"):
        make_train_dataset(cfg)
    # an LR image of the wrong size
    _save(lr_dir, "0003x2.png", _noise(10, 12))
    with pytest.raises(DataError, match=r"0003\.png.*12x10"):
        make_train_dataset(cfg)


# ---------------------------------------------------------------- HDF5


def _write_h5(path, data, label):
    with h5py.File(path, "w") as f:
        f.create_dataset("data", data=data)
        f.create_dataset("label", data=label)


def test_h5_nchw_float_matlab_layout(tmp_path):
    n = 10
    data = RNG.random((n, 1, 33, 33), dtype=np.float32)  # SRCNN: 33x33 input, 21x21 label
    label = RNG.random((n, 1, 21, 21), dtype=np.float32)
    path = tmp_path / "train.h5"
    _write_h5(path, data, label)
    ds = make_h5_dataset(path, 5, repeat=1, seed=3)
    batches = _batches(ds, 10)
    assert len(batches) == 2
    got_d = np.concatenate([b[0] for b in batches])
    got_l = np.concatenate([b[1] for b in batches])
    assert got_d.shape == (10, 33, 33, 1) and got_l.shape == (10, 21, 21, 1)
    order = [int(np.nonzero(np.all(data[:, 0] == d[..., 0], axis=(1, 2)))[0][0]) for d in got_d]
    assert sorted(order) == list(range(n)) and order != list(range(n))  # a shuffled epoch
    np.testing.assert_array_equal(got_l[..., 0], label[order, 0])  # pairs kept
    # streamed from disk (too big for memory) gives the same batches
    streamed = _batches(make_h5_dataset(path, 5, repeat=1, seed=3, max_memory_bytes=0), 10)
    np.testing.assert_array_equal(np.concatenate([b[0] for b in streamed]), got_d)
    # make_train_dataset hands .h5 sources over; resume by start_step
    cfg = TrainDataConfig(source=str(path), batch_size=4, seed=3, augment=False, channels="y")
    full = _batches(make_train_dataset(cfg), 4)
    np.testing.assert_array_equal(_batches(make_train_dataset(cfg, start_step=3), 1)[0][0], full[3][0])


def test_h5_nhwc_uint8_with_augmentation(tmp_path):
    n = 6
    label = RNG.integers(0, 256, size=(n, 12, 12, 3), dtype=np.uint8)
    data = label[:, ::2, ::2]  # a 6x6 "LR" that is aligned with the label
    path = tmp_path / "rgb.h5"
    _write_h5(path, data, label)
    ((d, lab),) = _batches(make_h5_dataset(path, 6, repeat=1, augment=True, seed=1), 1)
    assert d.shape == (6, 6, 6, 3) and lab.shape == (6, 12, 12, 3)
    np.testing.assert_allclose(lab * 255, np.round(lab * 255), atol=1e-4)  # scaled by 1/255
    assert lab.max() <= 1.0
    label_f, data_f = label / np.float32(255), data / np.float32(255)
    used = set()
    for k in range(6):
        found = [(dd, j) for dd, op in enumerate(_DIHEDRAL) for j in range(n) if np.array_equal(lab[k], op(label_f[j]))]
        assert len(found) == 1, "label must be one flipped/rotated source patch"
        dd, j = found[0]
        np.testing.assert_array_equal(d[k], _DIHEDRAL[dd](data_f[j]))  # same transform on data
        used.add(dd)
    assert len(used) >= 3
    # floats stored on the 0..255 scale are recognised and scaled like uint8
    _write_h5(tmp_path / "f255.h5", data.astype(np.float32), label.astype(np.float32))
    ((d255, lab255),) = _batches(make_h5_dataset(tmp_path / "f255.h5", 6, repeat=1, augment=True, seed=1), 1)
    np.testing.assert_array_equal(lab255, lab)
    np.testing.assert_array_equal(d255, d)
    with pytest.raises(DataError, match="1 are expected"):
        make_h5_dataset(path, 2, channels=1)


def test_h5_errors(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        make_h5_dataset(tmp_path / "missing.h5", 4)
    path = tmp_path / "bad.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("input", data=np.zeros((2, 8, 8, 1)))
    with pytest.raises(DataError, match=r"lacks dataset\(s\) \['data', 'label'\]"):
        make_h5_dataset(path, 4)
    _write_h5(path, np.zeros((3, 8, 8, 1), np.float32), np.zeros((2, 8, 8, 1), np.float32))
    with pytest.raises(DataError, match="pair one to one"):
        make_h5_dataset(path, 1)
    _write_h5(path, np.zeros((3, 8, 8, 5), np.float32), np.zeros((3, 8, 8, 5), np.float32))
    with pytest.raises(DataError, match="channel axis"):
        make_h5_dataset(path, 1)


# ---------------------------------------------------------------- embedded default set


def test_embedded_images_load_offline(monkeypatch):
    from visionfw.data import embedded

    def no_network(*args, **kwargs):
        raise AssertionError("the embedded data set must not touch the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    images = embedded.embedded_images("rgb")
    assert len(images) == len(embedded.EMBEDDED_NAMES) >= 15
    assert all(im.dtype == np.float32 and im.ndim == 3 and im.shape[-1] == 3 for im in images)
    assert all(im.min() >= 0.0 and im.max() <= 1.0 for im in images)
    named = dict(zip(embedded.EMBEDDED_NAMES, images))
    assert named["astronaut"].shape == (512, 512, 3)
    assert named["camera"].shape == (512, 512, 3)
    assert np.array_equal(named["camera"][..., 0], named["camera"][..., 1])  # grey repeated
    assert named["logo"].shape == (500, 500, 3)  # RGBA -> RGB
    # the files come from skimage's own folder, nothing downloaded or cached elsewhere
    data_dir = embedded.embedded_data_dir()
    assert all(os.path.isfile(os.path.join(data_dir, f)) for f in embedded.EMBEDDED_FILES.values())
    y = embedded.embedded_images("y", names=["astronaut", "camera"])
    assert y[0].shape == (512, 512, 1) and y[1].shape == (512, 512, 1)
    np.testing.assert_allclose(y[1], named["camera"][..., :1])  # grey is its own Y
    r, g, b = (named["astronaut"][..., k].astype(np.float64) for k in range(3))
    np.testing.assert_allclose(y[0][..., 0], (16 + 65.481 * r + 128.553 * g + 24.966 * b) / 255, atol=1e-6)
    with pytest.raises(DataError, match="unknown names"):
        embedded.embedded_images(names=["lena"])


def test_default_source_is_the_embedded_set(monkeypatch):
    monkeypatch.setattr(socket.socket, "connect", lambda *a, **k: pytest.fail("network used"))
    cfg = TrainDataConfig(
        source=None, scale=4, lr_patch=8, batch_size=4, channels="y", patch_order="crop_then_downscale", seed=0
    )
    ((lr, hr),) = _batches(make_train_dataset(cfg), 1)
    assert lr.shape == (4, 8, 8, 1) and hr.shape == (4, 32, 32, 1)
    assert hr.min() >= 0.0 and hr.max() <= 1.0
    names, images, _ = pipeline.load_train_images(cfg)
    assert len(names) == len(images) >= 15 and all(im.shape[-1] == 1 and im.dtype == np.uint8 for im in images)
