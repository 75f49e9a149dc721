"""The connections a fetch makes: pinned to the address `blogroto.build.remote.addresses` checked (the Host
header and the TLS server name and certificate check still use the host name, so a DNS answer that
changes between check and connect cannot redirect them), and tracked, so that the fetch's
`Deadline` can shut their sockets down."""

from __future__ import annotations

import socket
import threading
import time

import requests
import urllib3
import urllib3.connection
from requests.adapters import HTTPAdapter

from blogroto.errors import BlogrotoError

# The sockets of the fetch running in this thread, for its deadline watchdog (see Deadline).
_active = threading.local()


class _Tracked:
    """A urllib3 connection that registers its socket with the fetch running in this thread."""

    def connect(self):
        super().connect()
        sockets = getattr(_active, "sockets", None)
        if sockets is not None:
            sockets.append(self.sock)


class _TrackedHTTPConnection(_Tracked, urllib3.connection.HTTPConnection):
    pass


class _TrackedHTTPSConnection(_Tracked, urllib3.connection.HTTPSConnection):
    pass


class _HTTPPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _TrackedHTTPConnection


class _HTTPSPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _TrackedHTTPSConnection


class Deadline:
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


def pin(prepared: requests.PreparedRequest, address: str, hostname: str) -> None:
    """Send `prepared` to `address` (checked), with `hostname` for TLS."""
    prepared.blogroto_pinned = (address, hostname)


def pinned_session() -> requests.Session:
    """A session whose every request must be `pin`ned, and that ignores the environment."""
    if not hasattr(HTTPAdapter, "build_connection_pool_key_attributes"):
        raise BlogrotoError(f"fetching remote images needs requests >= 2.32.2 (found {requests.__version__})")
    session = requests.Session()
    # No proxies (they would resolve and connect for us, bypassing the address check) and no
    # .netrc credentials from the environment.
    session.trust_env = False
    session.proxies = {}
    adapter = _PinnedAdapter(max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session
