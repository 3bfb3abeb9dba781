"""Reading odd image files (grey, alpha, 16-bit, palette, tiny, corrupt) and atomic writes."""

import cv2
import numpy as np
import pytest
from PIL import Image

from visionfw.data.image_io import list_images, read_image, read_image_uint8, to_float01, to_uint8, write_image
from visionfw.errors import DataError


def test_grey_stays_one_channel_and_formats(tmp_path):
    grey = np.array([[0, 128], [255, 7]], np.uint8)
    for ext in ("png", "bmp", "tif"):
        Image.fromarray(grey).save(tmp_path / f"g.{ext}")
        img = read_image(tmp_path / f"g.{ext}")
        assert img.dtype == np.float32 and img.shape == (2, 2, 1)
        np.testing.assert_allclose(img[..., 0], grey / 255.0, atol=1e-7)
    Image.fromarray(np.full((8, 8, 3), 200, np.uint8)).save(tmp_path / "c.jpg", quality=95)
    jpg = read_image_uint8(tmp_path / "c.jpg")
    assert jpg.shape == (8, 8, 3) and abs(int(jpg[4, 4, 0]) - 200) <= 2


def test_alpha_is_dropped(tmp_path):
    rgba = np.zeros((3, 4, 4), np.uint8)
    rgba[..., 0], rgba[..., 1], rgba[..., 2], rgba[..., 3] = 10, 20, 30, 0  # fully transparent
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    np.testing.assert_array_equal(read_image_uint8(tmp_path / "rgba.png"), np.broadcast_to([10, 20, 30], (3, 4, 3)))
    la = np.stack([np.full((3, 4), 99, np.uint8), np.zeros((3, 4), np.uint8)], -1)
    Image.fromarray(la, "LA").save(tmp_path / "la.png")
    got = read_image_uint8(tmp_path / "la.png")
    assert got.shape == (3, 4, 1) and (got == 99).all()


def test_sixteen_bit_is_scaled_not_truncated(tmp_path):
    grey16 = np.array([[0, 65535], [257 * 100, 128]], np.uint16)
    cv2.imwrite(str(tmp_path / "g16.png"), grey16)
    img = read_image(tmp_path / "g16.png")
    assert img.shape == (2, 2, 1)
    np.testing.assert_allclose(img[..., 0], grey16 / 65535.0, atol=1e-7)
    # 128/65535*255 = 0.498 -> 0 ; 25700 -> exactly 100
    np.testing.assert_array_equal(read_image_uint8(tmp_path / "g16.png")[..., 0], [[0, 255], [100, 0]])
    rgb16 = np.zeros((2, 3, 3), np.uint16)
    rgb16[..., 0], rgb16[..., 1], rgb16[..., 2] = 1000, 40000, 65535  # R, G, B
    cv2.imwrite(str(tmp_path / "c16.png"), rgb16[..., ::-1])  # OpenCV writes BGR
    img = read_image(tmp_path / "c16.png")
    np.testing.assert_allclose(img[0, 0], [1000 / 65535, 40000 / 65535, 1.0], atol=1e-7)
    np.testing.assert_array_equal(read_image_uint8(tmp_path / "c16.png")[0, 0], [4, 156, 255])


def test_palette_image_becomes_rgb(tmp_path):
    pal = Image.new("P", (2, 1))
    pal.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    pal.putdata([0, 1])
    pal.save(tmp_path / "p.png")
    np.testing.assert_array_equal(read_image_uint8(tmp_path / "p.png"), [[[255, 0, 0], [0, 0, 255]]])


def test_one_pixel_image(tmp_path):
    Image.fromarray(np.array([[[1, 2, 3]]], np.uint8)).save(tmp_path / "one.png")
    assert read_image(tmp_path / "one.png").shape == (1, 1, 3)


