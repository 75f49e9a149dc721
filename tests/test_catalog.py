"""The filter catalog (pages written by the build, Jekyll URLs, training in words) and the contact sheet."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image, ImageOps

from blogroto.build import catalog, training_record
from blogroto.errors import ConfigError
from blogroto.filters import FilterLibrary, write_metadata
from blogroto.site import urls
from blogroto.site.model import Site

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "sample_site"


# --------------------------------------------------------------------------------------------
# helpers (also used by test_preview, test_metadata and test_browser)


def fake_filter(base: Path, slug: str, *, title: str = "Copper Circuit", artwork_size=(40, 30), examples=True,
                **source) -> Path:
    """A filter folder good enough for everything but stylizing (no TensorFlow needed)."""
    folder = Path(base) / slug
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(folder / "weights.npz", w=np.zeros(4, np.float32))
    Image.new("RGB", artwork_size, (180, 90, 40)).save(folder / "artwork.jpg")
    if examples:
        Image.new("RGB", (40, 30), (30, 120, 60)).save(folder / "example-before.jpg")
        Image.new("RGB", (40, 30), (30, 60, 160)).save(folder / "example-after.jpg")
    src = {"title": title, "creator": "Ada Etcher", "year": 2026, "url": "https://example.org/art",
           "licence": "CC0-1.0", "licence_url": "https://creativecommons.org/publicdomain/zero/1.0/"}
    src.update(source)
    write_metadata(folder, {"format": 1, "name": slug, "display_name": slug.replace("-", " ").title(),
                            "description": "Etches photos into copper traces.", "source": src,
                            "network": {"width": 4, "blocks": 1},
                            "training": {"steps": 9000, "seconds": 1712.3, "device": "CPU: AMD EPYC (2 cores)",
                                         "preset": "quick", "resolution": 256, "batch_size": 4,
                                         "date": "2026-11-25"}})
    return folder


def write_site(root: Path, config: str, files: dict[str, str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "_config.yml").write_text(config)
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def front_matter(path: Path) -> dict:
    text = path.read_text()
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n", 2)[1])


@dataclass
class Built:
    root: Path  # the site
    out: Path  # its output
    cache: Path
    report: object


def build_sample(base: Path, *, config_extra: str = "", figure: bool = False, cache: Path | None = None) -> Built:
    """sample_site copied to `base/site`, its two filters replaced by tiny random networks in the
    site's `_filters/`, built. Real TensorFlow stylizing, tiny and fast."""
    from blogroto.build import Builder, BuildOptions
    from tests.conftest import make_filter, make_photo

    root = base / "site"
    shutil.copytree(SAMPLE, root, ignore=shutil.ignore_patterns("_blogroto", ".blogroto-cache", "_site"))
    for seed, (slug, title) in enumerate((("copper-circuit", "Copper Circuit Board"),
                                          ("hubble-deep-field", "Hubble Deep Field"),
                                          ("starry-night", "The Starry Night"))):
        folder = make_filter(root / "_filters", slug, seed=seed, title=title)
        # a before/after pair, so real Jekyll and Chromium see that part of the catalog pages too
        before = make_photo(folder / "example-before.jpg", size=(160, 120), seed=seed)
        with Image.open(before) as im:
            ImageOps.invert(im.convert("RGB")).save(folder / "example-after.jpg")
    config = (root / "_config.yml").read_text()
    if figure:
        config = config.replace("  figure: false", "  figure: true")
    (root / "_config.yml").write_text(config + config_extra)
    cache = cache or base / "cache"
    report = Builder(root, BuildOptions(cache=cache)).build()
    assert report.ok, report.errors
    return Built(root, report.out_dir, cache, report)


@pytest.fixture(scope="session")
def built_sample(tmp_path_factory) -> Built:
    return build_sample(tmp_path_factory.mktemp("sample"))


# --------------------------------------------------------------------------------------------
# settings


def _site(tmp_path, config: str) -> Site:
    return Site(write_site(tmp_path / "s", config, {}))


