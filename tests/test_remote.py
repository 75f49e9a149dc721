"""Tests for blogroto.build.remote against a real HTTP(S) server on 127.0.0.1."""

from __future__ import annotations

import datetime
import http.server
import json
import re
import socket
import ssl
import struct
import threading
import time
import zlib

import pytest
import requests

from blogroto.build import remote
from blogroto.build.remote import (
    RemoteFetcher,
    RemoteImageError,
    RemotePolicy,
    address_refusal,
    suggested_name,
)
from blogroto.build.remote import addresses as remote_addresses
from blogroto.build.remote import fetcher as remote_fetcher
from blogroto.errors import BlogrotoError


def make_png(width: int = 2, height: int = 2) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


PNG = make_png()
TIMEOUT = 0.5


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):  # keep test output quiet
        pass

    def send_body(self, body: bytes, content_type: str = "image/png", status: int = 200, length: bool = True):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        if length:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def redirect(self, location: str, status: int = 302):
        self.send_response(status)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self):
        self.server.seen.append((self.path, self.headers.get("Host")))
        self.server.conditional.append((self.headers.get("If-None-Match"), self.headers.get("If-Modified-Since")))
        path = self.path.split("?", 1)[0]
        query = self.path.partition("?")[2]
        try:
            if path == "/etag.png":  # validators: an ETag (version in server.version) and a Last-Modified
                etag = f'"v{self.server.version}"'
                if self.headers.get("If-None-Match") == etag:
                    self.send_response(304)
                    self.send_header("ETag", etag)
                    self.end_headers()
                    return
                self.send_response(200)
                body = PNG if self.server.version == 1 else make_png(3, 3)
                self.send_header("Content-Type", "image/png")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("ETag", etag)
                self.send_header("Last-Modified", "Wed, 21 Oct 2026 07:28:00 GMT")
                self.end_headers()
                self.wfile.write(body)
            elif path == "/lm.png":  # only Last-Modified
                if self.headers.get("If-Modified-Since") == "Wed, 21 Oct 2026 07:28:00 GMT":
                    self.send_response(304)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.send_header("Content-Length", str(len(PNG)))
                self.send_header("Last-Modified", "Wed, 21 Oct 2026 07:28:00 GMT")
                self.end_headers()
                self.wfile.write(PNG)
            elif path in ("/img.png", "/photo"):
                self.send_body(PNG)
            elif path == "/octet":
                self.send_body(PNG, "application/octet-stream")
            elif path.startswith("/r/"):  # /r/3 -> /r/2 -> /r/1 -> /r/0 -> /img.png
                n = int(path[3:])
                self.redirect("/img.png" if n == 0 else f"/r/{n - 1}", 301 if n % 2 else 307)
            elif path == "/loop":
                self.redirect("/loop")
            elif path == "/to":
                self.redirect(requests.utils.unquote(query))
            elif path == "/slow":
                time.sleep(TIMEOUT * 3)
                self.send_body(PNG)
            elif path == "/drip":  # each byte well within the read timeout, the whole far beyond
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.end_headers()
                self.wfile.write(PNG[:8])
                for _ in range(40):
                    time.sleep(TIMEOUT / 5)
                    self.wfile.write(b"\x00")
                    self.wfile.flush()
            elif path == "/drip-headers":  # the status line, then one header byte at a time
                self.wfile.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
                for _ in range(40):
                    time.sleep(TIMEOUT / 5)
                    self.wfile.write(b"a")
                    self.wfile.flush()
            elif path == "/bad-location":  # requests' own urljoin raises ValueError on this
                self.redirect("http://[::1/x")
            elif path == "/bad-port":
                self.redirect("http://127.0.0.1:99999999/x")
            elif path == "/big-declared":
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.send_header("Content-Length", str(50 * 1024 * 1024))
                self.end_headers()
                self.wfile.write(PNG)
            elif path == "/big-undeclared":  # HTTP/1.0, body ends at close
                self.send_body(PNG + b"\x00" * 5000, length=False)
            elif path == "/html":
                self.send_body(b"<!doctype html><p>hello", "text/html")
            elif path == "/html-as-png":  # a hotlink-protection page mislabelled as an image
                self.send_body(b"  <html><body>no hotlinking</body></html>", "image/png")
            elif path == "/svg":
                self.send_body(b'<svg xmlns="http://www.w3.org/2000/svg"/>', "image/svg+xml")
            else:
                self.send_body(b"not found", "text/plain", status=404)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up, as intended


class Server:
    def __init__(self, tls_context: ssl.SSLContext | None = None):
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.seen = []
        self.httpd.conditional = []  # (If-None-Match, If-Modified-Since) of each request
        self.httpd.version = 1  # of /etag.png
        if tls_context is not None:
            self.httpd.socket = tls_context.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.scheme = "https" if tls_context else "http"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()
        self.running = True

    @property
    def seen(self):
        return self.httpd.seen

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"{self.scheme}://{host}:{self.port}{path}"

    def stop(self):
        if self.running:
            self.running = False
            self.httpd.shutdown()
            self.httpd.server_close()


