"""`blogroto build --check / --strict / --json`: exit codes, listings, and that --check writes nothing.

The site is built once in-process with a fake stylizer (colour inversion); every CLI run after that
finds its images in the cache, so nothing here imports TensorFlow.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from PIL import Image, ImageOps

from blogroto.build import Builder, BuildOptions
from blogroto.cli import cli
from blogroto.fsutil import atomic_write_bytes

from .conftest import REPO

A = "_posts/2024-01-01-a.md"
B = "_posts/2024-01-02-b.md"


class InvertStylizer:
    """Stands in for blogroto.engine.stylize.Stylizer (whose keyword options this fake ignores)."""

    def stylize_file(self, src, dst, flt, options, name=None, **_):
        im = Image.open(io.BytesIO(src if isinstance(src, bytes) else Path(src).read_bytes()))
        out = io.BytesIO()
        ImageOps.invert(im.convert("RGB")).save(out, im.format or "PNG")
        atomic_write_bytes(dst, out.getvalue())


def image_bytes(seed: int, fmt: str = "JPEG") -> bytes:
    rng = np.random.default_rng(seed)
    out = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (12, 16, 3), dtype=np.uint8)).save(out, fmt)
    return out.getvalue()


def write(path: Path, data: str | bytes) -> None:
    """Replace, never write in place: outputs are hard links to unchanged sources."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, data.encode() if isinstance(data, str) else data)


def fake_filter(folder: Path, slug: str) -> None:
    buffer = io.BytesIO()
    np.savez(buffer, w=np.zeros(4, np.float32))
    write(folder / slug / "weights.npz", buffer.getvalue())
    write(folder / slug / "filter.yaml", yaml.safe_dump({
        "format": 1, "name": slug, "display_name": slug.title(),
        "source": {"title": "An Artwork", "creator": "A. Painter", "licence": "CC0-1.0", "credit": "Public domain"},
        "network": {"width": 4, "blocks": 1}}))


def post(title: str, *images: str, flt: str = "ink") -> str:
    return f"---\ntitle: {title}\nalgorotoscope: {flt}\n---\n" + "".join(f"![i]({i})\n\n" for i in images)


def make_site(root: Path) -> Path:
    write(root / "_config.yml", "title: CI\nalgorotoscope:\n  remote: {allow_private: true, timeout: 5}\n")
    fake_filter(root / "_filters", "ink")
    write(root / "assets/img/a.jpg", image_bytes(1))
    write(root / "assets/img/b.png", image_bytes(2, "PNG"))
    write(root / A, post("A", "/assets/img/a.jpg"))
    write(root / B, post("B", "/assets/img/b.png"))
    write(root / "index.md", "---\ntitle: Home\n---\nHome.\n")
    return root


@pytest.fixture
def site(tmp_path) -> Path:
    root = make_site(tmp_path / "site")
    builder = Builder(root, BuildOptions())
    builder.stylizer = InvertStylizer()
    report = builder.build()
    assert report.ok and report.images_stylized == 2, report.errors
    return root


def blogroto(*args: str):
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def tree_state(*roots: Path) -> dict[str, tuple]:
    """Every file and folder under `roots`: name, size, mtime and content hash."""
    state = {}
    for root in roots:
        for folder, dirs, files in os.walk(root):
            for name in dirs + files:
                path = Path(folder, name)
                st = path.lstat()
                digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None
                state[str(path)] = (st.st_size if digest else None, st.st_mtime_ns, digest)
    return state


# -- --check ---------------------------------------------------------------------------------


def test_check_passes_on_an_up_to_date_output(site):
    code, out, err = blogroto("build", str(site), "--check")
    assert code == 0, err
    assert out.startswith("check: up to date (2 posts, ")
    assert err == ""


def test_check_fails_listing_a_changed_post(site):
    write(site / A, post("A, edited", "/assets/img/a.jpg"))
    code, out, _ = blogroto("build", str(site), "--check")
    assert code == 1
    assert f"would change: {site / A}" in out.splitlines()
    assert str(site / B) not in out
    assert re.search(r"^check: 1 post would change, \d+ other output files?, 0 images to stylize, 0 errors ", out, re.M)


def test_check_lists_a_post_with_an_image_not_yet_stylized(site):
    write(site / "assets/img/c.jpg", image_bytes(3))
    write(site / B, post("B", "/assets/img/b.png", "/assets/img/c.jpg"))
    code, out, _ = blogroto("build", str(site), "--check")
    assert code == 1
    assert f"would change: {site / B}" in out.splitlines()
    assert "1 image to stylize" in out


def test_check_lists_a_post_whose_stylized_output_image_was_deleted(site):
    # The post's text is unchanged; only its image is missing from the output.
    (image,) = (site / "_blogroto/site/assets/algorotoscope").glob("a-ink-*")
    image.unlink()
    code, out, _ = blogroto("build", str(site), "--check")
    assert code == 1
    assert out.splitlines()[0] == f"would change: {site / A}"


def test_check_fails_on_a_deleted_post(site):
    (site / B).unlink()
    code, out, _ = blogroto("build", str(site), "--check")
    assert code == 1 and f"would change: {site / '_blogroto/site' / B}" in out.splitlines()


