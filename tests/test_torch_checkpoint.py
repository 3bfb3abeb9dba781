"""Tests of visionfw.weights.torch_checkpoint (PyTorch checkpoints without torch, without running pickles)
and of the structural PyTorch -> Keras mapping in visionfw.weights.state_dict."""

import hashlib
import importlib.util
import os
import pickle
import re
import struct
import sys
import zipfile
from collections import OrderedDict
from pathlib import Path

import keras
import numpy as np
import pytest

from visionfw.errors import WeightsError
from visionfw.weights import (
    DEFAULT_SKIP,
    describe_mapping,
    load_state_dict,
    load_weights,
    plan_state_dict,
    read_state_dict,
)
from visionfw.weights.torch_checkpoint import load_torch_checkpoint, read_torch_checkpoint
from visionfw.zoo.layers import PixelShuffle

# parameters and a digest of (key, bytes) in order, per official IMDN file (README: 92 tensors each)
IMDN = {
    2: (694_404, "6bd39c79fd9d3a842b5967ffcc30459da5269d7f590b9d39230c03fd6947611c"),
    3: (703_059, "448252804e9f1020a5d53b118026b49b985d07d830015e96ae493115bdd88713"),
    4: (715_176, "617177e4d28d8c3c685a49992b02f4ef2c5ce541f35b45c45713a6c1fd0af950"),
}


def _torch_or_skip():
    return pytest.importorskip(
        "torch",
        reason="torch is not installed: the comparison with torch.load "
        "needs it (the torch-free reader is tested without it)",
    )


def _torch_array(tensor):
    """A torch tensor as numpy with the same bits (bfloat16 through ml_dtypes)."""
    import torch

    tensor = tensor.detach()
    if tensor.dtype == torch.bfloat16:
        import ml_dtypes

        return tensor.view(torch.int16).numpy().view(ml_dtypes.bfloat16)
    return tensor.numpy()


def _assert_bit_identical(mine, tensor, key):
    want = _torch_array(tensor)
    assert isinstance(mine, np.ndarray), key
    assert mine.dtype == want.dtype and mine.shape == want.shape, (key, mine.dtype, want.dtype, mine.shape)
    assert mine.flags.c_contiguous, key
    assert mine.tobytes() == np.ascontiguousarray(want).tobytes(), key


def _digest(state):
    h = hashlib.sha256()
    for key, value in state.items():
        h.update(key.encode())
        h.update(value.tobytes())
    return h.hexdigest()


# ----------------------------------------------------------------------------- hand-made checkpoints
# Built opcode by opcode so the reader is tested without torch, and so malformed files can be made.

_HOSTILE = importlib.util.spec_from_file_location(
    "hostile_files", Path(__file__).resolve().parents[1] / "benchmarks" / "hostile_files.py"
)
hostile_files = importlib.util.module_from_spec(_HOSTILE)
_HOSTILE.loader.exec_module(hostile_files)
_str, _int, _ints = hostile_files.pickle_str, hostile_files.pickle_int, hostile_files.pickle_ints


def _tensor_ops(key, size, stride, offset=0, storage="FloatStorage", numel=None):
    """Opcodes of torch._utils._rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict())."""
    numel = numel if numel is not None else int(np.prod(size))
    pid = (
        b"(" + _str("storage") + b"ctorch\n" + storage.encode() + b"\n" + _str(key) + _str("cpu") + _int(numel) + b"tQ"
    )
    return (
        b"ctorch._utils\n_rebuild_tensor_v2\n("
        + pid
        + _int(offset)
        + _ints(size)
        + _ints(stride)
        + b"\x89ccollections\nOrderedDict\n)RtR"
    )


def _state_pickle(entries):
    """A protocol-2 pickle of {name: tensor} from [(name, tensor opcodes)]."""
    return b"\x80\x02}(" + b"".join(_str(k) + ops for k, ops in entries) + b"u."


def _write_zip(path, data_pkl, storages, byteorder="little", archive="ckpt"):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        z.writestr(f"{archive}/data.pkl", data_pkl)
        if byteorder is not None:
            z.writestr(f"{archive}/byteorder", byteorder)
        for key, raw in storages.items():
            z.writestr(f"{archive}/data/{key}", raw)
    return path