@pytest.fixture
def server():
    srv = Server()
    yield srv
    srv.stop()


@pytest.fixture
def lax():
    return RemotePolicy(timeout=TIMEOUT, allow_private=True, total_timeout=5.0)


@pytest.fixture
def fetcher(tmp_path, lax):
    with RemoteFetcher(tmp_path / "cache", lax) as f:
        yield f


@pytest.fixture
def loopback_is_public(monkeypatch):
    """Treat 127.0.0.1 (only) as a public address, so the default policy can be exercised
    against the local server while every other private address stays refused."""
    real = remote_addresses.address_refusal
    monkeypatch.setattr(remote_addresses, "address_refusal", lambda a: None if a == "127.0.0.1" else real(a))


@pytest.fixture
def fake_dns(monkeypatch):
    """Names in the returned dict resolve to the listed addresses (in turn, for lists of lists);
    every other name goes to the real resolver."""
    table: dict[str, list] = {}
    calls: list[str] = []
    real = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        if host in table:
            calls.append(host)
            answers = table[host]
            addrs = answers.pop(0) if len(answers) > 1 else answers[0]
            out = []
            for a in addrs:
                family = socket.AF_INET6 if ":" in a else socket.AF_INET
                sockaddr = (a, port, 0, 0) if family == socket.AF_INET6 else (a, port)
                out.append((family, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", sockaddr))
            return out
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    table["__calls__"] = calls  # type: ignore[assignment]
    return table


# --- happy paths ---------------------------------------------------------------------------------


def test_fetches_png_and_suggests_name(fetcher, server):
    body, name = fetcher.fetch(server.url("/img.png"))
    assert body == PNG
    assert name == "img.png"
    assert server.seen == [("/img.png", f"127.0.0.1:{server.port}")]


def test_extension_is_added_from_content(fetcher, server):
    assert fetcher.fetch(server.url("/photo?size=large"))[1] == "photo.png"


def test_magic_bytes_win_over_content_type(fetcher, server):
    body, name = fetcher.fetch(server.url("/octet"))
    assert body == PNG and name == "octet.png"


def test_redirect_chain_is_followed(tmp_path, server):
    policy = RemotePolicy(timeout=TIMEOUT, allow_private=True, max_redirects=4)
    body, name = RemoteFetcher(tmp_path, policy).fetch(server.url("/r/3"))
    assert body == PNG
    assert name == "3.png"  # named after the URL asked for, not the redirect target
    assert [p for p, _ in server.seen] == ["/r/3", "/r/2", "/r/1", "/r/0", "/img.png"]


# --- failures ------------------------------------------------------------------------------------


def test_too_many_redirects(tmp_path, server):
    policy = RemotePolicy(timeout=TIMEOUT, allow_private=True, max_redirects=2)
    with pytest.raises(RemoteImageError, match="more than 2 redirects") as err:
        RemoteFetcher(tmp_path, policy).fetch(server.url("/r/3"))
    assert server.url("/r/3") in str(err.value)
    assert len(server.seen) == 3


def test_redirect_loop(fetcher, server):
    with pytest.raises(RemoteImageError, match="more than 5 redirects"):
        fetcher.fetch(server.url("/loop"))
    assert len(server.seen) == 6


def test_slow_server_times_out(fetcher, server):
    start = time.monotonic()
    with pytest.raises(RemoteImageError, match="timed out") as err:
        fetcher.fetch(server.url("/slow"))
    assert time.monotonic() - start < TIMEOUT * 2.5
    assert "/slow" in str(err.value)


def test_dripping_server_hits_total_deadline(tmp_path, server):
    policy = RemotePolicy(timeout=TIMEOUT, allow_private=True, total_timeout=1.0)
    start = time.monotonic()
    with pytest.raises(RemoteImageError, match="timed out after 1s in total"):
        RemoteFetcher(tmp_path, policy).fetch(server.url("/drip"))
    assert time.monotonic() - start < 1.0 + TIMEOUT + 0.5


@pytest.mark.parametrize("path", ["/drip", "/drip-headers"])
def test_timeout_bounds_the_whole_transfer(tmp_path, server, path):
    """`timeout` alone (as `remote.timeout` sets it) is the deadline of the whole fetch: a server
    sending a byte every TIMEOUT/5 (in the body, or in the headers) is cut off at TIMEOUT."""
    policy = RemotePolicy(timeout=TIMEOUT, allow_private=True)
    start = time.monotonic()
    with pytest.raises(RemoteImageError, match=f"timed out after {TIMEOUT:g}s in total"):
        RemoteFetcher(tmp_path, policy).fetch(server.url(path))
    assert time.monotonic() - start < TIMEOUT + 0.5


@pytest.mark.parametrize("path, message", [
    ("/bad-location", "cannot fetch: ValueError: Invalid IPv6 URL"),  # raised inside requests' send()
    ("/bad-port", "invalid redirect Location 'http://127.0.0.1:99999999/x'"),
])
def test_malformed_redirect_is_one_error_not_a_crash(fetcher, server, path, message):
    with pytest.raises(RemoteImageError, match=re.escape(message)):
        fetcher.fetch(server.url(path))


def test_unexpected_failures_become_remote_image_errors(fetcher, server, monkeypatch):
    def boom(*args, **kwargs):
        raise ValueError("something requests did not expect")

    monkeypatch.setattr(fetcher._session, "send", boom)
    with pytest.raises(RemoteImageError, match="cannot fetch: ValueError: something requests did not expect"):
        fetcher.fetch(server.url("/img.png"))


def test_declared_oversize_is_refused_before_reading(tmp_path, server):
    policy = RemotePolicy(timeout=TIMEOUT, allow_private=True)
    with pytest.raises(RemoteImageError, match=f"too large: {50 * 1024 * 1024} bytes"):
        RemoteFetcher(tmp_path, policy).fetch(server.url("/big-declared"))


def test_undeclared_oversize_is_aborted_while_streaming(tmp_path, server):
    policy = RemotePolicy(timeout=TIMEOUT, allow_private=True, max_bytes=1000)
    with pytest.raises(RemoteImageError, match="more than 1000 bytes"):
        RemoteFetcher(tmp_path, policy).fetch(server.url("/big-undeclared"))
    # no body cached: only the remembered failure (blogroto.build.remote retries it later)
    assert all(f.name.endswith(".failed.json") for f in (tmp_path / "remote").rglob("*") if f.is_file())


def test_http_error_status(fetcher, server):
    with pytest.raises(RemoteImageError, match="HTTP 404") as err:
        fetcher.fetch(server.url("/missing.png"))
    assert isinstance(err.value, BlogrotoError)
    assert str(err.value).startswith(server.url("/missing.png"))


@pytest.mark.parametrize("path", ["/html", "/html-as-png", "/svg"])
def test_non_images_are_refused(fetcher, server, path):
    with pytest.raises(RemoteImageError, match="not an image"):
        fetcher.fetch(server.url(path))


def test_connection_refused(fetcher):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(RemoteImageError, match="cannot connect"):
        fetcher.fetch(f"http://127.0.0.1:{port}/x.png")


@pytest.mark.parametrize("url", ["ftp://example.com/a.png", "file:///etc/passwd", "data:image/png;base64,AAAA",
                                 "gopher://example.com/", "/relative.png"])
def test_only_http_and_https(fetcher, url):
    with pytest.raises(RemoteImageError, match="only http and https"):
        fetcher.fetch(url)


def test_disabled_policy(tmp_path, server):
    with pytest.raises(RemoteImageError, match="disabled"):
        RemoteFetcher(tmp_path, RemotePolicy(enabled=False)).fetch(server.url("/img.png"))
    assert server.seen == []


def test_password_is_masked_in_messages(fetcher, server):
    with pytest.raises(RemoteImageError) as err:
        fetcher.fetch(f"http://user:s3cret@127.0.0.1:{server.port}/missing")
    assert "s3cret" not in str(err.value) and "user:***@" in str(err.value)


@pytest.mark.parametrize("kwargs", [dict(timeout=0), dict(max_bytes=0), dict(max_redirects=-1), dict(total_timeout=-1)])
def test_policy_validation(kwargs):
    with pytest.raises(BlogrotoError):
        RemotePolicy(**kwargs)


# --- address checks ------------------------------------------------------------------------------


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a connection was attempted")

    monkeypatch.setattr(requests.Session, "send", refuse)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "10.1.2.3", "169.254.169.254", "[::1]",
                                  "[::ffff:127.0.0.1]", "0.0.0.0", "192.168.1.1", "100.64.0.1", "224.0.0.1",
                                  "[fe80::1]", "[fd00::1]", "127.1", "2130706433"])
