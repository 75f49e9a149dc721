"""End to end with real Jekyll: build sample_site/, then `jekyll build` the output and check the HTML.

The sample site names the built-in filters; here tiny random filters of the same names are put in
the site's own `_filters/` (searched first) so the test stylizes in seconds. Skipped when `jekyll`
is not installed, unless BLOGROTO_REQUIRE_JEKYLL=1 (CI), where that is a failure.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from blogroto.build import Builder, BuildOptions

from .conftest import REPO, make_filter

pytestmark = pytest.mark.slow

BASEURL = "/blog"


def jekyll() -> str:
    exe = shutil.which("jekyll")
    if exe is None:
        if os.environ.get("BLOGROTO_REQUIRE_JEKYLL") == "1":
            pytest.fail("jekyll is not installed but BLOGROTO_REQUIRE_JEKYLL=1")
        pytest.skip("jekyll is not installed")
    return exe


def jekyll_build(source: Path, dest: Path, *extra: str) -> None:
    # --disable-disk-cache: Jekyll would otherwise write .jekyll-cache/ into the source folder.
    proc = subprocess.run([jekyll(), "build", "-s", str(source), "-d", str(dest), "--safe", "--disable-disk-cache",
                           "--quiet", *extra], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "JEKYLL_ENV": "production"})
    assert proc.returncode == 0, proc.stdout + proc.stderr


class ImgCollector(HTMLParser):
    def __init__(self):
        super().__init__()
        self.urls: list[str] = []
        self.og: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag in ("img", "source"):
            if a.get("src"):
                self.urls.append(a["src"])
            for cand in (a.get("srcset") or "").split(","):
                if cand.strip():
                    self.urls.append(cand.split()[0])
        if tag == "meta" and a.get("property") == "og:image":
            self.og.append(a["content"])


def images_in(html_file: Path) -> ImgCollector:
    p = ImgCollector()
    p.feed(html_file.read_text(encoding="utf-8"))
    return p


def dest_file(dest: Path, url: str) -> Path:
    path = urlsplit(url).path
    assert path.startswith(BASEURL + "/"), f"{url} does not go through the baseurl"
    return dest / path[len(BASEURL) + 1:]


def tree_hashes(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    jekyll()
    root = tmp_path_factory.mktemp("jekyll")
    site = root / "site"
    shutil.copytree(REPO / "sample_site", site, ignore=shutil.ignore_patterns("_blogroto", ".blogroto-cache",
                                                                              "_site", ".jekyll-cache"))
    for slug, seed in (("copper-circuit", 0), ("hubble-deep-field", 1), ("starry-night", 2)):
        make_filter(site / "_filters", slug, seed=seed, title=f"Tiny stand-in for {slug}")
    before = tree_hashes(site)
    report = Builder(site, BuildOptions(drafts=True)).build()
    out = site / "_blogroto" / "site"
    dest = root / "dest"
    jekyll_build(out, dest, "--drafts")
    return {"site": site, "out": out, "dest": dest, "report": report, "before": before, "root": root}


def test_sample_site_builds_without_errors(built):
    report = built["report"]
    assert report.errors == [], report.errors
    assert report.warnings == [], report.warnings
    # copper-morning, starry-night, selective, the draft, the project and the about page
    assert report.posts == 6
    assert report.images_stylized >= 6


def test_sources_untouched(built):
    after = {k: v for k, v in tree_hashes(built["site"]).items()
             if not k.startswith(("_blogroto/", ".blogroto-cache/"))}
    assert after == built["before"]
    assert not (built["site"] / "_site").exists() and not (built["site"] / ".jekyll-cache").exists()


def test_every_stylized_image_url_resolves_in_jekyll_output(built):
    dest = built["dest"]
    checked = 0
    pages = [p for p in dest.rglob("*.html")]
    assert len(pages) >= 7
    for page in pages:
        found = images_in(page)
        for url in found.urls:
            if "/algorotoscope/" in url:
                assert dest_file(dest, url).is_file(), f"{page}: {url}"
                checked += 1
    assert checked >= 8


def test_posts_show_stylized_images_and_credits(built):
    dest = built["dest"]
    post = dest / "2024/03/02/copper-morning.html"
    html = post.read_text()
    imgs = images_in(post)
    stylized = [u for u in imgs.urls if "/assets/algorotoscope/" in u]
    # inline, reference-style, social card; the opted-out rocket and the code sample are untouched
    assert any("coffee-copper-circuit-" in u for u in stylized)
    assert any("chelsea-copper-circuit-" in u for u in stylized)
    assert any(u.endswith("/assets/img/rocket.jpg") for u in imgs.urls)
    assert "<span class=\"sx\">/assets/img/coffee.jpg</span>" in html
    assert imgs.og and "/blog/assets/algorotoscope/coffee-copper-circuit-" in imgs.og[0]
    # credits at the author's marker: before the opted-out rocket paragraph
    assert html.index("algorotoscope-credits") < html.index("This launch photo opts out")
    assert "Tiny stand-in for copper-circuit" in html and "CC0-1.0" in html
    assert 'href="https://example.org/art"' in html
    # alt and title are kept
    assert 'alt="A cup of coffee on a wooden table"' in html and 'title="Morning coffee"' in html


def test_srcset_relative_url_and_relative_path(built):
    page = built["dest"] / "2024/04/10/starry-night.html"
    urls = images_in(page).urls
    assert sum("chelsea-starry-night-" in u and u.endswith(".jpg") for u in urls) == 2  # src (relative_url) + srcset 451w
    assert any("chelsea-small-starry-night-" in u for u in urls)
    # the author's srcset is kept, and each of its candidates offered as WebP too (docs/responsive.md)
    assert any(re.search(r"/chelsea-starry-night-\w+-451w-\w+\.webp$", u) for u in urls)
    assert any("astronaut-starry-night-" in u for u in urls)  # ../assets relative path
    html = page.read_text()
    assert "{{ site.baseurl }}/assets/img/coffee.jpg" in html  # inside {% raw %}: shown, not rewritten
    assert "Tiny stand-in for starry-night" in html


def test_selective_post_collection_page_and_draft(built):
    dest = built["dest"]
    sel = images_in(dest / "2024/05/20/selective.html").urls
    assert any("coffee-copper-circuit-" in u for u in sel)
    assert any(u.endswith("/assets/img/rocket.jpg") for u in sel)  # skip: [rocket.jpg]
    assert any("chelsea-copper-circuit-" in u for u in sel)  # literal /blog/... kept
    proj = images_in(dest / "projects/sensor-board.html").urls
    # images: list of mappings (with their smaller widths and WebP from algorotoscope_images)
    assert len({u for u in proj if "-hubble-deep-field-" in u and not re.search(r"-\d+w-\w{10}\.\w+$", u)}) == 2
    assert any(re.search(r"/rocket-hubble-deep-field-\w+-320w-\w{10}\.webp$", u) for u in proj)
    about = images_in(dest / "about.html").urls
    assert any("chelsea-copper-circuit-" in u for u in about)
    drafts = [p for p in dest.rglob("unfinished-draft.html")]
    assert drafts and any("coffee-copper-circuit-" in u for u in images_in(drafts[0]).urls)
    plain = images_in(dest / "2024/05/01/plain-notes.html").urls
    assert plain == ["/blog/assets/img/rocket.jpg"]


def test_output_does_not_contain_blogroto_cache_or_site(built):
    out = built["out"]
    assert not (out / "_blogroto").exists() and not (out / ".blogroto-cache").exists()
    assert not (out / "_site").exists()


def test_source_site_jekyll_build_ignores_the_output(built):
    dest = built["root"] / "dest-source"
    jekyll_build(built["site"], dest)
    assert not any("algorotoscope" in p.name for p in dest.rglob("*"))
    assert not (dest / "_blogroto").exists()
    # exactly the source's posts, no duplicates from the output copy
    assert len(list(dest.glob("2024/*/*/*.html"))) == 4


def test_second_build_writes_nothing(built):
    report = Builder(built["site"], BuildOptions(drafts=True)).build()
    assert report.written == [] and report.removed == [] and report.images_stylized == 0
