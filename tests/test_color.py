"""MATLAB rgb2ycbcr / ycbcr2rgb (BT.601 studio swing) on known and hand-computed values."""

import numpy as np
import pytest
import tensorflow as tf

from visionfw.data.color import rgb_to_y, rgb_to_ycbcr, to_y, ycbcr_to_rgb
from visionfw.errors import DataError


def test_matlab_uint8_known_values():
    rgb = np.array([[[255, 255, 255], [0, 0, 0], [255, 0, 0]]], np.uint8)
    # MATLAB: rgb2ycbcr(uint8([255 255 255])) = [235 128 128]; black = [16 128 128]; red = [81 90 240]
    expected = np.array([[[235, 128, 128], [16, 128, 128], [81, 90, 240]]], np.uint8)
    np.testing.assert_array_equal(rgb_to_ycbcr(rgb), expected)
    np.testing.assert_array_equal(rgb_to_ycbcr(tf.constant(rgb)).numpy(), expected)
    np.testing.assert_array_equal(rgb_to_y(rgb)[..., 0], [[235, 16, 81]])
    np.testing.assert_array_equal(ycbcr_to_rgb(expected[:, :2]), rgb[:, :2])


def test_float_hand_computed():
    rgb = np.array([[[1.0, 0.0, 0.0], [0.2, 0.4, 0.6]]], np.float64)
    ycc = rgb_to_ycbcr(rgb)
    np.testing.assert_allclose(ycc[0, 0], [(16 + 65.481) / 255, (128 - 37.797) / 255, (128 + 112) / 255], atol=1e-12)
    y_expected = (16 + 65.481 * 0.2 + 128.553 * 0.4 + 24.966 * 0.6) / 255
    assert ycc[0, 1, 0] == pytest.approx(y_expected, abs=1e-12)
    assert rgb_to_y(rgb)[0, 1, 0] == pytest.approx(y_expected, abs=1e-12)
    assert rgb_to_y(rgb).shape == (1, 2, 1)


def test_round_trip_numpy_and_tf_nhwc():
    rng = np.random.default_rng(1)
    rgb = rng.random((2, 5, 4, 3)).astype(np.float32)
    back = ycbcr_to_rgb(rgb_to_ycbcr(rgb))
    assert back.dtype == np.float32
    np.testing.assert_allclose(back, rgb, atol=1e-5)
    tf_ycc = rgb_to_ycbcr(tf.constant(rgb))
    assert isinstance(tf_ycc, tf.Tensor) and tf_ycc.dtype == tf.float32
    np.testing.assert_allclose(tf_ycc.numpy(), rgb_to_ycbcr(rgb.astype(np.float64)), atol=1e-6)
    np.testing.assert_allclose(ycbcr_to_rgb(tf_ycc).numpy(), rgb, atol=1e-5)


def test_to_y_grey_is_itself_not_via_rgb():
    grey = np.array([[[0.0], [0.5], [1.0]]], np.float32)
    assert to_y(grey) is grey
    via_rgb = rgb_to_y(np.repeat(grey, 3, axis=-1))
    np.testing.assert_allclose(via_rgb[..., 0], [[16 / 255, (16 + 219 * 0.5) / 255, 235 / 255]], atol=1e-6)
    rgb = np.full((2, 2, 3), 0.5, np.float32)
    np.testing.assert_allclose(to_y(rgb), rgb_to_y(rgb))


def test_bad_channels_raise_data_error():
    with pytest.raises(DataError, match="1 \\(grey\\) or 3"):
        to_y(np.zeros((2, 2, 4), np.float32))
    with pytest.raises(DataError, match="3 channels"):
        rgb_to_ycbcr(np.zeros((2, 2, 1), np.float32))
