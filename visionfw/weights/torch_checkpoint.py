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
does), so both are read with :class:`_RestrictedUnpickler`, which only resolves the globals a
tensor or an ordered dict needs and maps each to a local, harmless stand-in: no torch code is
ever imported or called.  Any other global (``os.system``, ``builtins.eval``, a model class
...) raises :class:`~visionfw.errors.WeightsError` naming the file and the global.

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
import io
import pickle
import pickletools
import tarfile
import zipfile
from pathlib import Path

import numpy as np

from visionfw.errors import WeightsError

__all__ = ["read_torch_checkpoint", "load_torch_checkpoint", "open_weights_zip", "STATE_DICT_WRAPPERS"]

# torch.serialization.MAGIC_NUMBER and PROTOCOL_VERSION of the legacy format
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001

# keys under which training code nests the state dict, tried in this order
STATE_DICT_WRAPPERS = ("state_dict", "model", "params", "params_ema", "net")

_RESAVE_HINT = (
    "If you trust the file, re-save only its weights with torch: "
    "torch.save(model.state_dict(), 'weights.pth'), or as numpy: "
    "np.savez('weights.npz', **{k: v.cpu().numpy() for k, v in state_dict.items()})."
)


# storage class name -> numpy dtype (a string names an ml_dtypes type, looked up when used)
_STORAGE_DTYPES = {
    "DoubleStorage": np.dtype("<f8"),
    "FloatStorage": np.dtype("<f4"),
    "HalfStorage": np.dtype("<f2"),
    "BFloat16Storage": "bfloat16",
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
    "ComplexFloatStorage": np.dtype("<c8"),
    "ComplexDoubleStorage": np.dtype("<c16"),
    "UntypedStorage": np.dtype("u1"),
}

# torch dtype name -> numpy dtype, for _rebuild_tensor_v3 (a dtype beside an untyped storage)
_TORCH_DTYPES = {
    "float64": np.dtype("<f8"),
    "float32": np.dtype("<f4"),
    "float16": np.dtype("<f2"),
    "bfloat16": "bfloat16",
    "int64": np.dtype("<i8"),
    "int32": np.dtype("<i4"),
    "int16": np.dtype("<i2"),
    "int8": np.dtype("i1"),
    "uint8": np.dtype("u1"),
    "uint16": np.dtype("<u2"),
    "uint32": np.dtype("<u4"),
    "uint64": np.dtype("<u8"),
    "bool": np.dtype("?"),
    "complex64": np.dtype("<c8"),
    "complex128": np.dtype("<c16"),
    "float8_e4m3fn": "float8_e4m3fn",
    "float8_e5m2": "float8_e5m2",
}


def _resolve_dtype(spec, what):
    if isinstance(spec, np.dtype):
        return spec
    try:
        import ml_dtypes  # installed with TensorFlow
    except ImportError:
        raise _Unsupported(
            f"{what} holds {spec} values, which need the ml_dtypes package (pip install "
            f"ml_dtypes); or convert the tensor with .float() before saving"
        ) from None
    return np.dtype(getattr(ml_dtypes, spec))


class _Refused(Exception):
    """A global the restricted unpickler will not resolve."""


class _Unsupported(Exception):
    """A well-formed checkpoint feature this reader does not handle."""


class _OverLimit(Exception):
    """A file that asks the reader for far more time or memory than its tensors need."""


# What a checkpoint's pickle may ask of the reader.  torch.save writes a few dozen opcodes per tensor
# and nests a handful of levels; the pickle itself is small (the tensor bytes are stored beside it).
MAX_PICKLE_OPS = 20_000_000
MAX_PICKLE_NESTING = 100
# Members of a torch.save zip are stored, not compressed: their declared sizes add up to about the
# file's size.  A zip whose members inflate far beyond it is a zip bomb.
MAX_ZIP_INFLATION = 20
# The tensors of a file, copied out, may overlap their storages (a transpose saved beside its base)
# but not by more than this factor: a pickle can name one storage a thousand times.
MAX_VIEW_AMPLIFICATION = 8


class _Sealed:
    """Base of every object the unpickler hands out: a pickle's BUILD opcode cannot change it.

    (BUILD calls ``__setstate__``, else sets attributes; without this a file could rewrite the
    shared stand-ins below, e.g. a function's ``__defaults__``, for every later load.)
    """

    __slots__ = ()

    def __setstate__(self, state):
        raise ValueError(f"the pickle tries to set the state of a {type(self).__name__.lstrip('_')}")


