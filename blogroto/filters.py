"""The filter folder format: metadata with credits, weights, artwork and previews.

A filter is a folder `<slug>/` holding `filter.yaml` and the files it names (see
docs/ARCHITECTURE.md). Loading one never executes code from the folder: the metadata is read with
`blogroto.safeyaml` (safe tags only, bounded nesting and alias expansion), weights are a numpy
`.npz` read with `allow_pickle=False`, and folders that carry executable model formats (pickles, Keras archives, SavedModels) are refused outright.

This module does not import TensorFlow: a build that finds everything cached never needs it.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import yaml

from blogroto.errors import ConfigError, FilterError, UnknownFilterError
from blogroto.resources import builtin_dir

FILTER_FILE = "filter.yaml"
# Normalisation variants of the network (blogroto.engine.network explains them); listed here so that
# reading a filter.yaml does not import TensorFlow.
NORMS = ("instance", "centered-decoder", "capped-decoder")
# How the network's layers are wired (blogroto.engine.layouts.ARCH_SPECS explains them): blogroto's own, or
# the layout of a network imported from another tool (`blogroto import`, docs/importing.md).
DEFAULT_ARCH = "blogroto"
ARCHS = (DEFAULT_ARCH, "johnson-tf1", "pytorch-examples")
FORMAT_VERSION = 1
SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")

BUILTIN_STYLES_DIR = Path(os.environ.get("BLOGROTO_STYLES") or builtin_dir("styles"))

# Files that could execute code when loaded by some framework: a filter folder holding one is refused.
CODE_CARRYING_SUFFIXES = {".pkl", ".pickle", ".keras", ".pb", ".py", ".pyc", ".joblib", ".pt", ".pth", ".h5", ".hdf5"}

DEFAULT_FILES = {
    "weights": "weights.npz",
    "artwork": "artwork.jpg",
    "preview": "preview.jpg",
    "example_before": "example-before.jpg",
    "example_after": "example-after.jpg",
    "loss_plot": "loss.png",
    "contact_sheet": "progress.jpg",
}
REQUIRED_FILES = ("weights",)
SOURCE_KEYS = ("title", "creator", "year", "url", "licence", "licence_url", "credit", "description")


@dataclass(frozen=True)
class NetworkSpec:
    width: int = 32
    blocks: int = 5
    norm: str = "instance"  # blogroto.engine.network.NORMS; filters from before it was recorded: "instance"
    arch: str = DEFAULT_ARCH  # ARCHS: blogroto's own network, or an imported one's layout

    def as_dict(self) -> dict:
        out = {"width": self.width, "blocks": self.blocks}
        if self.norm != "instance":  # older fingerprints (cache keys) stay as they were
            out["norm"] = self.norm
        if self.arch != DEFAULT_ARCH:
            out["arch"] = self.arch
        return out


@dataclass(frozen=True)
class Filter:
    slug: str
    folder: Path
    meta: dict = field(repr=False)

    @property
    def display_name(self) -> str:
        return str(self.meta.get("display_name") or self.slug)

    @property
    def description(self) -> str:
        return str(self.meta.get("description") or "")

    @property
    def source(self) -> dict:
        src = self.meta.get("source") or {}
        return {key: src.get(key) for key in SOURCE_KEYS}

    @property
    def training(self) -> dict:
        return dict(self.meta.get("training") or {})

    @property
    def network(self) -> NetworkSpec:
        net = self.meta.get("network") or {}
        return NetworkSpec(width=int(net.get("width", 32)), blocks=int(net.get("blocks", 5)),
                           norm=str(net.get("norm", "instance")), arch=str(net.get("arch", DEFAULT_ARCH)))

    def file(self, key: str) -> Path | None:
        """Path of one of the folder's files ('weights', 'artwork', 'preview', ...) if it exists.

        The one place filter files are resolved: a file that is a symbolic link, or that resolves
        outside the filter folder, raises FilterError naming it. A filter folder is data from
        elsewhere, and its pictures are published byte for byte (the catalog) and its weights
        read: a link to ~/.ssh/id_rsa named artwork.jpg must not put the key on the blog."""
        name = (self.meta.get("files") or {}).get(key, DEFAULT_FILES.get(key))
        if not name:
            return None
        path = self.folder / name
        if path.is_symlink():
            raise FilterError(f"refused: {key} file {name!r} is a symbolic link (filter files must be plain files "
                              "inside the filter folder)", path)
        if not path.is_file():
            return None
        try:
            path.resolve().relative_to(self.folder.resolve())
        except (ValueError, OSError) as exc:
            raise FilterError(f"refused: {key} file {name!r} resolves outside the filter folder", path) from exc
        return path

    @cached_property
    def fingerprint(self) -> str:
        """Hash of everything that changes the pixels this filter produces (weights, architecture)."""
        digest = hashlib.sha256()
        digest.update(json.dumps({"format": FORMAT_VERSION, "network": self.network.as_dict()}, sort_keys=True).encode())
        with open(self.file("weights"), "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        return digest.hexdigest()

    def credit_line(self) -> str:
        """A one-line title–author–source–licence credit, for CLIs and alt texts."""
        src = self.source
        if src.get("credit"):
            return str(src["credit"])
        parts = [f"“{src['title']}”" if src.get("title") else None, src.get("creator"), str(src["year"]) if src.get("year") else None]
        line = ", ".join(p for p in parts if p)
        if src.get("licence"):
            line += f" ({src['licence']})"
        return line


def _validate_meta(meta: object, path: Path, slug: str) -> dict:
    if not isinstance(meta, dict):
        raise FilterError(f"metadata must be a mapping, not {type(meta).__name__}", path)
    fmt = meta.get("format", FORMAT_VERSION)
    if fmt != FORMAT_VERSION:
        raise FilterError(f"unsupported filter format {fmt!r} (this blogroto reads format {FORMAT_VERSION})", path)
    name = meta.get("name", slug)
    if name != slug:
        raise FilterError(f"name {name!r} does not match the folder name {slug!r}", path)
    source = meta.get("source")
    if not isinstance(source, dict) or not source.get("title"):
        raise FilterError("`source` must be a mapping with at least a `title` (every filter credits its artwork)", path)
    for key in ("network", "training", "precision", "files"):
        if key in meta and meta[key] is not None and not isinstance(meta[key], dict):
            raise FilterError(f"`{key}` must be a mapping", path)
    net = meta.get("network") or {}
    for key in ("width", "blocks"):
        value = net.get(key, 1)
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 256:
            raise FilterError(f"network.{key} must be an integer between 1 and 256, got {value!r}", path)
    if net.get("norm", "instance") not in NORMS:
        raise FilterError(f"network.norm must be one of {', '.join(NORMS)}, got {net.get('norm')!r}", path)
    if net.get("arch", DEFAULT_ARCH) not in ARCHS:
        raise FilterError(f"network.arch must be one of {', '.join(ARCHS)}, got {net.get('arch')!r}", path)
    if net.get("arch", DEFAULT_ARCH) != DEFAULT_ARCH and net.get("norm", "instance") != "instance":
        raise FilterError(f"network.norm must be instance for network.arch {net['arch']}, got {net.get('norm')!r}", path)
    files = meta.get("files") or {}
    for key, name in files.items():
        if not isinstance(name, str) or "/" in name or "\\" in name or name.startswith("."):
            raise FilterError(f"files.{key} must be a plain file name inside the filter folder, got {name!r}", path)
    return meta


def read_metadata(meta_path: Path) -> object:
    """The data of a filter.yaml, read with blogroto.safeyaml (safe tags, bounded nesting and
    alias expansion); FilterError naming the file otherwise."""
    from blogroto.safeyaml import load_yaml

    try:
        text = meta_path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise FilterError(f"cannot read metadata: {exc}", meta_path) from exc
    try:
        return load_yaml(text, meta_path)
    except ConfigError as exc:
        message = exc.message.replace("invalid YAML: ", "")
        raise FilterError(f"malformed YAML: {message}", meta_path, exc.line) from exc


def load_filter(folder: str | Path) -> Filter:
    """Read and validate a filter folder; raises FilterError naming the offending file."""
    folder = Path(folder)
    slug = folder.name
    meta_path = folder / FILTER_FILE
    if not SLUG_RE.match(slug):
        raise FilterError("filter folder names must be lower-case letters, digits and dashes", folder)
    if not meta_path.is_file():
        raise FilterError(f"not a filter folder: {FILTER_FILE} is missing", folder)
    for child in folder.iterdir():
        if child.suffix.lower() in CODE_CARRYING_SUFFIXES or child.is_dir() and (child / "saved_model.pb").exists():
            raise FilterError(
                "refused: filter folders hold weights as .npz only; this file could carry executable code", child
            )
    meta = _validate_meta(read_metadata(meta_path), meta_path, slug)
    flt = Filter(slug=slug, folder=folder, meta=meta)
    for key in REQUIRED_FILES:
        if flt.file(key) is None:
            name = (meta.get("files") or {}).get(key, DEFAULT_FILES[key])
            raise FilterError(f"{key} file {name!r} is missing", folder / name)
    return flt


# Where a filter comes from, as `blogroto filters` shows it.
ORIGIN_GIVEN = "--filters-dir"
ORIGIN_SITE = "site"
ORIGIN_USER = "user"
ORIGIN_BUILTIN = "built-in"
FILTERS_HOME_ENV = "BLOGROTO_FILTERS_HOME"


def user_filters_dir() -> Path:
    """The per-user filter library: `$BLOGROTO_FILTERS_HOME` if set, else `filters/` in the
    platform's user data folder (~/.local/share/blogroto/filters on Linux,
    ~/Library/Application Support/blogroto/filters on macOS, %LOCALAPPDATA%\\blogroto\\filters on
    Windows). `blogroto train` writes there when it is not run for a site."""
    env = os.environ.get(FILTERS_HOME_ENV)
    if env:
        return Path(env).expanduser().resolve()
    import platformdirs  # only commands that look filters up pay for the import

    return Path(platformdirs.user_data_dir("blogroto", appauthor=False)) / "filters"


def search_path(extra: Sequence[str | Path] = (), site_dirs: Sequence[str | Path] = (), *,
                include_user: bool = True, include_builtin: bool = True) -> list[tuple[Path, str]]:
    """THE filter search path, every command's: folders given on the command line (--filters-dir),
    then the site's filter folders (`algorotoscope.filters`, default `_filters/`), then the
    per-user library, then the built-ins. Each folder comes with its origin label."""
    entries = [(Path(d), ORIGIN_GIVEN) for d in extra] + [(Path(d), ORIGIN_SITE) for d in site_dirs]
    if include_user:
        entries.append((user_filters_dir(), ORIGIN_USER))
    if include_builtin:
        entries.append((BUILTIN_STYLES_DIR, ORIGIN_BUILTIN))
    seen: set[Path] = set()
    out = []
    for folder, origin in entries:
        key = folder.resolve() if folder.exists() else folder
        if key not in seen:
            seen.add(key)
            out.append((folder, origin))
    return out


class FilterLibrary:
    """Filters resolved by name along the search path (see `search_path`): the first folder that
    has a filter of that name wins."""

    def __init__(self, search_dirs: Sequence[str | Path] = (), include_builtin: bool = True, *,
                 site_dirs: Sequence[str | Path] = (), include_user: bool = True):
        self.entries = search_path(search_dirs, site_dirs, include_user=include_user, include_builtin=include_builtin)
        self.search_dirs = [folder for folder, _ in self.entries]
        self._loaded: dict[str, Filter] = {}

    def _candidates(self) -> Iterable[Path]:
        for base in self.search_dirs:
            if base.is_dir():
                for child in sorted(base.iterdir()):
                    if (child / FILTER_FILE).is_file():
                        yield child

    def names(self) -> list[str]:
        seen: dict[str, None] = {}
        for folder in self._candidates():
            seen.setdefault(folder.name, None)
        return sorted(seen)

    def folder_of(self, name: str) -> tuple[Path, str] | None:
        """(folder, origin) that `name` resolves to, without loading it; None if no folder has it."""
        if not SLUG_RE.match(name):
            return None
        for base, origin in self.entries:
            folder = base / name
            if (folder / FILTER_FILE).is_file():
                return folder, origin
        return None

    def origin(self, name: str) -> str | None:
        """Where filter `name` comes from: 'site', 'user', 'built-in' or '--filters-dir'."""
        found = self.folder_of(name)
        return found[1] if found else None

    def get(self, name: str) -> Filter:
        if name in self._loaded:
            return self._loaded[name]
        found = self.folder_of(name)
        if found is not None:
            flt = load_filter(found[0])
            self._loaded[name] = flt
            return flt
        available = self.names()
        raise UnknownFilterError(name, difflib.get_close_matches(name, available, n=3, cutoff=0.5), available)

    def all(self) -> list[Filter]:
        return [self.get(name) for name in self.names()]


def resolve_filter(name_or_path: str | Path, search_dirs: Sequence[str | Path] = (), *,
                   site_dirs: Sequence[str | Path] = ()) -> Filter:
    """A filter given as a folder path or as a name looked up along the search path."""
    candidate = Path(name_or_path)
    if candidate.is_dir():
        return load_filter(candidate)
    return FilterLibrary(search_dirs, site_dirs=site_dirs).get(str(name_or_path))


def write_metadata(folder: str | Path, meta: dict) -> None:
    """Write filter.yaml atomically, keys in a human-friendly order."""
    from blogroto.fsutil import atomic_write_text

    order = ["format", "name", "display_name", "description", "source", "network", "training", "precision", "files"]
    ordered = {k: meta[k] for k in order if k in meta}
    ordered.update({k: v for k, v in meta.items() if k not in ordered})
    atomic_write_text(Path(folder) / FILTER_FILE, yaml.safe_dump(ordered, sort_keys=False, allow_unicode=True, width=100))
