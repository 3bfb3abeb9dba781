"""`visionfw upscale` and `visionfw.upscale` on your own images: dtypes, layouts, alpha, tiling, files."""

import os
import subprocess
import sys
import time

import numpy as np
import pytest

import visionfw
from visionfw.data.imresize import imresize_numpy
from visionfw.errors import DataError
from visionfw.upscaling import read_photo, write_photo


def nearest_x2(channels=3):
    """A model whose output is exactly nearest-neighbour x2: a 1x1 conv copies each channel to the
    four sub-pixels, then PixelShuffle (TF order: channel (dy*2+dx)*C + c)."""
    spec = {
        "name": f"nearest{channels}",
        "inputs": [(None, None, channels)],
        "conv": [(0, 1)],
        "conv_par": [{"filters": 4 * channels, "kernel_size": 1, "use_bias": False}],
        "shuffle": [(1, 2)],
        "shuffle_par": [{"scale": 2}],
    }
    model = visionfw.build_model(spec)
    kernel = np.zeros((1, 1, channels, 4 * channels), np.float32)
    for k in range(4):
        for c in range(channels):
            kernel[0, 0, c, k * channels + c] = 1.0
    model.set_weights([kernel])
    return model


def nearest(img, s=2):
    return np.repeat(np.repeat(img, s, 0), s, 1)


def test_python_upscale_keeps_dtype_layout_and_values():
    model = nearest_x2()
    rng = np.random.default_rng(0)
    rgb8 = (rng.random((5, 7, 3)) * 255).astype(np.uint8)
    out = visionfw.upscale(model, rgb8)
    assert out.dtype == np.uint8 and np.array_equal(out, nearest(rgb8))
    rgb16 = (rng.random((4, 3, 3)) * 65535).astype(np.uint16)
    assert np.array_equal(visionfw.upscale(model, rgb16), nearest(rgb16))  # all 16 bits survive
    grey = (rng.random((6, 4)) * 255).astype(np.uint8)  # HW in, HW out (RGB model: channel mean)
    assert np.array_equal(visionfw.upscale(model, grey), nearest(grey))
    unit = rng.random((3, 3, 3)).astype(np.float64)  # float in [0, 1] -> float32 in [0, 1]
    out = visionfw.upscale(model, unit)
    assert out.dtype == np.float32 and np.allclose(out, nearest(unit), atol=1e-6)
    rgba = np.concatenate([rgb8, (rng.random((5, 7, 1)) * 255).astype(np.uint8)], -1)
    out = visionfw.upscale(model, rgba)
    assert out.shape == (10, 14, 4) and np.array_equal(out[..., :3], nearest(rgb8))
    alpha = np.clip(np.floor(imresize_numpy(rgba[..., 3:] / 255.0, 2.0) * 255 + 0.5), 0, 255)
    assert np.array_equal(out[..., 3:], alpha.reshape(10, 14, 1).astype(np.uint8))  # alpha: bicubic on its own
    with pytest.raises(DataError, match="taken in \\[0, 1\\]"):
        visionfw.upscale(model, rgb8.astype(np.float32))  # 0..255 floats: refused, not clipped silently
    with pytest.raises(visionfw.errors.ConfigError, match="upscales by 2"):
        visionfw.upscale(model, rgb8, scale=3)


def test_y_model_upscales_the_luma_and_bicubic_chroma():
    from visionfw.data.color import rgb_to_ycbcr, ycbcr_to_rgb

    model = nearest_x2(channels=1)
    rgb = np.random.default_rng(1).random((6, 5, 3))
    out = visionfw.upscale(model, rgb)
    ycc = rgb_to_ycbcr(rgb)
    want = ycbcr_to_rgb(np.concatenate([nearest(ycc[..., :1]), imresize_numpy(ycc[..., 1:], 2.0)], -1))
    assert out.shape == (12, 10, 3) and np.allclose(out, np.clip(want, 0, 1), atol=1e-5)


