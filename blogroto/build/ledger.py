"""The cache's `EntryLedger` (`entries.json`): what blogroto itself wrote into the cache folder, with
each file's sha256. The cache folder is untrusted input (CI restores it from a cache service), so
an entry is published only when it matches its record, and gc deletes only what the ledger names:
`blogroto.build.cache.OutputCache` entries and `blogroto.build.remote` downloads with their records."""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat as stat_mod
import threading

from blogroto.errors import BlogrotoError
from blogroto.owned_tree import OwnedTree

SHA256_RE = re.compile(r"[0-9a-f]{64}")  # a hex sha256, as the ledger and the stat index record it
# What the ledger may name: a cache entry or a remote download (with its fetch record or failure
# record), nothing else.
_LEDGER_REL_RE = re.compile(r"objects/([0-9a-f]{2})/(\1[0-9a-f]{6,126})\.([a-z0-9]{1,10})"
                            r"|remote/([0-9a-f]{2})/(\4[0-9a-f]{62})(\.json|\.failed\.json)?")
LEDGER_NAME = "entries.json"
LEDGER_FORMAT = 1


class EntryLedger:
    """What blogroto itself wrote into the cache: rel -> (size, mtime_ns, inode, sha256).

    Lets a build verify an entry before publishing it (cheaply: the stat first, the hash when the
    stat differs or the entry is linked anew) and lets gc delete only files blogroto recorded.
    Saved by builds and gc, which hold the cache's build lock. Entries it does not name are never
    trusted and never deleted.
    """

    def __init__(self, tree: OwnedTree, warn=None):
        self.tree = tree
        self.warn = warn
        self._lock = threading.Lock()
        self._dirty = False
        self.entries: dict[str, list] = self._load()

    def _load(self) -> dict[str, list]:
        try:
            raw = self.tree.read_record(LEDGER_NAME)
        except FileNotFoundError:
            return {}
        except (OSError, BlogrotoError) as exc:
            self._complain(f"cannot read ({getattr(exc, 'strerror', None) or exc}); trusting no cache entry")
            return {}
        try:
            payload = json.loads(raw)
            if not isinstance(payload, dict) or payload.get("format") != LEDGER_FORMAT \
                    or not isinstance(payload.get("entries"), dict):
                raise ValueError("unknown format")
        except ValueError as exc:
            self._complain(f"corrupt ({exc}); trusting no cache entry")
            return {}
        out, bad = {}, 0
        for rel, value in payload["entries"].items():
            if (isinstance(rel, str) and _LEDGER_REL_RE.fullmatch(rel) and isinstance(value, list) and len(value) == 4
                    and all(type(v) is int and v >= 0 for v in value[:3])
                    and isinstance(value[3], str) and SHA256_RE.fullmatch(value[3])):
                out[rel] = value
            else:
                bad += 1
        if bad:
            self._complain(f"ignored {bad} malformed entries")
        return out

    def _complain(self, message: str) -> None:
        if self.warn is not None:
            self.warn(f"{self.tree.root / LEDGER_NAME}: {message}")

    def get(self, rel: str) -> list | None:
        return self.entries.get(rel)

    def record(self, rel: str, st: os.stat_result, sha: str) -> None:
        with self._lock:
            self.entries[rel] = [st.st_size, st.st_mtime_ns, st.st_ino, sha]
            self._dirty = True

    def forget(self, rel: str) -> None:
        with self._lock:
            if self.entries.pop(rel, None) is not None:
                self._dirty = True

    def record_file(self, rel: str) -> bool:
        """Hash the regular file `rel` of the tree as it is now and record it."""
        try:
            with self.tree.open_read(rel) as handle:
                st = os.fstat(handle.fileno())
                sha = hashlib.file_digest(handle, "sha256").hexdigest()
        except (OSError, BlogrotoError):
            return False
        self.record(rel, st, sha)
        return True

    def matches(self, rel: str, *, rehash: bool) -> bool:
        """Whether the file `rel` is what blogroto recorded: same stat (unless `rehash`), else same
        sha256 (then the new stat is remembered). False for anything unrecorded or not a file."""
        rec = self.entries.get(rel)
        if rec is None:
            return False
        try:
            with self.tree.open_read(rel) as handle:
                st = os.fstat(handle.fileno())
                if not stat_mod.S_ISREG(st.st_mode) or st.st_size != rec[0]:
                    return False
                if not rehash and [st.st_size, st.st_mtime_ns, st.st_ino] == rec[:3]:
                    return True
                sha = hashlib.file_digest(handle, "sha256").hexdigest()
        except (OSError, BlogrotoError):
            return False
        if sha != rec[3]:
            return False
        if [st.st_size, st.st_mtime_ns, st.st_ino] != rec[:3]:
            self.record(rel, st, sha)
        return True

    def save(self) -> None:
        if not self._dirty:
            return
        with self._lock:
            data = json.dumps({"format": LEDGER_FORMAT, "entries": self.entries}, separators=(",", ":"))
            self._dirty = False
        self.tree.write_bytes(LEDGER_NAME, data.encode("utf-8"))
