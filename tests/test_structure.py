"""The package's shape: an import graph without circles, a zoo that imports only the model-writing
layer, metadata beside each family, and a non-editable install that holds `visionfw` alone."""

import ast
import json
import os
import shutil
import subprocess
import sys

import pytest
from conftest import REPO, SHARED_DATA

import visionfw
from visionfw.weights import file_sha256
from visionfw.zoo import registry

# What a model file may import: the builder, the graph writer, blocks, layers, the registry, errors.
MODEL_WRITING = {
    "visionfw",
    "visionfw.zoo.builder",
    "visionfw.zoo.graph",
    "visionfw.zoo.blocks",
    "visionfw.zoo.layers",
    "visionfw.zoo.registry",
    "visionfw.errors",
}
# The model-writing layer never reaches up into these.
UPPER = (
    "visionfw.train",
    "visionfw.evaluate",
    "visionfw.studies.compare",
    "visionfw.tasks.tad",
    "visionfw.tasks.colorization",
    "visionfw.cli",
    "visionfw.data.sampling",
    "visionfw.studies.rank_datasets",
    "visionfw.studies.runs",
    "visionfw.studies.profiling",
    "visionfw.studies.reports",
)


def _module_name(path):
    rel = path.relative_to(REPO)
    parts = list(rel.with_suffix("").parts)
    if parts[0] == "model_defs":
        parts = ["visionfw"] + parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path):
    """visionfw modules that ``path`` imports anywhere (module level or inside functions)."""
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        else:
            continue
        found |= {n for n in names if n == "visionfw" or n.startswith("visionfw.")}
    return found


def _graph():
    files = list((REPO / "visionfw").rglob("*.py")) + list((REPO / "model_defs").glob("*.py"))
    modules = {_module_name(f): f for f in files}
    edges = {}
    for name, path in modules.items():
        # 'from visionfw.x import y' names module visionfw.x.y when that is a module, else visionfw.x
        edges[name] = {m for m in _imports(path) if m in modules and m != name}
    return modules, edges


def test_import_graph_has_no_circle():
    modules, edges = _graph()
    # a package's __init__ re-exports its parts; the edges that matter run between the parts
    packages = {m for m, p in modules.items() if p.name == "__init__.py"}
    graph = {m: {t for t in e if t not in packages} for m, e in edges.items() if m not in packages}
    state, trail = {}, []

    def visit(m):
        state[m] = 1
        trail.append(m)
        for t in sorted(graph.get(m, ())):
            if state.get(t) == 1:
                pytest.fail("import circle: " + " -> ".join(trail[trail.index(t) :] + [t]))
            if t not in state:
                visit(t)
        trail.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)


def test_zoo_and_layers_do_not_reach_up():
    modules, edges = _graph()
    for name in modules:
        if name.startswith("visionfw.model_defs"):
            assert edges[name] <= MODEL_WRITING, (name, edges[name] - MODEL_WRITING)
    for name in (
        "visionfw.zoo.builder",
        "visionfw.zoo.graph",
        "visionfw.zoo.layers",
        "visionfw.zoo.blocks",
        "visionfw.zoo.registry",
    ):
        up = [m for m in edges[name] if m.startswith(UPPER)]
        assert not up, (name, up)


# ARCHITECTURE.md's layers, bottom to top: a module imports only from its own layer or those below
LAYERS = [
    ("base", ("visionfw.errors", "visionfw.registries", "visionfw.console", "visionfw.files", "visionfw.keras_hooks")),
    ("data", ("visionfw.data",)),
    ("zoo", ("visionfw.zoo", "visionfw.model_defs")),
    ("weights", ("visionfw.weights",)),
    ("metrics, degradation", ("visionfw.metrics", "visionfw.degradation")),
    (
        "uses of a model",
        (
            "visionfw.inference",
            "visionfw.evaluate",
            "visionfw.loading",
            "visionfw.upscaling",
            "visionfw.export",
            "visionfw.dip",
        ),
    ),
    ("tasks", ("visionfw.tasks",)),
    ("train", ("visionfw.train",)),
    ("studies", ("visionfw.studies",)),
    ("commands", ("visionfw.cli", "visionfw")),
]
# the exceptions ARCHITECTURE.md lists, each with its reason there
ALLOWED_UPWARD = {
    ("visionfw.zoo.registry", "visionfw.weights.pretrained"),
    ("visionfw.zoo.registry", "visionfw.model_defs"),
    ("visionfw.tasks.gan", "visionfw.train.schedules"),
    ("visionfw.tasks.gan", "visionfw.train.optimizers"),
}


def _layer(module):
    for i, (_, prefixes) in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes if p != "visionfw"):
            return i
    return len(LAYERS) - 1  # visionfw/__init__.py: the public API, the top


def test_every_module_has_a_layer():
    modules, _ = _graph()
    named = [p for _, prefixes in LAYERS for p in prefixes]
    stray = [m for m in modules if m != "visionfw" and not any(m == p or m.startswith(p + ".") for p in named)]
    assert not stray, f"modules outside ARCHITECTURE.md's layers: {stray}"