@pytest.mark.parametrize("content", [b"", b"\x89PNG", b"not an image at all" * 10])
def test_bad_files_raise_data_error_naming_path(tmp_path, content):
    bad = tmp_path / "bad.png"
    bad.write_bytes(content)
    with pytest.raises(DataError, match="bad.png"):
        read_image(bad)


def test_truncated_png_and_missing_path(tmp_path):
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(tmp_path / "t.png")
    data = (tmp_path / "t.png").read_bytes()
    (tmp_path / "t.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="t.png.*corrupt"):
        read_image(tmp_path / "t.png")
    with pytest.raises(DataError, match="nope.png.*does not exist"):
        read_image(tmp_path / "nope.png")
    with pytest.raises(DataError, match="not a file"):
        read_image(tmp_path)


def test_write_rounds_clips_creates_folders_atomically(tmp_path):
    img = np.array([[[0.5], [-0.2]], [[1.7], [0.2 / 255 + 0.5 / 255]]], np.float32)
    out = write_image(tmp_path / "a" / "b" / "x.png", img)
    assert out.exists()
    np.testing.assert_array_equal(read_image_uint8(out)[..., 0], [[128, 0], [255, 1]])
    assert [p.name for p in out.parent.iterdir()] == ["x.png"]  # no temp file left
    rgb = np.random.default_rng(1).integers(0, 256, (5, 6, 3), dtype=np.uint8)
    write_image(tmp_path / "rgb.png", rgb)
    np.testing.assert_array_equal(read_image_uint8(tmp_path / "rgb.png"), rgb)
    with pytest.raises(DataError, match="format"):
        write_image(tmp_path / "x.gifx", rgb)


def test_list_images_sorted_and_filtered(tmp_path):
    for name in ("b.PNG", "a.jpg", "c.tiff", "notes.txt", ".hidden.png"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "sub.png").mkdir()
    assert [p.name for p in list_images(tmp_path)] == ["a.jpg", "b.PNG", "c.tiff"]
    with pytest.raises(DataError, match="no image files"):
        list_images(tmp_path / "sub.png")
    with pytest.raises(DataError, match="does not exist"):
        list_images(tmp_path / "missing")


def test_to_uint8_clips_and_rounds_like_matlab():
    # floor(x * 255 + 0.5): 0.5 * 255 = 127.5 -> 128; 0.498 * 255 = 126.99 -> 127;
    # (254.5 / 255) * 255 = 254.5 -> 255; 0.001 * 255 = 0.255 -> 0; out of range clips to 0 / 255
    x = np.array([0.5, 0.498, 254.5 / 255, 0.001, -0.3, 1.7, 0.0, 1.0, 2.49 / 255], np.float64)
    out = to_uint8(x)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, [128, 127, 255, 0, 0, 255, 0, 255, 2])
    assert to_uint8(np.float32([[0.2]]))[0, 0] == 51  # 0.2 * 255 = 51.0 (float32 0.2 is 0.20000000298)
    kept = np.array([3, 250], np.uint8)
    assert to_uint8(kept) is kept
    with pytest.raises(DataError, match="int32"):
        to_uint8(np.array([1, 2], np.int32))


def test_to_float01_scales_by_dtype():
    np.testing.assert_array_equal(to_float01(np.array([0, 51, 255], np.uint8)), np.float32([0.0, 0.2, 1.0]))
    np.testing.assert_array_equal(to_float01(np.array([0, 13107, 65535], np.uint16)), np.float32([0.0, 0.2, 1.0]))
    assert to_float01(np.array([0, 255], np.uint8)).dtype == np.float32
    f32 = np.float32([0.25, 1.5])
    assert to_float01(f32) is f32  # float passes through, unchanged and uncopied
    f64 = to_float01(np.float64([0.25]))
    assert f64.dtype == np.float32 and f64[0] == 0.25
    with pytest.raises(DataError, match="int16"):
        to_float01(np.array([1], np.int16))
    round_trip = np.arange(256, dtype=np.uint8)
    np.testing.assert_array_equal(to_uint8(to_float01(round_trip)), round_trip)
