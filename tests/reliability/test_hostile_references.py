"""References that try to reach outside the site or into the local network.

Local paths are confined to the site (`..`, absolute paths, Windows paths, encoded dots, symlinks:
refused with a warning). Only http/https are fetched; every other scheme is left alone. Remote
fetches have a timeout, a size cap (also after decompression) and a redirect limit, and never reach
loopback/private addresses unless `_config.yml` says `algorotoscope: {remote: {allow_private: true}}`:
a real HTTP server on 127.0.0.1 proves that the default build does not even connect.
"""

from __future__ import annotations

import gzip
import http.server
import socket
import threading
import time

import pytest

from tests.reliability.kit import files_under, photo, write

IMAGE = photo((40, 30), seed=11)
BIG = photo((400, 300), seed=12, quality=100)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def log_message(self, *args):
        pass

    def body(self, data: bytes, length: bool = True, headers: dict | None = None):
        self.send_response(200)
        self.send_header("Content-Type", "image/jpeg")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if length:
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self.server.seen.append(self.path)
        path = self.path.split("?")[0]
        try:
            if path.startswith("/img"):
                self.body(IMAGE)
            elif path == "/slow":
                time.sleep(3)
                self.body(IMAGE)
            elif path == "/big":
                self.body(BIG)
            elif path == "/big-undeclared":
                self.body(BIG, length=False)
            elif path == "/gzip-bomb":
                # 64 MB of zeros behind a JPEG header, 64 kB on the wire
                self.body(gzip.compress(IMAGE[:20] + b"\x00" * (64 << 20), 9), headers={"Content-Encoding": "gzip"})
            elif path == "/bad-location":  # crashed the whole build (ValueError inside requests)
                self.send_response(302)
                self.send_header("Location", "http://[::1/x")
                self.end_headers()
            elif path == "/drip":  # a byte every 0.2 s: each read within the timeout, the whole far beyond
                self.send_response(200)
                self.send_header("Content-Type", "image/jpeg")
                self.end_headers()
                self.wfile.write(IMAGE[:20])
                for _ in range(100):
                    time.sleep(0.2)
                    self.wfile.write(b"\x00")
                    self.wfile.flush()
            elif path == "/drip-headers":
                self.wfile.write(b"HTTP/1.0 200 OK\r\nX-Slow: ")
                for _ in range(100):
                    time.sleep(0.2)
                    self.wfile.write(b"a")
                    self.wfile.flush()
            elif path == "/loop":
                self.send_response(302)
                self.send_header("Location", "/loop")
                self.end_headers()
            elif path.startswith("/r/"):
                n = int(path[3:])
                self.send_response(301)
                self.send_header("Location", "/img.jpg" if n == 0 else f"/r/{n - 1}")
                self.end_headers()
            else:
                self.send_response(404)
                self.end_headers()
        except (BrokenPipeError, ConnectionResetError):
            pass


