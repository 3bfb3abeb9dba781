"""Hostile and damaged weight files are refused quickly, in bounded memory, with a message that says
what is wrong (the files are built here; benchmarks/hostile_files.py times the same ones)."""

import importlib.util
import re
import time
import tracemalloc
from pathlib import Path

import keras
import numpy as np
import pytest
import scipy.io

from visionfw.errors import WeightsError
from visionfw.weights import load_weights
from visionfw.weights.keras_files import CHECKSUM_ATTR, save_weights, verify_keras_file
from visionfw.weights.torch_checkpoint import MAX_VIEW_AMPLIFICATION, load_torch_checkpoint, read_torch_checkpoint

_SPEC = importlib.util.spec_from_file_location(
    "hostile_files", Path(__file__).resolve().parents[1] / "benchmarks" / "hostile_files.py"
)
hostile = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(hostile)


# ----------------------------------------------------------------------------- .pth: time and memory bombs


@pytest.mark.parametrize(
    "name, write, message",
    [
        (
            "dag.pth",
            lambda p: hostile.write_dag(p, levels=40),
            r"refused: the pickle names one list of containers at two places",
        ),
        ("memo.pth", hostile.write_memo_bomb, r"refused: the pickle stores memo entry 268435440 when it has made 0"),
        (
            "zip_bomb.pth",
            lambda p: hostile.write_zip_bomb(p, inflated=1 << 27),
            r"refused: its zip members inflate to \d+ bytes from a file of \d+ \('ckpt/data/0' alone to 134217728\), "
            r"a zip bomb",
        ),
        (
            "stride0.pth",
            hostile.write_stride0,
            r"refused: a tensor of size \(20000, 20000\) with strides \(0, 0\) repeats the 1 elements of its storage "
            r"into 400000000.*tensor.contiguous\(\)",
        ),
    ],
)
def test_torch_bombs_refused_within_1s_and_100mb(tmp_path, name, write, message):
    path = write(tmp_path / name)
    assert path.stat().st_size < 1_100_000
    result = hostile.measure_read(path, timeout=60)  # a fresh process: its own peak RSS
    assert result["outcome"].startswith(f"WeightsError: {path}: "), result
    assert re.search(message, result["outcome"]), result
    assert result["seconds"] < 1.0 and result["peak_mb"] < 100, result


def test_dag_of_any_depth_is_refused_in_linear_time(tmp_path):
    """Before: 16/18/20 levels took 0.2/1.5/4.1 s (each level doubles the walk); now the second
    reference to a list of lists is refused whatever the depth."""
    for levels, message in (
        (2, "two places"),
        (20, "two places"),
        (150, "two places"),
        (2000, "the object nests more than 200 levels deep"),
    ):
        path = hostile.write_dag(tmp_path / f"dag{levels}.pth", levels=levels)
        t0 = time.perf_counter()
        with pytest.raises(WeightsError, match=f"dag{levels}.pth: refused: .*{message}"):
            read_torch_checkpoint(path)
        assert time.perf_counter() - t0 < 1.0


def test_shared_tensors_and_dicts_of_tensors_still_load(tmp_path):
    """torch.load keeps objects a pickle names twice shared; so does the reader (no container of
    containers, so no blow-up): a tensor under two keys, one state dict under two wrappers."""
    tensor, text = hostile.tensor_ops((2, 3), (3, 1), 6), hostile.pickle_str
    # {'params': sd, 'params_ema': sd} with sd = {'a': t, 'b': t}: memo 0 is t, memo 1 is sd
    pickle_ops = (
        b"\x80\x02}("
        + text("a")
        + tensor
        + b"q\x00"
        + text("b")
        + b"h\x00u"
        + b"q\x01}("
        + text("params")
        + b"h\x01"
        + text("params_ema")
        + b"h\x01u."
    )
    raw = np.arange(6, dtype=np.float32)
    path = hostile.write_torch_zip(tmp_path / "shared.pth", pickle_ops, {"0": raw.tobytes()})
    obj = read_torch_checkpoint(path)
    assert obj["params"] is obj["params_ema"] and obj["params"]["a"] is obj["params"]["b"]
    np.testing.assert_array_equal(obj["params"]["a"], raw.reshape(2, 3))
    assert list(load_torch_checkpoint(path)) == ["a", "b"]


