"""PyTorch checkpoints (``.pth``/``.pt``) read without torch, and without running their pickles.

``torch.save`` writes a pickle whose tensors point at raw storages kept beside it:

* torch >= 1.6 (default): a zip archive ``<archive>/data.pkl`` (pickle protocol 2) plus one
  record ``<archive>/data/<key>`` per storage, in the byte order named by ``<archive>/byteorder``
  (little-endian when absent).
* torch < 1.6 (or ``_use_new_zipfile_serialization=False``), the *legacy* format: a sequence
  of pickles -- magic number, protocol version, system info, the object (storages as
  persistent ids), the sorted list of storage keys -- then each storage's raw bytes, prefixed
  by its int64 element count.

A pickle can call any importable function while it loads (``torch.load(weights_only=False)``
does), so both are read with the restricted unpickler of :mod:`visionfw.weights.torch_pickle`,
which only resolves the globals a tensor or an ordered dict needs and maps each to a local,
harmless stand-in: no torch code is ever imported or called.  Any other global (``os.system``,
``builtins.eval``, a model class ...) raises :class:`~visionfw.errors.WeightsError` naming the
file and the global.

Public functions:

* :func:`read_torch_checkpoint` -- the unpickled object tree, every tensor (or parameter) as a
  contiguous ``numpy.ndarray`` of the same dtype (float16 stays float16; bfloat16 is
  ``ml_dtypes.bfloat16``).
* :func:`load_torch_checkpoint` -- the state dict in it, ``{name: ndarray}`` in file order,
  with the usual wrappers (``state_dict``, ``model``, ``params``, ``params_ema``, ``net``)
  removed and DataParallel's ``module.`` prefix stripped.
"""

from __future__ import annotations

import collections
import tarfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from visionfw.errors import WeightsError
from visionfw.weights.torch_pickle import (
    OverLimit,
    PendingTensor,
    Refused,
    Storage,
    StorageKind,
    TorchDType,
    Unsupported,
    resolve_dtype,
    restricted_load,
)

__all__ = ["read_torch_checkpoint", "load_torch_checkpoint", "open_weights_zip", "STATE_DICT_WRAPPERS"]

# torch.serialization.MAGIC_NUMBER and PROTOCOL_VERSION of the legacy format
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001

# keys under which training code nests the state dict, tried in this order
STATE_DICT_WRAPPERS = ("state_dict", "model", "params", "params_ema", "net")

# Members of a torch.save zip are stored, not compressed: their declared sizes add up to about the
# file's size.  A zip whose members inflate far beyond it is a zip bomb.
MAX_ZIP_INFLATION = 20
# The tensors of a file, copied out, may overlap their storages (a transpose saved beside its base)
# but not by more than this factor: a pickle can name one storage a thousand times.
MAX_VIEW_AMPLIFICATION = 8

_RESAVE_HINT = (
    "If you trust the file, re-save only its weights with torch: "
    "torch.save(model.state_dict(), 'weights.pth'), or as numpy: "
    "np.savez('weights.npz', **{k: v.cpu().numpy() for k, v in state_dict.items()})."
)


def _flat_from_bytes(raw, dtype, big_endian):
    """A 1-D array of ``dtype`` over ``raw`` (a copy in native order when the file is big-endian)."""
    if not big_endian or dtype.itemsize == 1:
        return np.frombuffer(raw, dtype=dtype)
    if dtype.kind in "fiuc":  # numpy's own types (ml_dtypes ones have kind 'V')
        return np.frombuffer(raw, dtype=dtype.newbyteorder(">")).astype(dtype.newbyteorder("="))
    # ml_dtypes (bfloat16, float8): swap as unsigned ints of the same width
    swapped = np.frombuffer(raw, dtype=f">u{dtype.itemsize}").astype(f"=u{dtype.itemsize}")
    return swapped.view(dtype)


