"""The Jekyll site model: `_config.yml`, collections, which files are posts, drafts, collection
documents, pages or static files, how `defaults:` scopes apply, and how a URL path written in a
post maps back to a file in the site.

This package only *reads* the author's site. Nothing here imports TensorFlow, PIL or Jinja2: a
no-op build goes through it on every run."""

from __future__ import annotations

import fnmatch
import os
import re
import stat as stat_mod
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from blogroto.errors import ConfigError
from blogroto.safeyaml import compose_checked
from blogroto.site.config import (
    CONFIG_NAMES,
    DEFAULT_CACHE,
    DEFAULT_OUTPUT,
    FRONT_MATTER_KEY,
    Settings,
    parse_settings,
)
from blogroto.site.documents import mapping_key_lines
from blogroto.site.output_folders import check_output_locations

# Never part of the output tree: version control, Jekyll's own caches and metadata. Everything
# else is copied so that the output builds exactly like the source.
NEVER_COPIED = frozenset({".git", ".hg", ".svn", ".jekyll-cache", ".sass-cache", ".jekyll-metadata"})

# Files that cannot start with YAML front matter; skipping the 3-byte read keeps a cold scan of a
# big image-heavy site cheap.
BINARY_SUFFIXES = frozenset(
    ".jpg .jpeg .png .gif .webp .avif .heic .tif .tiff .bmp .ico .psd .pdf .zip .gz .tgz .bz2 .xz"
    " .woff .woff2 .ttf .otf .eot .mp3 .mp4 .m4a .mov .webm .ogg .wav .npz .npy .bin .exe".split()
)

_POST_NAME_RE = re.compile(r"^\d{2,4}-\d{1,2}-\d{1,2}-.+\.[^.]+$")

_UNSET = object()


class SourceFile:
    """One file of the source tree as found by `Site.walk`: one stat, nothing read.

    The path object and the document kind are computed on first use: a no-op build looks at
    thousands of these and needs neither (plain strings keep the walk cheap).
    """

    __slots__ = ("rel", "_path", "st", "_kind", "is_link", "_site", "_drafts", "recorded")

    def __init__(self, rel: str, path: str | Path, st: os.stat_result | None, kind=_UNSET, is_link: bool = False,
                 *, site: Site | None = None, drafts: bool = False, recorded: list[int] | None = None):
        self.rel = rel
        self._path = path
        self.st = st
        self._kind = kind
        self.is_link = is_link
        self._site = site
        self._drafts = drafts
        self.recorded = recorded  # the stat signature from a build manifest, when not stat'ed now

    @property
    def path(self) -> Path:
        if not isinstance(self._path, Path):
            self._path = Path(self._path)
        return self._path

    @property
    def kind(self) -> str | None:
        """The document kind if the file may be a document ("posts", "pages", ...), else None."""
        if self._kind is _UNSET:
            self._kind = None if self.is_link or self._site is None else self._site.document_kind(self.rel, self._drafts)
        return self._kind

    @property
    def sig(self) -> list[int]:
        if self.recorded is not None:
            return self.recorded
        return [self.st.st_size, self.st.st_mtime_ns, self.st.st_ino]

    def __repr__(self) -> str:
        return f"SourceFile({self.rel!r})"


@dataclass
class Collection:
    label: str
    folder: str  # posix path relative to the site root, e.g. "_projects" or "coll/_projects"
    output: bool
    meta: dict = field(default_factory=dict)