class _StandIn(_Sealed):
    """A local, harmless function standing in for a torch global."""

    __slots__ = ("_fn", "_name")

    def __init__(self, fn, name):
        object.__setattr__(self, "_fn", fn)
        object.__setattr__(self, "_name", name)

    def __setattr__(self, key, value):
        raise AttributeError(f"{self._name} is read-only")

    def __call__(self, *args):
        return self._fn(*args)

    def __repr__(self):
        return f"<stand-in for {self._name}>"


class _StorageKind(_Sealed):
    """Stand-in for ``torch.FloatStorage`` & co.: only carries the element dtype."""

    __slots__ = ("name", "dtype_spec")

    def __init__(self, name, dtype_spec):
        self.name, self.dtype_spec = name, dtype_spec


class _TorchDType(_Sealed):
    """Stand-in for ``torch.float32`` & co. (an argument of ``_rebuild_tensor_v3``)."""

    __slots__ = ("name", "dtype_spec")

    def __init__(self, name, dtype_spec):
        self.name, self.dtype_spec = name, dtype_spec


class _Storage(_Sealed):
    """A storage: a flat array filled from the file, or a view into another storage (legacy)."""

    __slots__ = ("key", "dtype", "numel", "flat", "root", "offset")

    def __init__(self, key, dtype, numel, root=None, offset=0):
        self.key, self.dtype, self.numel = key, dtype, numel
        self.flat, self.root, self.offset = None, root, offset

    def array(self):
        if self.root is not None:
            base = self.root.array()
            if self.offset < 0 or self.offset + self.numel > base.size:
                raise ValueError(f"storage view {self.key!r} runs past its root storage {self.root.key!r}")
            return base[self.offset : self.offset + self.numel]
        if self.flat is None:
            raise ValueError(f"storage {self.key!r} has no data in the file")
        return self.flat


class _PendingTensor(_Sealed):
    """A tensor whose storage bytes may not have been read yet (legacy files store them last)."""

    __slots__ = ("storage", "offset", "size", "stride", "dtype")

    def __init__(self, storage, offset, size, stride, dtype=None):
        self.storage, self.offset, self.size, self.stride, self.dtype = storage, offset, size, stride, dtype


def _int_tuple(value, what):
    if not isinstance(value, (tuple, list)) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        raise ValueError(f"tensor {what} {value!r} is not a tuple of ints")
    return tuple(value)


def _rebuild_tensor(storage, storage_offset, size, stride, *_ignored):
    """torch._utils._rebuild_tensor(_v2): records the view on the storage, reads nothing yet."""
    if not isinstance(storage, _Storage):
        raise ValueError(f"a tensor is built on {type(storage).__name__}, not on a storage")
    if not isinstance(storage_offset, int) or isinstance(storage_offset, bool):
        raise ValueError(f"tensor storage offset {storage_offset!r} is not an int")
    return _PendingTensor(storage, storage_offset, _int_tuple(size, "size"), _int_tuple(stride, "stride"))


def _rebuild_tensor_v3(storage, storage_offset, size, stride, requires_grad, backward_hooks, dtype, *_ignored):
    """torch._utils._rebuild_tensor_v3: an untyped (byte) storage plus the tensor's dtype."""
    if not isinstance(dtype, _TorchDType):
        raise ValueError(f"_rebuild_tensor_v3 got dtype {dtype!r}, not a torch dtype")
    tensor = _rebuild_tensor(storage, storage_offset, size, stride)
    tensor.dtype = dtype
    return tensor


def _rebuild_parameter(data, *_ignored):
    """torch._utils._rebuild_parameter(_with_state): a parameter is its data."""
    if not isinstance(data, _PendingTensor):
        raise ValueError(f"a parameter wraps {type(data).__name__}, not a tensor")
    return data


def _rebuild_from_type_v2(func, new_type, args, state):
    """torch._tensor._rebuild_from_type_v2, for plain Tensor and Parameter only."""
    if new_type not in (_TENSOR_TYPE, _PARAMETER_TYPE) or func not in _TENSOR_BUILDERS or not isinstance(args, tuple):
        raise ValueError("_rebuild_from_type_v2 of a tensor subclass")
    return func(*args)


