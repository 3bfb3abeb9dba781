"""Standard SR test sets by name: Set5, Set14, BSD100 (B100), Urban100, Manga109, DIV2K-valid.

:func:`resolve_dataset` finds a set's HR folder on disk; :func:`load_benchmark` returns its
images mod-cropped to the scale with their LR inputs, made with MATLAB-exact bicubic
(:mod:`visionfw.data.imresize`) or read from an LR folder.

Where datasets are looked for: the library's one search path
(:mod:`visionfw.data.paths`: ``data_dir``, ``$VISIONFW_DATA``, ``./data``, ``../shared/data``,
the same next to the checkout, ``~/.visionfw/data``; the first hit wins).

Under each root the set's folder may be ``<root>/benchmark/<Name>`` or ``<root>/<Name>``
(any letter case, any of the set's aliases), and it may hold the images directly or in an
``HR`` sub-folder (the layout of EDSR's ``benchmark.tar``).  Nothing is downloaded unless
:func:`download_dataset` is called explicitly.
"""

from __future__ import annotations

import dataclasses
import os
import tarfile
import zipfile
from pathlib import Path

import numpy as np

from visionfw.data import paths
from visionfw.data.image_io import IMAGE_EXTENSIONS, list_images, read_image_uint8
from visionfw.data.imresize import imresize, modcrop
from visionfw.errors import DataError

__all__ = [
    "DATASETS",
    "DATASET_URLS",
    "BenchmarkImage",
    "canonical_name",
    "resolve_dataset",
    "load_benchmark",
    "download_dataset",
]

# canonical name -> folder names it may have on disk (first is canonical)
DATASETS = {
    "Set5": ("Set5",),
    "Set14": ("Set14",),
    "BSD100": ("BSD100", "B100"),
    "Urban100": ("Urban100",),
    "Manga109": ("Manga109",),
    "DIV2K-valid": ("DIV2K-valid", "DIV2K_valid", "DIV2K_valid_HR", "DIV2K"),
}
_ALIASES = {alias.lower(): name for name, aliases in DATASETS.items() for alias in aliases}

# Where users with internet can get the HR images.  sha256 is None where we could not
# verify the archive ourselves (no network here) -- we do not make checksums up.
_EDSR_BENCHMARK = dict(
    url="https://cv.snu.ac.kr/research/EDSR/benchmark.tar",
    sha256=None,
    note="EDSR's benchmark.tar: Set5, Set14, B100, Urban100 with HR/ and LR_bicubic/X{2,3,4}/",
)
DATASET_URLS = {
    "Set5": _EDSR_BENCHMARK,
    "Set14": _EDSR_BENCHMARK,
    "BSD100": _EDSR_BENCHMARK,
    "Urban100": _EDSR_BENCHMARK,
    "Manga109": dict(
        url=None,
        sha256=None,
        note="Manga109 is distributed on request only: apply at "
        "http://www.manga109.org/en/download.html and unpack it under data_dir/Manga109",
    ),
    "DIV2K-valid": dict(
        url="http://data.vision.ee.ethz.ch/cvl/DIV2K/DIV2K_valid_HR.zip",
        sha256=None,
        note="DIV2K validation HR images 0801..0900",
    ),
}


@dataclasses.dataclass
class BenchmarkImage:
    """One test image: ``hr`` uint8 HxWxC mod-cropped to the scale, ``lr`` uint8 (H/s)x(W/s)xC."""

    name: str
    hr: np.ndarray
    lr: np.ndarray


def canonical_name(name: str | os.PathLike) -> str:
    """Canonical set name for ``name`` or any alias (case-insensitive), e.g. 'b100' -> 'BSD100'.

    Args:
        name: a set name or alias.

    Returns:
        The canonical name (a key of :data:`DATASETS`).

    Raises:
        DataError: an unknown name, listing the known sets.
    """
    try:
        return _ALIASES[str(name).lower()]
    except KeyError:
        known = ", ".join(f"{n} ({'/'.join(a)})" if len(a) > 1 else n for n, a in DATASETS.items())
        raise DataError(
            f"Unknown benchmark dataset {name!r}; known sets: {known}. A path to an image folder also works."
        ) from None


def _child_ci(folder, names):
    """Sub-folder of ``folder`` whose name matches one of ``names`` ignoring case."""
    if not folder.is_dir():
        return None
    wanted = [n.lower() for n in names]
    entries = {p.name.lower(): p for p in folder.iterdir() if p.is_dir()}
    for n in wanted:
        if n in entries:
            return entries[n]
    return None


def _has_images(folder):
    return any(p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS for p in folder.iterdir())


def _hr_folder(folder):
    hr = _child_ci(folder, ["HR"])
    if hr is not None:
        return hr
    return folder if _has_images(folder) else None


def resolve_dataset(name_or_path: str | os.PathLike, data_dir: str | os.PathLike | None = None) -> Path:
    """Folder holding the HR images of a benchmark set.

    Args:
        name_or_path: a set name (any case or alias), or an existing folder (returned as is).
        data_dir: first root of the search path (:mod:`visionfw.data.paths`).

    Returns:
        The folder of the HR images (the set's ``HR/`` sub-folder when it has one).

    Raises:
        DataError: the set is on no root, naming every place looked in.
    """
    as_path = Path(str(name_or_path)).expanduser()
    if as_path.is_dir():
        return as_path
    name = canonical_name(name_or_path)
    looked = []
    for root in paths.candidate_roots(data_dir):
        for parent in (root / "benchmark", root):
            looked.append(str(parent / DATASETS[name][0]))
            found = _child_ci(parent, DATASETS[name])
            if found is not None:
                hr = _hr_folder(found)
                if hr is not None:
                    return hr
                looked[-1] += " (exists, but holds no images nor an HR/ folder)"
    raise paths.not_found(
        f"Benchmark dataset {name!r} (any case; aliases {', '.join(DATASETS[name])}; images directly or in HR/)",
        looked,
        f"or download it with visionfw.data.benchmarks.download_dataset({name!r}, data_dir)",
    )


