"""A filter's weights file: an uncompressed .npz of float arrays keyed by layer name, read without
pickles and checked from each member's .npy header before anything is decompressed (a filter folder
is untrusted). Numpy only: no Keras needed to vet a file."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from blogroto.errors import FilterError


def read_weights(path: str | Path, expected: dict[str, tuple[int, ...]] | None = None) -> dict[str, np.ndarray]:
    """Read an .npz of float arrays. Pickled objects are refused (allow_pickle=False).

    Before any array is decompressed, each member's `.npy` header (its declared dtype and shape)
    is checked, against `expected` when given: a 1 MB file whose members inflate to 1 GiB is
    refused from its headers, not after allocating them."""
    path = Path(path)
    check_weight_headers(path, expected)
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except FileNotFoundError as exc:
        raise FilterError("weights file is missing", path) from exc
    except ValueError as exc:  # raised for object arrays: would need pickle
        raise FilterError(f"weights file refused (contains pickled objects or is malformed): {exc}", path) from exc
    except Exception as exc:  # zip errors, truncated files, bad headers
        raise FilterError(f"weights file is corrupt or truncated: {exc}", path) from exc
    for key, value in arrays.items():
        if not isinstance(value, np.ndarray):  # a zip member that is not an .npy array (e.g. a .keras archive)
            raise FilterError(f"weights file refused: {key!r} is not a numpy array", path)
        if value.dtype.kind != "f":
            raise FilterError(f"weight {key} has dtype {value.dtype}, expected floating point", path)
    return arrays


MAX_WEIGHT_BYTES = 1 << 30  # declared size of all arrays together, when no shapes are expected


def check_weight_headers(path: Path, expected: dict[str, tuple[int, ...]] | None = None) -> None:
    """Check every member of an .npz from its `.npy` header alone (numpy.lib.format), nothing
    decompressed but the header: a float dtype, the expected shape (or, without `expected`, a
    total under MAX_WEIGHT_BYTES), and a member whose stored size matches what it declares."""
    import zipfile

    from numpy.lib import format as npy

    try:
        archive = zipfile.ZipFile(path)
    except FileNotFoundError as exc:
        raise FilterError("weights file is missing", path) from exc
    except zipfile.BadZipFile:
        return  # not an archive (a pickle, a bare .npy, garbage): np.load refuses it with its own words
    except (OSError, ValueError) as exc:
        raise FilterError(f"weights file is corrupt or truncated: {exc}", path) from exc
    shapes: dict[str, tuple[int, ...]] = {}
    total = 0
    with archive:
        for info in archive.infolist():
            key = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
            try:
                with archive.open(info) as member:
                    version = npy.read_magic(member)
                    if version == (1, 0):
                        shape, fortran, dtype = npy.read_array_header_1_0(member)
                    elif version in ((2, 0), (3, 0)):
                        shape, fortran, dtype = npy.read_array_header_2_0(member)
                    else:
                        raise ValueError(f"unsupported .npy version {version}")
                    header_len = member.tell() if hasattr(member, "tell") else None
            except Exception as exc:  # not an .npy member, a broken header, a bad zip entry
                raise FilterError(f"weights file refused: {key!r} is not a numpy array ({exc})", path) from exc
            if dtype.hasobject:
                raise FilterError(f"weights file refused (contains pickled objects): {key!r}", path)
            if dtype.kind != "f":
                raise FilterError(f"weight {key} has dtype {dtype}, expected floating point", path)
            size = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize if shape else dtype.itemsize
            if header_len is not None and info.file_size != header_len + size:
                raise FilterError(f"weights file refused: {key!r} declares {size} bytes but holds "
                                  f"{info.file_size - header_len}", path)
            shapes[key] = tuple(shape)
            total += size
    if expected is not None:
        if shapes != expected:
            raise FilterError(f"weights do not match the network: {shape_mismatch(shapes, expected)}", path)
    elif total > MAX_WEIGHT_BYTES:
        raise FilterError(f"weights file refused: its arrays declare {total} bytes", path)


def shape_mismatch(shapes: dict[str, tuple[int, ...]], expected: dict[str, tuple[int, ...]]) -> str:
    """The first few weights whose shape differs from what the network expects, in words."""
    bad = sorted(k for k in set(expected) | set(shapes) if expected.get(k) != shapes.get(k))
    return (", ".join(f"{k} is {shapes.get(k)}, expected {expected.get(k)}" for k in bad[:3])
            + ("…" if len(bad) > 3 else ""))
