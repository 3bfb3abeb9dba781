"""PSNR/SSIM and the two SR evaluation protocols against published and hand-worked numbers."""

import math
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from visionfw.errors import DataError
from visionfw.metrics.psnr_ssim import (
    bicubic_baseline,
    evaluate_pair,
    mean_metrics,
    protocol_description,
    protocol_y,
    psnr,
    quantize,
    shave,
    ssim,
)

SHARED = Path(os.environ.get("VISIONFW_SHARED_DATA") or Path(__file__).resolve().parents[1].parent / "shared" / "data")


def _load_set(name):
    folder = SHARED / "benchmark" / name
    if not folder.is_dir():
        pytest.skip(f"shared benchmark data not found at {folder} (set VISIONFW_SHARED_DATA)")
    return [np.array(Image.open(p)) for p in sorted(folder.glob("*.png"))]


def test_psnr_hand_values():
    a = np.zeros((4, 4, 1))
    assert psnr(a, a + 0.1) == pytest.approx(20.0, abs=1e-12)  # mse 0.01
    assert psnr(np.zeros((2, 2), np.uint8), np.full((2, 2), 255, np.uint8)) == pytest.approx(0.0)
    assert psnr(a, a) == math.inf
    with pytest.raises(DataError, match="shape"):
        psnr(a, np.zeros((4, 5, 1)))


def _ssim_by_definition(x, y):
    """Independent SSIM: explicit 11x11 windows, weighted moments, L=255 (x, y on [0, 255])."""
    coords = np.arange(11) - 5.0
    gx, gy = np.meshgrid(coords, coords)
    w = np.exp(-(gx**2 + gy**2) / (2 * 1.5**2))
    w /= w.sum()
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    vals = []
    for i in range(x.shape[0] - 10):
        for j in range(x.shape[1] - 10):
            px, py = x[i : i + 11, j : j + 11], y[i : i + 11, j : j + 11]
            mx, my = (w * px).sum(), (w * py).sum()
            vx, vy = (w * (px - mx) ** 2).sum(), (w * (py - my) ** 2).sum()
            cxy = (w * (px - mx) * (py - my)).sum()
            vals.append((2 * mx * my + c1) * (2 * cxy + c2) / ((mx**2 + my**2 + c1) * (vx + vy + c2)))
    return float(np.mean(vals))


def test_ssim_matches_independent_definition():
    rng = np.random.default_rng(7)
    x = rng.random((15, 13))
    y = np.clip(x + 0.1 * rng.standard_normal((15, 13)), 0, 1)
    expected = _ssim_by_definition(x * 255, y * 255)
    assert ssim(x, y) == pytest.approx(expected, abs=1e-12)
    assert 0.3 < expected < 0.99  # a real, non-trivial value
    # 3 channels: mean over channels; uint8 is taken on [0, 255]
    x3, y3 = np.stack([x, y, x], -1), np.stack([y, y, 1 - x], -1)
    per_channel = [_ssim_by_definition(x3[..., c] * 255, y3[..., c] * 255) for c in range(3)]
    assert ssim(x3, y3) == pytest.approx(np.mean(per_channel), abs=1e-12)
    assert ssim(quantize(x), quantize(y)) == pytest.approx(ssim(quantize(x) / 255.0, quantize(y) / 255.0), abs=1e-12)


def test_ssim_identical_and_constant_images():
    img = np.random.default_rng(0).random((20, 20))
    assert ssim(img, img) == pytest.approx(1.0, abs=1e-12)
    # constant images 100 and 110: variances vanish, SSIM = (2ab + C1) / (a^2 + b^2 + C1)
    a, b = np.full((12, 12), 100 / 255), np.full((12, 12), 110 / 255)
    c1 = (0.01 * 255) ** 2
    assert ssim(a, b) == pytest.approx((2 * 100 * 110 + c1) / (100**2 + 110**2 + c1), abs=1e-12)
    with pytest.raises(DataError, match="11x11"):
        ssim(np.zeros((10, 30)), np.zeros((10, 30)))


def test_ssim_optional_downsampling():
    rng = np.random.default_rng(2)
    small = rng.random((40, 40))
    noisy = np.clip(small + 0.05 * rng.standard_normal(small.shape), 0, 1)
    assert ssim(small, noisy, downsample=True) == ssim(small, noisy)  # round(40/256) = 0 -> f = 1
    big = np.kron(small, np.ones((13, 13)))  # 520 px: f = 2
    big_noisy = np.kron(noisy, np.ones((13, 13)))
    assert ssim(big, big_noisy, downsample=True) != pytest.approx(ssim(big, big_noisy), abs=1e-6)