def test_catalog_settings(tmp_path):
    assert catalog.catalog_settings(_site(tmp_path, "title: x\n")) == catalog.CatalogSettings()
    s = catalog.catalog_settings(_site(tmp_path, "algorotoscope:\n  catalog: {path: works, all: true, layout: page}\n"))
    assert (s.path, s.folder, s.all, s.layout, s.enabled) == ("/works/", "works", True, "page", True)
    assert not catalog.catalog_settings(_site(tmp_path, "algorotoscope:\n  catalog: false\n")).enabled
    assert not catalog.catalog_settings(_site(tmp_path, "algorotoscope:\n  catalog: {enabled: false}\n")).enabled
    assert catalog.catalog_settings(_site(tmp_path, "algorotoscope:\n  catalog: {path: /a/b/}\n")).folder == "a/b"


@pytest.mark.parametrize("bad", ["{path: /_hidden/}", "{path: /}", "{path: ../x}", "{all: 1}", "{colour: red}",
                                 "{path: 3}", "[1]"])
def test_catalog_settings_rejects_bad_values(tmp_path, bad):
    with pytest.raises(ConfigError, match="catalog"):
        catalog.catalog_settings(_site(tmp_path, f"algorotoscope:\n  catalog: {bad}\n"))


# --------------------------------------------------------------------------------------------
# Jekyll URLs


def test_document_urls_follow_jekyll(tmp_path):
    site = Site(write_site(tmp_path / "s", "permalink: /:year/:month/:day/:title.html\n"
                           "collections:\n  projects: {output: true, permalink: '/projects/:name.html'}\n"
                           "  notes: {output: true}\n", {}))
    url = urls.document_url
    assert url(site, "_posts/2024-03-02-copper-morning.md", "posts", {}) == "/2024/03/02/copper-morning.html"
    assert url(site, "_projects/sensor-board.md", "projects", {}) == "/projects/sensor-board.html"
    assert url(site, "_notes/a/b.md", "notes", {}) == "/notes/a/b"  # custom style: no suffix, like Jekyll
    assert url(site, "about.md", "pages", {}) == "/about"  # ditto (Jekyll writes about.html)
    assert url(site, "index.html", "pages", {}) == "/"
    assert url(site, "blog/index.md", "pages", {}) == "/blog/"
    assert url(site, "feed.xml", "pages", {}) == "/feed.xml"
    assert url(site, "x.md", "pages", {"permalink": "/custom/"}) == "/custom/"

    plain = Site(write_site(tmp_path / "p", "title: x\n", {}))
    assert url(plain, "_posts/2024-03-02-a-b.md", "posts", {"categories": "News Tech"}) == "/news/tech/2024/03/02/a-b.html"
    assert url(plain, "travel/_posts/2024-3-2-x.md", "posts", {}) == "/travel/2024/03/02/x.html"
    assert url(plain, "_posts/2024-03-02-a.md", "posts", {"date": "2025-01-05 10:00:00"}) == "/2025/01/05/a.html"
    assert url(plain, "about.md", "pages", {}) == "/about.html"
    pretty = Site(write_site(tmp_path / "q", "permalink: pretty\n", {}))
    assert url(pretty, "_posts/2024-03-02-a.md", "posts", {}) == "/2024/03/02/a/"
    assert url(pretty, "about.md", "pages", {}) == "/about/"


def test_destination_and_relative_links():
    assert urls.destination_path("/") == "index.html"
    assert urls.destination_path("/about") == "about.html"
    assert urls.destination_path("/filters/x/") == "filters/x/index.html"
    assert urls.relative_link("/filters/x/", "/2024/03/02/a.html") == "../../2024/03/02/a.html"
    assert urls.relative_link("/filters/", "/filters/x/") == "x/"
    assert urls.relative_link("/filters/x/", "/filters/") == "../"
    assert urls.relative_link("/filters/x/", "/a b.html") == "../../a%20b.html"