def test_layers_import_only_downward():
    modules, edges = _graph()
    upward = []
    for name in sorted(modules):
        # the root package is imported before any of its modules anyway (its __version__, a subpackage)
        for target in sorted(edges[name] - {"visionfw"}):
            if _layer(target) > _layer(name) and not any(
                name == a and (target == b or target.startswith(b + ".")) for a, b in ALLOWED_UPWARD
            ):
                upward.append(f"{name} ({LAYERS[_layer(name)][0]}) -> {target} ({LAYERS[_layer(target)][0]})")
    assert not upward, "imports up the layers of ARCHITECTURE.md:\n" + "\n".join(upward)


def test_no_private_name_crosses_modules():
    modules, _ = _graph()
    crossing = []
    for name, path in sorted(modules.items()):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("visionfw"):
                for alias in node.names:
                    if alias.name.startswith("_") and node.module != name:
                        crossing.append(f"{name}: from {node.module} import {alias.name}")
    assert not crossing, crossing


def test_models_command_loads_no_training_stack():
    # absl's app.run exits the process, so the module list is printed at exit
    code = (
        "import atexit, json, sys; atexit.register(lambda: print(json.dumps(sorted(m for m in sys.modules "
        "if m.startswith('visionfw.'))))); from visionfw.cli import run; sys.argv = ['visionfw', 'models']; run()"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert out.returncode == 0, out.stderr[-2000:]
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert "visionfw.model_defs.edsr" in loaded
    heavy = tuple(m for m in UPPER if m != "visionfw.cli") + (
        "visionfw.data",
        "visionfw.metrics.psnr_ssim",
        "visionfw.weights.loader",
        "visionfw.weights.state_dict",
        "visionfw.weights.mapping",
    )
    assert not [m for m in loaded if m.startswith(heavy)], loaded


def test_metadata_beside_every_family():
    info = visionfw.model_info("srcnn_915")
    assert info.family == "srcnn" and info.task == "sr" and "Dong" in info.paper
    assert info.weights_for(3).file == "srcnn/915_91images/x3.mat"
    assert info.published_psnr("Set14", 4) == 27.20 and info.published_protocol == "srcnn"
    assert info.recipe["hr_patch"] == 33 and info.recipe["loss"] == "l2"
    assert visionfw.model_info("vdsr").weights_for(4).file == "vdsr/VDSR_Official.mat"
    edsr = visionfw.model_info("edsr_baseline").weights_for(2)  # EDSR-PyTorch's file: only its hash prefix
    assert edsr.sha256 is None and edsr.sha256_prefix == "1bc95232" and dict(edsr.hyper) == {"rgb_range": 255}
    assert visionfw.model_info("fsrcnn").weights_for(2) is None
    assert visionfw.model_info("edsr").recipe == visionfw.model_info("edsr_baseline").recipe
    from visionfw.train.presets import preset_for_model

    assert preset_for_model("fsrcnn", 3)["lr_patch"] == 7  # the family's recipe, patch resolved per scale


def test_colorization_bins_constant_matches_the_gamut_test():
    from visionfw.model_defs.colorization import N_AB_BINS
    from visionfw.tasks.colorization import ab_bins

    assert len(ab_bins()) == N_AB_BINS


@pytest.mark.skipif(not (SHARED_DATA / "weights").is_dir(), reason=f"no official weights under {SHARED_DATA}")
def test_official_weights_hashes_match_the_files():
    # every full sha256 in the metadata was taken from a file seen here; a file known only by the
    # hash prefix in its name (EDSR-PyTorch's) states no full hash
    checked = 0
    for name in registry.list_models():
        for scale, w in registry.model_info(name).weights:
            assert (w.sha256 is None) != (w.sha256_prefix is None), (name, scale, "one kind of hash")
            if w.sha256 is None:
                continue
            path = SHARED_DATA / "weights" / w.file
            assert path.is_file(), (name, scale, path)
            assert file_sha256(path) == w.sha256, (name, scale, w.file)
            checked += 1
    # SRCNN 9-1-5 (3 scales), 9-3-5 (x3), 9-5-5 (3 scales), VDSR (one file), IMDN (3), LapSRN (3)
    assert checked >= 14


def test_non_editable_install_holds_visionfw_alone(tmp_path):
    # build from a copy, so the checkout gets no build/ or egg-info folders
    source = tmp_path / "source"
    shutil.copytree(
        REPO, source, ignore=shutil.ignore_patterns(".git", ".venv*", "build", "*.egg-info", "runs", "__pycache__")
    )
    target = tmp_path / "site"
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    top = sorted(p.name for p in target.iterdir() if not p.name.endswith(".dist-info") and p.name != "bin")
    assert top == ["visionfw"], top
    assert (target / "visionfw" / "model_defs" / "edsr.py").is_file()
    assert (target / "visionfw" / "data" / "niqe_pristine_t91_bsd200.npz").is_file()  # package data ships
    # run `visionfw models` from that copy, outside the checkout
    env = dict(os.environ, PYTHONPATH=str(target))
    code = (
        f"import sys, visionfw; from visionfw.cli import run; assert visionfw.__file__.startswith({str(target)!r}), "
        "visionfw.__file__; sys.argv = ['visionfw', 'models']; sys.exit(run())"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "edsr_baseline" in out.stdout and "aetad_skip2" in out.stdout