def test_check_fails_on_a_missing_image(site):
    write(site / A, post("A", "/assets/img/a.jpg", "/assets/img/nope.jpg"))
    code, _, err = blogroto("build", str(site), "--check")
    assert code == 1
    assert f"error: {site / A}:7: image not found: /assets/img/nope.jpg" in err.splitlines()


def test_check_fails_on_an_unknown_filter(site):
    write(site / B, post("B", "/assets/img/b.png", flt="inkk"))
    code, _, err = blogroto("build", str(site), "--check")
    assert code == 1
    assert "unknown filter 'inkk'" in err and "Did you mean: ink?" in err


def test_missing_image_is_only_a_warning_without_check(site):
    write(site / A, post("A", "/assets/img/a.jpg", "/assets/img/nope.jpg"))
    code, out, err = blogroto("build", str(site))
    assert code == 0
    assert "warning:" in err and "image not found" in err


# -- --strict --------------------------------------------------------------------------------


def test_strict_turns_warnings_into_errors(site):
    write(site / A, post("A", "/assets/img/a.jpg", "../../../../etc/hostname.jpg"))
    code, out, err = blogroto("build", str(site))
    assert code == 0
    assert "warning:" in err and "refusing image reference" in err
    assert "1 warning, 0 errors" in out  # singular for one

    code, out, err = blogroto("build", str(site), "--strict")
    assert code == 1
    (line,) = [x for x in err.splitlines() if "refusing" in x]
    assert line.startswith(f"error: {site / A}:7: ") and line.endswith("(--strict)")
    # the summary agrees with the exit status: the warning is counted as the error it became
    assert "0 warnings, 1 error," in out and "0 errors" not in out


def test_strict_passes_a_clean_site_and_reports_stylizing(site, tmp_path):
    code, out, err = blogroto("build", str(site), "--strict")
    assert code == 0, err
    assert "2 posts, 0 images stylized, 0 cache hits, 0 warnings, 0 errors" in out


# -- --json ----------------------------------------------------------------------------------


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "blogroto", *args], capture_output=True, text=True, env=env,
                          timeout=120)


def test_json_summary_owns_stdout(site):
    write(site / A, post("A, edited", "/assets/img/a.jpg"))
    proc = run_cli("build", str(site), "--check", "--json")
    assert proc.returncode == 1, proc.stderr
    data = json.loads(proc.stdout)  # the whole of stdout is one JSON document
    assert {"posts", "images_stylized", "cache_hits", "warnings", "errors", "seconds", "would_change"} <= set(data)
    assert data["ok"] is False and data["check"] is True
    assert A in data["would_change"] and data["would_change_posts"] == [str(site / A)]
    assert data["posts"] == 2 and data["images_stylized"] == 0 and data["cache_hits"] == 1
    assert isinstance(data["seconds"], float)
    # a dry run rebuilds nothing: it reports what a build would rebuild under its own name
    assert data["posts_rebuilt"] == 0 and data["posts_to_rebuild"] == 1

    proc = run_cli("build", str(site), "--json", "--strict")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["ok"] is True and data["errors"] == [] and data["would_change"] == []
    assert data["posts"] == 2 and data["cache_hits"] == 1


def test_json_on_a_configuration_error(site):
    write(site / "_config.yml", "title: [unclosed\n")
    proc = run_cli("build", str(site), "--json")
    assert proc.returncode == 2
    data = json.loads(proc.stdout)
    assert data["ok"] is False and "_config.yml" in data["errors"][0]
    # the same keys as a successful run's object: a CI script may read any of them
    ok = json.loads(run_cli("build", str(make_site(site.parent / "good")), "--json", "--check").stdout)
    assert set(data) == set(ok)


# -- --check writes nothing ------------------------------------------------------------------


@pytest.fixture
def image_server():
    body = image_bytes(9)
    hits = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            hits.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield SimpleNamespace(url=f"http://127.0.0.1:{server.server_address[1]}", hits=hits)
    server.shutdown()
    server.server_close()


def test_check_writes_nothing_on_a_changed_site(site, image_server):
    write(site / A, post("A, edited", "/assets/img/a.jpg", f"{image_server.url}/remote.jpg"))  # fetched, not stored
    write(site / "assets/img/c.jpg", image_bytes(3))
    write(site / B, post("B", "/assets/img/c.jpg"))
    write(site / "new-page.md", "---\ntitle: New\n---\n")
    (site / "index.md").unlink()
    before = tree_state(site)
    code, out, _ = blogroto("build", str(site), "--check", "--verbose")
    assert code == 1
    expected = [site / A, site / B, site / "new-page.md", site / "_blogroto/site/index.md"]
    assert {f"would change: {p}" for p in expected} <= set(out.splitlines())
    assert tree_state(site) == before
    assert image_server.hits == ["/remote.jpg"]  # it did look at the remote image


def test_check_writes_nothing_on_a_site_never_built(tmp_path):
    root = make_site(tmp_path / "fresh")
    cache = tmp_path / "elsewhere-cache"
    before = tree_state(tmp_path)
    code, out, _ = blogroto("build", str(root), "--check", "--cache", str(cache))
    assert code == 1
    assert f"would change: {root / A}" in out and "2 images to stylize" in out
    assert tree_state(tmp_path) == before
    assert not cache.exists() and not (root / "_blogroto").exists()