def _legacy_header():
    """Magic number, protocol version and system info, as torch's legacy torch.save writes them."""
    return (
        pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2)
        + pickle.dumps(1001, protocol=2)
        + pickle.dumps(
            {"protocol_version": 1001, "little_endian": True, "type_sizes": {"short": 2, "int": 4, "long": 4}},
            protocol=2,
        )
    )


class _RunsShell:
    """Unpickling this calls os.system (what a malicious checkpoint does)."""

    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


# ----------------------------------------------------------------------------- official IMDN files


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_imdn_bit_identical_to_torch_load(shared_data, scale):
    torch = _torch_or_skip()
    path = shared_data / "weights" / "imdn" / f"IMDN_x{scale}.pth"
    want = torch.load(path, map_location="cpu", weights_only=True)
    raw = read_torch_checkpoint(path)  # the object as saved: DataParallel 'module.' keys
    assert isinstance(raw, OrderedDict) and list(raw) == list(want)
    for key, tensor in want.items():
        _assert_bit_identical(raw[key], tensor, key)
    state = load_torch_checkpoint(path)
    assert list(state) == [k[len("module.") :] for k in want]
    assert all(state[k[len("module.") :]] is not None for k in want)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_imdn_read_without_torch(shared_data, monkeypatch, scale):
    monkeypatch.setitem(sys.modules, "torch", None)  # any `import torch` now raises ImportError
    path = shared_data / "weights" / "imdn" / f"IMDN_x{scale}.pth"
    state = read_state_dict(path)
    total, digest = IMDN[scale]
    assert len(state) == 92
    assert sum(v.size for v in state.values()) == total
    assert {v.dtype for v in state.values()} == {np.dtype(np.float32)}
    assert list(state)[:2] == ["fea_conv.weight", "fea_conv.bias"] and state["fea_conv.weight"].shape == (64, 3, 3, 3)
    assert state["upsampler.0.weight"].shape == (3 * scale * scale, 64, 3, 3)
    assert _digest(state) == digest  # the same bytes torch.load gives (digest taken from it)
    assert sys.modules["torch"] is None


# ----------------------------------------------------------------------------- files written by torch


def _varied_state(torch):
    g = torch.Generator().manual_seed(0)
    base = torch.randn(4, 6, generator=g)
    return OrderedDict(
        [
            ("conv.weight", torch.randn(8, 3, 3, 3, generator=g)),
            ("half", torch.randn(5, 7, generator=g).half()),
            ("half_t", torch.randn(3, 5, generator=g).half().t()),
            ("bf16", torch.randn(3, 4, generator=g).bfloat16()),
            ("transposed", base.t()),  # non-contiguous view, saved as is
            ("slice", base[1:3, 2:5]),  # shares base's storage, with an offset
            ("base", base),
            ("every_other", base[:, ::2]),
            ("bn.num_batches_tracked", torch.tensor(7)),
            ("mask", torch.tensor([True, False, True])),
            ("int32", torch.arange(5, dtype=torch.int32)),
            ("f64", torch.randn(2, dtype=torch.float64, generator=g)),
            ("empty", torch.zeros(0, 3)),
            ("special", torch.tensor([float("nan"), float("inf"), -0.0, 1e-45])),
            ("param", torch.nn.Parameter(torch.randn(3, generator=g))),
        ]
    )


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_torch_saved_dtypes_and_views_bit_identical(tmp_path, legacy):
    torch = _torch_or_skip()
    state = _varied_state(torch)
    path = tmp_path / "varied.pth"
    torch.save(state, path, _use_new_zipfile_serialization=not legacy)
    assert zipfile.is_zipfile(path) is not legacy
    want = torch.load(path, map_location="cpu", weights_only=True)
    mine = read_torch_checkpoint(path)
    assert list(mine) == list(want) == list(state)
    for key, tensor in want.items():
        _assert_bit_identical(mine[key], tensor, key)
    assert mine["half"].dtype == np.float16 and str(mine["bf16"].dtype) == "bfloat16"
    np.testing.assert_array_equal(mine["transposed"], mine["base"].T)
    np.testing.assert_array_equal(mine["slice"], mine["base"][1:3, 2:5])
    np.testing.assert_array_equal(mine["every_other"], mine["base"][:, ::2])
    assert mine["bn.num_batches_tracked"].dtype == np.int64 and mine["bn.num_batches_tracked"] == 7
    assert mine["empty"].shape == (0, 3)
    assert read_state_dict(path).keys() == state.keys()  # every entry is a tensor


