"""`RemoteFetcher`: remote images through their cache, `CACHE_DIR/remote/` (see the `blogroto.build.remote`
docstring): a copy younger than the policy's `duration` is used as it is, an older one revalidated,
and a failure remembered and retried later (`retry_delay`)."""

from __future__ import annotations

import hashlib
import json
import math
import time
from pathlib import Path
from urllib.parse import urlsplit

from blogroto.build.remote.connection import pinned_session
from blogroto.build.remote.download import download
from blogroto.build.remote.formats import image_format, suggested_name
from blogroto.build.remote.policy import RemoteImageError, RemotePolicy
from blogroto.errors import BlogrotoError
from blogroto.owned_tree import OwnedTree

REMOTE_DIR = "remote"
FIRST_RETRY = 600.0  # seconds after a first failure
MAX_RETRY = 86400.0  # the delay doubles per failure up to this


def retry_delay(failures: int) -> float:
    """Seconds to wait before fetching a URL again after `failures` failures in a row: 10 min,
    20 min, 40 min, ... at most a day."""
    return min(MAX_RETRY, FIRST_RETRY * 2 ** max(0, failures - 1))


def now() -> float:
    """Wall-clock time (a function, so tests can move it)."""
    return time.time()


class RemoteFetcher:
    def __init__(self, cache_dir: str | Path, policy: RemotePolicy | None = None):
        self.cache_dir = Path(cache_dir) / REMOTE_DIR
        # Reads and writes in the cache never go through a symlink (blogroto.owned_tree.OwnedTree).
        self.tree = OwnedTree(Path(cache_dir), "cache")
        self.on_store = None  # called with the cache-relative path of each download stored
        # called with a cached download's path: whether it is still what blogroto stored (the
        # cache ledger); a body swapped in the cache is fetched again, never published. None: any.
        self.is_genuine = None
        self.policy = policy if policy is not None else RemotePolicy()
        self.store = True  # keep downloads in the cache (False: `build --check`, which writes nothing)
        self.refresh = False  # ignore remembered failures, revalidate cached copies now (--refresh-remote)
        # URL -> when fetch() should next go to the network for it (a cached copy's revalidation,
        # a remembered failure's retry); None: never. The build keeps a post up to date until then.
        self.recheck_at: dict[str, float | None] = {}
        self._session = pinned_session()

    def close(self) -> None:
        self._session.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def cache_path(self, url: str) -> Path:
        digest = hashlib.sha256(url.encode("utf-8")).hexdigest()
        return self.cache_dir / digest[:2] / digest

    def fetch(self, url: str) -> tuple[bytes, str]:
        """(body, suggested file name from the URL path). Raises RemoteImageError.

        A cached copy younger than `policy.duration` is used as it is; an older one is
        revalidated. A failure is remembered and raised again, without network access, until its
        retry time (see the `blogroto.build.remote` docstring)."""
        if not self.policy.enabled:
            raise RemoteImageError(url, "remote images are disabled")
        if urlsplit(url).scheme.lower() not in ("http", "https"):
            raise RemoteImageError(url, "only http and https URLs can be fetched")
        rel = self._rel(url)  # cache_path(url), relative to the cache folder: read and written through self.tree
        t = now()
        failed = None if self.refresh else self._read_json(_failure_rel(rel))
        # The records come from the cache, untrusted like the rest of it: a value of the wrong type
        # (or a retry time further away than any failure sets) counts as no record.
        retry_at = _number(failed.get("retry_at")) if failed else None
        # A failure under other limits (the author raised max_bytes, allowed private addresses)
        # is not held against the URL: the new policy gets its own try.
        if (failed and failed.get("url") == url and failed.get("policy") == self._policy_key()
                and retry_at is not None and t < retry_at <= t + MAX_RETRY):
            self.recheck_at[url] = retry_at
            when = time.strftime("%Y-%m-%d %H:%M", time.localtime(retry_at))
            raise RemoteImageError(url, f"{failed.get('reason')} (remembered from an earlier build; tried again after "
                                        f"{when}, or now with --refresh-remote)", retry_at=retry_at)
        body = self._read_cached(rel)
        meta = (self._read_json(_meta_rel(rel)) or {}) if body is not None else {}
        if body is not None:
            fetched = _number(meta.get("fetched")) or self._mtime(rel)
            if not self.refresh and t < fetched + self.policy.duration:
                self.recheck_at[url] = fetched + self.policy.duration if math.isfinite(self.policy.duration) else None
                return body, suggested_name(url, image_format(body, ""))
        try:
            got = download(self._session, self.policy, url, validators=meta if body is not None else None)
        except RemoteImageError as exc:
            if body is not None:
                # Unreachable for now: the copy we have is better than none. Ask again next time.
                self.recheck_at[url] = t
                return body, suggested_name(url, image_format(body, ""))
            self._remember_failure(url, rel, exc, t)
            raise
        if got is None:  # 304 Not Modified: the copy is current
            self._store_meta(rel, url, dict(meta, fetched=t))
            return body, suggested_name(url, image_format(body, ""))
        new_body, content_type, validators = got
        fmt = image_format(new_body, content_type)
        if fmt is None:
            exc = RemoteImageError(url, f"not an image (Content-Type {content_type or 'missing'!r})")
            if body is not None:  # e.g. an error page served with 200: keep the image we have
                self.recheck_at[url] = t
                return body, suggested_name(url, image_format(body, ""))
            self._remember_failure(url, rel, exc, t)
            raise exc
        if self.store:
            self._write(rel, new_body)
            self.tree.remove(_failure_rel(rel))
        self._store_meta(rel, url, dict(validators, fetched=t))
        return new_body, suggested_name(url, fmt)

    @staticmethod
    def _rel(url: str) -> str:
        """cache_path(url), relative to the cache folder."""
        digest = hashlib.sha256(url.encode("utf-8")).hexdigest()
        return f"{REMOTE_DIR}/{digest[:2]}/{digest}"

    def _write(self, rel: str, data: bytes) -> None:
        """Store a file of the remote cache (never through a symlink) and report it for the ledger."""
        self.tree.write_bytes(rel, data)
        if self.on_store is not None:
            self.on_store(rel)

    def _read_json(self, rel: str) -> dict | None:
        try:
            data = json.loads(self.tree.read_record(rel))
        except (OSError, BlogrotoError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def _mtime(self, rel: str) -> float:
        st = self.tree.lstat(rel)
        return st.st_mtime if st is not None else 0.0

    def _policy_key(self) -> str:
        p = self.policy
        return f"{p.timeout:g}/{p.total_timeout:g}/{p.max_bytes}/{p.max_redirects}/{p.allow_private}"

    def _store_meta(self, rel: str, url: str, meta: dict) -> None:
        d = self.policy.duration
        self.recheck_at[url] = meta["fetched"] + d if math.isfinite(d) else None
        if self.store:
            self._write(_meta_rel(rel), json.dumps(dict(meta, url=url)).encode())

    def _remember_failure(self, url: str, rel: str, exc: RemoteImageError, t: float) -> None:
        previous = self._read_json(_failure_rel(rel)) or {}
        failures = int(min(_number(previous.get("failures")) or 0, 64)) + 1 if previous.get("url") == url else 1
        retry_at = t + retry_delay(failures)
        exc.retry_at = retry_at
        self.recheck_at[url] = retry_at
        if self.store:
            record = {"url": url, "reason": exc.reason, "failed_at": t, "failures": failures, "retry_at": retry_at,
                      "policy": self._policy_key()}
            self._write(_failure_rel(rel), json.dumps(record).encode())

    def _read_cached(self, rel: str) -> bytes | None:
        try:
            body = self.tree.read_bytes(rel, limit=self.policy.max_bytes)
        except (OSError, BlogrotoError):
            return None
        # Re-check against the current policy and formats: a damaged or now-too-large copy is
        # fetched again rather than trusted.
        if not body or len(body) > self.policy.max_bytes or image_format(body, "") is None:
            return None
        if self.is_genuine is not None and not self.is_genuine(rel):
            return None
        return body


def _meta_rel(rel: str) -> str:
    """The JSON record beside a cached body (when fetched, ETag, Last-Modified)."""
    return rel + ".json"


def _failure_rel(rel: str) -> str:
    """The record of a remembered failure beside where the body would be cached."""
    return rel + ".failed.json"


def _number(value) -> float | None:
    """A finite number from a cache record, or None (a string, a bool, NaN, ...)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None