def test_training_in_words():
    text = training_record.describe_training({"steps": 9000, "seconds": 28 * 60, "device": "CPU: AMD EPYC (2 cores)"})
    assert text == "Trained for 9,000 steps in 28 minutes on a CPU (AMD EPYC, 2 cores)."
    assert training_record.describe_training({"steps": 200, "seconds": 12, "device": "GPU: NVIDIA H100"}) == \
        "Trained for 200 steps in 12 seconds on a GPU (NVIDIA H100)."
    assert "2 hours 5 minutes" in training_record.describe_training({"seconds": 7500})
    assert training_record.describe_training({"steps": 0, "note": "random weights, for tests"}) == \
        "Not trained (random weights, for tests)."
    assert training_record.describe_training({}) == "No training record was kept for this filter."
    rows = dict(training_record.training_details({"preset": "quick", "resolution": 256, "batch_size": 4,
                                          "loss_weights": {"content": 1.0, "style": 10.0}, "date": "2026-11-25",
                                          "precision": "mixed_bfloat16"}))
    assert rows["Photos"] == "256 px crops, batches of 4" and rows["Loss weights"] == "content 1, style 10"
    assert rows["Precision"] == "bfloat16 mixed precision"
    assert dict(training_record.training_details({"precision": "float32"}))["Precision"] == "float32"
    teacher = {"name": "oil-full", "display_name": "Oil (full)", "network": {"width": 32, "blocks": 5}}
    assert dict(training_record.training_details({"teacher": teacher}))["Distilled from"] == "Oil (full) (width 32, 5 blocks)"


# --------------------------------------------------------------------------------------------
# write_catalog on its own (fake filters: no TensorFlow)


USES = {"_posts/2024-03-02-copper-morning.md": ("copper-circuit", [1, 2, 3], "posts"),
        "about.md": ("copper-circuit", [4, 5, 6], "pages")}


@pytest.fixture
def small_site(tmp_path) -> Site:
    root = write_site(tmp_path / "site", "title: Notes\nbaseurl: /blog\n", {
        "_posts/2024-03-02-copper-morning.md": "---\ntitle: 'Copper: morning'\n---\nx\n",
        "about.md": "---\ntitle: About me\n---\nx\n",
    })
    fake_filter(root / "_filters", "copper-circuit", title="Copper {{ site.title }} <i>board</i>")
    fake_filter(root / "_filters", "unused-one", title="Unused", examples=False, artwork_size=(2400, 1200))
    return Site(root)


def test_write_catalog_pages(small_site, tmp_path):
    out = tmp_path / "out"
    folder = small_site.root / "_filters/copper-circuit"
    Image.new("RGB", (60, 40), (250, 250, 250)).save(folder / "loss.png")
    Image.new("RGB", (60, 40), (20, 20, 20)).save(folder / "progress.jpg")
    lib = FilterLibrary([small_site.root / "_filters"])
    result = catalog.write_catalog(small_site, USES, library=lib, out_dir=out)
    assert result.rendered and not result.warnings
    assert sorted(result.files) == ["filters/copper-circuit/artwork.jpg", "filters/copper-circuit/example-after.jpg",
                                    "filters/copper-circuit/example-before.jpg", "filters/copper-circuit/index.html",
                                    "filters/copper-circuit/loss.png", "filters/copper-circuit/progress.jpg",
                                    "filters/index.html"]  # unused filters only with `all: true`
    page = out / "filters/copper-circuit/index.html"
    fm = front_matter(page)
    assert fm["layout"] == "default" and fm["permalink"] == "/filters/copper-circuit/"
    assert "<" not in fm["title"] and "Copper" in fm["title"]
    html = page.read_text().split("---\n", 2)[2]
    # metadata text is escaped, and its braces can never reach Liquid
    assert "{{" not in html and "{%" not in html and "&lt;i&gt;board&lt;/i&gt;" in html
    assert "Ada Etcher" in html and 'rel="license"' in html and "CC0-1.0" in html
    assert "Trained for 9,000 steps in 29 minutes on a CPU (AMD EPYC, 2 cores)." in html
    assert 'src="artwork.jpg"' in html and 'src="example-before.jpg"' in html and 'src="example-after.jpg"' in html
    assert 'src="loss.png"' in html and 'src="progress.jpg"' in html  # the training run's pictures
    # its own heading (a `default` layout does not print page.title) and the filter's description
    assert html.count("<h1") == 1 and '<h1 class="ac-heading">Copper Circuit</h1>' in html
    assert "Etches photos into copper traces." in html
    # links to the documents using it: relative, so any baseurl works; newest first
    assert html.index('href="../../2024/03/02/copper-morning.html">Copper: morning<') < html.index(
        'href="../../about.html">About me<')
    index = (out / "filters/index.html").read_text()
    assert front_matter(out / "filters/index.html")["permalink"] == "/filters/"
    assert 'href="copper-circuit/"' in index and 'src="copper-circuit/artwork.jpg"' in index
    assert index.count("<h1") == 1 and '<h1 class="ac-heading">Filters</h1>' in index
    assert (out / "filters/copper-circuit/artwork.jpg").read_bytes() == \
        (small_site.root / "_filters/copper-circuit/artwork.jpg").read_bytes()


