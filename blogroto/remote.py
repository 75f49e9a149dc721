"""Fetch remote images for the build, safely.

A post may reference `https://...` images; the build downloads them to stylize them. The URL comes
from content that may not be fully trusted (guest posts, imported archives), and the build may run
in CI next to cloud metadata endpoints, so a fetch:

* speaks only http/https, with no proxies or .netrc from the environment;
* resolves the host itself and refuses it if ANY address is loopback, private, link-local,
  multicast, reserved or unspecified (also inside IPv4-mapped, 6to4 and NAT64 IPv6 addresses),
  unless the policy allows private addresses;
* connects to exactly the address it checked (the connection is pinned; the Host header and the
  TLS server name and certificate check still use the host name), so a DNS answer that changes
  between check and connect (DNS rebinding) cannot redirect it;
* follows redirects itself, re-checking each hop's scheme and addresses, up to a limit;
* bounds the whole fetch (every hop, headers and body) by one deadline, `total_timeout`, which is
  `timeout` unless set: a watchdog shuts the fetch's sockets down when it passes, so a server
  dripping bytes (in the headers or the body) costs at most that long; the body is bounded by
  `max_bytes` (Content-Length first, then while streaming);
* turns every failure, expected or not (a malformed redirect `Location` made requests raise
  ValueError), into a RemoteImageError: one bad image costs one warning, never the build;
* accepts only bodies that are recognisably raster images.

Residual risks: `socket.getaddrinfo` itself has no timeout (a hanging resolver stalls the fetch);
a host whose addresses are all public but which forwards to internal services is not detectable.

Bodies are cached on disk by sha256(URL) under `CACHE_DIR/remote/`, each with a small JSON record
beside it (`<hash>.json`: when it was fetched, the server's ETag and Last-Modified). A cached copy
is used without network access for `duration` seconds (`remote: {duration: 1d}`, the default);
after that it is revalidated with a conditional request (If-None-Match / If-Modified-Since): a 304
keeps the copy, a 200 replaces it, and a server that cannot be reached leaves the copy in use.

Failures are remembered too (`<hash>.failed.json`), so that an unreachable image does not cost a
DNS lookup and a timeout on every build: the URL is retried after 10 minutes, then after 20, 40,
... doubling up to once a day (`retry_delay`). `refresh=True` (`blogroto build --refresh-remote`)
ignores remembered failures and revalidates every cached copy now. Delete the folder to forget
everything.

Every read and write in the cache goes through `blogroto.fsutil.OwnedTree` (never through a
symlink, never outside the cache folder), and every file stored (body, record, failure record) is
reported to `on_store`, with which the build records it in the cache's EntryLedger: gc deletes only
files recorded there.
"""

from __future__ import annotations

import hashlib
import io
import ipaddress
import json
import math
import re
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

import requests
import urllib3
import urllib3.connection
from requests.adapters import HTTPAdapter

from blogroto import __version__
from blogroto.errors import BlogrotoError, ConfigError
from blogroto.fsutil import OwnedTree
from blogroto.imaging.sniff import raster_format

REMOTE_DIR = "remote"
_REDIRECT_STATUSES = {301, 302, 303, 307, 308}
_CHUNK = 64 * 1024
# An ETag or Last-Modified value worth sending back: printable ASCII, as HTTP allows in a header.
_VALIDATOR_RE = re.compile(r"[\x20-\x7e]{1,1024}")

# Detected format -> (extension to add, extensions that already fit it).
_FORMATS = {
    "jpeg": (".jpg", {".jpg", ".jpeg", ".jpe", ".jfif"}),
    "png": (".png", {".png"}),
    "gif": (".gif", {".gif"}),
    "webp": (".webp", {".webp"}),
    "bmp": (".bmp", {".bmp", ".dib"}),
    "tiff": (".tif", {".tif", ".tiff"}),
    "avif": (".avif", {".avif"}),
    "heic": (".heic", {".heic", ".heif"}),
    "ico": (".ico", {".ico"}),
    "jxl": (".jxl", {".jxl"}),
}
_IMAGE_EXTS = {ext for _, exts in _FORMATS.values() for ext in exts} | {".svg", ".svgz"}
_BMFF_BRANDS = {b"avif": "avif", b"avis": "avif", b"heic": "heic", b"heix": "heic", b"heif": "heic",
                b"mif1": "heic", b"msf1": "heic", b"hevc": "heic"}