def _codecs_encode(text, encoding="utf-8"):
    """_codecs.encode, which protocol-2 pickles use for bytes objects; text codecs only."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1", "utf-8", "utf8"):
        raise ValueError(f"_codecs.encode({type(text).__name__}, {encoding!r}) refused")
    return text.encode(encoding)


def _size(*args):
    """torch.Size(sequence) -> a tuple."""
    if len(args) == 1 and isinstance(args[0], (tuple, list)):
        return tuple(args[0])
    raise ValueError("torch.Size takes one sequence")


def _not_callable(*_args):
    raise ValueError("a type marker was called")


# torch.Tensor / torch.nn.Parameter only appear as arguments of _rebuild_from_type_v2
_TENSOR_TYPE = _StandIn(_not_callable, "torch.Tensor")
_PARAMETER_TYPE = _StandIn(_not_callable, "torch.nn.parameter.Parameter")
_TENSOR_BUILDERS = (
    _StandIn(_rebuild_tensor, "torch._utils._rebuild_tensor_v2"),
    _StandIn(_rebuild_tensor_v3, "torch._utils._rebuild_tensor_v3"),
    _StandIn(_rebuild_parameter, "torch._utils._rebuild_parameter"),
)


def _allowed_globals():
    build_v2, build_v3, build_param = _TENSOR_BUILDERS
    allowed = {
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("torch._utils", "_rebuild_tensor"): build_v2,
        ("torch._utils", "_rebuild_tensor_v2"): build_v2,
        ("torch._utils", "_rebuild_tensor_v3"): build_v3,
        ("torch._utils", "_rebuild_parameter"): build_param,
        ("torch._utils", "_rebuild_parameter_with_state"): build_param,
        ("torch._tensor", "_rebuild_from_type_v2"): _StandIn(
            _rebuild_from_type_v2, "torch._tensor._rebuild_from_type_v2"
        ),
        ("torch", "Tensor"): _TENSOR_TYPE,
        ("torch._tensor", "Tensor"): _TENSOR_TYPE,
        ("torch.nn.parameter", "Parameter"): _PARAMETER_TYPE,
        ("torch", "Size"): _StandIn(_size, "torch.Size"),
        ("_codecs", "encode"): _StandIn(_codecs_encode, "_codecs.encode"),
    }
    for name, spec in _STORAGE_DTYPES.items():
        allowed[("torch", name)] = _StorageKind(name, spec)
    allowed[("torch.storage", "UntypedStorage")] = _StorageKind("UntypedStorage", np.dtype("u1"))
    for name, spec in _TORCH_DTYPES.items():
        allowed[("torch", name)] = _TorchDType(name, spec)
    return allowed


_ALLOWED = _allowed_globals()


class _RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only :data:`_ALLOWED` globals (to local stand-ins).

    ``storage_for(kind, key, numel, view)`` turns a persistent id into a :class:`_Storage`.
    """

    def __init__(self, file, storage_for=None):
        super().__init__(file, encoding="utf-8")
        self._storage_for = storage_for

    def find_class(self, module, name):
        try:
            return _ALLOWED[(module, name)]
        except (KeyError, TypeError):
            raise _Refused(f"{module}.{name}") from None

    def persistent_load(self, pid):
        if self._storage_for is None:
            raise _Refused(f"persistent id {str(pid)[:80]}")
        if not isinstance(pid, tuple) or not pid:
            raise ValueError(f"unexpected persistent id {str(pid)[:80]}")
        typename = pid[0].decode("ascii") if isinstance(pid[0], bytes) else pid[0]
        if typename == "module":  # a whole nn.Module pickled with its source code
            raise _Refused("persistent id 'module' (a pickled nn.Module with its source code)")
        if typename != "storage" or len(pid) not in (5, 6):
            raise ValueError(f"unexpected persistent id {str(pid)[:80]}")
        kind, key, _location, numel = pid[1:5]
        view = pid[5] if len(pid) == 6 else None
        if not isinstance(kind, _StorageKind):
            raise ValueError(f"persistent id names storage type {kind!r}")
        key = key.decode("ascii") if isinstance(key, bytes) else key
        if not isinstance(key, str) or not isinstance(numel, int) or numel < 0:
            raise ValueError(f"bad storage id {str(pid)[:80]}")
        return self._storage_for(kind, key, numel, view)