def test_private_addresses_refused_without_connecting(tmp_path, server, no_network, host):
    fetcher = RemoteFetcher(tmp_path, RemotePolicy(timeout=TIMEOUT))
    with pytest.raises(RemoteImageError, match="refused"):
        fetcher.fetch(f"http://{host}:{server.port}/img.png")
    assert server.seen == []


def test_any_private_address_among_many_is_refused(tmp_path, server, no_network, fake_dns):
    fake_dns["mixed.example.test"] = [["93.184.216.34", "10.0.0.7"]]
    with pytest.raises(RemoteImageError, match="10.0.0.7"):
        RemoteFetcher(tmp_path, RemotePolicy(timeout=TIMEOUT)).fetch("http://mixed.example.test/a.png")


def test_unresolvable_host(tmp_path, monkeypatch):
    def fail(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", fail)
    with pytest.raises(RemoteImageError, match="cannot resolve host 'nowhere.invalid'"):
        RemoteFetcher(tmp_path).fetch("http://nowhere.invalid/a.png")


@pytest.mark.parametrize("address,refused", [
    ("8.8.8.8", False), ("2606:4700:4700::1111", False), ("127.0.0.1", True), ("::1", True),
    ("::ffff:10.0.0.1", True), ("::ffff:8.8.8.8", False), ("2002:7f00:1::1", True), ("64:ff9b::a9fe:a9fe", True),
    ("64:ff9b::808:808", False), ("fe80::1%eth0", True), ("255.255.255.255", True), ("240.0.0.1", True),
    ("ff02::1", True), ("::", True), ("172.16.0.1", True), ("198.18.0.1", True),
])
def test_address_refusal(address, refused):
    assert (address_refusal(address) is not None) == refused


def test_redirect_to_private_address_is_refused(tmp_path, server, loopback_is_public):
    fetcher = RemoteFetcher(tmp_path, RemotePolicy(timeout=TIMEOUT))
    assert fetcher.fetch(server.url("/img.png"))[0] == PNG  # the local server counts as public here
    for target in ["http://10.0.0.1/x.png", f"http://[::1]:{server.port}/img.png", "http://169.254.169.254/"]:
        with pytest.raises(RemoteImageError, match="refused.*redirected to"):
            fetcher.fetch(server.url("/to?" + requests.utils.quote(target, safe="")))
    assert [p for p, _ in server.seen if not p.startswith("/to")] == ["/img.png"]


@pytest.mark.parametrize("target", ["file:///etc/passwd", "ftp://example.com/a.png"])
def test_redirect_to_other_scheme_is_refused(fetcher, server, target):
    with pytest.raises(RemoteImageError, match="only http and https.*redirected to"):
        fetcher.fetch(server.url("/to?" + requests.utils.quote(target, safe="")))


def test_connection_goes_to_the_checked_address(tmp_path, server, loopback_is_public, fake_dns):
    # DNS rebinding: the first answer passes the check, later answers point inside. The fetch must
    # connect to the first answer (and not resolve again), and still send the real Host name.
    fake_dns["rebind.example.test"] = [["127.0.0.1"], ["10.0.0.1"], ["10.0.0.1"]]
    fetcher = RemoteFetcher(tmp_path, RemotePolicy(timeout=TIMEOUT))
    body, name = fetcher.fetch(f"http://rebind.example.test:{server.port}/img.png")
    assert body == PNG
    assert server.seen == [("/img.png", f"rebind.example.test:{server.port}")]
    assert fake_dns["__calls__"] == ["rebind.example.test"]


def test_falls_back_to_next_address(tmp_path, server, fake_dns):
    # 127.0.0.2 is loopback too but nothing listens on the server's port there.
    fake_dns["two.example.test"] = [["127.0.0.2", "127.0.0.1"]]
    fetcher = RemoteFetcher(tmp_path, RemotePolicy(timeout=TIMEOUT, allow_private=True))
    assert fetcher.fetch(f"http://two.example.test:{server.port}/img.png")[0] == PNG


def test_requests_without_a_checked_address_never_go_out(tmp_path, server):
    fetcher = RemoteFetcher(tmp_path, RemotePolicy(timeout=TIMEOUT, allow_private=True))
    with pytest.raises(RuntimeError, match="unchecked"):
        fetcher._session.get(server.url("/img.png"), timeout=TIMEOUT)
    assert server.seen == []


# --- TLS with a pinned address -------------------------------------------------------------------


@pytest.fixture
def tls_server(tmp_path):
    x509 = pytest.importorskip("cryptography.x509")
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)

    def cert(subject_cn, issuer_name, issuer_key, public_key, ca, sans=()):
        builder = (x509.CertificateBuilder()
                   .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject_cn)]))
                   .issuer_name(issuer_name).public_key(public_key).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=1))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in sans]), critical=False)
        return builder.sign(issuer_key, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "blogroto test CA")])
    ca_cert = cert("blogroto test CA", ca_name, ca_key, ca_key.public_key(), True)
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = cert("images.example.test", ca_name, ca_key, key.public_key(), False, ["images.example.test"])
    pem = serialization.Encoding.PEM
    (tmp_path / "ca.pem").write_bytes(ca_cert.public_bytes(pem))
    (tmp_path / "leaf.pem").write_bytes(leaf.public_bytes(pem) + key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "leaf.pem")
    srv = Server(context)
    srv.ca = str(tmp_path / "ca.pem")
    yield srv
    srv.stop()


