"""Content-addressed build cache: a stat index (so unchanged files are not re-hashed) and an
output store keyed by the hash of everything that affects an output's bytes.

Layout of the cache folder (default `SITE/.blogroto-cache/`, chosen by the caller; CI may persist
it between runs):

    stat-index.json        StatIndex: path -> [size, mtime_ns, inode, ctime_ns, sha256]
    stat-index.lock        flock taken while merging and saving the index
    objects/ab/abcdef...   OutputCache entries, named by key, one fan-out level

Every entry is written atomically (`blogroto.fsutil`), so a reader sees a complete entry or none,
and the temporary files of a killed writer (`.blogroto-tmp-*`) are never taken for entries.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

from blogroto.errors import BlogrotoError
from blogroto.fsutil import TMP_PREFIX, atomic_write_bytes, atomic_writer, file_lock

log = logging.getLogger(__name__)

INDEX_NAME = "stat-index.json"
INDEX_LOCK_NAME = "stat-index.lock"
INDEX_FORMAT = 1
OBJECTS_DIR = "objects"

# A file whose mtime/ctime is this close to the moment it was hashed may be changed again within
# the same timestamp tick (Linux stamps files from a coarse clock; FAT has 2 s granularity) without
# its stat changing, so its hash is not trusted: the same "racy" rule git uses for its index.
# Network file systems whose clock lags ours by more than this defeat the rule (residual risk).
RACY_WINDOW_NS = 2_000_000_000

# Temporary files of writers killed mid-write are removed by gc once older than this; a younger one
# may belong to a writer that is still running.
STALE_TMP_SECONDS = 3600

_KEY_RE = re.compile(r"[0-9a-f]{8,128}")
_EXT_RE = re.compile(r"[A-Za-z0-9]{1,10}")

# Indirections so tests can count stats and hashes and move the clock.
_stat = os.stat
_now_ns = time.time_ns


class CacheError(BlogrotoError):
    """A cache file or a file being hashed cannot be read or written."""


def sha256_file(path: str | Path) -> str:
    """The sha256 hex digest of a file's bytes."""
    try:
        with open(path, "rb") as handle:
            return hashlib.file_digest(handle, "sha256").hexdigest()
    except OSError as exc:
        raise CacheError(f"cannot read: {exc.strerror or exc}", path) from exc


def cache_key(**parts) -> str:
    """sha256 hex of the canonical JSON of `parts` (sorted keys, no whitespace).

    Values must be JSON-able (str, int, float, bool, None, lists, dicts with str keys); anything
    else raises TypeError rather than being silently stringified into an unstable key.
    """
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _signature(st: os.stat_result) -> tuple[int, int, int, int]:
    # mtime alone is never trusted: a copy with preserved mtime (cp -p, rsync -t, git checkout of
    # another branch, tar) keeps it, but it changes inode or ctime, and usually size.
    return (st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns)


