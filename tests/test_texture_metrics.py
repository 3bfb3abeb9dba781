"""LPIPS (against a torch re-implementation of the same formula) and NIQE (estimators, ranking,
pristine models)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter
from scipy.special import gamma as G

from visionfw.errors import DataError, WeightsError
from visionfw.metrics import lpips as vlpips
from visionfw.metrics import niqe as vniqe

SET5 = Path("/work/shared/data/benchmark/Set5")
BSD200 = Path("/work/shared/data/train/BSD200")


def _set5(name="baby"):
    from visionfw.data.image_io import read_image_uint8

    path = SET5 / f"{name}.png"
    if not path.is_file():
        pytest.skip(f"{path} not available")
    return read_image_uint8(path)


# --------------------------------------------------------------------------- LPIPS


def _torch_lpips_files(tmp_path, net, seed=0):
    """Random torchvision-layout backbone and LPIPS lin state dicts written by torch.save, plus
    the torch modules and a torch LPIPS written from the paper's formula."""
    torch = pytest.importorskip("torch")
    nn = torch.nn
    torch.manual_seed(seed)
    spec = vlpips.NETS[net]
    layers = []
    for index, kind, args in spec.layers:
        assert index == len(layers)  # keeps torchvision's numbering
        if kind == "conv":
            cin, cout, k, stride, pad = args
            conv = nn.Conv2d(cin, cout, k, stride=stride, padding=pad)
            nn.init.kaiming_normal_(conv.weight)
            nn.init.normal_(conv.bias, std=0.05)
            layers.append(conv)
        elif kind == "relu":
            layers.append(nn.ReLU())
        else:
            layers.append(nn.MaxPool2d(args[0], args[1]))
    backbone = nn.Module()
    backbone.features = nn.Sequential(*layers)
    lins = nn.Module()
    for k, c in enumerate(spec.channels):
        lin = nn.Sequential(nn.Dropout(), nn.Conv2d(c, 1, 1, bias=False))
        with torch.no_grad():
            lin[1].weight.copy_(torch.rand(1, c, 1, 1))  # non-negative, like LPIPS's
        setattr(lins, f"lin{k}", nn.Module())
        getattr(lins, f"lin{k}").model = lin
    state = backbone.state_dict()
    state["classifier.1.weight"] = torch.zeros(4, 4)  # torchvision files carry a classifier: ignored
    b_path, l_path = tmp_path / f"{net}_backbone.pth", tmp_path / f"{net}_lin.pth"
    torch.save(state, b_path)
    torch.save(lins.state_dict(), l_path)

    def reference(a, b):
        shift = torch.tensor(vlpips.LPIPS_SHIFT).view(1, 3, 1, 1)
        scale = torch.tensor(vlpips.LPIPS_SCALE).view(1, 3, 1, 1)
        feats = []
        for img in (a, b):
            x = (torch.from_numpy(img).permute(0, 3, 1, 2) * 2 - 1 - shift) / scale
            outs = []
            for index, layer in enumerate(backbone.features):
                x = layer(x)
                if index in spec.taps:
                    outs.append(x / (torch.sqrt(torch.sum(x**2, dim=1, keepdim=True)) + 1e-10))
            feats.append(outs)
        total = 0
        for k, (f0, f1) in enumerate(zip(*feats)):
            total = total + getattr(lins, f"lin{k}").model[1]((f0 - f1) ** 2).mean(dim=(2, 3))
        return total[:, 0].detach().numpy()

    return b_path, l_path, reference


def _pair(size=64):
    img = _set5("baby")[100 : 100 + size, 150 : 150 + size].astype(np.float32) / 255.0
    rng = np.random.default_rng(1)
    a = np.stack([img, np.ascontiguousarray(img[::-1])])
    b = np.clip(a + rng.normal(0, 0.08, a.shape), 0, 1).astype(np.float32)
    b[1] = gaussian_filter(a[1], (1.5, 1.5, 0))
    return a, b


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_lpips_matches_torch_formula(tmp_path, net):
    b_path, l_path, reference = _torch_lpips_files(tmp_path, net)
    metric = vlpips.LPIPS(net, backbone_weights=b_path, lin_weights=l_path)
    a, b = _pair()
    ours = np.asarray(metric(a, b))
    ref = reference(a, b)
    assert ours.shape == (2,) and np.all(ref > 0)
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-8)  # measured: ~1e-7 relative
    # LPIPS(x, x) == 0, symmetry, single-image convenience, uint8 input
    np.testing.assert_allclose(np.asarray(metric(a, a)), 0.0, atol=1e-7)
    np.testing.assert_allclose(np.asarray(metric(b, a)), ours, rtol=1e-5)
    assert metric.distance(a[0], b[0]) == pytest.approx(float(ours[0]), rel=1e-5)
    assert "random" not in metric.protocol.lower() and net in metric.protocol