def _check_pickle_bounds(file):
    """Walks the opcodes of the pickle at ``file``'s position (which it restores) without building
    anything: raises :class:`_OverLimit` for a memo index the pickle could not have filled (the
    unpickler sizes its memo table to the largest index: 10 bytes can ask for gigabytes), more than
    :data:`MAX_PICKLE_OPS` opcodes, or MARKs nested deeper than :data:`MAX_PICKLE_NESTING`.
    A pickle these opcodes cannot be read from raises ValueError."""
    start = file.tell()
    ops = nesting = memo_size = 0
    try:
        for op, arg, _pos in pickletools.genops(file):
            ops += 1
            if ops > MAX_PICKLE_OPS:
                raise _OverLimit(f"the pickle has more than {MAX_PICKLE_OPS} opcodes")
            if op.name == "MARK":
                nesting += 1
                if nesting > MAX_PICKLE_NESTING:
                    raise _OverLimit(f"the pickle nests more than {MAX_PICKLE_NESTING} levels deep")
            elif pickletools.markobject in op.stack_before:
                nesting -= 1
            if op.name in ("PUT", "BINPUT", "LONG_BINPUT"):
                index = int(arg)  # PUT's argument is text
                if index > memo_size:  # picklers number memo entries 0, 1, 2, ...
                    raise _OverLimit(
                        f"the pickle stores memo entry {index} when it has made {memo_size}; its "
                        f"unpickler would allocate a table of {index} entries"
                    )
                memo_size = max(memo_size, index + 1)
            elif op.name == "MEMOIZE":
                memo_size += 1
    except _OverLimit:
        raise
    except Exception as exc:  # stopping here would leave the rest of the pickle unchecked
        raise ValueError(f"malformed pickle ({exc})") from None
    finally:
        file.seek(start)


def _restricted_load(data_or_file, storage_for=None):
    source = io.BytesIO(data_or_file) if isinstance(data_or_file, (bytes, bytearray)) else data_or_file
    _check_pickle_bounds(source)
    return _RestrictedUnpickler(source, storage_for).load()


# --------------------------------------------------------------------------- tensors


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
    """The contiguous array for a :class:`_PendingTensor`, bounds-checked against its storage."""
    flat = tensor.storage.array()
    if tensor.dtype is not None:  # v3: bytes reinterpreted as the tensor's dtype
        dtype = _resolve_dtype(tensor.dtype.dtype_spec, f"a {tensor.dtype.name} tensor")
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
        raise _OverLimit(
            f"a tensor of size {size} with strides {stride} repeats the {flat.size} elements of its "
            f"storage into {numel}; torch.save never writes such a view unless the tensor was "
            "expanded: save tensor.contiguous() instead"
        )
    view = np.lib.stride_tricks.as_strided(
        flat[offset:], shape=size, strides=[s * flat.dtype.itemsize for s in stride], writeable=False
    )
    return np.array(view, order="C", copy=True)  # owns its memory, not the file's buffer