def test_write_catalog_is_skipped_when_nothing_changed(small_site, tmp_path):
    out = tmp_path / "out"
    lib = FilterLibrary([small_site.root / "_filters"])
    first = catalog.write_catalog(small_site, USES, library=lib, out_dir=out)
    again = catalog.write_catalog(small_site, USES, library=lib, out_dir=out, previous=first.state)
    assert not again.rendered and again.state == first.state and again.pages == {}
    # a catalog file deleted behind the build's back is noticed
    (out / "filters/index.html").unlink()
    third = catalog.write_catalog(small_site, USES, library=lib, out_dir=out, previous=first.state)
    assert third.rendered and (out / "filters/index.html").is_file()
    # a document changing (its stat) re-reads it; the others come from the previous state
    uses = dict(USES)
    uses["about.md"] = ("copper-circuit", [9, 9, 9], "pages")
    (small_site.root / "about.md").write_text("---\ntitle: New title\n---\n")
    fourth = catalog.write_catalog(small_site, uses, library=lib, out_dir=out, previous=third.state)
    assert fourth.rendered and ">New title<" in (out / "filters/copper-circuit/index.html").read_text()


def test_write_catalog_all_filters_and_big_artwork(small_site, tmp_path):
    (small_site.root / "_config.yml").write_text("title: Notes\nalgorotoscope:\n  catalog: {all: true, path: /works/}\n")
    site = Site(small_site.root)
    out = tmp_path / "out"
    result = catalog.write_catalog(site, USES, library=FilterLibrary([site.root / "_filters"]), out_dir=out)
    assert "works/unused-one/index.html" in result.files
    with Image.open(out / "works/unused-one/artwork.jpg") as im:
        assert max(im.size) == catalog.MAX_PICTURE_SIDE  # shrunk for the web
    html = (out / "works/unused-one/index.html").read_text()
    assert "No post on this site uses this filter yet." in html and "example-before" not in html
    assert "Not used on this site yet" in (out / "works/index.html").read_text()


def test_write_catalog_disabled_or_unused(small_site, tmp_path):
    lib = FilterLibrary([small_site.root / "_filters"])
    assert catalog.write_catalog(small_site, {}, library=lib, out_dir=tmp_path / "o").files == []
    (small_site.root / "_config.yml").write_text("algorotoscope:\n  catalog: false\n")
    assert catalog.write_catalog(Site(small_site.root), USES, library=lib, out_dir=tmp_path / "o").files == []
    assert not (tmp_path / "o").exists()


def test_write_catalog_never_replaces_the_sites_own_pages(small_site, tmp_path):
    lib = FilterLibrary([small_site.root / "_filters"])
    result = catalog.write_catalog(small_site, USES, library=lib, out_dir=tmp_path / "o",
                                   taken={"filters/index.md": {}})
    assert "filters/index.html" not in result.files
    assert any("filters/index.md" in w for w in result.warnings)
    assert "filters/copper-circuit/index.html" in result.files


def test_site_templates_override_the_builtin_ones(small_site, tmp_path):
    override = small_site.root / "_algorotoscope/catalog/filter.html.j2"
    override.parent.mkdir(parents=True)
    override.write_text('{% extends "builtin/catalog/filter.html.j2" %}'
                        '{% block training %}<p class="mine">{{ filter.training_summary }}</p>{% endblock %}')
    out = tmp_path / "out"
    lib = FilterLibrary([small_site.root / "_filters"])
    first = catalog.write_catalog(small_site, USES, library=lib, out_dir=out)
    html = (out / "filters/copper-circuit/index.html").read_text()
    assert '<p class="mine">Trained for 9,000 steps' in html and "How it was made" not in html
    assert "The artwork" in html  # the other blocks are the built-in ones
    # editing the override re-renders (its stat is in the signature)
    override.write_text("<p>only this</p>")
    os.utime(override, ns=(1, 1))
    again = catalog.write_catalog(small_site, USES, library=lib, out_dir=out, previous=first.state)
    assert again.rendered and (out / "filters/copper-circuit/index.html").read_text().endswith("<p>only this</p>")