def _materialize(tensor):
    """The contiguous array for a :class:`PendingTensor`, bounds-checked against its storage."""
    flat = tensor.storage.array()
    if tensor.dtype is not None:  # v3: bytes reinterpreted as the tensor's dtype
        dtype = resolve_dtype(tensor.dtype.dtype_spec, f"a {tensor.dtype.name} tensor")
        if flat.dtype.itemsize != 1 or flat.size % dtype.itemsize:
            raise ValueError(f"a {tensor.dtype.name} tensor on a storage of {flat.dtype} with {flat.size} elements")
        flat = flat.view(dtype)
    size, stride, offset = tensor.size, tensor.stride, tensor.offset
    if len(size) != len(stride) or any(n < 0 for n in size) or any(s < 0 for s in stride) or offset < 0:
        raise ValueError(f"tensor of size {size}, stride {stride}, offset {offset} is malformed")
    if any(n == 0 for n in size):
        return np.empty(size, dtype=flat.dtype)
    # as_strided reads raw memory: the last element must lie inside the storage
    last = offset + sum((n - 1) * s for n, s in zip(size, stride))
    if last >= flat.size:
        raise ValueError(
            f"tensor of size {size}, stride {stride}, offset {offset} reads element {last} of a storage of {flat.size}"
        )
    numel = int(np.prod(size, dtype=object))
    if numel > flat.size:  # only overlapping strides (0, or smaller than the extent) give more
        raise OverLimit(
            f"a tensor of size {size} with strides {stride} repeats the {flat.size} elements of its "
            f"storage into {numel}; torch.save never writes such a view unless the tensor was "
            "expanded: save tensor.contiguous() instead"
        )
    view = np.lib.stride_tricks.as_strided(
        flat[offset:], shape=size, strides=[s * flat.dtype.itemsize for s in stride], writeable=False
    )
    return np.array(view, order="C", copy=True)  # owns its memory, not the file's buffer


class _Resolver:
    """Replaces every :class:`PendingTensor` in an unpickled object by its array, containers rebuilt.

    Each object is resolved once: an object the pickle names twice (by memo) comes out shared, as
    torch.load gives it, and a container of containers named twice is refused -- lists that hold
    each other twice per level are a few hundred bytes of pickle and 2**levels leaves to walk.  The
    arrays copied out may total at most :data:`MAX_VIEW_AMPLIFICATION` times the storage bytes.
    """

    def __init__(self, storage_bytes):
        self.done = {}  # id(obj) -> (result, holds containers); the objects stay alive in the tree
        self.budget = MAX_VIEW_AMPLIFICATION * storage_bytes + (1 << 20)
        self.copied = 0

    def __call__(self, obj, depth=0):
        if depth > 200:
            raise OverLimit("the object nests more than 200 levels deep")
        if isinstance(obj, (PendingTensor, dict, list, tuple)) and id(obj) in self.done:
            result, nested = self.done[id(obj)]
            if nested:
                raise OverLimit(
                    f"the pickle names one {type(obj).__name__} of containers at two places (a "
                    "shared object graph, which walks exponentially; torch.save writes a tree)"
                )
            return result
        if isinstance(obj, PendingTensor):
            result, nested = self._tensor(obj), False
        elif isinstance(obj, dict):
            result = collections.OrderedDict() if isinstance(obj, collections.OrderedDict) else {}
            for key, value in obj.items():
                result[key] = self(value, depth + 1)
            nested = any(isinstance(v, (dict, list, tuple)) for v in obj.values())
        elif isinstance(obj, (list, tuple)):
            result = [self(v, depth + 1) for v in obj]
            result = tuple(result) if isinstance(obj, tuple) else result
            nested = any(isinstance(v, (dict, list, tuple)) for v in obj)
        elif isinstance(obj, (Storage, StorageKind, TorchDType)):
            return None  # a bare storage or type: no tensor meaning outside a tensor
        else:
            return obj
        self.done[id(obj)] = (result, nested)
        return result

    def _tensor(self, tensor):
        array = _materialize(tensor)
        self.copied += array.nbytes
        if self.copied > self.budget:
            raise OverLimit(
                f"the tensors copied out of the file reach {self.copied} bytes, more than "
                f"{MAX_VIEW_AMPLIFICATION} times the storage bytes the file holds: its tensors name "
                "the same storage over and over"
            )
        return array