@pytest.fixture
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    httpd.seen = []
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    httpd.url = lambda path: f"http://127.0.0.1:{httpd.server_address[1]}{path}"
    yield httpd
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def connections(monkeypatch):
    """Every outgoing TCP connect of this process (the build runs in-process)."""
    seen = []
    real = socket.socket.connect

    def connect(self, address):
        seen.append(address)
        return real(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    return seen


def warnings_by_line(kit, result, rel) -> dict[int, str]:
    out = {}
    prefix = f"{kit.root}/{rel}:"
    for w in result.lines("warning"):
        if w.startswith(prefix):
            line, _, msg = w[len(prefix):].partition(": ")
            out[int(line)] = msg
    return out


def refs_post(kit, name: str, refs: list[str]) -> str:
    """A post with one reference per line, on lines 5, 7, 9, ..."""
    return kit.post(name, "".join(f"![r{i}]({r})\n\n" for i, r in enumerate(refs)))


# -- local paths ------------------------------------------------------------------------------


def test_paths_out_of_the_site_are_refused(kit, tmp_path):
    outside = write(tmp_path / "outside.jpg", photo(seed=99))  # beside the site: a real image
    secret = outside.read_bytes()
    refs = [
        "../../../../../../etc/passwd",
        "../../outside.jpg",
        "/../outside.jpg",
        "/assets/../../outside.jpg",
        str(outside),  # an absolute file-system path
        "/etc/passwd",
        "%2e%2e/%2e%2e/outside.jpg",
        "..%2f..%2foutside.jpg",
        "file:///etc/passwd",
        f"file://{outside}",
        "C:\\Windows\\win.ini",
        "\\\\server\\share\\x.jpg",
        "..\\..\\outside.jpg",
    ]
    rel = refs_post(kit, "escape", refs)
    kit.write("_posts/2024-02-02-card.md", "---\nalgorotoscope: tiny\nimage: ../outside.jpg\n---\nno body images\n")
    result = kit.build()
    assert result.code == 0, result.text
    got = warnings_by_line(kit, result, rel)
    for i, ref in enumerate(refs):
        assert got.get(5 + 2 * i) == f"refusing image reference {ref!r}: it points outside the site", (ref, got)
    card = warnings_by_line(kit, result, "_posts/2024-02-02-card.md")
    assert card[3] == "refusing image reference '../outside.jpg': it points outside the site", card
    text = kit.output(rel)
    assert all(f"]({r})" in text for r in refs)
    for folder in (kit.out, kit.cache):
        for name, data in files_under(folder).items():
            assert secret not in data and b"root:x:0:0" not in data, name
    kit.assert_good_post_built()
    assert kit.build("--strict").code == 1


def test_other_schemes_are_ignored(kit, server, connections):
    port = server.server_address[1]
    refs = [f"ftp://127.0.0.1:{port}/img.jpg", f"gopher://127.0.0.1:{port}/img.jpg", "javascript:alert(1)",
            "mailto:a@example.org", "data:image/png;base64,iVBORw0KGgo=", f"ws://127.0.0.1:{port}/img.jpg",
            "about:blank", "#anchor"]
    rel = refs_post(kit, "schemes", refs)
    result = kit.build()
    assert result.code == 0, result.text
    assert warnings_by_line(kit, result, rel) == {}
    assert server.seen == [] and connections == []
    assert all(f"]({r})" in kit.output(rel) for r in refs)
    kit.assert_good_post_built()


# -- remote images ----------------------------------------------------------------------------


def test_default_build_never_contacts_private_addresses(kit, server, connections):
    port = server.server_address[1]
    refs = [
        server.url("/img.jpg"),
        f"http://localhost:{port}/img.jpg",
        f"//127.0.0.1:{port}/img.jpg",  # protocol-relative
        f"http://2130706433:{port}/img.jpg",  # 127.0.0.1 as one number
        f"http://0x7f.0.0.1:{port}/img.jpg",
        f"http://127.1:{port}/img.jpg",
        f"http://[::1]:{port}/img.jpg",
        f"http://[::ffff:127.0.0.1]:{port}/img.jpg",
        f"http://0.0.0.0:{port}/img.jpg",
        "http://169.254.169.254/latest/meta-data/iam.jpg",  # cloud metadata
        "http://10.0.0.1/img.jpg",
        "http://192.168.1.1/img.jpg",
        f"http://user:hunter2@127.0.0.1:{port}/img.jpg",
    ]
    rel = refs_post(kit, "ssrf", refs)
    result = kit.build()
    assert result.code == 0, result.text
    got = warnings_by_line(kit, result, rel)
    assert len(got) == len(refs), got
    for i, ref in enumerate(refs):
        msg = got[5 + 2 * i]
        assert msg.startswith("remote image left as it is: ") and "refused" in msg or "cannot resolve" in msg, (ref, msg)
    assert "hunter2" not in result.err  # credentials are masked in messages
    assert server.seen == [], server.seen  # the server saw nothing ...
    assert connections == [], connections  # ... because nothing connected anywhere
    assert all(f"]({r})" in kit.output(rel) for r in refs)
    # nothing downloaded: at most the remembered refusals (blogroto.build.remote retries them later)
    assert all(f.name.endswith(".failed.json") for f in (kit.cache / "remote").rglob("*") if f.is_file())
    kit.assert_good_post_built()


def test_private_addresses_work_when_the_site_allows_them(kit, server):
    kit.write_config(remote={"allow_private": True, "timeout": 2})
    rel = refs_post(kit, "lan", [server.url("/img.jpg"), server.url("/r/3")])
    result = kit.build()
    assert result.code == 0 and not result.lines("warning"), result.text
    assert len(kit.stylized(rel)) == 2
    assert server.seen == ["/img.jpg", "/r/3", "/r/2", "/r/1", "/r/0", "/img.jpg"]
    kit.write(rel, (kit.root / rel).read_text() + "\nedited\n")
    assert kit.build().code == 0
    assert len(server.seen) == 6  # downloads are cached: no second fetch


@pytest.mark.parametrize("path, settings, message", [
    ("/slow", {"timeout": 0.5}, "timed out"),
    ("/drip", {"timeout": 1}, "timed out after 1s in total"),
    ("/drip-headers", {"timeout": 1}, "timed out after 1s in total"),
    ("/bad-location", {}, "cannot fetch: ValueError: Invalid IPv6 URL"),
    ("/big", {"max_bytes": 5000}, f"too large: {len(BIG)} bytes, the limit is 5000"),
    ("/big-undeclared", {"max_bytes": 5000}, "too large: more than 5000 bytes"),
    ("/gzip-bomb", {"max_bytes": 1 << 20}, "too large: more than 1048576 bytes"),
    ("/loop", {}, "more than 5 redirects"),
    ("/r/9", {}, "more than 5 redirects"),
    ("/missing", {}, "HTTP 404"),
])
def test_remote_limits(kit, server, path, settings, message):
    kit.write_config(remote={"allow_private": True, **settings})
    rel = refs_post(kit, "limits", [server.url(path)])
    started = time.monotonic()
    result = kit.build()
    assert result.code == 0, result.text
    got = warnings_by_line(kit, result, rel)
    assert message in got.get(5, ""), got
    assert got[5].startswith("remote image left as it is: ")
    assert f"]({server.url(path)})" in kit.output(rel)
    kit.assert_good_post_built()
    # nothing downloaded: only the remembered failure
    assert all(f.name.endswith(".failed.json") for f in (kit.cache / "remote").rglob("*") if f.is_file())
    if path in ("/slow", "/drip", "/drip-headers"):
        assert time.monotonic() - started < 10  # the drip went on for 20 s: `timeout` bounds the whole transfer
    assert len(result.lines("warning")) == 1  # one bad image costs one warning, on every rebuild
    again = kit.build()
    assert again.code == 0 and len(again.lines("warning")) == 1, again.text


def test_remote_can_be_switched_off(kit, server, connections):
    kit.write_config(remote=False)
    rel = refs_post(kit, "off", [server.url("/img.jpg")])
    result = kit.build()
    assert result.code == 0 and not result.lines("warning"), result.text
    assert server.seen == [] and connections == []
    assert f"]({server.url('/img.jpg')})" in kit.output(rel)