def test_https_pinned_connection_checks_the_host_name(tmp_path, tls_server, fake_dns):
    fake_dns["images.example.test"] = [["127.0.0.1"]]
    fetcher = RemoteFetcher(tmp_path, RemotePolicy(timeout=TIMEOUT, allow_private=True))
    fetcher._session.verify = tls_server.ca  # trust the test CA only
    url = f"https://images.example.test:{tls_server.port}/img.png"
    assert fetcher.fetch(url) == (PNG, "img.png")
    assert tls_server.seen == [("/img.png", f"images.example.test:{tls_server.port}")]
    # The same server by address: its certificate does not name 127.0.0.1.
    with pytest.raises(RemoteImageError, match="TLS error"):
        fetcher.fetch(tls_server.url("/img.png"))


# --- disk cache ----------------------------------------------------------------------------------


def test_cached_copy_is_used_without_network(tmp_path, server, lax):
    url = server.url("/img.png")
    first = RemoteFetcher(tmp_path / "cache", lax).fetch(url)
    server.stop()
    assert RemoteFetcher(tmp_path / "cache", lax).fetch(url) == first == (PNG, "img.png")
    assert len(server.seen) == 1


def test_damaged_cached_copy_is_fetched_again(tmp_path, server, lax):
    fetcher = RemoteFetcher(tmp_path / "cache", lax)
    url = server.url("/img.png")
    fetcher.fetch(url)
    fetcher.cache_path(url).write_bytes(b"")
    assert fetcher.fetch(url)[0] == PNG
    assert len(server.seen) == 2
    assert fetcher.cache_path(url).read_bytes() == PNG