def test_pre_upsampled_model_needs_and_uses_the_scale():
    spec = {
        "name": "identity_up",
        "inputs": [(None, None, 1)],
        "conv": [(0, 1)],
        "conv_par": [{"filters": 1, "kernel_size": 1, "use_bias": False}],
    }
    model = visionfw.build_model(spec)
    model.set_weights([np.ones((1, 1, 1, 1), np.float32)])
    grey = np.random.default_rng(2).random((5, 6))
    with pytest.raises(visionfw.errors.ConfigError, match="needs scale="):
        visionfw.upscale(model, grey)
    out = visionfw.upscale(model, grey, scale=3)  # identity on the bicubic-upscaled input = bicubic
    assert np.allclose(out, np.clip(imresize_numpy(grey[..., None], 3.0)[..., 0], 0, 1), atol=1e-6)


def test_tiles_with_the_default_overlap_equal_the_whole_image():
    model = visionfw.get_model("espcn", scale=2)
    img = np.random.default_rng(3).random((37, 29, 3)).astype(np.float32)
    calls = []
    whole = visionfw.upscale(model, img, tile=None)
    tiled = visionfw.upscale(model, img, tile=8, progress=lambda done, total: calls.append((done, total)))
    assert np.abs(whole - tiled).max() < 1e-5
    assert calls[-1] == (20, 20) and len(calls) == 20  # 5 x 4 tiles, one progress call each


def test_photo_files_keep_alpha_16_bits_and_normal_permissions(tmp_path):
    rng = np.random.default_rng(4)
    cases = {
        "grey.png": (rng.random((5, 4, 1)) * 255).astype(np.uint8),
        "greya.png": (rng.random((5, 4, 2)) * 255).astype(np.uint8),
        "rgba.png": (rng.random((3, 6, 4)) * 255).astype(np.uint8),
        "rgb16.png": (rng.random((4, 4, 3)) * 65535).astype(np.uint16),
        "grey16.tif": (rng.random((4, 5, 1)) * 65535).astype(np.uint16),
    }
    old = os.umask(0o022)
    try:
        for name, img in cases.items():
            path = write_photo(tmp_path / name, img)
            assert np.array_equal(read_photo(path), img), name
            assert (path.stat().st_mode & 0o777) == 0o644, name
        from visionfw.data.image_io import write_image  # `visionfw test --save_images` wrote 0600 files

        assert (write_image(tmp_path / "saved.png", cases["grey.png"]).stat().st_mode & 0o777) == 0o644
    finally:
        os.umask(old)


def _cli(*args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "visionfw.cli", "upscale", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
        preexec_fn=lambda: os.umask(0o022),
    )