class _Resolver:
    """Replaces every :class:`_PendingTensor` in an unpickled object by its array, containers rebuilt.

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
            raise _OverLimit("the object nests more than 200 levels deep")
        if isinstance(obj, (_PendingTensor, dict, list, tuple)) and id(obj) in self.done:
            result, nested = self.done[id(obj)]
            if nested:
                raise _OverLimit(
                    f"the pickle names one {type(obj).__name__} of containers at two places (a "
                    "shared object graph, which walks exponentially; torch.save writes a tree)"
                )
            return result
        if isinstance(obj, _PendingTensor):
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
        elif isinstance(obj, (_Storage, _StorageKind, _TorchDType)):
            return None  # a bare storage or type: no tensor meaning outside a tensor
        else:
            return obj
        self.done[id(obj)] = (result, nested)
        return result

    def _tensor(self, tensor):
        array = _materialize(tensor)
        self.copied += array.nbytes
        if self.copied > self.budget:
            raise _OverLimit(
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
                dtype = _resolve_dtype(kind.dtype_spec, f"storage {key!r} ({kind.name})")
                record = f"{prefix}data/{key}"
                if record not in names:
                    raise ValueError(f"storage record {record!r} is missing from the archive")
                declared, needed = archive.getinfo(record).file_size, numel * dtype.itemsize
                if declared != needed:  # checked before reading: the record could inflate to anything
                    raise ValueError(
                        f"storage record {record!r} has {declared} bytes, needs {needed} for "
                        f"{numel} {kind.name} elements (torch.save writes exactly that many)"
                    )
                storage = _Storage(key, dtype, numel)
                storage.flat = _flat_from_bytes(archive.read(record), dtype, big_endian)
                storages[key] = storage
            return storages[key]

        try:
            return _restricted_load(archive.read(pickles[0]), storage_for), storages
        except zipfile.BadZipFile as exc:  # CRC mismatch, bad local header
            raise WeightsError(f"{path}: corrupt zip archive ({exc}); fetch the checkpoint again.") from exc


def open_weights_zip(path, what="zip archive", fix="the download or copy is incomplete: fetch the checkpoint again"):
    """``zipfile.ZipFile(path)``, or a WeightsError naming ``path`` as a truncated or corrupt ``what``
    (then ``fix``), or as a zip bomb: members declaring more than :data:`MAX_ZIP_INFLATION` times the
    file's size (plus 1 MiB) in all, where weight files (torch.save's, Keras's) store them uncompressed."""
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
    protocol = _restricted_load(file)
    if protocol != _LEGACY_PROTOCOL:
        raise _Unsupported(
            f"legacy torch.save protocol {protocol!r} is not supported (only {_LEGACY_PROTOCOL} is known)"
        )
    sys_info = _restricted_load(file)
    little = sys_info.get("little_endian", True) if isinstance(sys_info, dict) else True
    storages = {}

    def storage_for(kind, key, numel, view):
        if key not in storages:
            storages[key] = _Storage(key, _resolve_dtype(kind.dtype_spec, f"storage {key!r} ({kind.name})"), numel)
        root = storages[key]
        if view is None:
            return root
        # torch < 1.0 saved storage views as (view key, element offset, element count)
        view_key, offset, count = view
        if view_key not in storages:
            storages[view_key] = _Storage(view_key, root.dtype, count, root=root, offset=offset)
        return storages[view_key]

    obj = _restricted_load(file, storage_for)
    keys = _restricted_load(file)
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


def read_torch_checkpoint(path):
    """The object a ``torch.save`` file holds, every tensor a contiguous ``numpy.ndarray``.

    Needs no torch and runs no code from the file: only tensors, parameters, storages and
    ``collections.OrderedDict`` (plus plain containers, numbers and strings) are accepted.
    Dtypes are kept (float16 stays float16; bfloat16 becomes ``ml_dtypes.bfloat16``), and
    views (transposes, slices sharing a storage) are copied out with their shape, strides
    and storage offset.

    Raises :class:`~visionfw.errors.WeightsError` for a missing, truncated or corrupt file, a
    format that is not ``torch.save``'s, or any other global in the pickle (named in the
    message; never imported or called).
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
    except _OverLimit as exc:
        raise WeightsError(
            f"{path}: refused: {exc}. The file is malformed or hostile; re-save the weights "
            "with torch.save(model.state_dict(), path)."
        ) from None
    except _Refused as exc:
        raise WeightsError(
            f"{path}: refused to unpickle global {exc.args[0]!r}: a checkpoint may only hold "
            "tensors, storages and OrderedDicts, and anything else could run code when "
            f"loaded (torch.load(weights_only=False) would call it). {_RESAVE_HINT}"
        ) from None
    except _Unsupported as exc:
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
            magic = _restricted_load(f)
        except (_Refused, _OverLimit):
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


def load_torch_checkpoint(path, key=None):
    """The state dict of a ``torch.save`` file as ``{name: numpy.ndarray}``, in file order.

    Reads with :func:`read_torch_checkpoint` (no torch, no code run).  Unwraps, as often as
    they nest, the dicts training code saves around a state dict: ``state_dict``, ``model``,
    ``params``, ``params_ema``, ``net`` (:data:`STATE_DICT_WRAPPERS`, first found wins), or
    the one named by ``key``; keeps the tensors of the result (``num_batches_tracked``
    included) and drops other entries (epoch counters, names); strips DataParallel's
    ``module.`` prefix when every key has it.
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