def test_views_larger_than_their_storage_are_refused(tmp_path):
    raw = {"0": np.arange(4, dtype=np.float32).tobytes()}
    expanded = hostile.write_torch_zip(tmp_path / "expanded.pth", hostile.tensor_pickle((3, 4), (0, 1), 4), raw)
    with pytest.raises(
        WeightsError,
        match=r"expanded.pth: refused: a tensor of size \(3, 4\) with strides "
        r"\(0, 1\) repeats the 4 elements of its storage into 12",
    ):
        read_torch_checkpoint(expanded)
    overlapping = hostile.write_torch_zip(tmp_path / "overlap.pth", hostile.tensor_pickle((3, 2), (1, 1), 4), raw)
    with pytest.raises(WeightsError, match=r"overlap.pth: refused: .*repeats the 4 elements of its storage into 6"):
        read_torch_checkpoint(overlapping)
    fits = hostile.write_torch_zip(tmp_path / "fits.pth", hostile.tensor_pickle((2, 2), (1, 2), 4), raw)
    np.testing.assert_array_equal(read_torch_checkpoint(fits)["w"], [[0, 2], [1, 3]])  # a transpose: kept


def test_one_storage_named_over_and_over_is_refused(tmp_path):
    """Each tensor fits its storage, but the copies may total at most MAX_VIEW_AMPLIFICATION times
    the storage bytes (plus 1 MiB): 32 views of 4 KiB load, 32 views of 4 MiB do not."""
    count = 4 * MAX_VIEW_AMPLIFICATION
    for numel, ok in ((1024, True), (1 << 20, False)):
        entries = [(f"w{i}", hostile.tensor_ops((numel,), (1,), numel)) for i in range(count)]
        path = hostile.write_torch_zip(
            tmp_path / f"views{numel}.pth", hostile.dict_pickle(entries), {"0": bytes(4 * numel)}
        )
        if ok:
            assert len(read_torch_checkpoint(path)) == count
            continue
        with pytest.raises(
            WeightsError,
            match=rf"views{numel}.pth: refused: the tensors copied out of the file "
            rf"reach \d+ bytes, more than {MAX_VIEW_AMPLIFICATION} times",
        ):
            read_torch_checkpoint(path)


def test_storage_record_must_have_the_claimed_size(tmp_path):
    long = hostile.write_torch_zip(tmp_path / "long.pth", hostile.tensor_pickle((2,), (1,), 2), {"0": bytes(4 * 1000)})
    with pytest.raises(
        WeightsError,
        match=r"long.pth: corrupt .*'ckpt/data/0' has 4000 bytes, needs 8 for 2 "
        r"FloatStorage elements",
    ):
        read_torch_checkpoint(long)


def test_deeply_nested_pickle_is_refused(tmp_path):
    nested = b"\x80\x02" + b"](" * 150 + b"e" * 150 + b"."
    path = hostile.write_torch_zip(tmp_path / "nested.pth", nested)
    with pytest.raises(WeightsError, match=r"nested.pth: refused: the pickle nests more than 100 levels deep"):
        read_torch_checkpoint(path)


# ----------------------------------------------------------------------------- Keras and MATLAB files


def _tiny_model():
    return keras.Sequential(
        [keras.Input((8, 8, 3)), keras.layers.Conv2D(16, 3, name="a"), keras.layers.Conv2D(3, 3, name="b")]
    )


def _flip(path, out, at):
    data = bytearray(path.read_bytes())
    data[at] ^= 0x40
    out.write_bytes(bytes(data))
    return out


def _refused_quickly(model, path, message):
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        with pytest.raises(WeightsError, match=message):
            load_weights(model, path)
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert time.perf_counter() - t0 < 1.0 and peak < 100 << 20


