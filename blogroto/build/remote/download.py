"""One download, within the policy's limits: http/https only; each redirect hop followed here and
its scheme and addresses checked again; every hop, header and body byte under one deadline
(`total_timeout`); the body bounded by `max_bytes` (Content-Length first, then while streaming); and
every failure, expected or not, turned into one RemoteImageError."""

from __future__ import annotations

import re
import time
from urllib.parse import urljoin, urlsplit

import requests
import urllib3

from blogroto import __version__
from blogroto.build.remote.addresses import checked_addresses
from blogroto.build.remote.connection import Deadline, pin
from blogroto.build.remote.policy import RemoteImageError, RemotePolicy, redact

_REDIRECT_STATUSES = {301, 302, 303, 307, 308}
_CHUNK = 64 * 1024
# An ETag or Last-Modified value worth sending back: printable ASCII, as HTTP allows in a header.
_VALIDATOR_RE = re.compile(r"[\x20-\x7e]{1,1024}")


def download(session: requests.Session, policy: RemotePolicy, url: str,
             validators: dict | None = None) -> tuple[bytes, str, dict] | None:
    """(body, Content-Type, {etag, last_modified}) or, for a conditional request (`validators`
    from a cached copy) that the server answers 304 Not Modified, None. Raises RemoteImageError
    only, whatever goes wrong (a malformed redirect `Location` made requests raise ValueError):
    one bad image costs one warning, never the build."""
    total = f"timed out after {policy.total_timeout:g}s in total"
    with Deadline(policy.total_timeout) as deadline:
        try:
            return _Download(session, policy, url, deadline).run(validators)
        except RemoteImageError as exc:
            if deadline.expired and "timed out" not in exc.reason:
                raise RemoteImageError(url, total) from exc
            raise
        except Exception as exc:  # noqa: BLE001 - one bad image must cost one warning, not the build
            if deadline.expired:
                raise RemoteImageError(url, total) from exc
            raise RemoteImageError(url, f"cannot fetch: {type(exc).__name__}: {redact(str(exc))}") from exc


class _Download:
    def __init__(self, session: requests.Session, policy: RemotePolicy, url: str, deadline: Deadline):
        self.session = session
        self.policy = policy
        self.url = url
        self.deadline = deadline
        self.timed_out = f"timed out after {policy.total_timeout:g}s in total"

    def run(self, validators: dict | None) -> tuple[bytes, str, dict] | None:
        url = current = self.url
        extra = _conditional_headers(validators)
        for _hop in range(self.policy.max_redirects + 1):
            where = "" if current == url else f" (redirected to {redact(current)})"
            response = self._get(current, where, extra)
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
                body = self._read_body(where, response)
                got = {"etag": response.headers.get("ETag"), "last_modified": response.headers.get("Last-Modified")}
                return body, response.headers.get("Content-Type", ""), {k: v for k, v in got.items() if v}
        raise RemoteImageError(url, f"more than {self.policy.max_redirects} redirects (last: {redact(current)})")

    def _get(self, current: str, where: str, extra: dict) -> requests.Response:
        url = self.url
        request = requests.Request("GET", current, headers={
            "User-Agent": f"blogroto/{__version__}",
            "Connection": "close",  # a fresh, tracked connection per hop: the deadline can reach its socket
            "Accept": "image/png,image/jpeg,image/webp,image/gif,image/*;q=0.8",
            "Accept-Encoding": "identity",  # images are compressed already; no decompression bombs
            **extra,
        })
        try:
            prepared = self.session.prepare_request(request)  # IDNA-encodes the host
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
        addresses = checked_addresses(url, where, host, port, self.policy.allow_private)
        # Without this, the Host header would name the pinned address instead of the host.
        prepared.headers["Host"] = parts.netloc.rpartition("@")[2]

        # Try each checked address in turn, as a normal client would (e.g. IPv6 unreachable).
        last_error: Exception | None = None
        for address in addresses:
            remaining = self.deadline.at - time.monotonic()
            if remaining <= 0:
                break
            timeout = min(self.policy.timeout, remaining)
            pin(prepared, address, host)
            try:
                return self.session.send(prepared, stream=True, timeout=(timeout, timeout), allow_redirects=False)
            except requests.exceptions.ConnectionError as exc:
                last_error = exc  # includes connect timeouts and TLS failures: next address
            except requests.RequestException as exc:
                raise RemoteImageError(url, f"{_describe(exc, self.policy.timeout)}{where}") from exc
        if last_error is None:
            raise RemoteImageError(url, f"{self.timed_out}{where}")
        raise RemoteImageError(url, f"{_describe(last_error, self.policy.timeout)}{where}") from last_error

    def _read_body(self, where: str, response: requests.Response) -> bytes:
        url, limit, deadline = self.url, self.policy.max_bytes, self.deadline
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
                    raise RemoteImageError(url, f"{self.timed_out}{where}")
                chunks.append(chunk)
            if deadline.expired:  # the watchdog's shutdown reads as a normal end of the body
                raise RemoteImageError(url, f"{self.timed_out}{where}")
        except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
            if deadline.passed():
                raise RemoteImageError(url, f"{self.timed_out}{where}") from exc
            raise RemoteImageError(url, f"{_describe(exc, self.policy.timeout)}{where}") from exc
        return b"".join(chunks)


def _conditional_headers(validators: dict | None) -> dict:
    """If-None-Match / If-Modified-Since from a cached copy's record. The record comes from the
    cache: a malformed value (a header break, a megabyte) would make every revalidation fail and
    serve the stale copy forever, so it counts as absent."""
    extra = {}
    for key, header in (("etag", "If-None-Match"), ("last_modified", "If-Modified-Since")):
        value = (validators or {}).get(key)
        if isinstance(value, str) and _VALIDATOR_RE.fullmatch(value):
            extra[header] = value
    return extra


def _describe(exc: Exception, timeout: float) -> str:
    text = str(exc)
    if isinstance(exc, requests.Timeout) or "timed out" in text.lower():
        return f"timed out (limit {timeout:g}s)"
    if isinstance(exc, requests.exceptions.SSLError):
        return f"TLS error: {text}"
    if isinstance(exc, requests.ConnectionError):
        return f"cannot connect: {text}"
    return text