def test_wrappers_dataparallel_and_non_tensor_entries(tmp_path):
    torch = _torch_or_skip()
    g = torch.Generator().manual_seed(1)
    sd = OrderedDict(
        [("conv.weight", torch.randn(4, 3, 3, 3, generator=g)), ("conv.bias", torch.randn(4, generator=g))]
    )
    ema = OrderedDict((k, v + 1) for k, v in sd.items())
    cases = {
        "params.pth": {"params": sd},
        "lightning.ckpt": {
            "epoch": 12,
            "arch": "edsr",
            "best_psnr": 31.5,
            "state_dict": OrderedDict(("module." + k, v) for k, v in sd.items()),
        },
        "nested.pth": {"net": {"model": sd}, "iteration": 5},
        "both.pth": {"params_ema": ema, "params": sd},  # 'params' comes first in STATE_DICT_WRAPPERS
        "legacy_params.pth": {"params": sd},
    }
    for name, obj in cases.items():
        torch.save(obj, tmp_path / name, _use_new_zipfile_serialization=not name.startswith("legacy"))
        state = load_torch_checkpoint(tmp_path / name)
        assert list(state) == ["conv.weight", "conv.bias"], name
        for key in sd:
            np.testing.assert_array_equal(state[key], sd[key].numpy(), err_msg=name)
    # read_state_dict (and so load_weights) goes through the same reader
    np.testing.assert_array_equal(read_state_dict(tmp_path / "lightning.ckpt")["conv.bias"], sd["conv.bias"].numpy())
    # two state dicts under unknown names: the error lists them and key= picks one
    torch.save({"generator": sd, "discriminator": ema}, tmp_path / "gan.pth")
    with pytest.raises(WeightsError, match=r"gan.pth: holds a dict .*no tensors.*'generator', 'discriminator'.*key="):
        load_torch_checkpoint(tmp_path / "gan.pth")
    picked = load_torch_checkpoint(tmp_path / "gan.pth", key="discriminator")
    np.testing.assert_array_equal(picked["conv.weight"], ema["conv.weight"].numpy())
    with pytest.raises(WeightsError, match="key='nope' is not in the checkpoint"):
        load_torch_checkpoint(tmp_path / "gan.pth", key="nope")
    torch.save([sd["conv.bias"]], tmp_path / "list.pth")
    with pytest.raises(WeightsError, match=r"list.pth: holds a list, not a state dict"):
        load_torch_checkpoint(tmp_path / "list.pth")
    torch.save({"epoch": 3, "lr": 1e-4}, tmp_path / "meta.pth")
    with pytest.raises(WeightsError, match=r"meta.pth: holds a dict \{'epoch': int, 'lr': float\} with no tensors"):
        load_torch_checkpoint(tmp_path / "meta.pth")


def test_whole_pickled_model_is_refused(tmp_path):
    torch = _torch_or_skip()
    torch.save(torch.nn.Conv2d(3, 4, 3), tmp_path / "model.pth")  # the module object, not its state dict
    with pytest.raises(
        WeightsError,
        match=r"model.pth: refused to unpickle global 'torch.nn.modules.conv.Conv2d'"
        r".*state_dict",
    ):
        read_torch_checkpoint(tmp_path / "model.pth")


# ----------------------------------------------------------------------------- without torch


def test_hand_made_zip_views_and_byte_order(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)
    flat = np.arange(12, dtype=np.float32)
    entries = [
        ("whole", _tensor_ops("0", (3, 4), (4, 1))),
        ("transposed", _tensor_ops("0", (4, 3), (1, 4))),
        ("offset_slice", _tensor_ops("0", (2, 2), (4, 1), offset=5)),
        ("half", _tensor_ops("1", (2,), (1,), storage="HalfStorage")),
    ]
    half = np.array([1.5, -2.0], np.float16)
    path = _write_zip(tmp_path / "little.pth", _state_pickle(entries), {"0": flat.tobytes(), "1": half.tobytes()})
    state = load_torch_checkpoint(path)
    assert list(state) == ["whole", "transposed", "offset_slice", "half"]
    np.testing.assert_array_equal(state["whole"], flat.reshape(3, 4))
    np.testing.assert_array_equal(state["transposed"], flat.reshape(3, 4).T)
    np.testing.assert_array_equal(state["offset_slice"], [[5, 6], [9, 10]])
    assert state["half"].dtype == np.float16 and state["half"].tolist() == [1.5, -2.0]
    # the same values stored big-endian (byteorder record 'big') read back in native order
    big = _write_zip(
        tmp_path / "big.pth",
        _state_pickle(entries),
        {"0": flat.astype(">f4").tobytes(), "1": half.astype(">f2").tobytes()},
        byteorder="big",
    )
    for key, value in load_torch_checkpoint(big).items():
        np.testing.assert_array_equal(value, state[key], err_msg=key)
        assert value.dtype.byteorder in ("=", "|"), key