def test_keras_files_damaged_are_named(tmp_path):
    model = _tiny_model()
    kernel = model.get_layer("a").kernel.numpy()
    saved = save_weights(model, tmp_path / "m.weights.h5")
    model.save(tmp_path / "m.keras")
    target = keras.models.clone_model(model)
    load_weights(target, saved)  # intact: loads, checksums and all
    np.testing.assert_array_equal(target.get_layer("a").kernel.numpy(), kernel)
    verify_keras_file(tmp_path / "m.keras")

    data = saved.read_bytes()
    at = data.index(kernel.tobytes()[:64]) + 100
    flipped = _flip(saved, tmp_path / "flipped.weights.h5", at)
    _refused_quickly(
        target,
        flipped,
        r"flipped.weights.h5: 1 weight array\(s\) no longer match the sha256 recorded "
        r"when visionfw wrote the file \(layers/conv2d/vars/0\); the file is corrupt",
    )
    truncated = tmp_path / "truncated.weights.h5"
    truncated.write_bytes(data[: len(data) // 2])
    _refused_quickly(target, truncated, r"truncated.weights.h5: a truncated or corrupt HDF5 file \(.*truncated file")

    keras_bytes = (tmp_path / "m.keras").read_bytes()
    cut = tmp_path / "cut.keras"
    cut.write_bytes(keras_bytes[: len(keras_bytes) // 2])
    _refused_quickly(target, cut, r"cut.keras: a truncated or corrupt .keras file .*copy or download it again")
    at = keras_bytes.index(kernel.tobytes()[:64]) + 100
    bad_crc = _flip(tmp_path / "m.keras", tmp_path / "crc.keras", at)
    _refused_quickly(target, bad_crc, r"crc.keras: a corrupt .keras file: member 'model.weights.h5' fails its CRC-32")


def test_non_finite_weights_refused_without_a_recorded_checksum(tmp_path):
    import h5py

    model = _tiny_model()
    path = tmp_path / "nan.weights.h5"
    model.save_weights(path)  # plain Keras: nothing recorded
    with h5py.File(path, "r+") as f:
        assert CHECKSUM_ATTR not in f["layers/conv2d_1/vars/0"].attrs
        values = f["layers/conv2d_1/vars/0"][()]
        values[0, 0, 0, :2] = [np.nan, np.inf]
        f["layers/conv2d_1/vars/0"][...] = values
    _refused_quickly(
        keras.models.clone_model(model),
        path,
        r"nan.weights.h5: weight array\(s\) hold NaN or infinite values: layers/conv2d_1/vars/0 "
        r"\(2 of 432\)",
    )


def test_mat_holding_text_is_one_weights_error(tmp_path):
    path = tmp_path / "text.mat"
    scipy.io.savemat(
        path,
        {f"{kind}_conv{i}": np.zeros((1, 1)) for kind in ("weights", "biases") for i in (1, 2, 3)}
        | {"weights_conv2": "not a matrix"},
    )
    with pytest.raises(WeightsError, match=r"text.mat: weights_conv2 holds text, not numbers"):
        load_weights(keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(1, 1)]), path)
    vdsr = tmp_path / "vdsr.mat"
    scipy.io.savemat(vdsr, {"model": {"weight": np.array(["abc"], dtype=object), "bias": np.zeros((1, 1))}})
    with pytest.raises(WeightsError, match=r"vdsr.mat: model.weight\{1\} holds text, not numbers"):
        load_weights(keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(1, 1)]), vdsr)


def test_cli_names_a_truncated_keras_model(tmp_path, capsys):
    """`visionfw test/export --weights=FILE.keras` load the file with Keras themselves: checked first too."""
    from visionfw.cli import run

    _tiny_model().save(tmp_path / "m.keras")
    data = (tmp_path / "m.keras").read_bytes()
    cut = tmp_path / "cut.keras"
    cut.write_bytes(data[: len(data) // 2])
    for command in (["test"], ["export", f"--output={tmp_path / 'out'}"]):
        assert run(["visionfw", *command, f"--weights={cut}"]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and re.search(r"cut.keras: a truncated or corrupt .keras file", err[0]), err


def test_torch_written_training_checkpoints_still_load(tmp_path):
    """What training scripts save (one state dict under two keys, an optimizer with two parameter groups
    sharing a betas tuple) reads as torch.load reads it; an expanded tensor is refused, not copied out."""
    torch = pytest.importorskip("torch")
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Conv2d(4, 3, 1))
    optimizer = torch.optim.Adam([{"params": net[0].parameters()}, {"params": net[1].parameters(), "lr": 0.1}])
    net(torch.rand(1, 3, 8, 8)).sum().backward()
    optimizer.step()
    state = net.state_dict()
    path = tmp_path / "train.pth"
    torch.save({"params": state, "params_ema": state, "optimizer": optimizer.state_dict(), "epoch": 3}, path)
    want = torch.load(path, weights_only=True)
    mine = read_torch_checkpoint(path)
    assert mine["params"] is mine["params_ema"] and mine["epoch"] == 3
    for key, tensor in want["params"].items():
        np.testing.assert_array_equal(mine["params"][key], tensor.numpy())
    assert mine["optimizer"]["param_groups"][1]["lr"] == 0.1
    np.testing.assert_array_equal(mine["optimizer"]["state"][0]["exp_avg"], want["optimizer"]["state"][0]["exp_avg"])
    torch.save({"w": torch.ones(3).expand(1000, 3)}, tmp_path / "expanded.pth")
    with pytest.raises(
        WeightsError,
        match=r"expanded.pth: refused: a tensor of size \(1000, 3\) with strides "
        r"\(0, 1\) repeats the 3 elements of its storage into 3000",
    ):
        read_torch_checkpoint(tmp_path / "expanded.pth")
