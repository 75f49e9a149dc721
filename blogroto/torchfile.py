"""Read the tensors of a PyTorch `torch.save` file without PyTorch and without running its pickle.

A `.pth` is a pickle, and unpickling runs whatever the pickle names: `torch.load` of a hostile
file can call `os.system`. This reader uses a restricted unpickler (like blogroto.engine.vgg's
`_NumpyOnlyUnpickler`) that resolves only the few names a saved state dict uses: its
`collections.OrderedDict`, the tensor rebuild functions of `torch._utils` (mapped to numpy
functions here, never torch's), and the storage types (`torch.FloatStorage`, ...: mapped to
numpy dtypes). Any other name (a class of the training script, `os.system`, `builtins.eval`, ...)
is refused before anything is called, with an error naming the file and the name.

Both file layouts `torch.save` has written are read:
  zip (PyTorch >= 1.6): `<name>/data.pkl` is the pickle; each tensor's storage is the raw member
      `<name>/data/<key>` (byte order in `<name>/byteorder`, little endian when absent);
  legacy (older PyTorch, e.g. the pytorch/examples models of 2017-2018): a sequence of pickles
      (magic number, protocol version, system info, the object, the storage keys) followed by
      each storage as an int64 element count and its raw bytes.

No TensorFlow, no torch: numpy only.
"""

from __future__ import annotations

import io
import pickle
import struct
import zipfile
import zlib
from collections import OrderedDict
from pathlib import Path

import numpy as np

from blogroto.errors import FilterError

MAX_BYTES = 1 << 30  # refuse files (and storages) larger than this: a style network is ~7 MB
MAX_TOTAL = 2 << 30  # refuse when all storages, or all the arrays made from them, add up to more
MAX_PICKLE = 16 << 20  # data.pkl of a zip archive
MAX_INT = 1 << 62  # every offset, size, stride and element count is a plain int in [0, MAX_INT)
LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001

# storage type names torch pickles -> numpy dtype (bfloat16: read as its upper 16 bits)
STORAGE_DTYPES = {
    "FloatStorage": np.dtype("<f4"), "DoubleStorage": np.dtype("<f8"), "HalfStorage": np.dtype("<f2"),
    "BFloat16Storage": np.dtype("<u2"), "LongStorage": np.dtype("<i8"), "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"), "CharStorage": np.dtype("i1"), "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
}


def _clean(value, limit: int = 80) -> str:
    """A name or value from the file, fit for an error message: ASCII escapes, at most ~80 characters."""
    text = value if isinstance(value, str) else repr(value) if isinstance(value, (int, float, type(None))) \
        else f"<{type(value).__name__}>"
    text = ascii(text)[1:-1]
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _plain_int(value) -> bool:
    return type(value) is int and 0 <= value < MAX_INT


class _Frozen:
    """The reader's own objects: a pickle's BUILD opcode may not set their attributes."""

    def __setstate__(self, state):
        raise pickle.UnpicklingError(f"the pickle sets the state of a {type(self).__name__.strip('_')}")


class _Callable(_Frozen):
    """One of the few functions a pickle may call."""

    def __init__(self, function):
        self._function = function

    def __call__(self, *args):
        return self._function(*args)


class _StorageType(_Frozen):
    """Stands for torch.<Name>Storage in a pickle: only its dtype is used."""

    def __init__(self, name: str):
        self.name = name
        self.dtype = STORAGE_DTYPES[name]


class _Storage(_Frozen):
    """A storage named by the pickle; its bytes are read from the file afterwards (legacy layout)
    or on demand (zip layout)."""

    def __init__(self, stype: _StorageType, key: str, numel: int):
        self.stype, self.key, self.numel = stype, key, numel
        self.array: np.ndarray | None = None


class _Tensor(_Frozen):
    """A tensor rebuilt from the pickle: its storage, offset, size and stride (elements)."""

    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride


def _rebuild_tensor(storage, storage_offset, size, stride, *rest):
    # torch._utils._rebuild_tensor(storage, offset, size, stride) and _rebuild_tensor_v2(...,
    # requires_grad, backward_hooks[, metadata]): requires_grad, hooks and metadata do not matter
    if not isinstance(storage, _Storage):
        raise pickle.UnpicklingError("a tensor without a storage")
    if not isinstance(size, (tuple, list)) or not isinstance(stride, (tuple, list)) or len(size) > 64 \
            or len(size) != len(stride) or not all(_plain_int(v) for v in (storage_offset, *size, *stride)):
        raise pickle.UnpicklingError("a tensor with a malformed offset, size or stride")
    return _Tensor(storage, storage_offset, tuple(size), tuple(stride))