def test_failed_fetches_are_remembered_and_retried_later(fetcher, server, monkeypatch):
    clock = [1_000_000.0]
    monkeypatch.setattr(remote_fetcher, "now", lambda: clock[0])
    url = server.url("/html")
    with pytest.raises(RemoteImageError, match="not an image") as first:
        fetcher.fetch(url)
    assert first.value.retry_at == clock[0] + 600
    # remembered: no request (and no DNS lookup) before the retry time, the reason still given
    clock[0] += 599
    with pytest.raises(RemoteImageError, match=r"not an image .*remembered from an earlier build.*--refresh-remote"):
        fetcher.fetch(url)
    assert len(server.seen) == 1 and fetcher.recheck_at[url] == first.value.retry_at
    # after 10 minutes it is tried again; a second failure waits twice as long, and so on to a day
    clock[0] += 2
    with pytest.raises(RemoteImageError) as second:
        fetcher.fetch(url)
    assert len(server.seen) == 2 and second.value.retry_at == clock[0] + 1200
    assert [remote.retry_delay(n) for n in (1, 2, 3, 4)] == [600, 1200, 2400, 4800]
    assert remote.retry_delay(20) == 86400
    # --refresh-remote ignores the remembered failure
    fetcher.refresh = True
    with pytest.raises(RemoteImageError):
        fetcher.fetch(url)
    assert len(server.seen) == 3
    # other limits (a site that raised max_bytes, say): the remembered failure does not apply
    fetcher.refresh = False
    other = RemoteFetcher(fetcher.cache_dir.parent, RemotePolicy(timeout=TIMEOUT, allow_private=True,
                                                                 total_timeout=5.0, max_bytes=10**6))
    with pytest.raises(RemoteImageError):
        other.fetch(url)
    assert len(server.seen) == 4


def test_a_url_that_works_again_is_fetched_and_forgotten_as_failed(tmp_path, lax, server, monkeypatch):
    clock = [time.time() + 7200]  # the retry is due by this clock only: the patch must reach the fetcher
    monkeypatch.setattr(remote_fetcher, "now", lambda: clock[0])
    f = RemoteFetcher(tmp_path, lax)
    url = server.url("/img.png")
    path = f.cache_path(url)
    path.parent.mkdir(parents=True)
    path.with_name(path.name + ".failed.json").write_text(json.dumps(
        {"url": url, "reason": "HTTP 503", "failures": 3, "retry_at": clock[0] - 1, "policy": f._policy_key()}))
    assert f.fetch(url)[0] == PNG
    assert not path.with_name(path.name + ".failed.json").exists()


def test_cached_copy_is_revalidated_after_duration(tmp_path, server, monkeypatch):
    clock = [1_000_000.0]
    monkeypatch.setattr(remote_fetcher, "now", lambda: clock[0])
    policy = RemotePolicy(timeout=TIMEOUT, allow_private=True, duration=3600)
    f = RemoteFetcher(tmp_path, policy)
    url = server.url("/etag.png")
    assert f.fetch(url)[0] == PNG and f.recheck_at[url] == clock[0] + 3600
    clock[0] += 3599
    assert f.fetch(url)[0] == PNG and len(server.seen) == 1  # within the duration: no request
    clock[0] += 2
    assert f.fetch(url)[0] == PNG and len(server.seen) == 2  # due: a conditional request, 304
    assert server.httpd.conditional[-1] == ('"v1"', "Wed, 21 Oct 2026 07:28:00 GMT")
    assert f.recheck_at[url] == clock[0] + 3600
    server.httpd.version = 2  # the image changed on the server
    clock[0] += 3601
    assert f.fetch(url)[0] == make_png(3, 3) and f.cache_path(url).read_bytes() == make_png(3, 3)
    # Last-Modified alone works too
    lm = server.url("/lm.png")
    f.fetch(lm)
    clock[0] += 3601
    assert f.fetch(lm)[0] == PNG and server.seen[-1][0] == "/lm.png"
    assert server.httpd.conditional[-1] == (None, "Wed, 21 Oct 2026 07:28:00 GMT")
    # an unreachable server leaves the cached copy in use, asked again next time
    server.stop()
    clock[0] += 3601
    assert f.fetch(url)[0] == make_png(3, 3) and f.recheck_at[url] == clock[0]
    # --refresh-remote revalidates even within the duration; '*' (inf) never does
    never = RemoteFetcher(tmp_path, RemotePolicy(timeout=TIMEOUT, allow_private=True, duration=float("inf")))
    clock[0] += 10**9
    assert never.fetch(url)[0] == make_png(3, 3) and never.recheck_at[url] is None