def test_shave_and_quantize():
    img = np.arange(36).reshape(6, 6)
    np.testing.assert_array_equal(shave(img, 2), img[2:4, 2:4])
    assert shave(np.zeros((1, 6, 7, 3)), 1).shape == (1, 4, 5, 3)
    assert shave(img, 0) is img
    np.testing.assert_array_equal(quantize(np.array([-0.1, 0.5 / 255, 127.5 / 255, 1.2])), [0, 1, 128, 255])


def test_protocol_y_srcnn_rounds_edsr_does_not():
    rgb = np.array([[[10, 200, 30]]], np.uint8)
    y_float = (16 + (65.481 * 10 + 128.553 * 200 + 24.966 * 30) / 255) / 255
    assert protocol_y(rgb, "edsr")[0, 0, 0] == pytest.approx(y_float, abs=1e-12)
    assert protocol_y(rgb, "srcnn")[0, 0, 0] == pytest.approx(np.floor(y_float * 255 + 0.5) / 255, abs=1e-12)
    grey = np.array([[[77]]], np.uint8)
    assert protocol_y(grey, "srcnn")[0, 0, 0] == pytest.approx(77 / 255)
    with pytest.raises(DataError, match="protocol"):
        protocol_y(rgb, "vdsr")


def test_evaluate_pair_shaves_and_describes():
    hr = np.zeros((20, 20, 1), np.uint8)
    sr = hr.copy()
    sr[:3] = 255  # only inside the 3 px border: invisible after shaving
    res = evaluate_pair(sr, hr, 3, protocol="srcnn")
    assert res["psnr"] == math.inf and res["ssim"] == pytest.approx(1.0)
    assert res["protocol"] == protocol_description("srcnn", 3, "y")
    assert "shave 3 px" in res["protocol"] and "MATLAB rgb2ycbcr" in res["protocol"]
    assert "RGB, shave 2 px" in protocol_description("edsr", 2, "rgb")
    sr[5, 5] = 255
    assert evaluate_pair(sr, hr, 3)["psnr"] == pytest.approx(10 * np.log10(14 * 14), abs=1e-9)
    with pytest.raises(DataError, match="modcrop"):
        evaluate_pair(sr[:-1], hr, 3)


def test_mean_metrics_averages_db():
    rs = [dict(psnr=30.0, ssim=0.8, protocol="p"), dict(psnr=40.0, ssim=0.9, protocol="p")]
    assert mean_metrics(rs) == dict(psnr=35.0, ssim=pytest.approx(0.85), count=2, protocol="p")
    with pytest.raises(DataError, match="different protocols"):
        mean_metrics(rs + [dict(psnr=1.0, ssim=0.1, protocol="q")])


# independent re-implementation (3 decimals) and published tables (2 decimals, Y, shave = scale)
SRCNN_BICUBIC = {
    "Set5": ((33.661, 30.392, 28.421), (33.66, 30.39, 28.42)),
    "Set14": ((30.232, 27.541, 26.000), (30.24, 27.55, 26.00)),
}
# bicubic SSIM as published in VDSR/LapSRN/RCAN tables
SET5_BICUBIC_SSIM = (0.9299, 0.8682, 0.8104)


@pytest.mark.parametrize("dataset", ["Set5", "Set14"])
def test_bicubic_baseline_srcnn_protocol_reproduces_published(dataset):
    images = _load_set(dataset)
    independent, published = SRCNN_BICUBIC[dataset]
    for i, scale in enumerate((2, 3, 4)):
        res = mean_metrics(bicubic_baseline(img, scale, "srcnn") for img in images)
        assert res["count"] == len(images)
        assert res["psnr"] == pytest.approx(independent[i], abs=0.0006), (dataset, scale)
        assert res["psnr"] == pytest.approx(published[i], abs=0.01), (dataset, scale)
        if dataset == "Set5":
            assert res["ssim"] == pytest.approx(SET5_BICUBIC_SSIM[i], abs=0.00005), scale


def test_bicubic_baseline_edsr_protocol_set5():
    images = _load_set("Set5")
    got = [mean_metrics(bicubic_baseline(img, s, "edsr") for img in images)["psnr"] for s in (2, 3, 4)]
    np.testing.assert_allclose(got, [33.673, 30.403, 28.429], atol=0.0006)