def _rebuild_parameter(data, *rest):
    return data  # torch._utils._rebuild_parameter(data, requires_grad, backward_hooks)


def _ordered_dict(*args):
    if args:  # OrderedDict(iterable) would iterate what the pickle gives it: only () is written by torch
        raise pickle.UnpicklingError("OrderedDict with arguments")
    return OrderedDict()


class _TensorsOnlyUnpickler(pickle.Unpickler):
    """Unpickles a state dict: dicts, lists, tuples, numbers, strings and tensors, nothing else."""

    CALLABLES = {
        ("collections", "OrderedDict"): _ordered_dict,
        ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
        ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    }

    def __init__(self, file, storages: dict[str, _Storage]):
        super().__init__(file)
        self.storages = storages

    def find_class(self, module, name):
        if (module, name) in self.CALLABLES:  # a fresh wrapper: BUILD cannot reach the functions themselves
            return _Callable(self.CALLABLES[(module, name)])
        if module in ("torch", "torch.storage") and name in STORAGE_DTYPES:
            return _StorageType(name)
        raise pickle.UnpicklingError(f"the pickle names {_clean(module)}.{_clean(name)}")

    def persistent_load(self, pid):
        # zip: ('storage', type, key, location, numel); legacy: (..., numel, view_metadata)
        if not isinstance(pid, tuple) or not pid or pid[0] != "storage":
            kind = pid[0] if isinstance(pid, tuple) and pid else type(pid).__name__
            raise pickle.UnpicklingError(f"unexpected persistent object '{_clean(kind)}' (a pickled module, not a state dict)")
        if len(pid) not in (5, 6) or not isinstance(pid[1], _StorageType) or type(pid[4]) is not int \
                or not isinstance(pid[2], (str, int)):
            raise pickle.UnpicklingError("malformed storage reference")
        if len(pid) == 6 and pid[5] is not None:
            raise pickle.UnpicklingError("storage views (PyTorch < 0.4 style) are not supported")
        key = str(pid[2])
        if not _plain_int(pid[4]) or pid[4] * pid[1].dtype.itemsize > MAX_BYTES:
            raise pickle.UnpicklingError(f"storage {_clean(key)} declares {_clean(pid[4])} elements")
        if key not in self.storages:
            self.storages[key] = _Storage(pid[1], key, pid[4])
        return self.storages[key]


def _unpickle(data: bytes | io.BufferedIOBase, storages: dict[str, _Storage], path: Path):
    stream = io.BytesIO(data) if isinstance(data, bytes) else data
    try:
        return _TensorsOnlyUnpickler(stream, storages).load()
    except pickle.UnpicklingError as exc:
        message = str(exc)
        if message.startswith("the pickle names "):
            raise FilterError(f"refused: {message}, which could run code when loaded; blogroto reads only "
                              "state dicts of tensors (torch.save(model.state_dict(), ...)) and nothing was "
                              "executed", path) from exc
        raise FilterError(f"not a readable PyTorch state dict: {message}", path) from exc
    except (EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError, struct.error,
            RecursionError, MemoryError, OverflowError, UnicodeDecodeError) as exc:
        raise FilterError(f"not a readable PyTorch file (corrupt or truncated pickle: {_clean(str(exc), 120)})",
                          path) from exc


def _array(tensor: _Tensor, path: Path, name: str) -> np.ndarray:
    """The tensor's elements, copied out of its storage; everything re-checked here (a view may not
    be larger than its storage: stride-0 broadcasting beyond it is refused)."""
    storage = tensor.storage if isinstance(tensor, _Tensor) else None
    if not isinstance(storage, _Storage) or not isinstance(storage.stype, _StorageType):
        raise FilterError(f"tensor {_clean(name)}: malformed tensor", path)
    flat = storage.array
    if not isinstance(flat, np.ndarray):
        raise FilterError(f"tensor {_clean(name)}: its storage {_clean(storage.key)} is missing from the file", path)
    size, stride, offset = tensor.size, tensor.stride, tensor.offset
    if type(size) is not tuple or type(stride) is not tuple or len(size) != len(stride) or len(size) > 64 \
            or not all(_plain_int(v) for v in (offset, *size, *stride)):
        raise FilterError(f"tensor {_clean(name)}: malformed offset / size / stride", path)
    count = 1
    for n in size:
        count *= n
    item = flat.dtype.itemsize
    if count and offset >= flat.size:
        raise FilterError(f"tensor {_clean(name)} starts beyond its storage ({offset} >= {flat.size} elements)", path)
    if count * item > (flat.size - offset) * item or count * item > MAX_BYTES:
        raise FilterError(f"tensor {_clean(name)} declares {count} elements, more than its storage holds "
                          f"({flat.size - offset} from offset {offset})", path)
    last = offset + (sum((n - 1) * s for n, s in zip(size, stride)) if count else 0)
    if count and last >= flat.size:
        raise FilterError(f"tensor {_clean(name)} reaches beyond its storage ({last} >= {flat.size} elements)", path)
    try:
        if count == 0:
            out = np.zeros(size, flat.dtype)
        else:  # a dimension of 1 element has no step: its stride does not matter
            strides = [s * item if n > 1 else 0 for n, s in zip(size, stride)]
            out = np.lib.stride_tricks.as_strided(flat[offset:], shape=size, strides=strides, writeable=False).copy()
        if storage.stype.name == "BFloat16Storage":
            out = (out.astype(np.uint32) << 16).view(np.float32)
        return out.astype(out.dtype.newbyteorder("=")) if out.dtype.byteorder not in ("=", "|") else out
    except (OverflowError, ValueError, TypeError, MemoryError) as exc:
        raise FilterError(f"tensor {_clean(name)}: unreadable ({_clean(str(exc))})", path) from exc