def _tensor_v3_ops(key, size, stride, offset, dtype, nbytes, extra=True):
    """Opcodes of torch._utils._rebuild_tensor_v3(untyped storage, offset, size, stride, False, OrderedDict(),
    dtype) (``extra=False`` drops the last two arguments)."""
    pid = b"(" + _str("storage") + b"ctorch\nUntypedStorage\n" + _str(key) + _str("cpu") + _int(nbytes) + b"tQ"
    tail = b"ccollections\nOrderedDict\n)Rctorch\n" + dtype.encode() + b"\n" if extra else b""
    return (
        b"ctorch._utils\n_rebuild_tensor_v3\n("
        + pid
        + _int(offset)
        + _ints(size)
        + _ints(stride)
        + b"\x89"
        + tail
        + b"tR"
    )


def test_hand_made_rebuild_tensor_v3(tmp_path, monkeypatch):
    """torch's _rebuild_tensor_v3 (a byte storage plus the dtype) is called positionally by the pickle."""
    monkeypatch.setitem(sys.modules, "torch", None)
    flat = np.arange(8, dtype=np.float32)
    entries = [("w", _tensor_v3_ops("0", (2, 3), (1, 2), 2, "float32", flat.nbytes))]
    state = load_torch_checkpoint(_write_zip(tmp_path / "v3.pth", _state_pickle(entries), {"0": flat.tobytes()}))
    assert state["w"].dtype == np.float32
    np.testing.assert_array_equal(state["w"], [[2, 4, 6], [3, 5, 7]])
    short = [("w", _tensor_v3_ops("0", (2, 3), (1, 2), 2, "float32", flat.nbytes, extra=False))]
    path = _write_zip(tmp_path / "short.pth", _state_pickle(short), {"0": flat.tobytes()})
    with pytest.raises(WeightsError, match=r"short.pth: corrupt or truncated.*at least 7 arguments, got 5"):
        load_torch_checkpoint(path)


def test_hand_made_legacy_file(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)
    flat = np.arange(6, dtype=np.float64) / 4
    body = _state_pickle([("w", _tensor_ops("k1", (2, 3), (1, 2), storage="DoubleStorage"))])
    data = _legacy_header() + body + pickle.dumps(["k1"], protocol=2) + struct.pack("<q", 6) + flat.tobytes()
    path = tmp_path / "legacy.pth"
    path.write_bytes(data)
    state = load_torch_checkpoint(path)
    assert state["w"].dtype == np.float64
    np.testing.assert_array_equal(state["w"], flat.reshape(3, 2).T)
    # a few bytes short: refused, not padded
    path.write_bytes(data[:-3])
    with pytest.raises(WeightsError, match=r"legacy.pth: corrupt or truncated PyTorch checkpoint.*k1"):
        load_torch_checkpoint(path)


def test_load_weights_from_pth_without_torch(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)
    rng = np.random.default_rng(0)
    w = rng.standard_normal((4, 2, 3, 3)).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32)
    data = _state_pickle(
        [
            ("module.conv.weight", _tensor_ops("0", (4, 2, 3, 3), (18, 9, 3, 1))),
            ("module.conv.bias", _tensor_ops("1", (4,), (1,))),
        ]
    )
    path = _write_zip(tmp_path / "conv.pth", data, {"0": w.tobytes(), "1": b.tobytes()})
    model = keras.Sequential([keras.Input((5, 5, 2)), keras.layers.Conv2D(4, 3, name="c")])
    load_weights(model, path)
    np.testing.assert_array_equal(model.get_layer("c").kernel.numpy(), w.transpose(2, 3, 1, 0))
    np.testing.assert_array_equal(model.get_layer("c").bias.numpy(), b)
    text = describe_mapping(model, path)  # from the file: 'module.' stripped, the source named
    assert f"(from {path})" in text.splitlines()[0]
    assert re.search(r"^  1  conv\.weight +\(4, 2, 3, 3\) +c/kernel +\(3, 3, 2, 4\) +OIHW->HWIO$", text, re.M)