FIRST_RETRY = 600.0  # seconds after a first failure
MAX_RETRY = 86400.0  # the delay doubles per failure up to this
DEFAULT_DURATION = 86400.0  # a cached copy is used without asking the server for this long


def retry_delay(failures: int) -> float:
    """Seconds to wait before fetching a URL again after `failures` failures in a row: 10 min,
    20 min, 40 min, ... at most a day."""
    return min(MAX_RETRY, FIRST_RETRY * 2 ** max(0, failures - 1))


def now() -> float:
    """Wall-clock time (a function, so tests can move it)."""
    return time.time()


class RemoteImageError(BlogrotoError):
    """A remote image cannot or may not be fetched. The message names the URL (credentials in it
    are masked); `path`/`line` may name the post that references it. `retry_at`: when a failure
    that was remembered will be tried again (None: not remembered)."""

    def __init__(self, url: str, reason: str, path: str | Path | None = None, line: int | None = None,
                 retry_at: float | None = None):
        self.url = url
        self.reason = reason
        self.retry_at = retry_at
        super().__init__(f"{_redact(url)}: {reason}", path, line)


@dataclass
class RemotePolicy:
    timeout: float = 10.0             # seconds: the whole fetch (total_timeout) unless that is set
    max_bytes: int = 25 * 1024 * 1024
    max_redirects: int = 5
    allow_private: bool = False       # loopback/private/link-local/multicast/reserved refused unless True
    enabled: bool = True
    total_timeout: float | None = None  # whole fetch, all hops (None: `timeout`): no drip-feed stalls a build
    duration: float = DEFAULT_DURATION  # seconds a cached copy is used before revalidating (inf: never)

    def __post_init__(self):
        if self.total_timeout is None:
            self.total_timeout = self.timeout
        if not self.timeout > 0 or not self.total_timeout > 0:
            raise ConfigError(f"remote image timeouts must be positive, got {self.timeout}/{self.total_timeout}")
        if self.max_bytes <= 0:
            raise ConfigError(f"remote image max_bytes must be positive, got {self.max_bytes}")
        if not self.duration >= 0:
            raise ConfigError(f"remote image duration must be >= 0, got {self.duration}")
        if self.max_redirects < 0:
            raise ConfigError(f"remote image max_redirects must be >= 0, got {self.max_redirects}")


# The sockets of the fetch running in this thread, for its deadline watchdog (see _Deadline).
_active = threading.local()


class _TrackedHTTPConnection(urllib3.connection.HTTPConnection):
    def connect(self):
        super().connect()
        sockets = getattr(_active, "sockets", None)
        if sockets is not None:
            sockets.append(self.sock)


class _TrackedHTTPSConnection(urllib3.connection.HTTPSConnection):
    def connect(self):
        super().connect()
        sockets = getattr(_active, "sockets", None)
        if sockets is not None:
            sockets.append(self.sock)


class _HTTPPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _TrackedHTTPConnection


class _HTTPSPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _TrackedHTTPSConnection


class _Deadline:
    """The whole fetch's time limit: at `seconds`, shut down every socket the fetch opened, which
    wakes a read blocked on a server sending one byte per `timeout` (per-read timeouts alone let
    it run on forever, in the headers as in the body)."""

    def __init__(self, seconds: float):
        self.at = time.monotonic() + seconds
        self.expired = False
        self.sockets: list = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def _expire(self):
        with self._lock:
            self.expired = True
            for sock in self.sockets:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def __enter__(self):
        _active.sockets = self.sockets
        self._timer.start()
        return self

    def __exit__(self, *exc):
        self._timer.cancel()
        _active.sockets = None

    def passed(self) -> bool:
        return self.expired or time.monotonic() >= self.at


class _PinnedAdapter(HTTPAdapter):
    """Connects to the address the fetcher checked instead of resolving the host again."""

    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}

    def build_connection_pool_key_attributes(self, request, verify, cert=None):
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(request, verify, cert)
        pinned = getattr(request, "blogroto_pinned", None)
        if pinned is None:
            # Fail closed: a request that skipped the address check must never go out.
            raise RuntimeError(f"blogroto: unchecked request to {request.url}")
        address, hostname = pinned
        if host_params["scheme"] == "https":
            pool_kwargs["server_hostname"] = hostname  # SNI and certificate check by name
        host_params["host"] = address
        return host_params, pool_kwargs