_SCALARS = (int, float, str, bool, type(None))
_WRAPPERS = ("state_dict", "model_state_dict", "model")


def _to_arrays(obj, path: Path):
    """The state dict with every tensor turned into a numpy array. Only a dict of names -> tensors
    (numbers and strings pass through) is accepted, or one wrapper around it ({'state_dict': {...},
    'epoch': 3, ...}: the rest of the wrapper is dropped unread). A tensor referenced several times
    is converted once, and all the arrays made add up to at most MAX_TOTAL bytes."""
    memo: dict[int, np.ndarray] = {}
    total = 0

    def state(value, where):
        nonlocal total
        out = OrderedDict()
        for key, item in value.items():
            if not isinstance(key, str):
                raise FilterError(f"not a state dict: {where}has a key that is not a name ({type(key).__name__})", path)
            if isinstance(item, _Tensor):
                if id(item) not in memo:
                    array = _array(item, path, key)
                    total += array.nbytes
                    if total > MAX_TOTAL:
                        raise FilterError(f"refused: the tensors add up to more than {MAX_TOTAL} bytes", path)
                    memo[id(item)] = array
                out[key] = memo[id(item)]
            elif isinstance(item, _SCALARS):
                out[key] = item
            else:
                raise FilterError(f"not a state dict of tensors: {where}{_clean(key)} is a {type(item).__name__}", path)
        return out

    if not isinstance(obj, dict):
        raise FilterError(f"holds a {type(obj).__name__}, not a state dict (torch.save(model.state_dict(), ...))", path)
    if not any(isinstance(v, _Tensor) for v in obj.values()):
        for wrapper in _WRAPPERS:
            if isinstance(obj.get(wrapper), dict):
                return OrderedDict([(wrapper, state(obj[wrapper], f"{wrapper}."))])
    return state(obj, "")


def _read_zip(path: Path, archive: zipfile.ZipFile):
    names = [info.filename for info in archive.infolist()]
    pickles = [n for n in names if n == "data.pkl" or (n.endswith("/data.pkl") and n.count("/") == 1)]
    if len(pickles) != 1:
        if any(n.endswith("constants.pkl") or "/code/" in n for n in names):
            raise FilterError("refused: a TorchScript archive (torch.jit.save), not a state dict; save the "
                              "network with torch.save(model.state_dict(), ...)", path)
        raise FilterError("not a PyTorch file: no data.pkl in the zip archive", path)
    prefix = pickles[0][: -len("data.pkl")]
    if prefix + "byteorder" in names:
        order = _read_member(path, archive, archive.getinfo(prefix + "byteorder"), 16).decode("ascii", "replace").strip()
        if order not in ("little", "big"):
            raise FilterError(f"unknown byte order '{_clean(order)}'", path)
    else:
        order = "little"
    storages: dict[str, _Storage] = {}
    obj = _unpickle(_read_member(path, archive, archive.getinfo(pickles[0]), MAX_PICKLE), storages, path)
    members = []
    total = 0
    for key, storage in storages.items():
        member = f"{prefix}data/{key}"
        try:
            member_info = archive.getinfo(member)
        except KeyError:
            raise FilterError(f"storage {_clean(key)} ({_clean(member)}) is missing from the archive", path) from None
        want = storage.numel * storage.stype.dtype.itemsize
        if member_info.file_size != want:
            raise FilterError(f"storage {_clean(key)} holds {member_info.file_size} bytes, its tensors declare {want}", path)
        total += want
        if total > MAX_TOTAL:
            raise FilterError(f"refused: its storages add up to more than {MAX_TOTAL} bytes", path)
        members.append((storage, member_info))
    for storage, member_info in members:  # all sizes checked before anything is read
        dtype = storage.stype.dtype.newbyteorder("<" if order == "little" else ">")
        raw = _read_member(path, archive, member_info, member_info.file_size)
        if len(raw) != member_info.file_size:
            raise FilterError(f"storage {_clean(storage.key)} is truncated", path)
        storage.array = np.frombuffer(raw, dtype=dtype)
    return obj


