"""Read the tensors of a PyTorch `torch.save` file without PyTorch and without running its pickle.

A `.pth` is a pickle, and unpickling runs whatever the pickle names: `torch.load` of a hostile
file can call `os.system`. This reader uses a restricted unpickler (like blogroto.vgg's
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
from collections import OrderedDict
from pathlib import Path

import numpy as np

from blogroto.errors import FilterError

MAX_BYTES = 1 << 30  # refuse files (and storages) larger than this: a style network is ~7 MB
LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001

# storage type names torch pickles -> numpy dtype (bfloat16: read as its upper 16 bits)
STORAGE_DTYPES = {
    "FloatStorage": np.dtype("<f4"), "DoubleStorage": np.dtype("<f8"), "HalfStorage": np.dtype("<f2"),
    "BFloat16Storage": np.dtype("<u2"), "LongStorage": np.dtype("<i8"), "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"), "CharStorage": np.dtype("i1"), "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
}


class _StorageType:
    """Stands for torch.<Name>Storage in a pickle: only its dtype is used."""

    def __init__(self, name: str):
        self.name = name
        self.dtype = STORAGE_DTYPES[name]


class _Storage:
    """A storage named by the pickle; its bytes are read from the file afterwards (legacy layout)
    or on demand (zip layout)."""

    def __init__(self, stype: _StorageType, key: str, numel: int):
        self.stype, self.key, self.numel = stype, key, int(numel)
        self.array: np.ndarray | None = None


class _Tensor:
    """A tensor rebuilt from the pickle: its storage, offset, size and stride (elements)."""

    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, int(offset), tuple(size), tuple(stride)


def _rebuild_tensor(storage, storage_offset, size, stride, *rest):
    # torch._utils._rebuild_tensor(storage, offset, size, stride) and _rebuild_tensor_v2(...,
    # requires_grad, backward_hooks[, metadata]): requires_grad, hooks and metadata do not matter
    if not isinstance(storage, _Storage):
        raise pickle.UnpicklingError("a tensor without a storage")
    return _Tensor(storage, storage_offset, size, stride)


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
        if (module, name) in self.CALLABLES:
            return self.CALLABLES[(module, name)]
        if module in ("torch", "torch.storage") and name in STORAGE_DTYPES:
            return _StorageType(name)
        raise pickle.UnpicklingError(f"the pickle names {module}.{name}")

    def persistent_load(self, pid):
        # zip: ('storage', type, key, location, numel); legacy: (..., numel, view_metadata)
        if not isinstance(pid, tuple) or not pid or pid[0] != "storage":
            kind = pid[0] if isinstance(pid, tuple) and pid else type(pid).__name__
            raise pickle.UnpicklingError(f"unexpected persistent object {kind!r} (a pickled module, not a state dict)")
        if len(pid) not in (5, 6) or not isinstance(pid[1], _StorageType) or not isinstance(pid[4], int):
            raise pickle.UnpicklingError(f"malformed storage reference {pid!r}")
        if len(pid) == 6 and pid[5] is not None:
            raise pickle.UnpicklingError("storage views (PyTorch < 0.4 style) are not supported")
        key = str(pid[2])
        if pid[4] < 0 or pid[4] * pid[1].dtype.itemsize > MAX_BYTES:
            raise pickle.UnpicklingError(f"storage {key} declares {pid[4]} elements")
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
            RecursionError, MemoryError) as exc:
        raise FilterError(f"not a readable PyTorch file (corrupt or truncated pickle: {exc})", path) from exc


def _array(tensor: _Tensor, path: Path, name: str) -> np.ndarray:
    storage = tensor.storage
    flat = storage.array
    if flat is None:
        raise FilterError(f"tensor {name}: its storage {storage.key} is missing from the file", path)
    size, stride, offset = tensor.size, tensor.stride, tensor.offset
    if len(size) != len(stride) or any(not isinstance(v, int) or v < 0 for v in size + stride) or offset < 0:
        raise FilterError(f"tensor {name}: malformed size {size} / stride {stride}", path)
    count = int(np.prod(size, dtype=np.int64)) if size else 1
    last = offset + (sum((n - 1) * s for n, s in zip(size, stride)) if count else 0)
    if count and last >= flat.size:
        raise FilterError(f"tensor {name} reaches beyond its storage ({last} >= {flat.size} elements)", path)
    if count == 0:
        out = np.zeros(size, flat.dtype)
    else:
        item = flat.dtype.itemsize
        out = np.lib.stride_tricks.as_strided(flat[offset:], shape=size, strides=[s * item for s in stride],
                                              writeable=False).copy()
    if storage.stype.name == "BFloat16Storage":
        out = (out.astype(np.uint32) << 16).view(np.float32)
    return out.astype(out.dtype.newbyteorder("=")) if out.dtype.byteorder not in ("=", "|") else out


def _to_arrays(obj, path: Path):
    """The unpickled object with every tensor turned into a numpy array (dicts and lists walked)."""
    def convert(value, name):
        if isinstance(value, _Tensor):
            return _array(value, path, name)
        if isinstance(value, dict):
            return OrderedDict((k, convert(v, f"{name}.{k}" if name else str(k))) for k, v in value.items())
        if isinstance(value, (list, tuple)):
            return type(value)(convert(v, f"{name}[{i}]") for i, v in enumerate(value))
        return value

    return convert(obj, "")


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
        order = archive.read(prefix + "byteorder").decode("ascii", "replace").strip()
        if order not in ("little", "big"):
            raise FilterError(f"unknown byte order {order!r}", path)
    else:
        order = "little"
    storages: dict[str, _Storage] = {}
    info = archive.getinfo(pickles[0])
    if info.file_size > MAX_BYTES:
        raise FilterError(f"refused: data.pkl declares {info.file_size} bytes", path)
    obj = _unpickle(archive.read(info), storages, path)
    for key, storage in storages.items():
        member = f"{prefix}data/{key}"
        try:
            member_info = archive.getinfo(member)
        except KeyError:
            raise FilterError(f"storage {key} ({member}) is missing from the archive", path) from None
        want = storage.numel * storage.stype.dtype.itemsize
        if member_info.file_size != want:
            raise FilterError(f"storage {key} holds {member_info.file_size} bytes, its tensors declare {want}", path)
        dtype = storage.stype.dtype.newbyteorder("<" if order == "little" else ">")
        storage.array = np.frombuffer(archive.read(member_info), dtype=dtype)
    return obj


def _read_legacy(path: Path, data: bytes):
    stream = io.BytesIO(data)
    storages: dict[str, _Storage] = {}
    try:
        magic = _unpickle(stream, storages, path)
        if magic != LEGACY_MAGIC:
            raise FilterError("not a PyTorch file (no torch.save magic number)", path)
        protocol = _unpickle(stream, storages, path)
        if protocol != LEGACY_PROTOCOL:
            raise FilterError(f"unsupported torch.save protocol {protocol!r}", path)
        sys_info = _unpickle(stream, storages, path)
        little = not isinstance(sys_info, dict) or sys_info.get("little_endian", True)
        obj = _unpickle(stream, storages, path)
        keys = _unpickle(stream, storages, path)
    except FilterError as exc:
        if exc.message.startswith("not a readable PyTorch file") and stream.tell() <= 16:
            raise FilterError("not a PyTorch file (neither a zip archive nor a torch.save pickle)", path) from exc
        raise
    if not isinstance(keys, list) or any(str(k) not in storages for k in keys):
        raise FilterError("malformed legacy PyTorch file: its storage list does not match its tensors", path)
    for key in keys:
        storage = storages[str(key)]
        head = stream.read(8)
        if len(head) != 8:
            raise FilterError(f"truncated file: storage {key} is missing", path)
        numel = struct.unpack("<q" if little else ">q", head)[0]
        if numel != storage.numel:
            raise FilterError(f"storage {key} holds {numel} elements, its tensors declare {storage.numel}", path)
        nbytes = numel * storage.stype.dtype.itemsize
        raw = stream.read(nbytes)
        if len(raw) != nbytes:
            raise FilterError(f"truncated file: storage {key} has {len(raw)} of {nbytes} bytes", path)
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
        archive = None
    except OSError as exc:
        raise FilterError(f"cannot read: {exc}", path) from exc
    if archive is not None:
        with archive:
            try:
                obj = _read_zip(path, archive)
            except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
                raise FilterError(f"corrupt PyTorch zip archive: {exc}", path) from exc
    else:
        data = path.read_bytes()
        if data[:262].find(b"ustar") == 257:
            raise FilterError("a tar-format torch.save file (PyTorch < 0.4): load and save it again with a "
                              "newer PyTorch first", path)
        obj = _read_legacy(path, data)
    try:
        return _to_arrays(obj, path)
    except RecursionError as exc:
        raise FilterError("not a state dict: nested too deeply", path) from exc