class RemoteFetcher:
    def __init__(self, cache_dir: str | Path, policy: RemotePolicy | None = None):
        if not hasattr(HTTPAdapter, "build_connection_pool_key_attributes"):
            raise BlogrotoError(f"fetching remote images needs requests >= 2.32.2 (found {requests.__version__})")
        self.cache_dir = Path(cache_dir) / REMOTE_DIR
        # Reads and writes in the cache never go through a symlink (blogroto.fsutil.OwnedTree).
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
        self._session = requests.Session()
        # No proxies (they would resolve and connect for us, bypassing the address check) and no
        # .netrc credentials from the environment.
        self._session.trust_env = False
        self._session.proxies = {}
        adapter = _PinnedAdapter(max_retries=0)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)

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
        retry time (see the module docstring)."""
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
                return body, suggested_name(url, _identify(body, ""))
        try:
            got = self._download_guarded(url, validators=meta if body is not None else None)
        except RemoteImageError as exc:
            if body is not None:
                # Unreachable for now: the copy we have is better than none. Ask again next time.
                self.recheck_at[url] = t
                return body, suggested_name(url, _identify(body, ""))
            self._remember_failure(url, rel, exc, t)
            raise
        if got is None:  # 304 Not Modified: the copy is current
            self._store_meta(rel, url, dict(meta, fetched=t))
            return body, suggested_name(url, _identify(body, ""))
        new_body, content_type, validators = got
        fmt = _identify(new_body, content_type)
        if fmt is None:
            exc = RemoteImageError(url, f"not an image (Content-Type {content_type or 'missing'!r})")
            if body is not None:  # e.g. an error page served with 200: keep the image we have
                self.recheck_at[url] = t
                return body, suggested_name(url, _identify(body, ""))
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
        if not body or len(body) > self.policy.max_bytes or _identify(body, "") is None:
            return None
        if self.is_genuine is not None and not self.is_genuine(rel):
            return None
        return body

    # --- network -------------------------------------------------------------------------------

    def _download_guarded(self, url: str, validators: dict | None = None) -> tuple[bytes, str, dict] | None:
        """_download under the fetch's deadline; whatever goes wrong becomes a RemoteImageError."""
        total = f"timed out after {self.policy.total_timeout:g}s in total"
        with _Deadline(self.policy.total_timeout) as deadline:
            try:
                return self._download(url, deadline, validators)
            except RemoteImageError as exc:
                if deadline.expired and "timed out" not in exc.reason:
                    raise RemoteImageError(url, total) from exc
                raise
            except Exception as exc:  # noqa: BLE001 - one bad image must cost one warning, not the build
                if deadline.expired:
                    raise RemoteImageError(url, total) from exc
                raise RemoteImageError(url, f"cannot fetch: {type(exc).__name__}: {_redact(str(exc))}") from exc

    def _download(self, url: str, deadline: _Deadline,
                  validators: dict | None = None) -> tuple[bytes, str, dict] | None:
        """(body, Content-Type, {etag, last_modified}) or, for a conditional request (`validators`
        from the cached copy) that the server answers 304 Not Modified, None."""
        current = url
        extra = {}
        if validators:
            # from the cache: a malformed value (a header break, a megabyte) would make every
            # revalidation fail and serve the stale copy forever, so it counts as absent
            for key, header in (("etag", "If-None-Match"), ("last_modified", "If-Modified-Since")):
                value = validators.get(key)
                if isinstance(value, str) and _VALIDATOR_RE.fullmatch(value):
                    extra[header] = value
        for _hop in range(self.policy.max_redirects + 1):
            where = "" if current == url else f" (redirected to {_redact(current)})"
            response = self._get(url, current, where, deadline, extra)
            with response:
                location = response.headers.get("Location")
                if response.status_code in _REDIRECT_STATUSES and location:
                    try:
                        current = urljoin(current, location)
                        urlsplit(current).port  # noqa: B018 - raises ValueError for a bad port
                    except ValueError as exc:
                        raise RemoteImageError(url, f"invalid redirect Location {location[:200]!r}: {exc}{where}") from None
                    continue
                if response.status_code == 304 and extra:
                    return None
                if not 200 <= response.status_code < 300:
                    reason = f"HTTP {response.status_code} {response.reason or ''}".rstrip()
                    raise RemoteImageError(url, reason + where)
                body = self._read_body(url, where, response, deadline)
                got = {"etag": response.headers.get("ETag"), "last_modified": response.headers.get("Last-Modified")}
                return body, response.headers.get("Content-Type", ""), {k: v for k, v in got.items() if v}
        raise RemoteImageError(url, f"more than {self.policy.max_redirects} redirects (last: {_redact(current)})")

    def _get(self, url: str, current: str, where: str, deadline: _Deadline,
             extra: dict | None = None) -> requests.Response:
        request = requests.Request("GET", current, headers={
            "User-Agent": f"blogroto/{__version__}",
            "Connection": "close",  # a fresh, tracked connection per hop: the deadline can reach its socket
            "Accept": "image/png,image/jpeg,image/webp,image/gif,image/*;q=0.8",
            "Accept-Encoding": "identity",  # images are compressed already; no decompression bombs
            **(extra or {}),
        })
        try:
            prepared = self._session.prepare_request(request)  # IDNA-encodes the host
        except requests.RequestException as exc:
            raise RemoteImageError(url, f"invalid URL{where}: {exc}") from exc
        parts = urlsplit(prepared.url)
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https"):
            raise RemoteImageError(url, f"only http and https URLs can be fetched{where}")
        host = parts.hostname
        try:
            port = parts.port or (443 if scheme == "https" else 80)
        except ValueError:
            raise RemoteImageError(url, f"invalid port{where}") from None
        if not host:
            raise RemoteImageError(url, f"URL has no host{where}")
        addresses = self._checked_addresses(url, where, host, port)
        # Without this, the Host header would name the pinned address instead of the host.
        prepared.headers["Host"] = parts.netloc.rpartition("@")[2]

        # Try each checked address in turn, as a normal client would (e.g. IPv6 unreachable).
        last_error: Exception | None = None
        for address in addresses:
            remaining = deadline.at - time.monotonic()
            if remaining <= 0:
                break
            timeout = min(self.policy.timeout, remaining)
            prepared.blogroto_pinned = (address, host)
            try:
                return self._session.send(prepared, stream=True, timeout=(timeout, timeout), allow_redirects=False)
            except requests.exceptions.ConnectionError as exc:
                last_error = exc  # includes connect timeouts and TLS failures: next address
            except requests.RequestException as exc:
                raise RemoteImageError(url, f"{_describe(exc, self.policy.timeout)}{where}") from exc
        if last_error is None:
            raise RemoteImageError(url, f"timed out after {self.policy.total_timeout:g}s in total{where}")
        raise RemoteImageError(url, f"{_describe(last_error, self.policy.timeout)}{where}") from last_error

    def _checked_addresses(self, url: str, where: str, host: str, port: int) -> list[str]:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
        except (socket.gaierror, UnicodeError, OSError) as exc:
            raise RemoteImageError(url, f"cannot resolve host {host!r}{where}: {exc}") from exc
        addresses = list(dict.fromkeys(info[4][0] for info in infos))
        if not addresses:
            raise RemoteImageError(url, f"host {host!r} has no addresses{where}")
        if not self.policy.allow_private:
            # Every address, not just the first: the connection could otherwise land on any of them.
            for address in addresses:
                problem = address_refusal(address)
                if problem:
                    raise RemoteImageError(url, f"refused: {host} resolves to {problem}{where}")
        return addresses

    def _read_body(self, url: str, where: str, response: requests.Response, deadline: _Deadline) -> bytes:
        limit = self.policy.max_bytes
        declared = response.headers.get("Content-Length", "")
        if declared.strip().isdigit() and int(declared) > limit:
            raise RemoteImageError(url, f"too large: {int(declared)} bytes, the limit is {limit}{where}")
        chunks = []
        total = 0
        # read1 returns whatever one socket read brings, so the deadline is checked at least every
        # `timeout` seconds; iter_content would block until a whole chunk arrived from a drip-feed.
        raw = response.raw
        read = getattr(raw, "read1", None) or raw.read  # read1: urllib3 >= 2.3
        try:
            while chunk := read(_CHUNK, decode_content=True):
                total += len(chunk)
                if total > limit:
                    raise RemoteImageError(url, f"too large: more than {limit} bytes{where}")
                if deadline.passed():
                    raise RemoteImageError(url, f"timed out after {self.policy.total_timeout:g}s in total{where}")
                chunks.append(chunk)
            if deadline.expired:  # the watchdog's shutdown reads as a normal end of the body
                raise RemoteImageError(url, f"timed out after {self.policy.total_timeout:g}s in total{where}")
        except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
            if deadline.passed():
                raise RemoteImageError(url, f"timed out after {self.policy.total_timeout:g}s in total{where}") from exc
            raise RemoteImageError(url, f"{_describe(exc, self.policy.timeout)}{where}") from exc
        return b"".join(chunks)


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