def test_guarded_download_failures_are_remembered_and_keep_a_cached_copy(tmp_path, server, monkeypatch):
    """Whatever the guarded download turns into a RemoteImageError (an unexpected exception, the
    whole-fetch deadline) is remembered like any failure, and a revalidation that fails so leaves
    the cached copy in use."""
    clock = [1_000_000.0]
    monkeypatch.setattr(remote_fetcher, "now", lambda: clock[0])
    # no deadline in play here: a roomy one, so a busy machine cannot turn the ValueError into a
    # timeout (seen once in CI with the 0.5 s one)
    roomy = RemoteFetcher(tmp_path, RemotePolicy(timeout=10 * TIMEOUT, allow_private=True, duration=3600))
    url = server.url("/bad-location")
    with pytest.raises(RemoteImageError, match="cannot fetch: ValueError") as first:
        roomy.fetch(url)
    assert first.value.retry_at == clock[0] + 600
    with pytest.raises(RemoteImageError, match="remembered from an earlier build"):
        roomy.fetch(url)
    assert [p for p, _ in server.seen].count("/bad-location") == 1
    f = RemoteFetcher(tmp_path, RemotePolicy(timeout=TIMEOUT, allow_private=True, duration=3600))
    # the deadline, without a cached copy: remembered too
    drip = server.url("/drip")
    with pytest.raises(RemoteImageError, match="timed out after"):
        f.fetch(drip)
    assert f.cache_path(drip).with_name(f.cache_path(drip).name + ".failed.json").exists()
    # a cached copy due for revalidation whose server now fails unexpectedly: the copy stays
    good = server.url("/img.png")
    assert f.fetch(good)[0] == PNG
    clock[0] += 3601

    def boom(*args, **kwargs):
        raise ValueError("something requests did not expect")

    monkeypatch.setattr(f._session, "send", boom)
    assert f.fetch(good)[0] == PNG and f.recheck_at[good] == clock[0]
    assert not f.cache_path(good).with_name(f.cache_path(good).name + ".failed.json").exists()


# --- names ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("url,fmt,name", [
    ("https://x.org/a/b/Photo%20One.JPG?w=3", "jpeg", "Photo-One.jpg"),
    ("https://x.org/a/b/cat.jpeg", "jpeg", "cat.jpeg"),
    ("https://x.org/a/b/cat.png", "jpeg", "cat.jpg"),          # misleading extension replaced
    ("https://x.org/image.php?id=4", "png", "image.php.png"),
    ("https://x.org/", "gif", "image.gif"),
    ("https://x.org/..%2F..%2Fetc%2Fpasswd", "png", "etc-passwd.png"),
    ("https://x.org/.hidden", "webp", "hidden.webp"),
    ("https://x.org/" + "a" * 300 + ".png", "png", "a" * 80 + ".png"),
])
def test_suggested_name(url, fmt, name):
    assert suggested_name(url, fmt) == name
    assert "/" not in name and not name.startswith(".")


# --- the build: remembered failures, revalidation, --refresh-remote ------------------------------


def test_build_does_not_refetch_an_unreachable_image_until_it_is_due(tmp_path, server, monkeypatch):
    from blogroto.build import Builder, BuildOptions
    from tests.test_build import make_filter, write

    clock = [2_000_000_000.0]
    monkeypatch.setattr(time, "time", lambda: clock[0])
    site = tmp_path / "site"
    write(site / "_config.yml", "algorotoscope:\n  remote: {allow_private: true, timeout: 2, duration: 1h}\n")
    make_filter(site / "_filters", "fake")
    url = server.url("/gone.png")
    write(site / "_posts/2024-01-01-a.md", f"---\nalgorotoscope: fake\n---\n![x]({url})\n")

    processed = []  # the documents a build processed ("no image was stylized" is logged for this one)

    def build(**options):
        return Builder(site, BuildOptions(log=processed.append, **options)).build()

    first = build()
    assert len(processed) == 1 and len(server.seen) == 1
    (warning,) = first.warnings
    assert "remote image left as it is: HTTP 404" in warning
    # nothing changed: the post is not processed, the server not asked, the warning still reported
    again = build()
    assert len(processed) == 1 and len(server.seen) == 1 and again.warnings == [warning]
    # --refresh-remote asks now
    build(refresh_remote=True)
    assert len(processed) == 2 and len(server.seen) == 2
    # the retry time (10 min after the first failure, 20 after the second) comes: asked again
    clock[0] += 1199
    build()
    assert len(processed) == 2 and len(server.seen) == 2
    clock[0] += 2
    build()
    assert len(processed) == 3 and len(server.seen) == 3