def test_lpips_random_weights_flag_and_shapes():
    metric = vlpips.LPIPS("alex", random_weights=True)
    assert "RANDOM" in metric.protocol and metric.weights is None
    a, b = _pair(48)
    assert np.asarray(metric(a, b)).shape == (2,)
    with pytest.raises(DataError, match="too small"):
        metric(a[:, :20, :20], b[:, :20, :20])
    with pytest.raises(DataError, match="differ in shape"):
        metric(a, b[:, :40])
    with pytest.raises(DataError, match="unknown"):
        vlpips.LPIPS("squeeze", random_weights=True)


def test_lpips_missing_weights_message(tmp_path, monkeypatch):
    monkeypatch.setenv("VISIONFW_WEIGHTS", str(tmp_path / "env"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    with pytest.raises(WeightsError) as err:
        vlpips.LPIPS("alex")
    msg = str(err.value)
    for part in (
        "alexnet-owt-7be5be79.pth",
        str(tmp_path / "env"),
        str(tmp_path / "home"),
        "backbone_weights=",
        "download=True",
        "https://download.pytorch.org/models/",
    ):
        assert part in msg
    with pytest.raises(WeightsError, match="does not exist"):
        vlpips.LPIPS("vgg", backbone_weights=tmp_path / "nope.pth")


def test_lpips_lookup_by_name_checks_torchvision_hash(tmp_path, monkeypatch):
    b_path, l_path, _ = _torch_lpips_files(tmp_path, "alex")
    folder = tmp_path / "env" / "lpips"
    folder.mkdir(parents=True)
    monkeypatch.setenv("VISIONFW_WEIGHTS", str(tmp_path / "env"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (folder / "alex.pth").write_bytes(l_path.read_bytes())
    # the lin file is found by its official name; the backbone comes by path
    metric = vlpips.LPIPS("alex", backbone_weights=b_path)
    assert metric.weights[1] == folder / "alex.pth"
    # a file under torchvision's name whose sha256 lacks the name's prefix is refused
    (folder / "alexnet-owt-7be5be79.pth").write_bytes(b_path.read_bytes())
    with pytest.raises(WeightsError, match="7be5be79"):
        vlpips.LPIPS("alex")


def test_lpips_wrong_file_is_named(tmp_path):
    b_path, l_path, _ = _torch_lpips_files(tmp_path, "alex")
    with pytest.raises(WeightsError, match="lin0.model.1.weight"):
        vlpips.LPIPS("alex", backbone_weights=b_path, lin_weights=b_path)
    with pytest.raises(WeightsError, match="features.0.weight"):
        vlpips.LPIPS("alex", backbone_weights=l_path, lin_weights=l_path)


# --------------------------------------------------------------------------- NIQE estimators


def _ggd_sample(rng, shape, n, scale=1.0):
    # |x| = scale * Gamma(1/shape)^(1/shape) has the GGD density exp(-(|x|/scale)^shape)
    mag = scale * rng.gamma(1.0 / shape, 1.0, n) ** (1.0 / shape)
    return np.where(rng.random(n) < 0.5, -mag, mag)


@pytest.mark.parametrize("shape", [2.0, 1.0, 0.6])
def test_ggd_fit_recovers_shape_and_variance(shape):
    rng = np.random.default_rng(0)
    x = _ggd_sample(rng, shape, 400_000, scale=0.7)
    est_shape, est_var = vniqe.ggd_fit(x)
    true_var = 0.7**2 * G(3 / shape) / G(1 / shape)
    assert abs(est_shape - shape) < 0.02 * shape  # measured: 1.996, 0.992, 0.601
    assert est_var == pytest.approx(true_var, rel=0.01)


def test_ggd_fit_gaussian_and_laplacian():
    rng = np.random.default_rng(1)
    assert vniqe.ggd_fit(rng.normal(0, 0.5, 400_000))[0] == pytest.approx(2.0, abs=0.03)
    assert vniqe.ggd_fit(rng.laplace(0, 0.5, 400_000))[0] == pytest.approx(1.0, abs=0.02)


def test_aggd_fit_recovers_left_right_variances():
    # AGGD of shape 2: each side a half-Gaussian with its own sigma, side chosen with
    # probability proportional to that sigma (the density is continuous at 0)
    rng = np.random.default_rng(2)
    n, s_left, s_right = 400_000, 0.5, 1.5
    left = rng.random(n) < s_left / (s_left + s_right)
    x = np.where(left, -np.abs(rng.normal(0, s_left, n)), np.abs(rng.normal(0, s_right, n)))
    shape, mean, lvar, rvar = vniqe.aggd_fit(x)
    assert shape == pytest.approx(2.0, abs=0.05)
    assert lvar == pytest.approx(s_left**2, rel=0.01)
    assert rvar == pytest.approx(s_right**2, rel=0.01)
    assert mean == pytest.approx(x.mean(), abs=0.01)
    # symmetric Laplacian: shape 1, mean 0, equal sides
    shape, mean, lvar, rvar = vniqe.aggd_fit(rng.laplace(0, 1.0, n))
    assert shape == pytest.approx(1.0, abs=0.03) and abs(mean) < 0.01 and lvar == pytest.approx(rvar, rel=0.02)


def test_mscn_of_constant_image_is_zero():
    m, sigma = vniqe.mscn(np.full((40, 50), 137.0))
    np.testing.assert_allclose(m, 0.0, atol=1e-9)
    np.testing.assert_allclose(sigma, 0.0, atol=1e-5)


def test_rgb2gray_is_matlabs():
    img = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [10, 200, 30]]], np.uint8)
    # rgb2gray weights (0.298936, 0.587043, 0.114021), rounded: 76.2, 149.7, 29.1, 123.8
    np.testing.assert_array_equal(vniqe.rgb2gray(img), [[76, 150, 29, 124]])


# --------------------------------------------------------------------------- NIQE on images


@pytest.fixture(scope="module")
def shipped():
    return vniqe.load_pristine_model()


def test_niqe_ranks_clean_below_blurred_and_noisy(shipped):
    img = _set5("baby").astype(np.float64) / 255.0
    rng = np.random.default_rng(0)
    clean = vniqe.niqe(img, shipped)
    blurred = vniqe.niqe(gaussian_filter(img, (2, 2, 0)), shipped)
    noisy = vniqe.niqe(np.clip(img + rng.normal(0, 15 / 255, img.shape), 0, 1), shipped)
    assert clean < blurred and clean < noisy, (clean, blurred, noisy)
    result = vniqe.evaluate_niqe(img, shipped, crop_border=4)
    assert "NOT comparable" in result["protocol"] and "rgb2gray" in result["protocol"]
    assert math.isfinite(result["niqe"])


def test_niqe_features_layout():
    img = _set5("bird")  # 288x288 -> 3x3 patches
    feats, sharp = vniqe.niqe_features(img)
    assert feats.shape == (9, 36) and sharp.shape == (9,)
    assert np.all((feats[:, [0, 18]] >= 0.2) & (feats[:, [0, 18]] <= 10))  # GGD shapes on MATLAB's grid
    with pytest.raises(DataError, match="96x96"):
        vniqe.niqe_features(img[:90])


def test_shipped_model_matches_a_refit_in_shape(shipped):
    assert shipped.mu.shape == (36,) and shipped.cov.shape == (36, 36)
    np.testing.assert_allclose(shipped.cov, shipped.cov.T)
    assert np.linalg.eigvalsh(shipped.cov).min() > -1e-10
    assert not shipped.comparable and "T91" in shipped.source and shipped.info["images"] > 250
    from visionfw.data.image_io import list_images

    files = list_images(BSD200)[:3] if BSD200.is_dir() else pytest.skip("BSD200 not available")
    refit = vniqe.fit_pristine_model(files, source="3 BSD200 images")
    assert refit.mu.shape == shipped.mu.shape and refit.cov.shape == shipped.cov.shape
    # same features, same ballpark: the GGD shapes agree to within 25 %
    np.testing.assert_allclose(refit.mu[[0, 18]], shipped.mu[[0, 18]], rtol=0.25)


def test_authors_style_mat_loads(tmp_path, shipped):
    import scipy.io

    path = tmp_path / "modelparameters.mat"
    scipy.io.savemat(path, dict(mu_prisparam=shipped.mu[None], cov_prisparam=shipped.cov))
    model = vniqe.load_pristine_model(path)
    assert model.comparable and model.mu.shape == (36,)
    np.testing.assert_allclose(model.cov, shipped.cov)
    assert "comparable to published" in vniqe.niqe_protocol(model)
    scipy.io.savemat(tmp_path / "bad.mat", dict(mu=shipped.mu[None]))
    with pytest.raises(WeightsError, match="mu_prisparam"):
        vniqe.load_pristine_model(tmp_path / "bad.mat")


def test_model_save_roundtrip(tmp_path, shipped):
    path = shipped.save(tmp_path / "m.npz")
    again = vniqe.load_pristine_model(path)
    np.testing.assert_array_equal(again.mu, shipped.mu)
    assert again.source == shipped.source and again.info == shipped.info
