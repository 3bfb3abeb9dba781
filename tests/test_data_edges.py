"""Data at the edges: image headers over max_image_pixels, folders with broken entries, test images
too small to evaluate, and the memory of building the training cache of a big image."""

import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from conftest import write_noise_images
from PIL import Image

from visionfw.data import pipeline
from visionfw.data.image_io import list_images, read_image, read_image_uint8
from visionfw.data.patch_cache import build_caches
from visionfw.errors import ConfigError, DataError


def png_header_only(path, width, height, bit_depth=8, colour_type=2):
    """A PNG of a few dozen bytes whose IHDR claims ``width`` x ``height`` (no pixel data)."""
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    Path(path).write_bytes(b"\x89PNG\r\n\x1a\n" + chunk)
    return path


def bmp_header_only(path, width, height):
    """A 54-byte 24-bit BMP whose header claims ``width`` x ``height``."""
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, 0, 2835, 2835, 0, 0)
    Path(path).write_bytes(b"BM" + struct.pack("<IHHI", 54, 0, 0, 54) + info)
    return path


@pytest.mark.parametrize("bit_depth", [8, 16])
def test_png_header_over_the_limit_is_refused_before_decoding(tmp_path, bit_depth):
    path = png_header_only(tmp_path / f"huge{bit_depth}.png", 100000, 100000, bit_depth)
    for read in (read_image, read_image_uint8):
        with pytest.raises(DataError) as info:
            read(path)
        message = str(info.value)
        assert "\n" not in message
        assert message.startswith(
            f"Image {path} is 100000x100000 (10,000,000,000 pixels), over the limit of "
            "80,000,000 pixels (max_image_pixels); "
        )
        assert "--max_image_pixels=10000000000" in message


def test_bmp_far_over_pil_limit_and_small_limits(tmp_path):
    bomb = bmp_header_only(tmp_path / "bomb.bmp", 100000, 100000)
    with pytest.raises(
        DataError,
        match=r"bomb.bmp claims 10,000,000,000 pixels in its header, over the limit of "
        r"80,000,000 pixels \(max_image_pixels\)",
    ):
        read_image_uint8(bomb)
    small = tmp_path / "small.jpg"
    Image.fromarray(np.zeros((40, 50, 3), np.uint8)).save(small)
    with pytest.raises(DataError, match=r"small.jpg is 50x40 \(2,000 pixels\), over the limit of 1,999 pixels"):
        read_image_uint8(small, max_pixels=1999)
    assert read_image_uint8(small, max_pixels=2000).shape == (40, 50, 3)


def test_training_pipeline_applies_max_image_pixels(tmp_path):
    folder = write_noise_images(tmp_path / "train", 2, 48, seed=1)
    config = pipeline.TrainDataConfig(source=str(folder), lr_patch=8, batch_size=2, max_image_pixels=48 * 48 - 1)
    with pytest.raises(DataError, match=r"im0.png is 48x48 \(2,304 pixels\), over the limit of 2,303"):
        pipeline.make_train_dataset(config)
    with pytest.raises(ConfigError, match="max_image_pixels=0 must be a positive integer"):
        pipeline.TrainDataConfig(max_image_pixels=0)
    from visionfw.train import TrainConfig
    from visionfw.train.resolve import resolve_config

    with pytest.raises(ConfigError, match="max_image_pixels='many' must be a positive integer"):
        resolve_config(TrainConfig(model="espcn", max_image_pixels="many", val_data=[]))


def test_list_images_counts_and_names_entries_it_cannot_read(tmp_path):
    write_noise_images(tmp_path, 2, 16, seed=2)
    (tmp_path / "dangling.png").symlink_to(tmp_path / "gone.png")
    (tmp_path / "loop.png").symlink_to(tmp_path / "loop.png")
    (tmp_path / "album.png").mkdir()  # a folder: left out without a word
    with pytest.warns(UserWarning) as record:
        files = list_images(tmp_path)
    assert [p.name for p in files] == ["im0.png", "im1.png"]
    assert len(record) == 1
    assert str(record[0].message) == (
        f"Image folder {tmp_path}: skipping 2 entries that cannot be read: dangling.png (dangling symlink to "
        f"{tmp_path / 'gone.png'}), loop.png (symlink loop); 2 image(s) used."
    )


def test_a_test_image_too_small_to_evaluate_is_one_line(tmp_path):
    from visionfw.data.benchmarks import load_benchmark
    from visionfw.evaluate import evaluate_model
    from visionfw.zoo.registry import get_model

    folder = write_noise_images(tmp_path / "set", 1, 32, seed=3)
    Image.fromarray(np.zeros((1, 1, 3), np.uint8)).save(folder / "tiny.png")
    with pytest.raises(DataError) as info:
        load_benchmark(str(folder), 2)
    assert str(info.value) == (
        f"Image {folder / 'tiny.png'} is 1x1, smaller than the scale 2: nothing is left once "
        "it is mod-cropped to a multiple of 2; remove it from the folder."
    )
    os.remove(folder / "tiny.png")
    Image.fromarray(np.zeros((15, 17, 3), np.uint8)).save(folder / "small.png")  # loads, but cannot be measured
    assert [r.hr.shape for r in load_benchmark(str(folder), 2)] == [(32, 32, 3), (14, 16, 3)]
    model = get_model("espcn", scale=2, n1=8, n2=4)
    with pytest.raises(DataError) as info:
        evaluate_model(model, [str(folder)], 2, protocol="edsr", progress=False)
    assert str(info.value) == (
        "Test image set/small is 16x14 (mod-cropped), too small to evaluate at x2: it needs at "
        "least 16x16 pixels (2 px are shaved off each border, SSIM needs an 11x11 window); "
        "remove it from the test set."
    )
    os.remove(folder / "small.png")
    Image.fromarray(np.zeros((16, 17, 3), np.uint8)).save(folder / "smallest.png")
    assert evaluate_model(model, [str(folder)], 2, protocol="edsr", progress=False)["set"]["n_images"] == 2


def test_building_the_cache_of_a_big_image_stays_a_small_multiple_of_its_size(tmp_path):
    """Decode, mod-crop, x2 MATLAB downscale and cache a 1201x1001 RGB photo: numpy's peak stays
    under 9 bytes a pixel (decoded 3, cache 3, LR and the pass between 2.25) plus 10 MB of float64
    strips, where the dense float64 path needed ~250 bytes a pixel."""
    import tracemalloc

    rng = np.random.default_rng(4)
    photo = rng.integers(0, 256, (1001, 1201, 3), dtype=np.uint8)
    Image.fromarray(photo).save(tmp_path / "photo.png")
    config = pipeline.TrainDataConfig(source=str(tmp_path), lr_patch=16, batch_size=2, num_read_threads=1)
    tracemalloc.start()
    try:
        names, hr, lr = pipeline.load_train_images(config)
        caches, n = build_caches(config, names, hr, lr)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    pixels = 1001 * 1201
    assert n == 1 and peak < 9 * pixels + 10 * 2**20, peak / pixels
    np.testing.assert_array_equal(np.asarray(hr[0])[:1000, :1200], photo[:1000, :1200])
    lr_flat = caches["lr"].flat.numpy().reshape(500, 600, 3)
    from visionfw.data.imresize import imresize_numpy

    np.testing.assert_array_equal(lr_flat, imresize_numpy(photo[:1000, :1200], scale=0.5))