# --------------------------------------------------------------------------- the two formats


def _read_zip(path):
    with open_weights_zip(path) as archive:
        names = archive.namelist()
        pickles = [n for n in names if n.endswith("/data.pkl") and n.count("/") == 1]
        if len(pickles) != 1:
            jit = any("/code/" in n for n in names) or any(n.endswith("constants.pkl") for n in names)
            what = (
                "a TorchScript archive (torch.jit.save), which holds code"
                if jit
                else f"a zip archive without one '<archive>/data.pkl' (found {len(pickles)})"
            )
            raise WeightsError(
                f"{path}: {what}, not a torch.save checkpoint. Load it with torch and save "
                "model.state_dict() with torch.save."
            )
        prefix = pickles[0][: -len("data.pkl")]
        big_endian = False
        if prefix + "byteorder" in names:
            order = archive.read(prefix + "byteorder").decode("ascii", "replace").strip()
            if order not in ("little", "big"):
                raise WeightsError(f"{path}: unknown byteorder record {order!r}; expected 'little' or 'big'.")
            big_endian = order == "big"
        storages = {}

        def storage_for(kind, key, numel, view):
            if key not in storages:
                dtype = resolve_dtype(kind.dtype_spec, f"storage {key!r} ({kind.name})")
                record = f"{prefix}data/{key}"
                if record not in names:
                    raise ValueError(f"storage record {record!r} is missing from the archive")
                declared, needed = archive.getinfo(record).file_size, numel * dtype.itemsize
                if declared != needed:  # checked before reading: the record could inflate to anything
                    raise ValueError(
                        f"storage record {record!r} has {declared} bytes, needs {needed} for "
                        f"{numel} {kind.name} elements (torch.save writes exactly that many)"
                    )
                storage = Storage(key, dtype, numel)
                storage.flat = _flat_from_bytes(archive.read(record), dtype, big_endian)
                storages[key] = storage
            return storages[key]

        try:
            return restricted_load(archive.read(pickles[0]), storage_for), storages
        except zipfile.BadZipFile as exc:  # CRC mismatch, bad local header
            raise WeightsError(f"{path}: corrupt zip archive ({exc}); fetch the checkpoint again.") from exc


def open_weights_zip(
    path: str | Path,
    what: str = "zip archive",
    fix: str = "the download or copy is incomplete: fetch the checkpoint again",
) -> zipfile.ZipFile:
    """``zipfile.ZipFile(path)``, checked for truncation and zip bombs.

    Args:
      path: the zip file (a torch.save checkpoint, a .keras file).
      what: what the file is, for the message.
      fix: what to do about a truncated or corrupt one, for the message.

    Returns:
      The open archive.

    Raises:
      WeightsError: naming ``path`` as a truncated or corrupt ``what`` (then ``fix``), or as a zip bomb:
        members declaring more than :data:`MAX_ZIP_INFLATION` times the file's size (plus 1 MiB) in all,
        where weight files (torch.save's, Keras's) store them uncompressed.
    """
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise WeightsError(f"{path}: a truncated or corrupt {what} ({exc}); {fix}.") from exc
    infos, size = archive.infolist(), Path(path).stat().st_size
    declared = sum(info.file_size for info in infos)
    if declared > MAX_ZIP_INFLATION * size + (1 << 20):
        archive.close()
        big = max(infos, key=lambda info: info.file_size)
        raise WeightsError(
            f"{path}: refused: its zip members inflate to {declared} bytes from a file of {size} "
            f"({big.filename!r} alone to {big.file_size}), a zip bomb: weight files store their "
            "members uncompressed."
        )
    return archive