def address_refusal(address: str) -> str | None:
    """Why an address may not be fetched from by default, or None when it is a public one."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone id
    except ValueError:
        return f"an unparseable address {address!r}"
    candidates = [ip]
    if ip.version == 6:
        # IPv6 forms that carry an IPv4 address the traffic ends up at. Mapped and NAT64 (DNS64
        # on IPv6-only networks) addresses are judged by that IPv4 address alone: the outer
        # prefix counts as "reserved" in some Python versions, which would refuse public hosts.
        if ip.ipv4_mapped is not None:
            candidates = [ip.ipv4_mapped]
        elif ip in _NAT64:
            candidates = [ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)]
        if ip.sixtofour is not None:
            candidates.append(ip.sixtofour)
        if ip.teredo:
            candidates.extend(ip.teredo)
    for candidate in candidates:
        for attr, label in _KINDS:
            if getattr(candidate, attr):
                return f"{label} address {address}"
        if not candidate.is_global:  # e.g. 100.64/10 carrier-grade NAT
            return f"non-public address {address}"
    return None


_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_KINDS = [
    ("is_unspecified", "an unspecified"),
    ("is_loopback", "a loopback"),
    ("is_link_local", "a link-local"),
    ("is_multicast", "a multicast"),
    ("is_private", "a private"),
    ("is_reserved", "a reserved"),
]


def _describe(exc: Exception, timeout: float) -> str:
    text = str(exc)
    if isinstance(exc, requests.Timeout) or "timed out" in text.lower():
        return f"timed out (limit {timeout:g}s)"
    if isinstance(exc, requests.exceptions.SSLError):
        return f"TLS error: {text}"
    if isinstance(exc, requests.ConnectionError):
        return f"cannot connect: {text}"
    return text


def _redact(url: str) -> str:
    """The URL without a password, for messages and logs."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if parts.password is None:
        return url
    netloc = f"{parts.username}:***@" + parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=netloc).geturl()


