"""The restricted unpickler of PyTorch checkpoints: the only globals a tensor or an ordered dict needs,
each mapped to a local, harmless stand-in, and a walk over the pickle's opcodes that bounds what it may
ask of the reader before anything is built.  No torch code is ever imported or called.

The unpickled tree holds :class:`PendingTensor` (views on :class:`Storage`), which
:mod:`visionfw.weights.torch_checkpoint` fills from the file and copies out as arrays.
"""

from __future__ import annotations

import collections
import io
import pickle
import pickletools
from typing import Any

import numpy as np

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


def resolve_dtype(spec: np.dtype | str, what: str) -> np.dtype:
    """The numpy dtype of a storage or tensor dtype ``spec`` (an ml_dtypes name is imported when used).

    Args:
      spec: a numpy dtype, or the name of an ml_dtypes type ('bfloat16', 'float8_e4m3fn', ...).
      what: the tensor or storage, for the message.

    Returns:
      The dtype.

    Raises:
      Unsupported: ml_dtypes is not installed.
    """
    if isinstance(spec, np.dtype):
        return spec
    try:
        import ml_dtypes  # installed with TensorFlow
    except ImportError:
        raise Unsupported(
            f"{what} holds {spec} values, which need the ml_dtypes package (pip install "
            f"ml_dtypes); or convert the tensor with .float() before saving"
        ) from None
    return np.dtype(getattr(ml_dtypes, spec))


class Refused(Exception):
    """A global the restricted unpickler will not resolve."""


class Unsupported(Exception):
    """A well-formed checkpoint feature this reader does not handle."""


class OverLimit(Exception):
    """A file that asks the reader for far more time or memory than its tensors need."""


# What a checkpoint's pickle may ask of the reader.  torch.save writes a few dozen opcodes per tensor
# and nests a handful of levels; the pickle itself is small (the tensor bytes are stored beside it).
MAX_PICKLE_OPS = 20_000_000
MAX_PICKLE_NESTING = 100


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


class StorageKind(_Sealed):
    """Stand-in for ``torch.FloatStorage`` & co.: only carries the element dtype."""

    __slots__ = ("name", "dtype_spec")

    def __init__(self, name, dtype_spec):
        self.name, self.dtype_spec = name, dtype_spec


class TorchDType(_Sealed):
    """Stand-in for ``torch.float32`` & co. (an argument of ``_rebuild_tensor_v3``)."""

    __slots__ = ("name", "dtype_spec")

    def __init__(self, name, dtype_spec):
        self.name, self.dtype_spec = name, dtype_spec


class Storage(_Sealed):
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


class PendingTensor(_Sealed):
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
    if not isinstance(storage, Storage):
        raise ValueError(f"a tensor is built on {type(storage).__name__}, not on a storage")
    if not isinstance(storage_offset, int) or isinstance(storage_offset, bool):
        raise ValueError(f"tensor storage offset {storage_offset!r} is not an int")
    return PendingTensor(storage, storage_offset, _int_tuple(size, "size"), _int_tuple(stride, "stride"))


def _rebuild_tensor_v3(*args):
    """torch._utils._rebuild_tensor_v3: an untyped (byte) storage plus the tensor's dtype.

    The pickle calls it positionally with torch's argument list ``(storage, storage_offset, size, stride,
    requires_grad, backward_hooks, dtype, ...)``, so it takes ``*args`` and names them here.
    """
    if len(args) < 7:
        raise TypeError(f"_rebuild_tensor_v3 takes at least 7 arguments, got {len(args)}")
    storage, storage_offset, size, stride, _requires_grad, _backward_hooks, dtype = args[:7]
    if not isinstance(dtype, TorchDType):
        raise ValueError(f"_rebuild_tensor_v3 got dtype {dtype!r}, not a torch dtype")
    tensor = _rebuild_tensor(storage, storage_offset, size, stride)
    tensor.dtype = dtype
    return tensor


def _rebuild_parameter(data, *_ignored):
    """torch._utils._rebuild_parameter(_with_state): a parameter is its data."""
    if not isinstance(data, PendingTensor):
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
        allowed[("torch", name)] = StorageKind(name, spec)
    allowed[("torch.storage", "UntypedStorage")] = StorageKind("UntypedStorage", np.dtype("u1"))
    for name, spec in _TORCH_DTYPES.items():
        allowed[("torch", name)] = TorchDType(name, spec)
    return allowed