# ----------------------------------------------------------------------------- hostile and broken files


def test_malicious_pickles_are_refused_and_never_run(tmp_path):
    marker = tmp_path / "pwned"
    evil = pickle.dumps({"w": _RunsShell(f"echo pwned > {marker}")}, protocol=2)
    system = f"{os.system.__module__}.system"  # posix.system on Linux
    files = {
        "zip.pth": lambda p: _write_zip(p, evil, {"0": b"\0" * 4}),
        "legacy.pth": lambda p: p.write_bytes(_legacy_header() + evil),
        "plain.pth": lambda p: p.write_bytes(evil),
    }
    for name, write in files.items():
        path = tmp_path / name
        write(path)
        with pytest.raises(WeightsError, match=rf"{name}: refused to unpickle global '{re.escape(system)}'"):
            read_torch_checkpoint(path)
        with pytest.raises(WeightsError, match="refused to unpickle"):
            load_weights(keras.Sequential([keras.Input((3, 3, 1)), keras.layers.Conv2D(1, 1)]), path)
    assert not marker.exists()
    # builtins.eval, called by REDUCE, written by hand
    code = f"open({str(marker)!r}, 'w').write('pwned')"
    by_hand = b"\x80\x02cbuiltins\neval\n" + _str(code) + b"\x85R."
    path = _write_zip(tmp_path / "eval.pth", by_hand, {})
    with pytest.raises(WeightsError, match=r"eval.pth: refused to unpickle global 'builtins.eval'"):
        read_torch_checkpoint(path)
    assert not marker.exists()


def test_pickle_cannot_rewrite_the_stand_ins(tmp_path):
    """BUILD on an allowed global (to change it for later loads) is refused; later loads still work."""
    build = b"\x80\x02ctorch._utils\n_rebuild_tensor_v2\nN}" + _str("_fn") + _int(1) + b"s\x86b."
    path = _write_zip(tmp_path / "build.pth", build, {})
    with pytest.raises(WeightsError, match=r"build.pth: corrupt .*set the state"):
        read_torch_checkpoint(path)
    ok = _write_zip(
        tmp_path / "ok.pth",
        _state_pickle([("w", _tensor_ops("0", (2,), (1,)))]),
        {"0": np.array([1, 2], np.float32).tobytes()},
    )
    assert load_torch_checkpoint(ok)["w"].tolist() == [1.0, 2.0]


def test_out_of_bounds_views_are_refused(tmp_path):
    """A stride or offset past the storage would read foreign memory through as_strided."""
    raw = {"0": np.arange(4, dtype=np.float32).tobytes()}
    cases = {
        "stride.pth": _tensor_ops("0", (2, 2), (4, 1), numel=4),
        "offset.pth": _tensor_ops("0", (2,), (1,), offset=3, numel=4),
        "negative.pth": _tensor_ops("0", (2,), (-1,), offset=3, numel=4),
    }
    for name, ops in cases.items():
        path = _write_zip(tmp_path / name, _state_pickle([("w", ops)]), raw)
        with pytest.raises(WeightsError, match=rf"{name}: corrupt or truncated .*(reads element|malformed)"):
            read_torch_checkpoint(path)
    short = _write_zip(tmp_path / "short.pth", _state_pickle([("w", _tensor_ops("0", (8,), (1,)))]), raw)
    with pytest.raises(WeightsError, match=r"short.pth: corrupt .*has 16 bytes, needs 32"):
        read_torch_checkpoint(short)