def test_cli_upscales_a_folder_of_odd_images(tmp_path, monkeypatch, capsys):
    from PIL import Image

    from visionfw.cli import run

    rng = np.random.default_rng(5)
    src = tmp_path / "in"
    src.mkdir()
    images = {
        "grey.png": (rng.random((7, 5, 1)) * 255).astype(np.uint8),
        "rgba.png": (rng.random((6, 9, 4)) * 255).astype(np.uint8),
        "deep.png": (rng.random((5, 6, 3)) * 65535).astype(np.uint16),
        "one.png": (rng.random((1, 1, 3)) * 255).astype(np.uint8),
        "three.bmp": (rng.random((3, 3, 3)) * 255).astype(np.uint8),
    }
    for name, img in images.items():
        write_photo(src / name, img)
    Image.fromarray(images["three.bmp"]).save(src / "photo.jpg", quality=95)
    nearest_x2().save(tmp_path / "nn.keras")  # a whole .keras model: no --model needed
    out = _cli("--weights=nn.keras", "--input=in", "--output=out", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "wrote 6 image(s)" in out.stdout
    assert out.stderr.count("upscale ") >= 6 and "Traceback" not in out.stderr  # one line per image
    for name, img in images.items():
        got = read_photo(tmp_path / "out" / f"{name.rsplit('.', 1)[0]}.png")
        colour = img[..., :3] if img.shape[-1] == 4 else img
        assert got.dtype == img.dtype and got.shape[-1] == img.shape[-1], name  # 16-bit, grey, alpha kept
        assert np.array_equal(got[..., : colour.shape[-1]], nearest(colour)), name
        assert ((tmp_path / "out" / f"{name.rsplit('.', 1)[0]}.png").stat().st_mode & 0o777) == 0o644
    assert read_photo(tmp_path / "out" / "photo.png").shape == (6, 6, 3)
    # one file to one file, a glob (in this process: one fresh interpreter above is enough), and never
    # over the input
    monkeypatch.chdir(tmp_path)
    status = run(["visionfw", "upscale", "--weights=nn.keras", "--input=in/*.bmp", "--output=glob"])
    assert status == 0 and (tmp_path / "glob" / "three.png").exists(), capsys.readouterr().err[-2000:]
    start = time.perf_counter()
    out = _cli("--weights=nn.keras", "--input=in/grey.png", "--output=in/grey.png", cwd=tmp_path)
    assert out.returncode == 1 and "would overwrite the input" in out.stderr and len(out.stderr.splitlines()) == 1
    assert time.perf_counter() - start < 5  # checked before TensorFlow is imported
    assert np.array_equal(read_photo(src / "grey.png"), images["grey.png"])


def test_cli_pretrained_zoo_model_writes_a_4x_image(shared_data, tmp_path):
    """The README's command on a photo: official IMDN x4 (found on the data search path) writes the 4x
    image, and it is closer to the true HR than MATLAB bicubic (RGB PSNR, 4 px shaved)."""
    from visionfw.metrics import psnr_ssim as metrics

    hr = read_photo(shared_data / "benchmark" / "Set5" / "baby.png")[200:320, 160:320]  # 120x160 HR crop
    lr = np.clip(np.floor(imresize_numpy(hr.astype(np.float64) / 255, 0.25) * 255 + 0.5), 0, 255).astype(np.uint8)
    write_photo(tmp_path / "photo.png", lr)
    out = _cli("--model=imdn", "--pretrained", "--scale=4", "--input=photo.png", "--output=photo_x4.png", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    sr = read_photo(tmp_path / "photo_x4.png")
    assert sr.shape == (120, 160, 3) and sr.dtype == np.uint8
    bicubic = np.clip(imresize_numpy(lr.astype(np.float64) / 255, 4.0), 0, 1)
    shave = (slice(4, -4), slice(4, -4))
    gain = metrics.psnr(sr[shave] / 255.0, hr[shave] / 255.0) - metrics.psnr(bicubic[shave], hr[shave] / 255.0)
    assert gain > 1.0, gain


def test_tad_models_keep_their_restore_path(tmp_path, monkeypatch):
    from visionfw.cli import run

    monkeypatch.chdir(tmp_path)
    lr = (np.random.default_rng(6).random((9, 11, 3)) * 255).astype(np.uint8)
    write_photo(tmp_path / "lr" / "a.png", lr)
    visionfw.get_model("aetad_very_small").save_weights(tmp_path / "w.weights.h5")
    assert (
        run(["visionfw", "upscale", "--model=aetad_very_small", "--weights=w.weights.h5", "--input=lr", "--output=hr"])
        == 0
    )
    assert read_photo(tmp_path / "hr" / "a.png").shape == (18, 22, 3)  # the TAD decoder's x2


def _png_header_only(path, width, height, bit_depth):
    """A PNG whose header claims ``width`` x ``height`` RGB pixels (no image data follows)."""
    import struct
    import zlib

    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, 2, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    iend = struct.pack(">I", 0) + b"IEND" + struct.pack(">I", zlib.crc32(b"IEND"))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk + iend)
    return path


@pytest.mark.parametrize("bit_depth", [8, 16])
def test_a_header_over_the_pixel_limit_is_one_line_before_decoding(tmp_path, bit_depth):
    path = _png_header_only(tmp_path / "huge.png", 100000, 100000, bit_depth)
    with pytest.raises(DataError, match=r"huge\.png is 100000x100000 .*max_image_pixels"):
        read_photo(path)
    with pytest.raises(DataError, match="over the limit of 1,000"):
        read_photo(_png_header_only(tmp_path / "small.png", 40, 30, bit_depth), max_pixels=1000)