class StatIndex:
    """(path, size, mtime_ns, inode, ctime_ns) -> sha256, persisted as JSON in the cache folder,
    so a no-op rebuild does not re-hash files.

    `hash` of an unchanged file is one `os.stat` and a dict lookup. Paths are keyed as given
    (made absolute without touching the disk), so callers should pass them consistently.
    """

    def __init__(self, cache_dir: str | Path):
        self.cache_dir = Path(cache_dir)
        self.index_path = self.cache_dir / INDEX_NAME
        self.lock_path = self.cache_dir / INDEX_LOCK_NAME
        self._warned = False
        # path -> (size, mtime_ns, ino, ctime_ns, sha256); only trusted (non-racy) entries.
        self._entries: dict[str, tuple[int, int, int, int, str]] = self._load()
        # paths hashed or found vanished by this process since the last save: these win a merge.
        self._touched: set[str] = set()
        self._dirty = False

    def __len__(self) -> int:
        return len(self._entries)

    def hash(self, path: str | Path) -> str:
        """The sha256 of `path`, from the index when its stat is unchanged, else by reading it."""
        key = os.path.abspath(path)  # string work only for absolute paths: no extra syscall
        try:
            st = _stat(key)
        except OSError as exc:
            if key in self._entries:
                del self._entries[key]
                self._touched.add(key)
                self._dirty = True
            raise CacheError(f"cannot read: {exc.strerror or exc}", path) from exc
        sig = _signature(st)
        entry = self._entries.get(key)
        if entry is not None and entry[:4] == sig:
            return entry[4]
        return self._rehash(key, path, sig)

    def _rehash(self, key: str, path: str | Path, sig: tuple[int, int, int, int]) -> str:
        for _ in range(3):
            started = _now_ns()
            digest = sha256_file(key)
            try:
                after = _signature(_stat(key))
            except OSError as exc:
                raise CacheError(f"cannot read: {exc.strerror or exc}", path) from exc
            if after == sig:
                break
            sig = after  # changed while being read: the digest may be of a torn file; read again
        else:
            # Still changing after three reads: answer with the last digest but remember nothing.
            self._forget(key)
            return digest
        size, mtime_ns, _ino, ctime_ns = sig
        if max(mtime_ns, ctime_ns) >= started - RACY_WINDOW_NS:
            self._forget(key)  # racy: hash again next time rather than trust it
        else:
            self._entries[key] = (*sig, digest)
            self._touched.add(key)
            self._dirty = True
        return digest

    def _forget(self, key: str) -> None:
        if self._entries.pop(key, None) is not None:
            self._touched.add(key)
            self._dirty = True

    def save(self) -> None:
        """Write the index if anything changed: under a lock, merged with what other processes
        saved meanwhile, without entries of files that vanished or changed since they were hashed."""
        if not self._dirty:
            return
        with file_lock(self.lock_path):
            merged = self._load()
            for key in self._touched:
                # Our view of the paths we hashed is newer than the file's; absent means forget.
                if key in self._entries:
                    merged[key] = self._entries[key]
                else:
                    merged.pop(key, None)
            kept = {}
            for key, entry in merged.items():
                try:
                    sig = _signature(_stat(key))
                except OSError:
                    continue  # vanished
                if sig == entry[:4]:
                    kept[key] = entry  # an entry that no longer matches could never be used again
            payload = {"format": INDEX_FORMAT, "entries": {k: list(v) for k, v in kept.items()}}
            data = json.dumps(payload, separators=(",", ":")).encode("utf-8")
            atomic_write_bytes(self.index_path, data)
        self._entries = kept
        self._touched.clear()
        self._dirty = False

    def _load(self) -> dict[str, tuple[int, int, int, int, str]]:
        try:
            data = self.index_path.read_bytes()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            self._warn(f"cannot read the stat index ({exc.strerror or exc}); starting empty")
            return {}
        try:
            payload = json.loads(data)
            if not isinstance(payload, dict) or payload.get("format") != INDEX_FORMAT:
                raise ValueError("unknown format")
            raw = payload["entries"]
            entries = {}
            for key, value in raw.items():
                size, mtime_ns, ino, ctime_ns, digest = value
                if not all(type(v) is int for v in (size, mtime_ns, ino, ctime_ns)) or not isinstance(digest, str):
                    raise ValueError(f"bad entry for {key}")
                entries[key] = (size, mtime_ns, ino, ctime_ns, digest)
            return entries
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            # A truncated or hand-edited index only costs a re-hash; never fail the build for it.
            self._warn(f"the stat index is corrupt ({exc}); starting empty")
            return {}

    def _warn(self, message: str) -> None:
        if not self._warned:
            self._warned = True
            log.warning("%s: %s", self.index_path, message)