def test_truncated_corrupt_and_foreign_files(tmp_path):
    good = _write_zip(
        tmp_path / "good.pth",
        _state_pickle([("w", _tensor_ops("0", (64,), (1,)))]),
        {"0": np.arange(64, dtype=np.float32).tobytes()},
    )
    data = good.read_bytes()
    assert load_torch_checkpoint(good)["w"][63] == 63
    (tmp_path / "half.pth").write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsError, match=r"half.pth: a truncated or corrupt zip archive.*fetch"):
        read_torch_checkpoint(tmp_path / "half.pth")
    # flip one byte of the stored tensor data: the CRC check catches it
    at = data.index(np.arange(64, dtype=np.float32).tobytes()) + 40
    (tmp_path / "flipped.pth").write_bytes(data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1 :])
    with pytest.raises(WeightsError, match=r"flipped.pth: corrupt zip archive.*CRC"):
        read_torch_checkpoint(tmp_path / "flipped.pth")
    (tmp_path / "noise.pth").write_bytes(b"this is not a checkpoint\n" * 20)
    with pytest.raises(WeightsError, match=r"noise.pth: not a PyTorch checkpoint.*torch.save\(model.state_dict"):
        read_torch_checkpoint(tmp_path / "noise.pth")
    with pytest.raises(WeightsError, match=r"missing.pth: no such file"):
        read_torch_checkpoint(tmp_path / "missing.pth")
    other_zip = tmp_path / "other.pth"
    with zipfile.ZipFile(other_zip, "w") as z:
        z.writestr("readme.txt", "hello")
    with pytest.raises(WeightsError, match=r"other.pth: a zip archive without one '<archive>/data.pkl'"):
        read_torch_checkpoint(other_zip)
    no_record = _write_zip(tmp_path / "no_record.pth", _state_pickle([("w", _tensor_ops("7", (2,), (1,)))]), {})
    with pytest.raises(WeightsError, match=r"no_record.pth: corrupt .*'ckpt/data/7' is missing"):
        read_torch_checkpoint(no_record)


# ----------------------------------------------------------------------------- structural mapping