def test_malformed_cached_validators_are_not_sent(tmp_path, server, monkeypatch):
    """The fetch record comes from the cache (untrusted): an ETag with a header break in it, or a
    megabyte of Last-Modified, would make every revalidation fail and keep the stale copy forever.
    Such values count as absent: the next revalidation is a plain GET that repairs the record."""
    clock = [time.time() + 7200]  # ahead of the real clock: only a moved clock makes the copy stale
    monkeypatch.setattr(remote_fetcher, "now", lambda: clock[0])
    f = RemoteFetcher(tmp_path, RemotePolicy(timeout=TIMEOUT, allow_private=True, duration=3600))
    url = server.url("/etag.png")
    assert f.fetch(url)[0] == PNG
    record = f.cache_path(url).with_name(f.cache_path(url).name + ".json")
    for etag, modified in (("a\r\nX-Evil: 1", "x" * 2_000_000), (["list"], 7), ("", "\u00e9t\u00e9")):
        record.write_text(json.dumps({"url": url, "fetched": clock[0], "etag": etag, "last_modified": modified}))
        clock[0] += 3601
        seen = len(server.seen)
        assert f.fetch(url)[0] == PNG and len(server.seen) == seen + 1
        assert server.httpd.conditional[-1] == (None, None)  # nothing malformed sent
        assert json.loads(record.read_text())["etag"] == '"v1"'  # the record repaired


def test_a_cached_download_the_ledger_does_not_vouch_for_is_fetched_again(tmp_path, server):
    f = RemoteFetcher(tmp_path, RemotePolicy(timeout=TIMEOUT, allow_private=True, duration=3600))
    url = server.url("/img.png")
    assert f.fetch(url)[0] == PNG and len(server.seen) == 1
    assert f.fetch(url)[0] == PNG and len(server.seen) == 1  # fresh copy: no request
    f.is_genuine = lambda rel: False
    assert f.fetch(url)[0] == PNG and len(server.seen) == 2


def test_build_never_publishes_a_remote_copy_swapped_in_the_cache(tmp_path, server):
    """Anyone who can write to a restored CI cache could swap a downloaded body for another image
    that decodes; the ledger's hash catches it and the URL is fetched again."""
    from blogroto.build import Builder, BuildOptions
    from tests.test_build import FakeStylizer, make_filter, write

    site = tmp_path / "site"
    write(site / "_config.yml", "algorotoscope:\n  remote: {allow_private: true, timeout: 2, duration: 1h}\n")
    make_filter(site / "_filters", "fake")
    url = server.url("/img.png")
    write(site / "_posts/2024-01-01-a.md", f"---\nalgorotoscope: fake\n---\n![x]({url})\n")

    def build():
        b = Builder(site, BuildOptions(force=True))
        b.stylizer = FakeStylizer()
        return b.build()

    assert build().images_stylized == 1 and len(server.seen) == 1
    body = RemoteFetcher(site / ".blogroto-cache").cache_path(url)
    assert body.read_bytes() == PNG
    build()
    assert len(server.seen) == 1  # a genuine fresh copy is used as it is
    body.write_bytes(make_png(3, 3))  # a valid image, but not the one downloaded
    report = build()
    assert len(server.seen) == 2 and body.read_bytes() == PNG
    assert report.images_stylized == 0  # the real image's stylized entry was still cached


def test_build_revalidates_a_cached_remote_image_after_its_duration(tmp_path, server, monkeypatch):
    from blogroto.build import Builder
    from tests.test_build import FakeStylizer, make_filter, write

    clock = [2_000_000_000.0]
    monkeypatch.setattr(time, "time", lambda: clock[0])
    site = tmp_path / "site"
    write(site / "_config.yml", "algorotoscope:\n  remote: {allow_private: true, timeout: 2, duration: 1h}\n")
    make_filter(site / "_filters", "fake")
    write(site / "_posts/2024-01-01-a.md", f"---\nalgorotoscope: fake\n---\n![x]({server.url('/etag.png')})\n")

    def build():
        b = Builder(site)
        b.stylizer = FakeStylizer()
        return b.build()

    assert build().images_stylized == 1 and len(server.seen) == 1
    clock[0] += 3599
    assert build().posts_rebuilt == 0 and len(server.seen) == 1
    clock[0] += 2
    report = build()
    assert len(server.seen) == 2 and server.httpd.conditional[-1][0] == '"v1"'  # 304: same image
    assert report.images_stylized == 0 and report.warnings == []


