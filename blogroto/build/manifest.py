"""The build manifest: what the last build read and wrote, validated on load (it lives in the cache,
which is untrusted: a tampered manifest may cost a rebuild, never a write outside the output)."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from blogroto.build.plan import EXT_RE, HEX_RE, IMAGE_NAME_RE
from blogroto.errors import (
    BlogrotoError,
)
from blogroto.owned_tree import OwnedTree, is_safe_rel

MANIFEST_FORMAT = 2  # 2: symlinks are published as what they point to; manifests are validated on load
MANIFEST_DIR = "builds"


def source_owns(manifest: dict, out_rel: str) -> bool:
    """Whether `out_rel` is a copy of a source file (an author's own file under assets/algorotoscope/)."""
    return out_rel in manifest.get("files", {})


def load_manifest(path: Path, warn: Callable[[str], None] | None = None) -> dict:
    """A build manifest from the cache folder, validated: the cache is untrusted input (CI restores
    it), so every path in it must be a plain relative path inside the output, every key and
    signature well formed. Anything else is dropped with one warning, never acted on."""
    try:
        tree = OwnedTree(path.parent.parent, "cache")
        raw = tree.read_record(tree.rel_of(path))
    except FileNotFoundError:
        return {}
    except (OSError, BlogrotoError) as exc:
        if warn is not None and not isinstance(exc, FileNotFoundError):
            warn(f"{path}: cannot read the build manifest ({getattr(exc, 'strerror', None) or exc}); ignored")
        return {}
    try:
        data = json.loads(raw)
    except ValueError:
        if warn is not None:
            warn(f"{path}: the build manifest is not valid JSON; ignored")
        return {}
    if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT:
        return {}
    dropped: list[str] = []
    clean = clean_manifest(data, dropped)
    if dropped and warn is not None:
        shown = ", ".join(repr(d) for d in dropped[:3]) + (f" and {len(dropped) - 3} more" if len(dropped) > 3 else "")
        warn(f"{path}: ignored {len(dropped)} build manifest entries that name paths outside the output or are "
             f"malformed: {shown}")
    return clean


def is_sig(value, n: int = 3) -> bool:
    return isinstance(value, list) and len(value) == n and all(type(v) is int for v in value)


def clean_manifest(data: dict, dropped: list[str]) -> dict:
    out: dict[str, Any] = {"format": MANIFEST_FORMAT}
    for key in ("global", "out"):
        if isinstance(data.get(key), str):
            out[key] = data[key]
    images = {}
    raw_images = data.get("images") if isinstance(data.get("images"), dict) else {}
    for name, value in raw_images.items():
        if (isinstance(name, str) and IMAGE_NAME_RE.fullmatch(name) and isinstance(value, list) and len(value) == 2
                and isinstance(value[0], str) and HEX_RE.fullmatch(value[0])
                and isinstance(value[1], str) and EXT_RE.fullmatch(value[1])):
            images[name] = value
        else:
            dropped.append(f"images/{name}")
    out["images"] = images
    sigs = data.get("image_sigs") if isinstance(data.get("image_sigs"), dict) else {}
    out["image_sigs"] = {k: v for k, v in sigs.items() if k in images and (v is None or is_sig(v))}
    files = {}
    raw_files = data.get("files") if isinstance(data.get("files"), dict) else {}
    for rel, entry in raw_files.items():
        if not (is_safe_rel(rel) and isinstance(entry, dict) and is_sig(entry.get("st"))
                and entry.get("k") in ("static", "doc", "failed")
                and isinstance(entry.get("out", {}), dict)
                and all(is_safe_rel(o) and (v is None or is_sig(v)) for o, v in entry.get("out", {}).items())
                and isinstance(entry.get("imgs", []), list) and all(i in images for i in entry.get("imgs", []))
                and isinstance(entry.get("deps", {}), dict)
                and all(is_safe_rel(d) and is_sig(v, 2) for d, v in entry.get("deps", {}).items())
                and isinstance(entry.get("remote", []), list) and all(isinstance(u, str) for u in entry.get("remote", []))
                and (entry.get("flt") is None or isinstance(entry.get("flt"), str))
                and (entry.get("recheck") is None or (type(entry.get("recheck")) in (int, float)
                                                      and not math.isnan(entry["recheck"])))
                and isinstance(entry.get("rwarn", []), list) and all(isinstance(w, str) for w in entry.get("rwarn", []))
                and (entry.get("kind") is None or isinstance(entry.get("kind"), str))):
            dropped.append(str(rel))
            continue
        files[rel] = entry
    out["files"] = files
    filters = data.get("filters")
    out["filters"] = filters if isinstance(filters, dict) else {}
    catalog = data.get("catalog")
    if isinstance(catalog, dict):
        cfiles = catalog.get("files")
        if cfiles is not None and not (isinstance(cfiles, dict) and all(is_safe_rel(r) for r in cfiles)):
            dropped.append("catalog/files")
            catalog = {}
        out["catalog"] = catalog
    else:
        out["catalog"] = {}
    return out


def stat_sig(st: os.stat_result) -> list[int]:
    return [st.st_size, st.st_mtime_ns, st.st_ino]


def stat_or_none(path: str | Path) -> os.stat_result | None:
    try:
        return os.stat(path, follow_symlinks=False)
    except OSError:
        return None
