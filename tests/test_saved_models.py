"""A model saved by visionfw loads anywhere after `import visionfw` alone: safe_mode, no custom_objects,
and `import visionfw` itself imports neither Keras nor TensorFlow."""

import subprocess
import sys

import numpy as np

import visionfw

# one small model per zoo family (every custom layer of the zoo appears in at least one)
FAMILY_MODELS = {
    "srcnn": ("srcnn_915", {}),
    "fsrcnn": ("fsrcnn", {}),
    "espcn": ("espcn", {}),
    "vdsr": ("vdsr", {"depth": 3}),
    "srresnet": ("srresnet", {"n_blocks": 1, "filters": 8}),
    "edsr": ("edsr_baseline", {}),
    "rcan": ("rcan", {"n_groups": 1, "n_blocks": 1, "filters": 16}),
    "imdn": ("imdn", {"n_blocks": 2}),
    "lapsrn": ("lapsrn", {"depth": 2}),
    "bsr": ("bsr", {"n_groups": 1, "n_blocks": 1}),
    "drrn": ("drrn_b1u9", {}),
    "hourglass": ("dip_hourglass_small", {}),
    "video_sr": ("video_sr", {"n_layers": 2}),
    "esrgan": ("rrdbnet_small", {}),
    "esrgan_unet": ("unet_discriminator", {}),
    "tad": ("aetad_very_small", {}),
    "colorization": ("colorization_small", {}),
}

LOADER = r"""
import sys
import numpy as np
import visionfw
assert "tensorflow" not in sys.modules and "keras" not in sys.modules, "import visionfw imported TensorFlow"
import keras
for path in sys.argv[1:]:
    model = keras.saving.load_model(path, safe_mode=True)
    probe = np.load(path + ".npz")
    out = model(probe["x"])
    out = out[0] if isinstance(out, (list, tuple)) else out
    diff = float(np.abs(np.asarray(out) - probe["y"]).max())
    print(path.rsplit("/", 1)[-1], diff)
"""


def test_every_family_loads_after_import_visionfw_alone(tmp_path):
    from visionfw.zoo.registry import model_entry

    families = {model_entry(name).family for name, _ in FAMILY_MODELS.values()}
    entries = map(model_entry, visionfw.list_models())
    zoo = {e.family for e in entries if e.fn.__module__.startswith("visionfw.model_defs")}
    assert families == zoo, "a zoo family is not covered"
    paths = []
    rng = np.random.default_rng(0)
    for label, (name, hyper) in FAMILY_MODELS.items():
        model = visionfw.build_model(visionfw.get_spec(name, **hyper))
        shape = [d or 32 for d in model.inputs[0].shape[1:]]
        x = rng.random((1, *shape), dtype=np.float32)
        y = model(x)
        y = y[0] if isinstance(y, (list, tuple)) else y
        path = tmp_path / f"{label}.keras"
        model.save(path)
        np.savez(str(path) + ".npz", x=x, y=np.asarray(y))
        paths.append(str(path))
    out = subprocess.run([sys.executable, "-c", LOADER, *paths], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    diffs = dict(line.split() for line in out.stdout.splitlines())
    assert set(diffs) == {f"{label}.keras" for label in FAMILY_MODELS}
    assert all(float(d) < 1e-5 for d in diffs.values()), diffs