def _read_legacy(path, file):
    """The legacy (torch < 1.6) format, ``file`` positioned after the magic number."""
    protocol = restricted_load(file)
    if protocol != _LEGACY_PROTOCOL:
        raise Unsupported(
            f"legacy torch.save protocol {protocol!r} is not supported (only {_LEGACY_PROTOCOL} is known)"
        )
    sys_info = restricted_load(file)
    little = sys_info.get("little_endian", True) if isinstance(sys_info, dict) else True
    storages = {}

    def storage_for(kind, key, numel, view):
        if key not in storages:
            storages[key] = Storage(key, resolve_dtype(kind.dtype_spec, f"storage {key!r} ({kind.name})"), numel)
        root = storages[key]
        if view is None:
            return root
        # torch < 1.0 saved storage views as (view key, element offset, element count)
        view_key, offset, count = view
        if view_key not in storages:
            storages[view_key] = Storage(view_key, root.dtype, count, root=root, offset=offset)
        return storages[view_key]

    obj = restricted_load(file, storage_for)
    keys = restricted_load(file)
    if not isinstance(keys, list):
        raise ValueError("the storage key list is missing after the object")
    file_size = Path(path).stat().st_size
    for key in keys:
        key = key.decode("ascii") if isinstance(key, bytes) else key
        storage = storages.get(key)
        if storage is None or storage.root is not None:
            raise ValueError(f"storage key {key!r} is listed but no tensor uses it")
        head = file.read(8)
        if len(head) < 8:
            raise EOFError(f"the file ends before storage {key!r}")
        numel = int.from_bytes(head, "little" if little else "big", signed=True)
        nbytes = numel * storage.dtype.itemsize
        if numel < 0 or nbytes > file_size - file.tell():  # checked before allocating
            raise EOFError(f"storage {key!r} claims {numel} elements; the file ends before them")
        raw = file.read(nbytes)
        if len(raw) != nbytes:
            raise EOFError(f"storage {key!r} is cut short ({len(raw)} of {nbytes} bytes)")
        storage.flat = _flat_from_bytes(raw, storage.dtype, not little)
        storage.numel = numel
    return obj, storages