def _identify(body: bytes, content_type: str) -> str | None:
    """The raster format of `body` ('jpeg', 'png', ... or a Pillow format name), or None.

    Magic bytes decide, not Content-Type: servers label images application/octet-stream, and
    label HTML error pages image/png. Formats without a cheap signature are left to Pillow, which
    the build needs to decode the image anyway.
    """
    head = body[:32]
    fmt = raster_format(head)
    if fmt is not None and (fmt != "bmp" or len(body) > 26):
        return fmt
    if head[4:8] == b"ftyp" and head[8:12] in _BMFF_BRANDS:
        return _BMFF_BRANDS[head[8:12]]
    if head.startswith(b"\xff\x0a") or head.startswith(b"\x00\x00\x00\x0cJXL \r\n\x87\n"):
        return "jxl"
    if head[:4] == b"\x00\x00\x01\x00":
        return "ico"
    if re.match(rb"\s*(\xef\xbb\xbf)?\s*<", head):
        return None  # HTML, XML, SVG: not a raster image whatever the Content-Type says
    try:
        from PIL import Image, UnidentifiedImageError  # lazy: only for unusual formats
    except ImportError:
        return None
    try:
        with Image.open(io.BytesIO(body)) as image:
            return image.format.lower() if image.format else None
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        return None


def suggested_name(url: str, fmt: str | None) -> str:
    """A safe file name from the last segment of the URL path, with an extension that fits `fmt`."""
    segment = unquote(urlsplit(url).path.rsplit("/", 1)[-1])
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", segment).strip(".-_")
    stem, dot, suffix = name.rpartition(".")
    if not dot:
        stem, suffix = name, ""
    suffix = "." + suffix.lower() if suffix else ""
    stem = stem[:80].strip(".-_") or "image"
    wanted, fitting = _FORMATS.get(fmt, (None, set()))
    if wanted is None and fmt:
        wanted, fitting = _pillow_extension(fmt)
    if wanted is None or suffix in fitting:
        return stem + suffix
    if suffix in _IMAGE_EXTS or len(suffix) > 6:
        return stem + wanted  # a misleading image extension is replaced, not kept
    return stem + suffix + wanted


def _pillow_extension(fmt: str) -> tuple[str | None, set[str]]:
    try:
        from PIL import Image
    except ImportError:
        return None, set()
    exts = sorted(ext for ext, name in Image.registered_extensions().items() if name.lower() == fmt)
    return (exts[0], set(exts)) if exts else (None, set())