def _find_lr(lr_dir, stem, scale):
    folders = [lr_dir]
    sub = _child_ci(lr_dir, [f"X{scale}"])
    if sub is not None:
        folders.insert(0, sub)
    for folder in folders:
        for candidate in (f"{stem}x{scale}", f"{stem}_x{scale}", stem):
            for ext in IMAGE_EXTENSIONS:
                for ext_case in (ext, ext.upper()):
                    p = folder / f"{candidate}{ext_case}"
                    if p.is_file():
                        return p
    raise DataError(
        f"No LR image for {stem!r} at x{scale} in {lr_dir} (tried X{scale}/ and "
        f"the names {stem}x{scale}.*, {stem}_x{scale}.*, {stem}.*); point lr_dir to "
        "the folder of the LR images, or leave it None to make them with MATLAB bicubic."
    )


def load_benchmark(
    name: str | os.PathLike,
    scale: int,
    data_dir: str | os.PathLike | None = None,
    lr_dir: str | os.PathLike | None = None,
) -> list[BenchmarkImage]:
    """Load a benchmark set, sorted by file name.

    Args:
        name: a set name or a folder (as :func:`resolve_dataset` takes it).
        scale: positive integer SR factor; ``hr`` is mod-cropped to a multiple of it.
        data_dir: first root of the search path.
        lr_dir: folder of the LR images (``X{scale}/{name}x{scale}.png`` and similar, checked
            for size); None: ``lr`` is MATLAB ``imresize(hr, 1/scale, 'bicubic')`` on uint8 (exact).

    Returns:
        One uint8 :class:`BenchmarkImage` per image.

    Raises:
        DataError: a missing set or LR image, an image smaller than ``scale``, a wrong LR size.
    """
    scale = int(scale)
    if scale < 1:
        raise DataError(f"load_benchmark: scale={scale} must be a positive integer.")
    folder = resolve_dataset(name, data_dir)
    lr_root = Path(lr_dir).expanduser() if lr_dir is not None else None
    if lr_root is not None and not lr_root.is_dir():
        raise DataError(f"load_benchmark: lr_dir {lr_root} is not a folder; fix the path or pass None.")
    records = []
    for path in list_images(folder):
        hr = read_image_uint8(path)
        if min(hr.shape[:2]) < scale:
            raise DataError(
                f"Image {path} is {hr.shape[1]}x{hr.shape[0]}, smaller than the scale {scale}: nothing "
                f"is left once it is mod-cropped to a multiple of {scale}; remove it from the folder."
            )
        hr = modcrop(hr, scale)
        if lr_root is None:
            lr = imresize(hr, scale=1.0 / scale).numpy()
        else:
            lr_path = _find_lr(lr_root, path.stem, scale)
            lr = read_image_uint8(lr_path)
            want = (hr.shape[0] // scale, hr.shape[1] // scale, hr.shape[2])
            if lr.shape != want:
                raise DataError(
                    f"LR image {lr_path} has shape {lr.shape}, expected {want} "
                    f"(HR {path.name} mod-cropped to x{scale}); wrong scale folder?"
                )
        records.append(BenchmarkImage(name=path.stem, hr=hr, lr=lr))
    return records


def _safe_extract(archive, dest):
    dest = Path(dest).resolve()
    if tarfile.is_tarfile(archive):
        with tarfile.open(archive) as tar:
            tar.extractall(dest, filter="data")  # 'data' refuses absolute paths and ../
        return
    with zipfile.ZipFile(archive) as zf:
        for member in zf.namelist():
            target = (dest / member).resolve()
            if dest not in target.parents and target != dest:
                raise DataError(f"Archive {archive} has an unsafe member {member!r}; not extracting.")
        zf.extractall(dest)


def download_dataset(name: str, data_dir: str | os.PathLike | None = None) -> Path:
    """Download and unpack a benchmark set (needs internet; never called by the library itself).

    Uses ``keras.utils.get_file``, which checks the sha256 where :data:`DATASET_URLS` knows it.

    Args:
        name: a set name or alias.
        data_dir: where to unpack (default ``~/.visionfw/data``, the last root of the search path).

    Returns:
        The resolved HR folder.

    Raises:
        DataError: a set without a download URL (its note says where to get it).
    """
    import keras

    name = canonical_name(name)
    entry = DATASET_URLS[name]
    if entry["url"] is None:
        raise DataError(f"{name} cannot be downloaded automatically: {entry['note']}.")
    root = Path(data_dir if data_dir is not None else paths.USER_ROOT).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    fname = entry["url"].rsplit("/", 1)[-1]
    archive = keras.utils.get_file(
        fname=fname, origin=entry["url"], file_hash=entry["sha256"], cache_dir=str(root), cache_subdir="downloads"
    )
    _safe_extract(archive, root)
    return resolve_dataset(name, root)