def _np_conv(x, w, b, groups=1):
    """PyTorch conv2d (correlation, zero 'same' padding) on HWC ``x``, OIHW ``w``, ``groups``."""
    o, i_g, kh, kw = w.shape
    xp = np.pad(x, ((kh // 2, kh // 2), (kw // 2, kw // 2), (0, 0)))
    h, wd = x.shape[:2]
    out = np.zeros((h, wd, o))
    per_out = o // groups
    for g in range(groups):
        xs = xp[..., g * i_g : (g + 1) * i_g]
        ws = w[g * per_out : (g + 1) * per_out]
        for r in range(kh):
            for c in range(kw):
                out[..., g * per_out : (g + 1) * per_out] += xs[r : r + h, c : c + wd, :] @ ws[:, :, r, c].T
    return out + b


def _np_torch_shuffle(x, r):
    h, w, crr = x.shape
    c = crr // (r * r)
    return x.reshape(h, w, c, r, r).transpose(0, 3, 1, 4, 2).reshape(h * r, w * r, c)


def _small_model():
    inp = keras.Input((None, None, 4))
    x = keras.layers.Conv2D(8, 3, padding="same", name="head")(inp)
    x = keras.layers.Conv2D(8, 3, padding="same", groups=4, name="grouped")(x)
    x = keras.layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same", name="depthwise")(x)
    x = keras.layers.Conv2D(3 * 4, 1, name="to_shuffle")(x)
    return keras.Model(inp, PixelShuffle(scale=2, name="shuffle")(x), name="small")  # order 'tf'


def _small_state(rng):
    def arr(*shape):
        return (rng.standard_normal(shape) * 0.3).astype(np.float32)

    return OrderedDict(
        [
            ("head.weight", arr(8, 4, 3, 3)),
            ("head.bias", arr(8)),
            ("body.grouped.weight", arr(8, 2, 3, 3)),
            ("body.grouped.bias", arr(8)),
            ("body.dw.weight", arr(16, 1, 3, 3)),
            ("body.dw.bias", arr(16)),
            ("tail.weight", arr(12, 16, 1, 1)),
            ("tail.bias", arr(12)),
        ]
    )


def _small_reference(x, s):
    h = _np_conv(x, s["head.weight"], s["head.bias"])
    h = _np_conv(h, s["body.grouped.weight"], s["body.grouped.bias"], groups=4)
    h = _np_conv(h, s["body.dw.weight"], s["body.dw.bias"], groups=8)  # depthwise: groups = C
    return _np_torch_shuffle(_np_conv(h, s["tail.weight"], s["tail.bias"]), 2)


def test_mapping_grouped_depthwise_shuffle_matches_pytorch_semantics():
    rng = np.random.default_rng(0)
    state = _small_state(rng)
    model = _small_model()
    mapping = plan_state_dict(model, state, source="small.pth")
    assert mapping.ok and mapping.problems == [] and not mapping.unmatched_torch and not mapping.unmatched_keras
    text = str(mapping)
    assert text == describe_mapping(model, state, source="small.pth")
    lines = text.splitlines()
    assert lines[0].startswith("PyTorch -> Keras mapping for model 'small' (from small.pth): 4 modules, 8 arrays")

    def row(pattern):
        found = [ln for ln in lines if re.search(pattern, ln)]
        assert len(found) == 1, (pattern, text)
        return found[0]

    row(r"^  1  head\.weight +\(8, 4, 3, 3\) +head/kernel +\(3, 3, 4, 8\) +OIHW->HWIO$")
    row(r"^     head\.bias +\(8,\) +head/bias +\(8,\) +-$")
    row(r"^  2  body\.grouped\.weight +\(8, 2, 3, 3\) +grouped/kernel +\(3, 3, 2, 8\) +OIHW->HWIO, groups=4$")
    row(
        r"^  3  body\.dw\.weight +\(16, 1, 3, 3\) +depthwise/kernel +\(3, 3, 8, 2\) +"
        r"\(C\*M,1,H,W\)->\(H,W,C,M\) depthwise$"
    )
    row(
        r"^  4  tail\.weight +\(12, 16, 1, 1\) +to_shuffle/kernel +\(1, 1, 16, 12\) +"
        r"OIHW->HWIO; PixelShuffle torch->tf channel order \(r=2\)$"
    )
    row(r"^     tail\.bias +\(12,\) +to_shuffle/bias +\(12,\) +PixelShuffle torch->tf channel order \(r=2\)$")
    # planning assigned nothing; loading gives PyTorch's output (grouped, depthwise, shuffle order)
    hwio = state["body.grouped.weight"].transpose(2, 3, 1, 0)
    assert not np.array_equal(model.get_layer("grouped").kernel.numpy(), hwio)
    assert load_state_dict(model, state) is model
    np.testing.assert_array_equal(model.get_layer("grouped").kernel.numpy(), hwio)
    x = rng.random((5, 6, 4)).astype(np.float32)
    np.testing.assert_allclose(model(x[None]).numpy()[0], _small_reference(x, state), atol=2e-5)
    # reading the grouped weight as if it were a plain conv would give another output: the test can fail
    wrong = dict(state)
    wrong["body.grouped.weight"] = np.roll(state["body.grouped.weight"], 2, axis=0)
    assert np.abs(_small_reference(x, wrong) - _small_reference(x, state)).max() > 1e-2


def test_mapping_shape_mismatch_names_both_sides_and_assigns_nothing():
    rng = np.random.default_rng(1)
    state = _small_state(rng)
    state["body.grouped.weight"] = rng.standard_normal((8, 4, 3, 3)).astype(np.float32)  # groups=2 in PyTorch
    model = _small_model()
    before = model.get_layer("head").kernel.numpy().copy()
    mapping = plan_state_dict(model, state)
    assert not mapping.ok and len(mapping.problems) == 1
    assert re.search(
        r"body\.grouped\.weight +\(8, 4, 3, 3\) +grouped/kernel +\(3, 3, 2, 8\) +OIHW->HWIO, groups=4"
        r"  !! MISMATCH: converted \(3, 3, 4, 8\)",
        str(mapping),
    )
    with pytest.raises(
        WeightsError,
        match=r"body.grouped.weight -> grouped: shape \(3, 3, 4, 8\) \(converted "
        r"OIHW->HWIO, groups=4 from \(8, 4, 3, 3\)\) does not fit kernel "
        r"\(3, 3, 2, 8\) of Keras layer 'grouped'.*name_map=.*skip=",
    ):
        load_state_dict(model, state)
    np.testing.assert_array_equal(model.get_layer("head").kernel.numpy(), before)  # nothing assigned
    # a depthwise weight that is not (C*M, 1, H, W)
    bad_dw = _small_state(rng)
    bad_dw["body.dw.weight"] = rng.standard_normal((16, 2, 3, 3)).astype(np.float32)
    with pytest.raises(
        WeightsError,
        match=r"body.dw.weight \(16, 2, 3, 3\) is not a depthwise conv weight "
        r"\(16, 1, 3, 3\) for Keras DepthwiseConv2D 'depthwise'",
    ):
        load_state_dict(model, bad_dw)


def test_mapping_lists_unmatched_modules_and_suggests_skip():
    rng = np.random.default_rng(2)
    state = _small_state(rng)
    extra = OrderedDict()
    for key, value in state.items():
        extra[key] = value
        if key == "head.bias":  # an auxiliary conv the Keras model does not have
            extra["aux.weight"] = rng.standard_normal((5, 8, 3, 3)).astype(np.float32)
            extra["aux.bias"] = np.zeros(5, np.float32)
    model = _small_model()
    mapping = plan_state_dict(model, extra)
    assert [m[0] for m in mapping.unmatched_torch] == ["aux"] and mapping.unmatched_keras == []
    assert [e.module for e in mapping.entries] == ["head", "body.grouped", "body.dw", "tail"]
    text = str(mapping)
    assert (
        "unmatched PyTorch modules (no Keras layer of that kind and shape):\n"
        "  aux (conv): aux.weight (5, 8, 3, 3), aux.bias (5,)"
    ) in text
    with pytest.raises(
        WeightsError,
        match=r"5 PyTorch modules with weights but model 'small' has 4 Keras layers.*"
        r"aux \(conv\) fit no Keras layer: skip=DEFAULT_SKIP \+ \(r'\^aux\\\.',\)",
    ):
        load_state_dict(model, extra)
    load_state_dict(model, extra, skip=DEFAULT_SKIP + (r"^aux\.",))
    x = rng.random((4, 5, 4)).astype(np.float32)
    np.testing.assert_allclose(model(x[None]).numpy()[0], _small_reference(x, state), atol=2e-5)
    # a module missing from the state dict: the Keras layer left over is named
    short = OrderedDict((k, v) for k, v in state.items() if not k.startswith("body.dw."))
    missing = plan_state_dict(model, short)
    assert [m[0] for m in missing.unmatched_keras] == ["depthwise"] and not missing.unmatched_torch
    assert (
        "unmatched Keras layers (no PyTorch module of that kind and shape):\n  depthwise (DepthwiseConv2D): "
        "depthwise/kernel (3, 3, 8, 2), depthwise/bias (16,)" in str(missing)
    )
    with pytest.raises(WeightsError, match=r"Keras layer\(s\) depthwise get no PyTorch module"):
        load_state_dict(model, short)


def test_mapping_name_map_skip_and_conv1d_layout():
    rng = np.random.default_rng(3)
    state = _small_state(rng)
    model = _small_model()
    # name_map with DataParallel names still resolves after the reader strips 'module.'
    mapping = plan_state_dict(model, state, name_map={"module.tail": "to_shuffle"})
    assert mapping.ok
    assert re.search(r"tail\.weight .*PixelShuffle torch->tf channel order \(r=2\) \[name_map\]", str(mapping))
    # the 1-D conv kernel is (K, I, O): (O, I, K) -> (K, I, O)
    conv1d = keras.Sequential([keras.Input((9, 3)), keras.layers.Conv1D(5, 4, name="c1")])
    w = rng.standard_normal((5, 3, 4)).astype(np.float32)
    plan = plan_state_dict(conv1d, {"c.weight": w, "c.bias": np.arange(5, dtype=np.float32)})
    assert re.search(r"c\.weight +\(5, 3, 4\) +c1/kernel +\(4, 3, 5\) +OIK->KIO", str(plan))
    plan.apply()
    np.testing.assert_array_equal(conv1d.get_layer("c1").kernel.numpy(), w.transpose(2, 1, 0))


def test_real_torch_model_with_groups_and_depthwise(tmp_path):
    """A torch net (grouped + depthwise + PixelShuffle) saved by torch gives the torch output in Keras."""
    torch = _torch_or_skip()
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(4, 8, 3, padding=1),
        torch.nn.Conv2d(8, 8, 3, padding=1, groups=4),
        torch.nn.Conv2d(8, 16, 3, padding=1, groups=8),
        torch.nn.Conv2d(16, 12, 1),
        torch.nn.PixelShuffle(2),
    )
    torch.save({"params": net.state_dict()}, tmp_path / "small.pth")
    x = np.random.default_rng(4).random((1, 5, 6, 4)).astype(np.float32)
    with torch.no_grad():
        want = net(torch.from_numpy(x.transpose(0, 3, 1, 2))).numpy().transpose(0, 2, 3, 1)
    model = _small_model()
    load_weights(model, tmp_path / "small.pth")
    np.testing.assert_allclose(model(x).numpy(), want, atol=2e-5)