_ALLOWED = _allowed_globals()


class _RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only :data:`_ALLOWED` globals (to local stand-ins).

    ``storage_for(kind, key, numel, view)`` turns a persistent id into a :class:`Storage`.
    """

    def __init__(self, file, storage_for=None):
        super().__init__(file, encoding="utf-8")
        self._storage_for = storage_for

    def find_class(self, module, name):
        try:
            return _ALLOWED[(module, name)]
        except (KeyError, TypeError):
            raise Refused(f"{module}.{name}") from None

    def persistent_load(self, pid):
        if self._storage_for is None:
            raise Refused(f"persistent id {str(pid)[:80]}")
        if not isinstance(pid, tuple) or not pid:
            raise ValueError(f"unexpected persistent id {str(pid)[:80]}")
        typename = pid[0].decode("ascii") if isinstance(pid[0], bytes) else pid[0]
        if typename == "module":  # a whole nn.Module pickled with its source code
            raise Refused("persistent id 'module' (a pickled nn.Module with its source code)")
        if typename != "storage" or len(pid) not in (5, 6):
            raise ValueError(f"unexpected persistent id {str(pid)[:80]}")
        kind, key, _location, numel = pid[1:5]
        view = pid[5] if len(pid) == 6 else None
        if not isinstance(kind, StorageKind):
            raise ValueError(f"persistent id names storage type {kind!r}")
        key = key.decode("ascii") if isinstance(key, bytes) else key
        if not isinstance(key, str) or not isinstance(numel, int) or numel < 0:
            raise ValueError(f"bad storage id {str(pid)[:80]}")
        return self._storage_for(kind, key, numel, view)


def _check_pickle_bounds(file):
    """Walks the opcodes of the pickle at ``file``'s position (which it restores) without building
    anything: raises :class:`OverLimit` for a memo index the pickle could not have filled (the
    unpickler sizes its memo table to the largest index: 10 bytes can ask for gigabytes), more than
    :data:`MAX_PICKLE_OPS` opcodes, or MARKs nested deeper than :data:`MAX_PICKLE_NESTING`.
    A pickle these opcodes cannot be read from raises ValueError."""
    start = file.tell()
    ops = nesting = memo_size = 0
    try:
        for op, arg, _pos in pickletools.genops(file):
            ops += 1
            if ops > MAX_PICKLE_OPS:
                raise OverLimit(f"the pickle has more than {MAX_PICKLE_OPS} opcodes")
            if op.name == "MARK":
                nesting += 1
                if nesting > MAX_PICKLE_NESTING:
                    raise OverLimit(f"the pickle nests more than {MAX_PICKLE_NESTING} levels deep")
            elif pickletools.markobject in op.stack_before:
                nesting -= 1
            if op.name in ("PUT", "BINPUT", "LONG_BINPUT"):
                index = int(arg)  # PUT's argument is text
                if index > memo_size:  # picklers number memo entries 0, 1, 2, ...
                    raise OverLimit(
                        f"the pickle stores memo entry {index} when it has made {memo_size}; its "
                        f"unpickler would allocate a table of {index} entries"
                    )
                memo_size = max(memo_size, index + 1)
            elif op.name == "MEMOIZE":
                memo_size += 1
    except OverLimit:
        raise
    except Exception as exc:  # stopping here would leave the rest of the pickle unchecked
        raise ValueError(f"malformed pickle ({exc})") from None
    finally:
        file.seek(start)


def restricted_load(data_or_file: bytes | bytearray | Any, storage_for: Any = None) -> Any:
    """One pickle, unpickled with only the allowed globals, after its opcodes were checked.

    Args:
      data_or_file: the pickle's bytes, or a binary file positioned at it (left after it).
      storage_for: ``storage_for(kind, key, numel, view)`` turning a persistent id into a :class:`Storage`;
        None refuses persistent ids.

    Returns:
      The unpickled object, tensors as :class:`PendingTensor`.

    Raises:
      Refused: a global or persistent id outside the allowed ones.
      OverLimit: the pickle asks for far more time or memory than it could need.
    """
    source = io.BytesIO(data_or_file) if isinstance(data_or_file, (bytes, bytearray)) else data_or_file
    _check_pickle_bounds(source)
    return _RestrictedUnpickler(source, storage_for).load()