def _read_member(path: Path, archive: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int) -> bytes:
    """A zip member, refused when it declares or holds more than `limit` bytes (never more read)."""
    if info.file_size > limit:
        raise FilterError(f"refused: {_clean(info.filename)} declares {info.file_size} bytes (at most {limit})", path)
    with archive.open(info) as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise FilterError(f"refused: {_clean(info.filename)} holds more than {limit} bytes", path)
    return data


def _read_legacy(path: Path, data: bytes):
    stream = io.BytesIO(data)
    storages: dict[str, _Storage] = {}
    try:
        magic = _unpickle(stream, storages, path)
        if magic != LEGACY_MAGIC:
            raise FilterError("not a PyTorch file (no torch.save magic number)", path)
        protocol = _unpickle(stream, storages, path)
        if protocol != LEGACY_PROTOCOL:
            raise FilterError(f"unsupported torch.save protocol '{_clean(protocol)}'", path)
        sys_info = _unpickle(stream, storages, path)
        little = not isinstance(sys_info, dict) or sys_info.get("little_endian", True)
        obj = _unpickle(stream, storages, path)
        keys = _unpickle(stream, storages, path)
    except FilterError as exc:
        if exc.message.startswith("not a readable PyTorch file") and stream.tell() <= 16:
            raise FilterError("not a PyTorch file (neither a zip archive nor a torch.save pickle)", path) from exc
        raise
    if not isinstance(keys, list) or any(not isinstance(k, (str, int)) or str(k) not in storages for k in keys):
        raise FilterError("malformed legacy PyTorch file: its storage list does not match its tensors", path)
    if sum(s.numel * s.stype.dtype.itemsize for s in storages.values()) > MAX_TOTAL:
        raise FilterError(f"refused: its storages add up to more than {MAX_TOTAL} bytes", path)
    for key in keys:
        storage = storages[str(key)]
        head = stream.read(8)
        if len(head) != 8:
            raise FilterError(f"truncated file: storage {_clean(key)} is missing", path)
        numel = struct.unpack("<q" if little else ">q", head)[0]
        if numel != storage.numel:
            raise FilterError(f"storage {_clean(key)} holds {numel} elements, its tensors declare {storage.numel}", path)
        nbytes = numel * storage.stype.dtype.itemsize
        raw = stream.read(nbytes)
        if len(raw) != nbytes:
            raise FilterError(f"truncated file: storage {_clean(key)} has {len(raw)} of {nbytes} bytes", path)
        storage.array = np.frombuffer(raw, dtype=storage.stype.dtype.newbyteorder("<" if little else ">"))
    return obj


def load(path: str | Path):
    """The object saved in a torch.save file (normally a state dict), tensors as numpy arrays.

    Raises FilterError naming the file for anything but plain tensors and containers: a pickle
    that names any other Python object is refused before anything in it runs."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise FilterError(f"cannot read: {exc.strerror or exc}", path) from exc
    if size > MAX_BYTES:
        raise FilterError(f"refused: {size} bytes is far more than a style network", path)
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        archive = None  # the legacy layout
    except (zipfile.LargeZipFile, EOFError, ValueError, NotImplementedError, OverflowError, struct.error) as exc:
        raise FilterError(f"corrupt PyTorch zip archive: {_clean(str(exc))}", path) from exc
    except OSError as exc:
        raise FilterError(f"cannot read: {exc}", path) from exc
    try:
        if archive is not None:
            with archive:
                obj = _read_zip(path, archive)
        else:
            data = path.read_bytes()
            if data[:262].find(b"ustar") == 257:
                raise FilterError("a tar-format torch.save file (PyTorch < 0.4): load and save it again with a "
                                  "newer PyTorch first", path)
            obj = _read_legacy(path, data)
        return _to_arrays(obj, path)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, NotImplementedError, RuntimeError, OSError,
            EOFError, ValueError, TypeError, OverflowError, MemoryError, struct.error) as exc:
        # RuntimeError: an encrypted member; NotImplementedError: an unsupported compression
        raise FilterError(f"corrupt or unsupported PyTorch file: {_clean(type(exc).__name__ + ': ' + str(exc), 120)}",
                          path) from exc
