"""Tests of visionfw.weights: official .mat layouts, Keras files, PyTorch state dicts, errors."""

import hashlib
import inspect
import os
from pathlib import Path

import keras
import numpy as np
import pytest
import scipy.io

import visionfw
from visionfw.errors import WeightsError
from visionfw.model_defs.edsr import RGB_MEAN, edsr
from visionfw.model_defs.espcn import espcn
from visionfw.model_defs.rcan import rcan
from visionfw.model_defs.srcnn import srcnn
from visionfw.model_defs.srresnet import srresnet
from visionfw.model_defs.vdsr import vdsr
from visionfw.weights import file_sha256, load_state_dict, load_weights, torch_to_tf_shuffle_permutation
from visionfw.zoo.layers import PixelShuffle

SHARED = Path(os.environ.get("VISIONFW_SHARED_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))
WEIGHTS = SHARED / "weights"


def _convs(model):
    return [layer for layer in model.layers if type(layer).__name__ in ("Conv2D", "EdgePadConv2D")]


# ----------------------------------------------------------------------------- numpy reference


def np_conv(x, w, b=None, pad="zero"):
    """PyTorch-style conv2d on HWC x with an OIHW weight (correlation, 'same' padding)."""
    o, i, kh, kw = w.shape
    ph, pw = (kh - 1) // 2, (kw - 1) // 2
    mode = "constant" if pad == "zero" else "edge"
    xp = np.pad(x, ((ph, kh - 1 - ph), (pw, kw - 1 - pw), (0, 0)), mode=mode)
    h, wd = x.shape[:2]
    out = np.zeros((h, wd, o))
    for r in range(kh):
        for c in range(kw):
            out += xp[r : r + h, c : c + wd, :] @ w[:, :, r, c].T
    return out + (0 if b is None else b)


def np_torch_shuffle(x, r):
    """nn.PixelShuffle on HWC: out[h*r+i, w*r+j, c] = x[h, w, c*r*r + i*r + j]."""
    h, w, crr = x.shape
    c = crr // (r * r)
    return x.reshape(h, w, c, r, r).transpose(0, 3, 1, 4, 2).reshape(h * r, w * r, c)


def _rand(rng, *shape, scale=0.2):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


# ----------------------------------------------------------------------------- small helpers


def test_file_sha256_of_known_bytes(tmp_path):
    p = tmp_path / "abc.bin"
    p.write_bytes(b"abc")
    assert file_sha256(p) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    big = tmp_path / "big.bin"
    data = os.urandom(3 * (1 << 20) + 7)
    big.write_bytes(data)
    assert file_sha256(big) == hashlib.sha256(data).hexdigest()
    with pytest.raises(WeightsError, match="no such file"):
        file_sha256(tmp_path / "missing.bin")


def test_shuffle_permutation_hand_worked_and_equivalent():
    # C=2, r=2: tf channel k reads torch channel (k % 2) * 4 + k // 2
    assert torch_to_tf_shuffle_permutation(2, 2).tolist() == [0, 4, 1, 5, 2, 6, 3, 7]
    assert torch_to_tf_shuffle_permutation(1, 3).tolist() == list(range(9))
    rng = np.random.default_rng(0)
    for c, r in ((2, 2), (3, 3), (3, 2)):
        x = rng.standard_normal((1, 4, 5, c * r * r)).astype(np.float32)
        torch_order = PixelShuffle(scale=r, order="torch")(x).numpy()
        tf_order = PixelShuffle(scale=r, order="tf")(x[..., torch_to_tf_shuffle_permutation(c, r)]).numpy()
        np.testing.assert_array_equal(torch_order, tf_order)
        np.testing.assert_array_equal(torch_order[0], np_torch_shuffle(x[0], r))


# ----------------------------------------------------------------------------- official .mat layouts


def test_srcnn_mat_fortran_order_hand_made(tmp_path):
    """A filter's flat index p is row p % k, column p // k (MATLAB reshape), no flip."""
    k1, k2, k3, n1, n2 = 3, 3, 3, 2, 2
    w1 = np.arange(k1 * k1 * n1, dtype=np.float64).reshape(k1 * k1, n1)
    w2 = np.arange(n1 * k2 * k2 * n2, dtype=np.float64).reshape(n1, k2 * k2, n2) / 10
    w3 = np.arange(n2 * k3 * k3, dtype=np.float64).reshape(n2, k3 * k3) / 100
    path = tmp_path / "tiny.mat"
    scipy.io.savemat(
        path,
        {
            "weights_conv1": w1,
            "biases_conv1": np.array([[1.0], [2.0]]),
            "weights_conv2": w2,
            "biases_conv2": np.array([[3.0], [4.0]]),
            "weights_conv3": w3,
            "biases_conv3": np.array([[5.0]]),
        },
    )
    model = visionfw.build_model(srcnn(f1=k1, f2=k2, f3=k3, n1=n1, n2=n2))
    assert load_weights(model, path) is model
    c1, c2, c3 = _convs(model)
    kern1 = c1.kernel.numpy()
    # row 2, column 0 of filter 1 is element 2 + 3*0 = 2 of column 1; row 0, column 2 is element 6
    assert kern1[2, 0, 0, 1] == w1[2, 1] and kern1[0, 2, 0, 1] == w1[6, 1]
    assert kern1[1, 2, 0, 0] == w1[1 + 3 * 2, 0]
    kern2 = c2.kernel.numpy()
    assert kern2[2, 1, 1, 0] == np.float32(w2[1, 2 + 3 * 1, 0])
    kern3 = c3.kernel.numpy()
    assert kern3[0, 1, 1, 0] == np.float32(w3[1, 0 + 3 * 1])
    np.testing.assert_array_equal(c1.bias.numpy(), [1.0, 2.0])
    np.testing.assert_array_equal(c3.bias.numpy(), [5.0])
    # MATLAB's imfilter is a correlation: an impulse at (y, x) of the first layer alone gives
    # out[y - dr, x - dc] = w[1 + dr, 1 + dc]
    first = keras.Model(model.inputs, c1.output)
    img = np.zeros((1, 7, 7, 1), np.float32)
    img[0, 3, 3, 0] = 1
    out = first(img).numpy()[0, :, :, 1] - 2.0  # minus bias, before ReLU all values >= 0
    ref = w1[:, 1].reshape(3, 3, order="F")
    np.testing.assert_allclose(out[2:5, 2:5], ref[::-1, ::-1], atol=1e-6)


def test_vdsr_mat_struct_hand_made(tmp_path):
    rng = np.random.default_rng(1)
    depth, f = 3, 4
    weights = [_rand(rng, 3, 3, 1, f), _rand(rng, 3, 3, f, f), _rand(rng, 3, 3, f)]  # last cout squeezed
    biases = [_rand(rng, f, 1), _rand(rng, f, 1), _rand(rng, 1, 1)]
    wcell = np.empty((1, depth), dtype=object)
    bcell = np.empty((1, depth), dtype=object)
    for i in range(depth):
        wcell[0, i], bcell[0, i] = weights[i], biases[i]
    path = tmp_path / "vdsr_small.mat"
    scipy.io.savemat(path, {"model": {"weight": wcell, "bias": bcell}})
    model = visionfw.build_model(vdsr(depth=depth, filters=f))
    load_weights(model, path)
    convs = _convs(model)
    np.testing.assert_array_equal(convs[0].kernel.numpy(), weights[0])
    np.testing.assert_array_equal(convs[2].kernel.numpy(), weights[2][..., None])
    np.testing.assert_array_equal(convs[1].bias.numpy(), biases[1].ravel())
    # too deep a model for the file
    with pytest.raises(WeightsError, match=r"3 conv layers but model .* has 4"):
        load_weights(visionfw.build_model(vdsr(depth=4, filters=f)), path)


@pytest.mark.skipif(not WEIGHTS.is_dir(), reason="official weights not available (../shared/data/weights)")
def test_official_files_load_into_the_zoo():
    m = visionfw.get_model("srcnn_955", scale=2)
    load_weights(m, WEIGHTS / "srcnn" / "955_imagenet" / "x2.mat")
    mat = scipy.io.loadmat(WEIGHTS / "srcnn" / "955_imagenet" / "x2.mat")
    c1, c2, c3 = _convs(m)
    assert c2.kernel.shape == (5, 5, 64, 32)
    np.testing.assert_allclose(c1.kernel.numpy()[4, 7, 0, 10], mat["weights_conv1"][4 + 9 * 7, 10], rtol=1e-6)
    np.testing.assert_allclose(c3.bias.numpy(), mat["biases_conv3"].ravel(), rtol=1e-6)
    v = visionfw.get_model("vdsr")
    load_weights(v, WEIGHTS / "vdsr" / "VDSR_Official.mat")
    assert len(_convs(v)) == 20 and float(np.abs(_convs(v)[19].kernel.numpy()).sum()) > 0
    # weights for 9-5-5 do not fit 9-1-5: the error names the key and the shapes
    with pytest.raises(WeightsError, match=r"weights_conv2.*\(5, 5, 64, 32\).*\(1, 1, 64, 32\)"):
        load_weights(visionfw.get_model("srcnn_915"), WEIGHTS / "srcnn" / "955_imagenet" / "x2.mat")
    with pytest.raises(WeightsError, match="3 conv layers but model 'VDSR' has 20"):
        load_weights(visionfw.get_model("vdsr"), WEIGHTS / "srcnn" / "955_imagenet" / "x2.mat")


def test_bad_files_raise_weights_error(tmp_path):
    model = visionfw.build_model(srcnn(f1=3, f2=1, f3=3, n1=2, n2=2))
    with pytest.raises(WeightsError, match="does not exist"):
        load_weights(model, tmp_path / "nope.mat")
    junk = tmp_path / "junk.mat"
    junk.write_bytes(b"not a mat file at all" * 10)
    with pytest.raises(WeightsError, match="junk.mat: not a readable .mat"):
        load_weights(model, junk)
    other = tmp_path / "other.mat"
    scipy.io.savemat(other, {"foo": np.ones(3)})
    with pytest.raises(WeightsError, match="unrecognised .mat layout.*foo"):
        load_weights(model, other)
    partial = tmp_path / "partial.mat"
    scipy.io.savemat(partial, {"weights_conv1": np.ones((9, 2)), "biases_conv1": np.ones((2, 1))})
    with pytest.raises(WeightsError, match="lacks key.*weights_conv2"):
        load_weights(model, partial)
    odd = tmp_path / "weights.xyz"
    odd.write_bytes(b"x")
    with pytest.raises(WeightsError, match="cannot tell the weights format"):
        load_weights(model, odd)
    bad_npz = tmp_path / "bad.npz"
    bad_npz.write_bytes(b"garbage")
    with pytest.raises(WeightsError, match="bad.npz: not a readable .npz"):
        load_weights(model, bad_npz)


def test_pth_without_torch_suggests_npz(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now raises ImportError
    p = tmp_path / "model.pth"
    p.write_bytes(b"\x80\x02}q\x00.")
    with pytest.raises(WeightsError, match=r"model.pth: not a PyTorch checkpoint.*\.npz"):
        load_weights(visionfw.build_model(espcn(n1=4, n2=4)), p)


def test_pth_against_a_real_torch_model(tmp_path):
    """When torch is installed: a torch ESPCN's state dict (.pth) gives the torch model's output."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 6, 5, padding=2),
        torch.nn.Tanh(),
        torch.nn.Conv2d(6, 4, 3, padding=1),
        torch.nn.Tanh(),
        torch.nn.Conv2d(4, 3 * 9, 3, padding=1),
        torch.nn.PixelShuffle(3),
    )
    torch.save(net.state_dict(), tmp_path / "espcn.pth")
    x = np.random.default_rng(0).random((1, 7, 8, 3)).astype(np.float32)
    with torch.no_grad():
        want = net(torch.from_numpy(x.transpose(0, 3, 1, 2))).numpy().transpose(0, 2, 3, 1)
    model = visionfw.build_model(espcn(channels=3, n1=6, n2=4, scale=3))
    load_weights(model, tmp_path / "espcn.pth")
    np.testing.assert_allclose(model(x).numpy(), want, atol=1e-5)


# ----------------------------------------------------------------------------- Keras files


def test_keras_file_and_weights_h5_round_trip(tmp_path):
    src = visionfw.build_model(espcn(channels=1, n1=6, n2=4, scale=3))
    x = np.random.default_rng(2).random((1, 9, 11, 1)).astype(np.float32)
    want = src(x).numpy()
    src.save(tmp_path / "m.keras")
    src.save_weights(tmp_path / "m.weights.h5")
    for name in ("m.keras", "m.weights.h5"):
        dst = visionfw.build_model(espcn(channels=1, n1=6, n2=4, scale=3))
        assert not np.allclose(dst(x).numpy(), want)
        load_weights(dst, tmp_path / name)
        np.testing.assert_allclose(dst(x).numpy(), want, atol=1e-6)
    wrong = visionfw.build_model(espcn(channels=1, n1=8, n2=4, scale=3))
    with pytest.raises(WeightsError, match=r"m.keras.*shape \(5, 5, 1, 6\).*\(5, 5, 1, 8\)"):
        load_weights(wrong, tmp_path / "m.keras")
    with pytest.raises(WeightsError, match="m.weights.h5: load_weights failed"):
        load_weights(wrong, tmp_path / "m.weights.h5")
    deeper = visionfw.build_model(vdsr(depth=4, filters=4))
    with pytest.raises(WeightsError, match="has 3 layers with weights, model 'VDSR' has 4"):
        load_weights(deeper, tmp_path / "m.keras")


# ----------------------------------------------------------------------------- PyTorch state dicts


def test_espcn_state_dict_matches_numpy_reference(tmp_path):
    rng = np.random.default_rng(3)
    c, r, n1, n2 = 3, 2, 6, 4
    state = {
        "conv1.weight": _rand(rng, n1, c, 5, 5),
        "conv1.bias": _rand(rng, n1),
        "conv2.weight": _rand(rng, n2, n1, 3, 3),
        "conv2.bias": _rand(rng, n2),
        "conv3.weight": _rand(rng, c * r * r, n2, 3, 3),
        "conv3.bias": _rand(rng, c * r * r),
    }
    np.savez(tmp_path / "espcn.npz", **state)
    x = rng.random((7, 9, c)).astype(np.float32)
    h = np.tanh(np_conv(x, state["conv1.weight"], state["conv1.bias"]))
    h = np.tanh(np_conv(h, state["conv2.weight"], state["conv2.bias"]))
    ref = np_torch_shuffle(np_conv(h, state["conv3.weight"], state["conv3.bias"]), r)
    model = visionfw.build_model(espcn(channels=c, n1=n1, n2=n2, scale=r))  # PixelShuffle order 'tf'
    load_weights(model, tmp_path / "espcn.npz")  # default shuffle_order='torch': channels reordered
    np.testing.assert_allclose(model(x[None]).numpy()[0], ref, atol=1e-5)
    # without the reordering the output is wrong: the test can fail
    plain = visionfw.build_model(espcn(channels=c, n1=n1, n2=n2, scale=r))
    load_weights(plain, tmp_path / "espcn.npz", shuffle_order="tf")
    assert np.abs(plain(x[None]).numpy()[0] - ref).max() > 1e-2


def _edsr_state(rng, n_blocks, f, scale, c=3):
    state = {
        "sub_mean.weight": np.eye(c, dtype=np.float32)[:, :, None, None],
        "sub_mean.bias": np.zeros(c, np.float32),
        "add_mean.weight": np.eye(c, dtype=np.float32)[:, :, None, None],
        "add_mean.bias": np.zeros(c, np.float32),
        "head.0.weight": _rand(rng, f, c, 3, 3),
        "head.0.bias": _rand(rng, f),
    }
    for b in range(n_blocks):
        for j in (0, 2):
            state[f"body.{b}.body.{j}.weight"] = _rand(rng, f, f, 3, 3, scale=0.1)
            state[f"body.{b}.body.{j}.bias"] = _rand(rng, f, scale=0.05)
    state[f"body.{n_blocks}.weight"] = _rand(rng, f, f, 3, 3, scale=0.1)
    state[f"body.{n_blocks}.bias"] = _rand(rng, f)
    steps = [2] * (scale.bit_length() - 1) if scale & (scale - 1) == 0 else [scale]
    for k, r in enumerate(steps):
        state[f"tail.0.{2 * k}.weight"] = _rand(rng, f * r * r, f, 3, 3, scale=0.1)
        state[f"tail.0.{2 * k}.bias"] = _rand(rng, f * r * r, scale=0.05)
    state["tail.1.weight"] = _rand(rng, c, f, 3, 3, scale=0.1)
    state["tail.1.bias"] = _rand(rng, c, scale=0.05)
    return state, steps


def _edsr_reference(x, state, n_blocks, steps, res_scale):
    mean = np.array(RGB_MEAN)
    h = np_conv(x - mean, state["head.0.weight"], state["head.0.bias"])
    y = h
    for b in range(n_blocks):
        t = np.maximum(np_conv(y, state[f"body.{b}.body.0.weight"], state[f"body.{b}.body.0.bias"]), 0)
        y = y + res_scale * np_conv(t, state[f"body.{b}.body.2.weight"], state[f"body.{b}.body.2.bias"])
    y = h + np_conv(y, state[f"body.{n_blocks}.weight"], state[f"body.{n_blocks}.bias"])
    for k, r in enumerate(steps):
        y = np_torch_shuffle(np_conv(y, state[f"tail.0.{2 * k}.weight"], state[f"tail.0.{2 * k}.bias"]), r)
    return np_conv(y, state["tail.1.weight"], state["tail.1.bias"]) + mean


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_edsr_baseline_state_dict_both_shuffle_orders(tmp_path, scale):
    rng = np.random.default_rng(scale)
    n_blocks, f = 2, 8
    state, steps = _edsr_state(rng, n_blocks, f, scale)
    np.savez(tmp_path / "edsr.npz", **state)
    x = rng.random((6, 7, 3)).astype(np.float32)
    ref = _edsr_reference(x.astype(np.float64), state, n_blocks, steps, res_scale=1.0)
    outs = {}
    for order in ("tf", "torch"):
        model = visionfw.build_model(
            edsr(n_blocks=n_blocks, filters=f, res_scale=1.0, scale=scale, shuffle_order=order)
        )
        load_weights(model, tmp_path / "edsr.npz")
        outs[order] = model(x[None]).numpy()[0]
        np.testing.assert_allclose(outs[order], ref, atol=1e-4)
    np.testing.assert_allclose(outs["tf"], outs["torch"], atol=1e-5)


def test_state_dict_mismatches_name_key_and_fix(tmp_path):
    rng = np.random.default_rng(5)
    state, _ = _edsr_state(rng, 2, 8, 2)
    model = visionfw.build_model(edsr(n_blocks=2, filters=8, res_scale=1.0, scale=2))
    short = dict(state)
    del short["body.2.weight"], short["body.2.bias"]
    with pytest.raises(
        WeightsError, match=r"7 PyTorch modules .* has 8 Keras layers.*body.1.body.2, tail.0.0.*name_map"
    ):
        load_state_dict(model, short)
    wide = dict(state)
    wide["head.0.weight"] = _rand(rng, 16, 3, 3, 3)
    with pytest.raises(WeightsError, match=r"head.0.weight -> conv0_n2: shape \(3, 3, 3, 16\)"):
        load_state_dict(model, wide)
    as_bn = {}
    for key, value in state.items():
        if key == "head.0.weight":
            as_bn.update(
                {
                    "head.0.weight": np.ones(8, np.float32),
                    "head.0.running_mean": np.zeros(8),
                    "head.0.running_var": np.ones(8),
                }
            )
        elif key == "head.0.bias":
            as_bn[key] = np.zeros(8, np.float32)
        else:
            as_bn[key] = value
    with pytest.raises(WeightsError, match=r"module 'head.0' \(bn.*paired with Keras layer 'conv0_n2' \(Conv2D\)"):
        load_state_dict(model, as_bn)
    with pytest.raises(WeightsError, match="name_map key 'nothing'"):
        load_state_dict(model, state, name_map={"nothing": "conv0_n2"})
    with pytest.raises(WeightsError, match="'no_layer', which is not a Keras layer"):
        load_state_dict(model, state, name_map={"head.0": "no_layer"})
    with pytest.raises(WeightsError, match="empty"):
        load_state_dict(model, {})
    # a name_map that swaps two equal-shaped convs changes where the weights go
    swapped = visionfw.build_model(edsr(n_blocks=2, filters=8, res_scale=1.0, scale=2))
    load_state_dict(swapped, state, name_map={"body.0.body.0": "block1_n4_conv1", "body.1.body.0": "block0_n3_conv1"})
    k = swapped.get_layer("block1_n4_conv1").kernel.numpy()
    np.testing.assert_array_equal(k, state["body.0.body.0.weight"].transpose(2, 3, 1, 0))


def test_rcan_channel_attention_1x1_convs_become_dense():
    rng = np.random.default_rng(6)
    f, red = 16, 4
    model = visionfw.build_model(rcan(n_groups=1, n_blocks=1, filters=f, reduction=red, scale=2))
    state = {"head.0.weight": _rand(rng, f, 3, 3, 3), "head.0.bias": _rand(rng, f)}
    pre = "body.0.body.0.body"
    state.update(
        {
            f"{pre}.0.weight": _rand(rng, f, f, 3, 3),
            f"{pre}.0.bias": _rand(rng, f),
            f"{pre}.2.weight": _rand(rng, f, f, 3, 3),
            f"{pre}.2.bias": _rand(rng, f),
            f"{pre}.3.conv_du.0.weight": _rand(rng, f // red, f, 1, 1),
            f"{pre}.3.conv_du.0.bias": _rand(rng, f // red),
            f"{pre}.3.conv_du.2.weight": _rand(rng, f, f // red, 1, 1),
            f"{pre}.3.conv_du.2.bias": _rand(rng, f),
            "body.0.body.1.weight": _rand(rng, f, f, 3, 3),
            "body.0.body.1.bias": _rand(rng, f),
            "body.1.weight": _rand(rng, f, f, 3, 3),
            "body.1.bias": _rand(rng, f),
            "tail.0.0.weight": _rand(rng, 4 * f, f, 3, 3),
            "tail.0.0.bias": _rand(rng, 4 * f),
            "tail.1.weight": _rand(rng, 3, f, 3, 3),
            "tail.1.bias": _rand(rng, 3),
        }
    )
    load_state_dict(model, state)
    ca = [layer for layer in model.layers if type(layer).__name__ == "ChannelAttention"][0]
    np.testing.assert_array_equal(ca.down.kernel.numpy(), state[f"{pre}.3.conv_du.0.weight"][:, :, 0, 0].T)
    np.testing.assert_array_equal(ca.up.kernel.numpy(), state[f"{pre}.3.conv_du.2.weight"][:, :, 0, 0].T)
    np.testing.assert_array_equal(ca.up.bias.numpy(), state[f"{pre}.3.conv_du.2.bias"])
    # the channel attention output equals the PyTorch formula on a test input
    x = rng.random((1, 5, 6, f)).astype(np.float32)
    pooled = x.mean(axis=(1, 2))
    hid = np.maximum(pooled @ state[f"{pre}.3.conv_du.0.weight"][:, :, 0, 0].T + state[f"{pre}.3.conv_du.0.bias"], 0)
    gate = 1 / (
        1 + np.exp(-(hid @ state[f"{pre}.3.conv_du.2.weight"][:, :, 0, 0].T + state[f"{pre}.3.conv_du.2.bias"]))
    )
    np.testing.assert_allclose(ca(x).numpy(), x * gate[:, None, None, :], atol=1e-6)


def test_srresnet_batchnorm_and_prelu():
    rng = np.random.default_rng(7)
    f = 8
    model = visionfw.build_model(srresnet(n_blocks=1, filters=f, scale=2))
    state = {
        "conv_input.weight": _rand(rng, f, 3, 9, 9),
        "conv_input.bias": _rand(rng, f),
        "relu.weight": np.array([0.25], np.float32),
        "res.0.conv1.weight": _rand(rng, f, f, 3, 3),
        "res.0.conv1.bias": _rand(rng, f),
    }

    def bn(prefix):
        state.update(
            {
                f"{prefix}.weight": _rand(rng, f) + 1,
                f"{prefix}.bias": _rand(rng, f),
                f"{prefix}.running_mean": _rand(rng, f),
                f"{prefix}.running_var": np.abs(_rand(rng, f)) + 0.5,
                f"{prefix}.num_batches_tracked": np.array(10),
            }
        )

    bn("res.0.bn1")
    state["res.0.prelu.weight"] = _rand(rng, f)
    state.update({"res.0.conv2.weight": _rand(rng, f, f, 3, 3), "res.0.conv2.bias": _rand(rng, f)})
    bn("res.0.bn2")
    state.update({"conv_mid.weight": _rand(rng, f, f, 3, 3), "conv_mid.bias": _rand(rng, f)})
    bn("bn_mid")
    state.update(
        {
            "up.0.weight": _rand(rng, 4 * f, f, 3, 3),
            "up.0.bias": _rand(rng, 4 * f),
            "up.2.weight": np.array([0.1], np.float32),
            "conv_output.weight": _rand(rng, 3, f, 9, 9),
            "conv_output.bias": _rand(rng, 3),
        }
    )
    load_state_dict(model, state)
    bns = [layer for layer in model.layers if type(layer).__name__ == "BatchNormalization"]
    assert len(bns) == 3 and all(b.epsilon == 1e-5 for b in bns)
    np.testing.assert_array_equal(bns[0].gamma.numpy(), state["res.0.bn1.weight"])
    np.testing.assert_array_equal(bns[0].moving_variance.numpy(), state["res.0.bn1.running_var"])
    np.testing.assert_array_equal(bns[2].moving_mean.numpy(), state["bn_mid.running_mean"])
    prelus = [layer for layer in model.layers if type(layer).__name__ == "PReLU"]
    np.testing.assert_array_equal(prelus[0].alpha.numpy(), np.full((1, 1, f), 0.25, np.float32))
    np.testing.assert_array_equal(prelus[1].alpha.numpy().ravel(), state["res.0.prelu.weight"])
    # BN in inference: (x - mean) / sqrt(var + 1e-5) * gamma + beta
    x = rng.random((1, 3, 4, f)).astype(np.float32)
    b = bns[0]
    want = (x - state["res.0.bn1.running_mean"]) / np.sqrt(state["res.0.bn1.running_var"] + 1e-5) * state[
        "res.0.bn1.weight"
    ] + state["res.0.bn1.bias"]
    np.testing.assert_allclose(b(x, training=False).numpy(), want, atol=1e-5)


# ----------------------------------------------------------------------------- every family round-trips

# small configs of every zoo family: these values wherever the family function has the parameter,
# then per-family ones
_SMALL_ANY = dict(
    filters=16, n_blocks=1, n_groups=1, n_units=2, n_layers=2, depth=4, down=(8,) * 5, up=(8,) * 5, in_channels=4
)
_SMALL = {
    "rcan": dict(reduction=4),
    "imdn": dict(n_blocks=2, distilled=4, reduction=4),
    "vdsr": dict(filters=8),
    "lapsrn": dict(filters=8),
    "colorization": dict(width_div=16),
}


def _zoo_cases():
    """(label, spec) of one small model per zoo family, built with the family function (so fixed
    hyper-parameters can be shrunk); TAD twice: x16 (one encoder and one decoder sub-model, each called
    four times: shared weights) and the colour model."""
    from visionfw.zoo import registry

    picks = {}
    for name in registry.list_models():
        picks.setdefault(registry.model_entry(name).family, name)
    picks["tad"] = "aetad"
    cases = []
    for name in [*picks.values(), "aetad_color"]:
        entry = registry.model_entry(name)
        params = inspect.signature(entry.fn).parameters
        kwargs = dict(entry.hyper)
        small = dict(_SMALL_ANY, **_SMALL.get(entry.family, {}))
        kwargs.update({k: v for k, v in small.items() if k in params})
        if entry.takes_scale:
            kwargs["scale"] = 16 if name == "aetad" else entry.scales[0]
        cases.append((f"{name} {kwargs}", entry.fn(**kwargs)))
    return cases


@pytest.mark.parametrize("fmt", [".weights.h5", ".keras"])
def test_every_weight_survives_the_round_trip_for_every_zoo_family(tmp_path, fmt):
    """Keras warns that nested containers are 'skipped' and keep fresh weights when a load fails; a file
    saved from the same model restores every weight, nested sub-models (TAD's encoder/decoder) and shared
    ones included."""
    import warnings

    for i, (label, spec) in enumerate(_zoo_cases()):
        src = visionfw.build_model(spec)
        rng = np.random.default_rng(0)
        for w in src.weights:  # values no initializer gives, non-float state included
            w.assign(
                rng.standard_normal(w.shape).astype(w.dtype)
                if "float" in str(w.dtype)
                else np.full(w.shape, 3, dtype=w.dtype)
            )
        path = tmp_path / f"m{i}{fmt}"
        if fmt == ".keras":
            src.save(path)
        else:
            src.save_weights(path)
        dst = visionfw.build_model(spec)
        with warnings.catch_warnings():
            warnings.filterwarnings("error", message=".*nested container.*")
            load_weights(dst, path)
        assert len(dst.weights) == len(src.weights), label
        for a, b in zip(src.weights, dst.weights):
            np.testing.assert_array_equal(
                np.asarray(a.numpy()), np.asarray(b.numpy()), err_msg=f"{label}: {a.path} ({fmt})"
            )


def test_weights_h5_of_another_architecture_is_one_error_without_the_nested_warning(tmp_path):
    import warnings

    src = visionfw.build_model(espcn(channels=1, n1=6, n2=4, scale=3))
    src.save_weights(tmp_path / "m.weights.h5")
    wrong = visionfw.build_model(espcn(channels=1, n1=8, n2=4, scale=3))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(WeightsError, match="load_weights failed"):
            load_weights(wrong, tmp_path / "m.weights.h5")
    assert not [w for w in caught if "nested container" in str(w.message)]
