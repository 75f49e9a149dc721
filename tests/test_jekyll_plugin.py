"""The Jekyll plugin (`blogroto init`): real `jekyll build` and `jekyll serve` of the sample site show
stylized images, the catalog and the credits; an edit is picked up; the watcher settles."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from blogroto.commands.init import PLUGIN, PLUGIN_REL, install
from blogroto.errors import BlogrotoError

REPO = Path(__file__).resolve().parent.parent


# -- blogroto init (fast) ---------------------------------------------------------------------


def test_init_installs_plugin_and_command_once(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "_config.yml").write_text("title: T\n")
    done = install(site, command=["python3", "-m", "blogroto"])
    assert (site / PLUGIN_REL).read_bytes() == PLUGIN.read_bytes()
    assert (site / "_config.yml").read_text() == ("title: T\n\n# blogroto's Jekyll plugin (_plugins/blogroto.rb) runs this; "
                                                  "see blogroto's docs/jekyll.md\nblogroto_command: [\"python3\", \"-m\", \"blogroto\"]\n")
    assert len(done) == 2
    assert install(site) == []  # idempotent: nothing to do the second time
    (site / PLUGIN_REL).write_text("# my own changes\n")
    with pytest.raises(BlogrotoError, match="--force"):
        install(site)
    assert install(site, force=True) == [f"wrote {site / PLUGIN_REL}"]


def test_init_extends_the_config_jekyll_reads_in_its_own_line_endings(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "_config.yaml").write_bytes(b"title: T\r\nbaseurl: /b\r\n")
    install(site, command=["blogroto"])
    assert not (site / "_config.yml").exists()
    text = (site / "_config.yaml").read_bytes()
    assert text.startswith(b"title: T\r\nbaseurl: /b\r\n") and b'blogroto_command: ["blogroto"]\r\n' in text
    assert b"\n" not in text.replace(b"\r\n", b"")
    toml = tmp_path / "toml"
    toml.mkdir()
    (toml / "_config.toml").write_text('title = "T"\n')
    with pytest.raises(BlogrotoError, match="add this line"):
        install(toml)
    assert not (toml / "_plugins").exists()
    odd = tmp_path / "odd"
    odd.mkdir()
    (odd / "_plugins").write_text("not a folder")
    with pytest.raises(BlogrotoError, match="not a folder"):
        install(odd)


def test_init_refuses_symlinks(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (site / "_plugins").symlink_to(outside)
    with pytest.raises(BlogrotoError, match="symbolic link"):
        install(site)
    assert not any(outside.iterdir())


# -- real Jekyll ------------------------------------------------------------------------------


def _jekyll() -> str:
    found = shutil.which("jekyll")
    if found:
        return found
    if os.environ.get("BLOGROTO_REQUIRE_JEKYLL") == "1":
        pytest.fail("Jekyll is required (BLOGROTO_REQUIRE_JEKYLL=1) but not on PATH")
    pytest.skip("Jekyll not installed (set BLOGROTO_REQUIRE_JEKYLL=1 to make this a failure)")


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory):
    """The sample site (its real built-in filters) with the plugin installed."""
    jekyll = _jekyll()
    site = tmp_path_factory.mktemp("plugin") / "site"
    shutil.copytree(REPO / "sample_site", site, ignore=shutil.ignore_patterns("_blogroto", ".blogroto-cache", "_site"))
    install(site, command=[sys.executable, "-m", "blogroto"])
    # front matter Jekyll reshapes (a tag as a string becomes a list): the plugin must not undo that
    post = site / "_posts/2024-04-10-starry-night.md"
    text = post.read_text().replace('title: "Starry night"\n', 'title: "Starry night"\ntags: night\n', 1)
    post.write_text(text + "\nTagged {{ page.tags.size }} time(s).\n")
    return jekyll, site


def _build(jekyll: str, site: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run([jekyll, "build", "-s", str(site), "-d", str(site / "_site")], capture_output=True,
                          text=True, timeout=900, env=env)


@pytest.mark.slow
def test_jekyll_build_through_the_plugin(plugin_site):
    jekyll, site = plugin_site
    before = {p: p.read_bytes() for p in (site / "_posts").iterdir()}
    proc = _build(jekyll, site)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "blogroto:" in proc.stdout and "Error" not in proc.stdout + proc.stderr
    out = site / "_site"
    page = (out / "2024/04/10/starry-night.html").read_text()
    names = set(re.findall(r'/blog/assets/algorotoscope/([^\s"]+)', page))  # in src, srcset, poster
    for stem, ext in (("chelsea", "jpg"), ("chelsea", "webp"), ("coffee-drift", "gif"), ("rocket-drift", "mp4")):
        assert any(n.startswith(f"{stem}-starry-night-") and n.endswith(ext) for n in names), (stem, ext)
    assert all((out / "assets/algorotoscope" / name).is_file() for name in names)
    assert "restyled with a neural filter learned from" in page  # the credit
    assert "Rotoscope Notes" in (out / "filters/index.html").read_text()  # the catalog, in the site's layout
    assert "Tagged 1 time(s)." in page  # Jekyll's list of tags, not the string the author wrote
    assert (out / "filters/starry-night/artwork.jpg").is_file()
    assert {p: p.read_bytes() for p in (site / "_posts").iterdir()} == before  # the author's posts untouched
    # a rebuild with nothing changed: blogroto has nothing to do, and Jekyll copies none of its images again
    stylized = sorted((out / "assets/algorotoscope").iterdir())
    changed_at = {p: p.stat().st_ctime_ns for p in stylized}
    again = _build(jekyll, site)
    assert again.returncode == 0 and "0 images stylized" in again.stdout, again.stdout
    assert {p: p.stat().st_ctime_ns for p in stylized} == changed_at
    # ...but one that differs from blogroto's file is replaced
    victim = stylized[0]
    victim.write_bytes(b"not the image")
    assert _build(jekyll, site).returncode == 0
    assert victim.read_bytes() == (site / "_blogroto/site/assets/algorotoscope" / victim.name).read_bytes()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.read().decode("utf-8")


def _wait_for(predicate, seconds: float):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except OSError:
            value = None
        if value:
            return value
        time.sleep(0.5)
    return None


@pytest.mark.slow
@pytest.mark.parametrize("livereload", [False, True], ids=["serve", "serve-livereload"])
def test_jekyll_serve_shows_stylized_images_and_follows_edits(plugin_site, tmp_path, livereload):
    jekyll, site = plugin_site
    port = _free_port()
    log = tmp_path / "serve.log"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    extra = ["--livereload", "--livereload-port", str(_free_port())] if livereload else []
    with open(log, "w") as handle:
        server = subprocess.Popen([jekyll, "serve", "-s", str(site), "-d", str(site / "_site"), "--port", str(port),
                                   "--force_polling", *extra], stdout=handle, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}/blog/2024/04/10/starry-night.html"
    try:
        page = _wait_for(lambda: _get(url), 300)
        assert page and "/blog/assets/algorotoscope/chelsea-starry-night-" in page, log.read_text()
        image = page.split('src="/blog/assets/algorotoscope/', 1)[1].split('"', 1)[0]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/blog/assets/algorotoscope/{image}", timeout=10) as r:
            assert r.status == 200 and len(r.read()) > 1000
        if livereload:  # Jekyll injects its reload script into the stylized page
            assert "livereload.js" in page, page[-2000:]
        # an edit: the page follows, still stylized
        post = site / "_posts/2024-04-10-starry-night.md"
        marker = f"Edited while serving ({'livereload' if livereload else 'plain'})."
        post.write_text(post.read_text() + f"\n{marker}\n")
        page = _wait_for(lambda: (p := _get(url)) and marker in p and p, 120)
        assert page and "/blog/assets/algorotoscope/chelsea-starry-night-" in page, log.read_text()
        # the watcher settles: blogroto's own writes cause at most one more (no-op) regeneration
        time.sleep(6)
        settled = log.read_text().count("Regenerating")
        time.sleep(6)
        assert log.read_text().count("Regenerating") == settled, log.read_text()
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.mark.slow
def test_gem_form_runs_the_same_plugin_once(plugin_site, tmp_path):
    """`gem build` of blogroto/jekyll/jekyll-blogroto.gemspec, installed offline into a folder, and
    named in `plugins:`; with the _plugins/ copy also there, blogroto still runs once."""
    jekyll, built = plugin_site
    gem = shutil.which("gem")
    if gem is None:
        pytest.skip("RubyGems' gem command not installed")
    work = tmp_path / "gem"
    shutil.copytree(PLUGIN.parent, work, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(PLUGIN.parent.parent / "__init__.py", tmp_path / "__init__.py")  # the version the gemspec reads
    subprocess.run([gem, "build", "jekyll-blogroto.gemspec", "-o", str(tmp_path / "jb.gem")], cwd=work, check=True,
                   capture_output=True, timeout=120)
    subprocess.run([gem, "install", "--local", "--ignore-dependencies", "--no-document", "--install-dir",
                    str(tmp_path / "gems"), str(tmp_path / "jb.gem")], check=True, capture_output=True, timeout=120)
    site = tmp_path / "site"
    shutil.copytree(built, site, ignore=shutil.ignore_patterns("_site"), symlinks=True)
    with open(site / "_config.yml", "a") as config:
        config.write("\nplugins: [jekyll-blogroto]\n")
    paths = subprocess.run([gem, "env", "gempath"], capture_output=True, text=True, check=True).stdout.strip()
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "GEM_PATH": f"{tmp_path / 'gems'}:{paths}"}
    proc = subprocess.run([jekyll, "build", "-s", str(site), "-d", str(site / "_site")], capture_output=True,
                          text=True, timeout=900, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("blogroto: ") == 1, proc.stdout  # the hook is registered once
    page = (site / "_site/2024/03/02/copper-morning.html").read_text()
    assert "<picture>" in page and "/blog/assets/algorotoscope/coffee-copper-circuit-" in page