def test_remote_cache_files_are_recorded_and_collected_through_the_ledger(tmp_path, server, monkeypatch):
    """Downloads, their fetch records (`.json`) and failure records (`.failed.json`) are written
    through the cache's OwnedTree and recorded in its EntryLedger, so gc removes them once nothing
    references their URL, and leaves alone remote files blogroto did not record writing."""
    import hashlib

    from blogroto.build import Builder
    from blogroto.build.ledger import LEDGER_NAME
    from tests.test_build import FakeStylizer, make_filter, write

    clock = [2_000_000_000.0]
    monkeypatch.setattr(time, "time", lambda: clock[0])
    site = tmp_path / "site"
    write(site / "_config.yml", "algorotoscope:\n  remote: {allow_private: true, timeout: 2, duration: 1h}\n")
    make_filter(site / "_filters", "fake")
    good, gone = server.url("/etag.png"), server.url("/gone.png")
    post = site / "_posts/2024-01-01-a.md"
    write(post, f"---\nalgorotoscope: fake\n---\n![x]({good})\n![y]({gone})\n")

    def build():
        b = Builder(site)
        b.stylizer = FakeStylizer()
        return b.build()

    build()
    cache = site / ".blogroto-cache"
    rels = []
    for url, suffixes in ((good, ("", ".json")), (gone, (".failed.json",))):
        digest = hashlib.sha256(url.encode()).hexdigest()
        rels += [f"remote/{digest[:2]}/{digest}{s}" for s in suffixes]
    ledger = json.loads((cache / LEDGER_NAME).read_bytes())["entries"]
    assert all(rel in ledger and (cache / rel).is_file() for rel in rels), sorted(ledger)
    foreign = cache / "remote" / rels[0].split("/")[1] / (rels[0].split("/")[2] + "0.json")
    foreign.write_text("{}")  # not written by blogroto: never deleted
    # still referenced: gc keeps the downloads and their records
    assert Builder(site).gc().remote_removed == 0 and all((cache / rel).is_file() for rel in rels)
    write(post, "---\nalgorotoscope: fake\n---\nno images\n")
    build()
    report = Builder(site).gc()
    assert report.remote_removed == 3 and not any((cache / rel).exists() for rel in rels)
    assert foreign.is_file() and report.left_alone >= 1


def test_malformed_remote_fields_in_a_manifest_are_dropped(tmp_path, server):
    """`recheck` and `rwarn` (remote failure memory) are validated with the rest of the manifest:
    a hostile or damaged value drops the entry (rebuilt) instead of crashing the build."""
    from blogroto.build import Builder
    from tests.test_build import FakeStylizer, make_filter, write

    site = tmp_path / "site"
    write(site / "_config.yml", "algorotoscope:\n  remote: {allow_private: true, timeout: 2}\n")
    make_filter(site / "_filters", "fake")
    write(site / "_posts/2024-01-01-a.md", f"---\nalgorotoscope: fake\n---\n![x]({server.url('/gone.png')})\n")

    def build():
        b = Builder(site)
        b.stylizer = FakeStylizer()
        return b.build()

    build()
    (path,) = (site / ".blogroto-cache/builds").glob("*.json")
    for field, bad in (("recheck", "soon"), ("recheck", float("nan")), ("rwarn", "not a list"), ("rwarn", [1])):
        data = json.loads(path.read_text())
        data["files"]["_posts/2024-01-01-a.md"][field] = bad
        path.write_text(json.dumps(data))
        report = build()
        assert any("ignored 1 build manifest entries" in w for w in report.warnings), (field, report.warnings)
        assert report.errors == [] and (site / "_blogroto/site/_posts/2024-01-01-a.md").is_file()
        clean = build()  # the entry was written again, well-formed
        assert not any("ignored" in w for w in clean.warnings), clean.warnings


@pytest.mark.parametrize("record", [
    {"retry_at": "soon", "failures": "many"},
    {"retry_at": 1e300, "failures": 10**30},
    {"retry_at": float("nan"), "failures": True},
])
def test_hostile_cache_records_count_as_no_record(tmp_path, lax, server, monkeypatch, record):
    """Fetch and failure records are cache contents, untrusted: a wrong type, a retry time further
    away than any failure sets, NaN, never crash the fetch or hold a URL back for ever."""
    clock = [1_000_000.0]
    monkeypatch.setattr(remote_fetcher, "now", lambda: clock[0])
    f = RemoteFetcher(tmp_path, lax)
    url = server.url("/img.png")
    path = f.cache_path(url)
    path.parent.mkdir(parents=True)
    path.with_name(path.name + ".failed.json").write_text(
        json.dumps(dict(record, url=url, reason="HTTP 503", policy=f._policy_key())))
    assert f.fetch(url)[0] == PNG and len(server.seen) == 1
    path.with_name(path.name + ".json").write_text(json.dumps({"fetched": record["retry_at"], "etag": 3}))
    assert f.fetch(url)[0] == PNG  # a bad fetch time falls back to the file's mtime
    bad = server.url("/html")
    bpath = f.cache_path(bad)
    bpath.parent.mkdir(parents=True, exist_ok=True)
    bpath.with_name(bpath.name + ".failed.json").write_text(json.dumps(dict(record, url=bad)))
    with pytest.raises(RemoteImageError, match="not an image") as exc:
        f.fetch(bad)
    assert exc.value.retry_at <= clock[0] + remote.MAX_RETRY
