"""get_model(..., pretrained=...): weights found in the local cache by the metadata's file name and
hash, loaded with the family's options; a wrong hash or a missing file is a clear error; never a download."""

import shutil

import numpy as np
import pytest
from conftest import SHARED_DATA

import visionfw
from visionfw.errors import WeightsError
from visionfw.weights import pretrained

IMDN = SHARED_DATA / "weights" / "imdn"
needs_imdn = pytest.mark.skipif(not (IMDN / "IMDN_x2.pth").is_file(), reason=f"no IMDN weights under {IMDN}")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    folder = tmp_path / "weights"
    folder.mkdir()
    monkeypatch.setenv(pretrained.ENV, str(folder))
    monkeypatch.setattr(pretrained, "USER_CACHE", str(tmp_path / "home_cache"))
    return folder


@needs_imdn
def test_pretrained_true_loads_from_the_cache_offline(cache, monkeypatch):
    (cache / "imdn").mkdir()
    shutil.copy(IMDN / "IMDN_x2.pth", cache / "imdn" / "IMDN_x2.pth")
    assert (
        pretrained.find_weights(visionfw.model_info("imdn"), 2) == cache / "imdn" / "IMDN_x2.pth"
    )  # first in the search order

    def no_download(*args, **kwargs):
        raise AssertionError("a test must never download")

    import keras

    monkeypatch.setattr(keras.utils, "get_file", no_download)
    model = visionfw.get_model("imdn", scale=2, pretrained=True)
    by_hand = visionfw.load_weights(
        visionfw.get_model("imdn", scale=2),
        IMDN / "IMDN_x2.pth",
        **dict(visionfw.model_info("imdn").weights_for(2).options),
    )
    x = np.random.default_rng(0).random((1, 10, 12, 3), dtype=np.float32)
    np.testing.assert_array_equal(np.asarray(model(x)), np.asarray(by_hand(x)))


@needs_imdn
def test_wrong_sha256_is_a_clear_error(cache):
    shutil.copy(IMDN / "IMDN_x3.pth", cache / "IMDN_x2.pth")  # another release under x2's name
    with pytest.raises(
        WeightsError,
        match=r"IMDN_x2\.pth: sha256 [0-9a-f]{16}\.\.\. does not match the official "
        r"imdn weights \(740b39653592bd3f\.\.\.\)",
    ):
        visionfw.get_model("imdn", scale=2, pretrained=True)


def test_missing_weights_list_the_places_and_the_url(cache, monkeypatch):
    monkeypatch.setenv("VISIONFW_DATA", str(cache.parent / "no_data"))
    with pytest.raises(WeightsError) as info:
        pretrained.find_weights(visionfw.model_info("edsr_baseline"), 2)
    text = str(info.value)
    assert "edsr/edsr_baseline_x2-1bc95232.pt" in text and str(cache) in text
    assert "https://cv.snu.ac.kr/research/EDSR/models/edsr_baseline_x2-1bc95232.pt" in text
    assert "download=True" in text


def test_a_hash_prefix_is_checked(cache, tmp_path):
    (cache / "edsr").mkdir()
    fake = cache / "edsr" / "edsr_baseline_x2-1bc95232.pt"
    fake.write_bytes(b"not the release")
    with pytest.raises(WeightsError, match=r"does not match the official edsr_baseline weights \(1bc95232\.\.\.\)"):
        pretrained.find_weights(visionfw.model_info("edsr_baseline"), 2)


def test_models_without_official_weights_say_so():
    with pytest.raises(WeightsError, match=r"model 'fsrcnn' has no official weights\. Train it"):
        visionfw.get_model("fsrcnn", scale=2, pretrained=True)
    with pytest.raises(WeightsError, match=r"'srcnn_935' has no official weights at x2; they exist at \[3\]"):
        visionfw.get_model("srcnn_935", scale=2, pretrained=True)