def read_torch_checkpoint(path: str | Path) -> Any:
    """The object a ``torch.save`` file holds, every tensor a contiguous ``numpy.ndarray``.

    Needs no torch and runs no code from the file: only tensors, parameters, storages and
    ``collections.OrderedDict`` (plus plain containers, numbers and strings) are accepted.
    Dtypes are kept (float16 stays float16; bfloat16 becomes ``ml_dtypes.bfloat16``), and
    views (transposes, slices sharing a storage) are copied out with their shape, strides
    and storage offset.

    Args:
      path: the ``.pth``/``.pt`` file.

    Returns:
      The object tree (dicts, lists, numbers, strings and arrays).

    Raises:
      WeightsError: for a missing, truncated or corrupt file, a format that is not ``torch.save``'s, or
        any other global in the pickle (named in the message; never imported or called).
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: no such file; check the path of the PyTorch checkpoint.")
    with open(path, "rb") as f:
        head = f.read(4)
    try:
        if head.startswith(b"PK"):
            obj, storages = _read_zip(path)
        else:
            obj, storages = _read_non_zip(path, head)
        storage_bytes = sum(s.flat.nbytes for s in storages.values() if s.flat is not None)
        return _Resolver(storage_bytes)(obj)
    except WeightsError:
        raise
    except OverLimit as exc:
        raise WeightsError(
            f"{path}: refused: {exc}. The file is malformed or hostile; re-save the weights "
            "with torch.save(model.state_dict(), path)."
        ) from None
    except Refused as exc:
        raise WeightsError(
            f"{path}: refused to unpickle global {exc.args[0]!r}: a checkpoint may only hold "
            "tensors, storages and OrderedDicts, and anything else could run code when "
            f"loaded (torch.load(weights_only=False) would call it). {_RESAVE_HINT}"
        ) from None
    except Unsupported as exc:
        raise WeightsError(f"{path}: {exc}. {_RESAVE_HINT}") from None
    except Exception as exc:  # any malformed pickle: truncated, wrong types, bad opcodes
        raise WeightsError(
            f"{path}: corrupt or truncated PyTorch checkpoint ({type(exc).__name__}: {exc}). "
            "Fetch the file again, or re-save it with torch.save(model.state_dict(), "
            "path)."
        ) from exc


def _read_non_zip(path, head):
    if tarfile.is_tarfile(path):
        raise WeightsError(
            f"{path}: a tar-format checkpoint (torch < 0.4) is not supported. Load it with an "
            "old torch and re-save it: torch.save(torch.load(path), 'new.pth')."
        )
    not_torch = (
        f"{path}: not a PyTorch checkpoint: neither a torch.save zip archive (torch >= 1.6) nor a "
        "legacy torch.save file. Re-save it with torch.save(model.state_dict(), path), or pass "
        "the state dict as an .npz (np.savez('weights.npz', **state_dict_as_numpy))."
    )
    if not head.startswith(b"\x80"):  # every torch.save pickle starts with PROTO
        raise WeightsError(not_torch)
    with open(path, "rb") as f:
        try:
            magic = restricted_load(f)
        except (Refused, OverLimit):
            raise
        except Exception:
            raise WeightsError(not_torch) from None
        if magic != _LEGACY_MAGIC:
            raise WeightsError(not_torch)
        return _read_legacy(path, f)


# --------------------------------------------------------------------------- state dicts


def _describe(obj):
    if isinstance(obj, dict):
        kinds = ", ".join(f"{k!r}: {type(v).__name__}" for k, v in list(obj.items())[:8])
        return f"a dict {{{kinds}{', ...' if len(obj) > 8 else ''}}}"
    return f"a {type(obj).__name__}"


def load_torch_checkpoint(path: str | Path, key: str | None = None) -> dict[str, np.ndarray]:
    """The state dict of a ``torch.save`` file as ``{name: numpy.ndarray}``, in file order.

    Reads with :func:`read_torch_checkpoint` (no torch, no code run).  Unwraps, as often as
    they nest, the dicts training code saves around a state dict: ``state_dict``, ``model``,
    ``params``, ``params_ema``, ``net`` (:data:`STATE_DICT_WRAPPERS`, first found wins), or
    the one named by ``key``; keeps the tensors of the result (``num_batches_tracked``
    included) and drops other entries (epoch counters, names); strips DataParallel's
    ``module.`` prefix when every key has it.

    Args:
      path: the ``.pth``/``.pt`` file.
      key: the entry holding the state dict, when it is none of the usual wrappers.

    Returns:
      {name: array}, in file order.

    Raises:
      WeightsError: the file is unreadable or refused, or holds no state dict (the message lists what
        it holds).
    """
    obj = read_torch_checkpoint(path)
    if key is not None:
        if not isinstance(obj, dict) or key not in obj:
            raise WeightsError(f"{path}: key={key!r} is not in the checkpoint, which holds {_describe(obj)}.")
        obj = obj[key]
    for _ in range(16):
        if not isinstance(obj, dict):
            break
        inner = next((obj[k] for k in STATE_DICT_WRAPPERS if isinstance(obj.get(k), dict)), None)
        if inner is None:
            break
        obj = inner
    if not isinstance(obj, dict):
        raise WeightsError(
            f"{path}: holds {_describe(obj)}, not a state dict (name -> tensor). Save "
            "model.state_dict() with torch.save."
        )
    state = {k: v for k, v in obj.items() if isinstance(k, str) and isinstance(v, np.ndarray)}
    if not state:
        nested = [k for k, v in obj.items() if isinstance(v, dict)]
        hint = (
            f" It has nested dicts under {', '.join(map(repr, nested[:6]))}: pass key= one of them." if nested else ""
        )
        raise WeightsError(f"{path}: holds {_describe(obj)} with no tensors, so no state dict.{hint}")
    if all(k.startswith("module.") for k in state):  # saved from nn.DataParallel
        state = {k[len("module.") :]: v for k, v in state.items()}
    return state