class OutputCache:
    """Outputs stored by key under `objects/ab/<key>.<ext>`.

    Entries are content-addressed by the key of their inputs, so two writers of one key write the
    same bytes and `put` needs no lock: the atomic rename makes the last complete write win.
    """

    def __init__(self, cache_dir: str | Path):
        self.cache_dir = Path(cache_dir)
        self.objects = self.cache_dir / OBJECTS_DIR

    def path_for(self, key: str, ext: str) -> Path:
        # Keys and extensions become file names: refuse anything that could escape the folder.
        if not isinstance(key, str) or not _KEY_RE.fullmatch(key):
            raise ValueError(f"cache key must be 8-128 lowercase hex digits, got {key!r}")
        ext = ext[1:] if ext.startswith(".") else ext
        if not _EXT_RE.fullmatch(ext):
            raise ValueError(f"cache entry extension must be 1-10 letters or digits, got {ext!r}")
        return self.objects / key[:2] / f"{key}.{ext.lower()}"

    def get(self, key: str, ext: str) -> Path | None:
        path = self.path_for(key, ext)
        try:
            st = _stat(path)
        except OSError:
            return None
        # Entries are written atomically and never empty, so size 0 means damage from outside.
        return path if st.st_size > 0 else None

    def put(self, key: str, data: bytes, ext: str) -> Path:
        path = self.path_for(key, ext)
        if not data:
            raise CacheError("refusing to cache an empty output", path)
        atomic_write_bytes(path, data)
        return path

    def put_file(self, key: str, src: str | Path, ext: str) -> Path:
        path = self.path_for(key, ext)
        try:
            source = open(src, "rb")
        except OSError as exc:
            raise CacheError(f"cannot read: {exc.strerror or exc}", src) from exc
        with source, atomic_writer(path) as out:
            shutil.copyfileobj(source, out)
            if out.tell() == 0:
                raise CacheError("refusing to cache an empty output", src)
        return path

    def entries(self) -> Iterator[Path]:
        """Every complete entry (temporary files of writers are skipped)."""
        for _sub, entry in self._scan():
            if not entry.name.startswith(TMP_PREFIX):
                yield Path(entry.path)

    def remove_except(self, keep: set[Path]) -> int:
        """Delete every entry not in `keep` (paths as returned by path_for/get/put); also delete
        writers' temporary files older than an hour. Returns the number of entries removed
        (temporary files are not counted).

        Not coordinated with a concurrent build writing to the same cache: run gc when no build
        is running, or that build's fresh entries may be removed under it.
        """
        keep_names = {os.path.abspath(p) for p in keep}
        stale_before = time.time() - STALE_TMP_SECONDS
        removed = 0
        subdirs = set()
        for sub, entry in self._scan():
            subdirs.add(sub)
            try:
                if entry.name.startswith(TMP_PREFIX):
                    if entry.stat().st_mtime < stale_before:
                        os.unlink(entry.path)
                elif os.path.abspath(entry.path) not in keep_names:
                    os.unlink(entry.path)
                    removed += 1
            except FileNotFoundError:
                pass  # removed by someone else meanwhile
            except OSError as exc:
                raise CacheError(f"cannot remove: {exc.strerror or exc}", entry.path) from exc
        # Killed index saves leave their temporary files in the cache folder itself.
        for folder in (self.cache_dir, self.objects):
            for entry in _scandir(folder):
                if entry.name.startswith(TMP_PREFIX) and entry.is_file(follow_symlinks=False):
                    try:
                        if entry.stat().st_mtime < stale_before:
                            os.unlink(entry.path)
                    except FileNotFoundError:
                        pass
        for sub in subdirs:
            try:
                os.rmdir(sub)  # only succeeds when empty
            except OSError:
                pass
        return removed

    def _scan(self) -> Iterator[tuple[str, os.DirEntry]]:
        for sub in _scandir(self.objects):
            if sub.name.startswith(TMP_PREFIX) or not sub.is_dir(follow_symlinks=False):
                continue
            for entry in _scandir(sub.path):
                if entry.is_file(follow_symlinks=False):
                    yield sub.path, entry


def _scandir(folder: str | Path) -> list[os.DirEntry]:
    try:
        with os.scandir(folder) as it:
            return list(it)
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise CacheError(f"cannot list: {exc.strerror or exc}", folder) from exc