class Site:
    """A Jekyll site on disk (read-only)."""

    def __init__(self, root: str | Path, *, output: str | Path | None = None, cache: str | Path | None = None):
        self.root = Path(root).resolve()
        if not self.root.is_dir():
            raise ConfigError("not a folder", root)
        self.warnings: list[str] = []
        self.config_path: Path | None = None
        self.config: dict = {}
        self._config_lines: dict[str, int] = {}
        self._section_lines: dict[str, int] = {}
        self._load_config()
        cfg = self.config
        self.baseurl = normalize_baseurl(cfg.get("baseurl"), self.config_path, self._config_lines.get("baseurl"))
        self.exclude = [str(x).strip("/") for x in _as_list(cfg.get("exclude"))]
        self.include = [str(x).strip("/") for x in _as_list(cfg.get("include"))]
        self.destination = (self.root / str(cfg.get("destination") or "_site")).resolve()
        self.collections_dir = str(cfg.get("collections_dir") or "").strip("/")
        self.collections = self._load_collections()
        self.render_with_liquid_default = True
        self.settings = parse_settings(cfg.get(FRONT_MATTER_KEY), self.root, self.config_path,
                                       lambda k: self._section_lines.get(k, self._config_lines.get(FRONT_MATTER_KEY)),
                                       self.warnings)
        if output is not None:
            self.settings = _replace(self.settings, output=Path(output).expanduser().resolve())
        if cache is not None:
            self.settings = _replace(self.settings, cache=Path(cache).expanduser().resolve())
        self._defaults = self._load_defaults()
        self._skip_strs: tuple[str, ...] | None = None
        check_output_locations(self)

    # -- configuration ----------------------------------------------------------------------

    def _load_config(self) -> None:
        for name in CONFIG_NAMES:
            path = self.root / name
            if path.is_file():
                self.config_path = path
                break
        else:
            return  # Jekyll builds a site without a config file; so do we
        try:
            text = self.config_path.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read: {exc}", self.config_path) from exc
        if self.config_path.suffix == ".toml":
            import tomllib

            try:
                data = tomllib.loads(text)
            except tomllib.TOMLDecodeError as exc:
                raise ConfigError(f"invalid TOML: {exc}", self.config_path) from exc
        else:
            data, node = compose_checked(text, self.config_path, 1) if text.strip() else ({}, None)
            self._config_lines = mapping_key_lines(node, 1)
            if isinstance(node, yaml.MappingNode):
                for k, v in node.value:
                    if getattr(k, "value", None) == FRONT_MATTER_KEY:
                        self._section_lines = mapping_key_lines(v, 1)
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ConfigError("the site configuration must be a YAML mapping", self.config_path, 1)
        self.config = data

    def _load_collections(self) -> dict[str, Collection]:
        raw = self.config.get("collections") or {}
        if isinstance(raw, list):  # Jekyll accepts a bare list of labels
            raw = {str(label): {} for label in raw}
        if not isinstance(raw, dict):
            raise ConfigError("'collections' must be a mapping or a list", self.config_path,
                              self._config_lines.get("collections"))
        prefix = self.collections_dir + "/" if self.collections_dir else ""
        out = {}
        for label, meta in raw.items():
            meta = meta if isinstance(meta, dict) else {}
            label = str(label)
            if label in ("posts", "drafts"):
                continue  # built in; handled by path
            out[label] = Collection(label, f"{prefix}_{label}", bool(meta.get("output", False)), meta)
        return out

    def _load_defaults(self) -> list[tuple[str, str | None, dict]]:
        out = []
        for entry in _as_list(self.config.get("defaults")):
            if not isinstance(entry, dict) or not isinstance(entry.get("values"), dict):
                continue
            scope = entry.get("scope") or {}
            if not isinstance(scope, dict):
                continue
            path = str(scope.get("path") or "").strip("/")
            out.append((path, scope.get("type"), entry["values"]))
        # Jekyll applies less specific scopes first so that more specific ones win.
        out.sort(key=lambda s: (len([p for p in s[0].split("/") if p]), s[1] is not None))
        return out

    def hidden_from_jekyll(self, rel: str) -> bool:
        """Whether Jekyll's reader skips `rel` (a '_'/'.'-prefixed component or an excluded path)."""
        parts = rel.split("/")
        for i, part in enumerate(parts):
            prefix = "/".join(parts[: i + 1])
            if prefix in self.include or part in self.include:
                continue
            if part.startswith(("_", ".", "#")) or part.endswith("~"):
                return True
            if self._excluded(prefix):
                return True
        return False

    def _excluded(self, rel: str) -> bool:
        return any(rel == e or rel.startswith(e + "/") or fnmatch.fnmatchcase(rel, e) for e in self.exclude if e)

    # -- front matter defaults --------------------------------------------------------------

    def defaults_for(self, rel: str, kind: str) -> dict:
        """Jekyll `defaults:` values that apply to document `rel` of type `kind`."""
        merged: dict = {}
        types = {kind, "posts"} if kind == "drafts" else {kind}
        for path, typ, values in self._defaults:
            if typ is not None and str(typ) not in types:
                continue
            if path and not (rel == path or rel.startswith(path + "/")
                             or ("*" in path and any(fnmatch.fnmatchcase(p, path) for p in _prefixes(rel)))):
                continue
            merged = _deep_merge(merged, values)
        return merged

    def has_defaults_for(self, key: str) -> bool:
        return any(key in values for _, _, values in self._defaults)

    # -- walking ----------------------------------------------------------------------------

    def skipped_dirs(self) -> set[Path]:
        """Absolute folders never walked or copied: the output, the cache, `_site`, and the default
        output and cache folders (`_blogroto/`, `.blogroto-cache/`) even when `--out`/`--cache` point
        elsewhere: they hold an earlier build, which must not be copied into the new output."""
        s = self.settings
        default_out = self.root / DEFAULT_OUTPUT.split("/")[0]
        return {s.output, s.cache, self.destination, default_out, self.root / DEFAULT_CACHE}

    def walk(self, include_drafts: bool = False) -> Iterator[SourceFile]:
        """Every file of the source tree that belongs in the output, with its stat and kind.

        Symlinks follow Jekyll's rule: one that resolves inside the site is published as what it
        points to (a file's bytes, a folder's files: the output holds no symlinks at all); one that
        points outside the site (or into the output, the cache, `_site`, `.git`), dangles or loops
        is not published, with a warning.
        """
        skip = {str(p) for p in self.skipped_dirs()}
        root = str(self.root)
        stack = [(root, "", (root,))]
        while stack:
            folder, rel_folder, chain = stack.pop()
            try:
                entries = list(os.scandir(folder))
            except OSError as exc:
                self.warnings.append(f"{folder}: cannot list folder: {exc.strerror}")
                continue
            for entry in entries:
                name = entry.name
                if name in NEVER_COPIED or name.startswith(".blogroto-tmp-"):
                    continue
                rel = f"{rel_folder}/{name}" if rel_folder else name
                try:
                    if entry.is_symlink():
                        real = self.link_target(entry.path)
                        if real is None:
                            self.warnings.append(f"{entry.path}: not published: a symlink to "
                                                 f"{os.readlink(entry.path)}, which is outside the site, missing "
                                                 f"or a loop (Jekyll skips it too)")
                            continue
                        st = os.stat(real)
                        if stat_mod.S_ISDIR(st.st_mode):
                            if any(c == real or c.startswith(real + os.sep) for c in chain):
                                self.warnings.append(f"{entry.path}: not published: a symlink to a folder "
                                                     f"that contains it (a loop)")
                                continue
                            stack.append((entry.path, rel, (*chain, real)))
                            continue
                    elif entry.is_dir(follow_symlinks=False):
                        if entry.path not in skip:
                            stack.append((entry.path, rel, (*chain, os.path.join(chain[-1], name))))
                        continue
                    else:
                        st = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                if stat_mod.S_ISREG(st.st_mode):
                    yield SourceFile(rel, entry.path, st, site=self, drafts=include_drafts)

    def link_target(self, path: str | Path) -> str | None:
        """Where a symlink in the site resolves, when Jekyll would publish it: inside the site,
        not in a folder never copied (output, cache, `_site`, `.git`, ...) and existing; else None."""
        real = os.path.realpath(path)
        root = str(self.root)
        if not real.startswith(root + os.sep):
            return None
        if self._skip_strs is None:
            self._skip_strs = tuple(str(d) for d in self.skipped_dirs())
        if any(real == d or real.startswith(d + os.sep) for d in self._skip_strs):
            return None
        if any(part in NEVER_COPIED for part in real[len(root) + 1:].split(os.sep)):
            return None
        try:
            os.stat(real)
        except OSError:
            return None
        return real

    def document_kind(self, rel: str, include_drafts: bool = False) -> str | None:
        """The kind of document `rel` would be if it has front matter; None if Jekyll never renders it."""
        if os.path.splitext(rel)[1].lower() in BINARY_SUFFIXES:
            return None
        parts = rel.split("/")
        cdir = self.collections_dir.split("/") if self.collections_dir else []
        inner = parts[len(cdir):] if parts[: len(cdir)] == cdir else None
        if inner is not None and len(inner) >= 2:
            top = inner[0]
            if top == "_drafts":
                return "drafts" if include_drafts else None
            if top.startswith("_") and top[1:] in self.collections:
                return top[1:]
        # posts: _posts/ at the top or in any ordinary folder (category/_posts/...)
        if "_posts" in parts[:-1]:
            i = parts.index("_posts")
            if i == 0 or not self.hidden_from_jekyll("/".join(parts[:i])):
                return "posts" if _POST_NAME_RE.match(parts[-1]) else None
            return None
        if self.hidden_from_jekyll(rel):
            return None
        return "pages"

    # -- references -------------------------------------------------------------------------

    def resolve_local(self, ref: str, doc_folder: str, *, decoded: bool = False) -> tuple[str | None, str]:
        """Map a URL path written in a document to a site file.

        Returns (site-relative posix path or None, reason). Paths starting with '/' are site-root
        paths (the baseurl is stripped when the path starts with it); other paths are tried
        relative to the document's folder, then to the site root. A path that escapes the site
        (`..`, an absolute filesystem path, a symlink that resolves outside) gives None and the
        reason "outside"; a missing file gives None and "missing".
        """
        path = ref if decoded else urllib.parse.unquote(ref.split("#", 1)[0].split("?", 1)[0])
        if not path or "\x00" in path or "\\" in path:
            return None, "outside" if "\\" in path else "missing"
        candidates = []
        if path.startswith("/"):
            if self.baseurl and (path == self.baseurl or path.startswith(self.baseurl + "/")):
                candidates.append(path[len(self.baseurl):].lstrip("/"))
            candidates.append(path.lstrip("/"))
        else:
            if doc_folder:
                candidates.append(f"{doc_folder}/{path}")
            candidates.append(path)
        reason = "missing"
        root = str(self.root)
        if self._skip_strs is None:
            self._skip_strs = tuple(str(d) for d in self.skipped_dirs())
        for cand in candidates:
            norm = os.path.normpath(cand)
            if norm == ".." or norm.startswith("../") or os.path.isabs(norm):
                reason = "outside"
                continue
            full = os.path.join(root, norm)
            if not os.path.isfile(full):
                continue
            # Strings, not Paths: this runs for every image of every changed post.
            real = os.path.realpath(full)
            if not real.startswith(root + os.sep) or any(real == d or real.startswith(d + os.sep)
                                                         for d in self._skip_strs):
                reason = "outside"
                continue
            return real[len(root) + 1:].replace(os.sep, "/"), "ok"
        if reason == "missing" and path.startswith("/") and os.path.isfile(path):
            reason = "outside"  # an absolute filesystem path: never read files outside the site
        return None, reason


def normalize_baseurl(value, path=None, line=None) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ConfigError(f"'baseurl' must be a string, not {value!r}", path, line)
    value = value.strip().rstrip("/")
    if value and not value.startswith("/"):
        value = "/" + value
    return value


def _replace(settings: Settings, **changes) -> Settings:
    from dataclasses import replace

    return replace(settings, **changes)


def _as_list(value) -> list:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _prefixes(rel: str) -> list[str]:
    parts = rel.split("/")
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


def _deep_merge(a: dict, b: dict) -> dict:
    out = dict(a)
    for k, v in b.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out