def test_broken_template_is_a_config_error(small_site, tmp_path):
    bad = small_site.root / "_algorotoscope/catalog/index.html.j2"
    bad.parent.mkdir(parents=True)
    bad.write_text("{% for %}")
    with pytest.raises(ConfigError, match="template"):
        catalog.write_catalog(small_site, USES, library=FilterLibrary([small_site.root / "_filters"]),
                              out_dir=tmp_path / "o")


# --------------------------------------------------------------------------------------------
# through the build (tiny real filters)


def test_build_writes_the_catalog(built_sample):
    out = built_sample.out
    copper = (out / "filters/copper-circuit/index.html").read_text()
    for title in ("Copper morning", "Selective colour", "About"):
        assert f">{title}<" in copper
    assert "Starry night" not in copper
    hubble = (out / "filters/hubble-deep-field/index.html").read_text()
    assert ">Sensor board<" in hubble and "Starry night" not in hubble
    assert ">Starry night<" in (out / "filters/starry-night/index.html").read_text()
    assert 'href="../../projects/sensor-board.html"' in hubble
    assert (out / "filters/hubble-deep-field/artwork.jpg").is_file()
    assert "filters/index.html" in built_sample.report.written


def test_noop_build_does_not_render_the_catalog(built_sample):
    from blogroto.build import Builder, BuildOptions

    report = Builder(built_sample.root, BuildOptions(cache=built_sample.cache)).build()
    assert report.ok and report.written == [] and report.removed == []
    # In a fresh process: a no-op build imports neither Jinja2 nor Pillow nor TensorFlow.
    code = ("import sys; from blogroto.build import Builder, BuildOptions; "
            f"r = Builder({str(built_sample.root)!r}, BuildOptions(cache={str(built_sample.cache)!r})).build(); "
            "assert r.ok and not r.written, r.written; "
            "print(sorted(m for m in ('jinja2', 'PIL', 'tensorflow', 'markdown') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_catalog_follows_config_and_filter_changes(tmp_path_factory, built_sample):
    from blogroto.build import Builder, BuildOptions

    base = tmp_path_factory.mktemp("catalog-changes")
    root = base / "site"
    shutil.copytree(built_sample.root, root, ignore=shutil.ignore_patterns("_blogroto", ".blogroto-cache"))
    options = BuildOptions(cache=built_sample.cache)  # shared cache: every image is a hit
    report = Builder(root, options).build()
    out = report.out_dir
    assert report.images_stylized == 0 and (out / "filters/index.html").is_file()
    # a filter's metadata changes: its catalog page follows
    meta = root / "_filters/copper-circuit/filter.yaml"
    data = yaml.safe_load(meta.read_text())
    data["source"]["creator"] = "Grace Solder"
    write_metadata(meta.parent, data)
    report = Builder(root, options).build()
    assert "filters/copper-circuit/index.html" in report.written
    assert "Grace Solder" in (out / "filters/copper-circuit/index.html").read_text()
    # a broken catalog template is an error of this build, not the end of it: the old pages stay
    broken = root / "_algorotoscope/catalog/index.html.j2"
    broken.parent.mkdir(parents=True)
    broken.write_text("{% for %}")
    report = Builder(root, options).build()
    assert not report.ok and any("template" in e for e in report.errors)
    assert (out / "filters/index.html").is_file() and "Grace Solder" in (out / "filters/copper-circuit/index.html").read_text()
    broken.unlink()
    report = Builder(root, options).build()
    assert report.ok, report.errors
    # check mode writes nothing
    config = root / "_config.yml"
    text = config.read_text().replace("algorotoscope:\n", "algorotoscope:\n  catalog: {path: /works/}\n", 1)
    config.write_text(text)
    check = Builder(root, BuildOptions(cache=built_sample.cache, check=True)).build()
    assert "works/index.html" in check.would_change and "filters/index.html" in check.would_change
    assert (out / "filters/index.html").is_file() and not (out / "works").exists()
    # moving the catalog removes the old pages
    report = Builder(root, options).build()
    assert (out / "works/copper-circuit/index.html").is_file()
    assert "filters/index.html" in report.removed and not (out / "filters").exists()
    # turning it off removes it
    config.write_text(text.replace("catalog: {path: /works/}", "catalog: false"))
    report = Builder(root, options).build()
    assert not (out / "works").exists() and "works/index.html" in report.removed
    manifest = json.loads(next((built_sample.cache / "builds").glob("*.json")).read_text())
    assert "catalog" in manifest


def test_stylized_images_carry_xmp(built_sample):
    from blogroto.credits import xmp as credit_xmp
    from blogroto.filters import FilterLibrary
    from tests.test_animation import gif_xmp

    images = sorted((built_sample.out / "assets/algorotoscope").iterdir())
    assert images
    for path in images:
        if path.suffix == ".mp4":
            continue  # videos carry no embedded credit (docs/animation.md); the post's credit covers them
        with Image.open(path) as im:
            packet = gif_xmp(path.read_bytes()) if im.format == "GIF" else im.info["xmp"]
        fields = credit_xmp.read_xmp(packet)
        assert fields["Iptc4xmpExt:DigitalSourceType"] == credit_xmp.DIGITAL_SOURCE_TYPE
        assert fields["blogroto:filter"] in path.name
        flt = FilterLibrary(site_dirs=[built_sample.root / "_filters"]).get(fields["blogroto:filter"])
        assert fields["dc:source"] == flt.source["url"]  # each filter's own artwork


def test_posts_carry_jsonld(built_sample):
    from tests.test_metadata import _Scripts

    text = (built_sample.out / "_posts/2024-04-10-starry-night.md").read_text()
    parser = _Scripts()
    parser.feed(text.split("---", 2)[2])
    (script,) = parser.scripts
    objs = json.loads(script)
    urls = {o["contentUrl"] for o in objs}
    assert all(u.startswith("https://example.org/blog/assets/algorotoscope/") for u in urls)
    for u in urls:  # every one is a file the build wrote
        assert (built_sample.out / u.removeprefix("https://example.org/blog/")).is_file()
    originals = {o["isBasedOn"][0]["contentUrl"] for o in objs}
    assert "https://example.org/blog/assets/img/chelsea.jpg" in originals
    assert all(o["isBasedOn"][-1]["name"] == "The Starry Night" for o in objs)


# --------------------------------------------------------------------------------------------
# contact sheet


def test_contact_sheet(tiny_filter_dir, tmp_path):
    from click.testing import CliRunner

    from blogroto.cli import cli
    from tests.conftest import make_photo

    photo = make_photo(tmp_path / "photo.png", size=(96, 64))
    dest = tmp_path / "sheet.png"
    result = CliRunner().invoke(cli, ["catalog", "--photo", str(photo), "--filters-dir", str(tiny_filter_dir),
                                      "-o", str(dest), "--size", "96"])
    assert result.exit_code == 0, result.output
    with Image.open(dest) as im:
        sheet = np.asarray(im.convert("RGB"))
    library = FilterLibrary([tiny_filter_dir])
    n = 1 + len(library.names())  # the photo itself, then every filter (built-in ones too)
    pad = 8
    assert sheet.shape[1] == pad + min(4, n) * (96 + pad)
    # each filter's cell holds a picture (not the blank background) that differs from the photo
    top = 12 + 2 * pad  # the header line, then the 96x64 pictures
    cells = [sheet[top + 8: top + 56, pad + i * (96 + pad): pad + i * (96 + pad) + 96] for i in range(min(3, n))]
    assert all(c.std() > 5 for c in cells)
    assert np.abs(cells[0].astype(int) - cells[1].astype(int)).mean() > 3


def test_contact_sheet_without_filters_is_an_error(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from blogroto.cli import cli

    monkeypatch.setattr("blogroto.filters.BUILTIN_STYLES_DIR", tmp_path / "none")
    result = CliRunner().invoke(cli, ["catalog", "--filters-dir", str(tmp_path), "-o", str(tmp_path / "x.png")])
    assert result.exit_code != 0 and "no filters" in str(result.exception)
