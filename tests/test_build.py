"""The build pipeline: output tree, rewritten documents, credits, incremental rebuilds, gc, CLI.

Most tests swap in `FakeStylizer` (inverts colours with Pillow) so they run in milliseconds and
never import TensorFlow; `test_real_stylizer_tiny_filter` runs the real network end to end.
"""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image, ImageOps

from blogroto.build import (
    IMAGES_DIR,
    OUTPUT_MARKER,
    Builder,
    BuildOptions,
    rewrite_front_matter,
)
from blogroto.errors import ConfigError
from blogroto.fsutil import atomic_write_bytes
from blogroto.site.documents import read_document

FILTER = "test-filter"
OTHER = "other-filter"


# -- helpers ---------------------------------------------------------------------------------


class FakeStylizer:
    """Stands in for blogroto.engine.stylize.Stylizer: inverts the image, keeps its format."""

    def __init__(self):
        self.calls = []

    def stylize_file(self, src, dst, flt, options, name=None, xmp=None):
        self.calls.append((name, flt.slug))
        data = src if isinstance(src, bytes) else Path(src).read_bytes()
        try:
            im = Image.open(io.BytesIO(data))
            im.load()
        except Exception as exc:
            from blogroto.errors import ImageError

            raise ImageError(f"cannot decode: {exc}", name) from exc
        fmt = (options.format or im.format or "png").upper().replace("JPG", "JPEG")
        out = io.BytesIO()
        ImageOps.invert(im.convert("RGB")).save(out, fmt)
        atomic_write_bytes(dst, out.getvalue())
        return Path(dst)


def jpeg(seed: int, size=(40, 30)) -> bytes:
    rng = np.random.default_rng(seed)
    out = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(out, "JPEG", quality=90)
    return out.getvalue()


def png(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    out = io.BytesIO()
    # with transparency, so it stays PNG (an opaque PNG is published as JPEG)
    Image.fromarray(rng.integers(0, 255, (20, 20, 4), dtype=np.uint8), "RGBA").save(out, "PNG")
    return out.getvalue()


def write(path: Path, data) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        path.write_text(data, encoding="utf-8")
    return path


def make_filter(folder: Path, slug: str, title: str = "Test Artwork") -> None:
    folder = folder / slug
    folder.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    np.savez(buffer, w=np.zeros(4, np.float32) + len(slug))
    (folder / "weights.npz").write_bytes(buffer.getvalue())
    (folder / "filter.yaml").write_text(yaml.safe_dump({
        "format": 1, "name": slug, "display_name": slug.replace("-", " ").title(),
        "source": {"title": title, "creator": "A. Painter", "year": 1901, "url": "https://example.org/art",
                   "licence": "CC0-1.0", "licence_url": "https://creativecommons.org/publicdomain/zero/1.0/",
                   "credit": "Public domain"},
        "network": {"width": 4, "blocks": 1},
    }))


POST = """\
---
# the author's comment survives
title: "Copper morning"
algorotoscope: test-filter
image: /assets/img/a.jpg   # social card
tags: [one, two]
---
Intro.

![Alt A](/assets/img/a.jpg "Title A")

<img src="{{ site.baseurl }}/assets/img/b.jpg" alt="Alt B">

![Rel](../assets/img/c.png)

```
![code](/assets/img/a.jpg)
```
"""


@pytest.fixture
def site(tmp_path):
    root = tmp_path / "site"
    # the catalog has its own tests (tests/test_catalog.py); here only posts and images are written
    write(root / "_config.yml", "title: Test\nbaseurl: /blog\ncollections:\n  projects:\n    output: true\n"
                                "algorotoscope:\n  catalog: false\n")
    write(root / "_layouts/post.html", "<html>{{ content }}</html>\n")
    write(root / "index.md", "---\ntitle: Home\n---\nHome page.\n")
    write(root / "assets/img/a.jpg", jpeg(1))
    write(root / "assets/img/b.jpg", jpeg(2))
    write(root / "assets/img/c.png", png(3))
    write(root / "_posts/2024-01-01-copper.md", POST)
    write(root / "_posts/2024-01-02-plain.md", "---\ntitle: Plain\n---\n![x](/assets/img/a.jpg)\n")
    make_filter(root / "_filters", FILTER)
    make_filter(root / "_filters", OTHER, title="Other Artwork")
    return root


def builder(root: Path, **kw) -> Builder:
    b = Builder(root, BuildOptions(**kw))
    b.stylizer = FakeStylizer()
    return b


def tree_hashes(root: Path, skip=("_blogroto", ".blogroto-cache")) -> dict[str, str]:
    out = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if rel.split("/")[0] in skip or not path.is_file():
            continue
        out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def out_dir(root: Path) -> Path:
    return root / "_blogroto" / "site"


def stylized_names(text: str) -> list[str]:
    import re

    return re.findall(r"assets/algorotoscope/([A-Za-z0-9._-]+)", text)


# -- the main path ---------------------------------------------------------------------------


def test_build_writes_stylized_post_with_credits(site):
    report = builder(site).build()
    assert report.errors == [], report.errors
    out = out_dir(site)
    text = (out / "_posts/2024-01-01-copper.md").read_text()
    doc = read_document(out / "_posts/2024-01-01-copper.md", "_posts/x.md", "posts")
    # front matter: author's text kept, social card replaced, credits added
    assert "# the author's comment survives" in text and "# social card" in text
    assert doc.data["image"].startswith("/assets/algorotoscope/a-test-filter-") and doc.data["image"].endswith(".jpg")
    assert doc.data["tags"] == ["one", "two"] and doc.data["title"] == "Copper morning"
    (credit,) = doc.data["algorotoscope_credits"]
    assert credit == {"filter": FILTER, "display_name": "Test Filter", "title": "Test Artwork", "creator": "A. Painter",
                      "year": 1901, "url": "https://example.org/art", "licence": "CC0-1.0",
                      "licence_url": "https://creativecommons.org/publicdomain/zero/1.0/", "credit": "Public domain"}
    body = doc.body
    # Markdown image: root path stays root-relative; alt and title kept
    assert f'![Alt A]({doc.data["image"]} "Title A")' in body
    # HTML img with the author's Liquid baseurl prefix: only the bare path changed
    assert '<img src="{{ site.baseurl }}/assets/algorotoscope/b-test-filter-' in body and 'alt="Alt B"' in body
    # relative path: pointed at the site path through the baseurl
    assert "![Rel]({{site.baseurl}}/assets/algorotoscope/c-test-filter-" in body
    assert ".png)" in body  # a transparent PNG stays PNG
    # code block untouched
    assert "```\n![code](/assets/img/a.jpg)\n```" in body
    # credits after the content
    assert "</aside>" in body and "<cite>Test Artwork</cite>" in body
    assert body.rstrip().endswith("</script>")  # the schema.org JSON-LD closes the credits
    # every referenced stylized image exists, named <original stem>-<filter>-<short hash>.<ext>
    import re

    assert {n.split("-")[0] for n in stylized_names(text)} == {"a", "b", "c"}
    for name in set(stylized_names(text)):
        assert re.fullmatch(r"[abc]-test-filter-[0-9a-f]{10}\.(jpg|png)", name), name
        assert (out / IMAGES_DIR / name).is_file(), name
    assert report.images_stylized == 3 and report.posts == 1


def test_every_reference_form_is_rewritten_and_nothing_else(site):
    import re

    for n in "defg":
        write(site / f"assets/img/{n}.jpg", jpeg(ord(n)))
    body = """\
Ref ![one][id] and ![Two][] and ![two]

[id]: /assets/img/a.jpg "T1"
[two]: assets/img/b.jpg

<img alt='x' srcset="/assets/img/c.png 1x, {{ '/assets/img/d.jpg' | relative_url }} 2x" src={{ "/assets/img/e.jpg" | relative_url }}>

![kept](/assets/img/f.jpg){: .no-algorotoscope}
<img data-algorotoscope="off" src="/assets/img/g.jpg">
`![code](/assets/img/a.jpg)`
<!-- ![c](/assets/img/a.jpg) -->
{% raw %}![r](/assets/img/a.jpg){% endraw %}

    ![indented](/assets/img/a.jpg)
"""
    write(site / "_posts/2024-08-01-forms.md", "---\nalgorotoscope: test-filter\n---\n" + body)
    report = builder(site).build()
    assert report.errors == [] and report.warnings == [], report.errors + report.warnings
    out = read_document(out_dir(site) / "_posts/2024-08-01-forms.md", "p.md", "posts").body
    expected = (body
                .replace("/assets/img/a.jpg \"T1\"", "/assets/algorotoscope/a-test-filter-H.jpg \"T1\"")
                .replace("[two]: assets/img/b.jpg", "[two]: {{site.baseurl}}/assets/algorotoscope/b-test-filter-H.jpg")
                .replace("/assets/img/c.png 1x", "/assets/algorotoscope/c-test-filter-H.png 1x")
                .replace("'/assets/img/d.jpg'", "'/assets/algorotoscope/d-test-filter-H.jpg'")
                .replace('"/assets/img/e.jpg"', '"/assets/algorotoscope/e-test-filter-H.jpg"'))
    # Only the five image paths changed (hashes aside); opted-out, code, comment and raw ones did not.
    assert re.sub(r"-test-filter-[0-9a-f]{10}\.", "-test-filter-H.", out).startswith(expected + "\n<aside")


def test_untouched_files_are_hard_links_and_sources_unchanged(site):
    before = tree_hashes(site)
    builder(site).build()
    assert tree_hashes(site) == before
    out = out_dir(site)
    for rel in ["_config.yml", "index.md", "_posts/2024-01-02-plain.md", "assets/img/a.jpg", "_layouts/post.html"]:
        assert (out / rel).stat().st_ino == (site / rel).stat().st_ino, rel
    # the output holds neither itself, the cache nor _site
    assert not (out / "_blogroto").exists() and not (out / ".blogroto-cache").exists()
    assert (out / OUTPUT_MARKER).exists()


def test_second_build_is_a_noop(site):
    builder(site).build()
    manifest = next((site / ".blogroto-cache/builds").glob("*.json"))
    mtime = manifest.stat().st_mtime_ns
    b = builder(site)
    report = b.build()
    assert report.written == [] and report.removed == [] and report.errors == []
    assert report.images_stylized == 0 and b.stylizer.calls == []
    assert report.posts == 1
    assert manifest.stat().st_mtime_ns == mtime


def test_force_rebuild_writes_nothing_new(site):
    builder(site).build()
    report = builder(site, force=True).build()
    assert report.written == [] and report.removed == [] and report.images_stylized == 0
    assert report.cache_hits == 3


def test_noop_rebuild_does_not_import_tensorflow_pil_or_jinja(site):
    builder(site).build()
    code = ("import sys; from blogroto.build import Builder; r = Builder(sys.argv[1]).build(); "
            "assert not r.errors, r.errors; assert not r.written, r.written; "
            "print(sorted(m for m in ('tensorflow', 'PIL', 'jinja2', 'numpy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code, str(site)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_edited_post_is_rewritten_and_deleted_post_removes_outputs(site):
    builder(site).build()
    out = out_dir(site)
    post = site / "_posts/2024-01-01-copper.md"
    names = set(stylized_names((out / "_posts/2024-01-01-copper.md").read_text()))
    write(post, POST.replace("Intro.", "Intro, edited."))
    report = builder(site).build()
    assert report.written == ["_posts/2024-01-01-copper.md"]
    assert "Intro, edited." in (out / "_posts/2024-01-01-copper.md").read_text()
    post.unlink()
    report = builder(site).build()
    assert not (out / "_posts/2024-01-01-copper.md").exists()
    for name in names:
        assert not (out / IMAGES_DIR / name).exists()
    assert "_posts/2024-01-01-copper.md" in report.removed
    # a deleted static file disappears too
    (site / "index.md").unlink()
    builder(site).build()
    assert not (out / "index.md").exists()


def test_changed_image_gets_a_new_name(site):
    builder(site).build()
    out = out_dir(site)
    old = {n for n in stylized_names((out / "_posts/2024-01-01-copper.md").read_text()) if n.startswith("a-")}
    write(site / "assets/img/a.jpg", jpeg(99))
    b = builder(site)
    report = b.build()
    new = {n for n in stylized_names((out / "_posts/2024-01-01-copper.md").read_text()) if n.startswith("a-")}
    assert old != new and len(new) == 1
    assert report.images_stylized == 1 and len(b.stylizer.calls) == 1
    assert not (out / IMAGES_DIR / old.pop()).exists()
    assert (out / IMAGES_DIR / new.pop()).exists()


def test_filter_change_rebuilds(site):
    builder(site).build()
    write(site / "_posts/2024-01-01-copper.md", POST.replace("algorotoscope: test-filter", "algorotoscope: other-filter"))
    report = builder(site).build()
    text = (out_dir(site) / "_posts/2024-01-01-copper.md").read_text()
    assert "-other-filter-" in text and "-test-filter-" not in text and "Other Artwork" in text
    assert report.images_stylized == 3


# -- failures --------------------------------------------------------------------------------


def test_unknown_filter_fails_that_post_only(site):
    write(site / "_posts/2024-02-01-typo.md", "---\ntitle: T\nalgorotoscope: test-filtre\n---\n![a](/assets/img/a.jpg)\n")
    report = builder(site).build()
    assert len(report.errors) == 1
    msg = report.errors[0]
    assert "_posts/2024-02-01-typo.md:3:" in msg and "unknown filter 'test-filtre'" in msg and "test-filter" in msg
    out = out_dir(site)
    # the failed post is copied unchanged; the good one is built
    assert (out / "_posts/2024-02-01-typo.md").read_bytes() == (site / "_posts/2024-02-01-typo.md").read_bytes()
    assert "algorotoscope_credits" in (out / "_posts/2024-01-01-copper.md").read_text()
    # the error is reported again on the next build, until fixed
    assert len(builder(site).build().errors) == 1
    write(site / "_posts/2024-02-01-typo.md", "---\ntitle: T\nalgorotoscope: test-filter\n---\n![a](/assets/img/a.jpg)\n")
    assert builder(site).build().errors == []


def test_bad_yaml_fails_that_post_with_line(site):
    write(site / "_posts/2024-02-01-bad.md", "---\ntitle: T\nalgorotoscope: test-filter\ntags: [a, b\n---\nx\n")
    report = builder(site).build()
    assert len(report.errors) == 1
    assert "2024-02-01-bad.md:" in report.errors[0] and "invalid YAML" in report.errors[0]
    assert report.posts == 1  # the good post still built


def test_bad_options_fail_with_line(site):
    write(site / "_posts/2024-02-01-bad.md", "---\ntitle: T\nalgorotoscope:\n  filter: test-filter\n  strength: 3\n---\nx\n")
    report = builder(site).build()
    # the faulty option's own line (5), not the `algorotoscope:` line (3)
    assert len(report.errors) == 1 and "2024-02-01-bad.md:5:" in report.errors[0] and "strength" in report.errors[0]


def test_refused_and_missing_references_warn_with_post_and_line(site, tmp_path):
    write(tmp_path / "secret.jpg", jpeg(5))
    os.symlink(tmp_path / "secret.jpg", site / "assets/img/link.jpg")
    body = "---\nalgorotoscope: test-filter\n---\n![a](../../secret.jpg)\n\n![b](/assets/img/link.jpg)\n\n![c](/nope.jpg)\n"
    write(site / "_posts/2024-03-01-evil.md", body)
    report = builder(site).build()
    assert report.errors == []
    joined = "\n".join(report.warnings)
    assert "2024-03-01-evil.md:4: refusing image reference '../../secret.jpg'" in joined
    assert "2024-03-01-evil.md:6: refusing image reference '/assets/img/link.jpg'" in joined
    assert "2024-03-01-evil.md:8: image not found: /nope.jpg" in joined
    text = (out_dir(site) / "_posts/2024-03-01-evil.md").read_text()
    assert "![a](../../secret.jpg)" in text and "![c](/nope.jpg)" in text
    # warnings repeat on the next build (the post is re-checked until fixed)
    assert len(builder(site).build().warnings) == len(report.warnings)


def test_missing_image_appearing_later_is_picked_up(site):
    write(site / "_posts/2024-03-01-later.md", "---\nalgorotoscope: test-filter\n---\n![x](/assets/img/later.jpg)\n")
    builder(site).build()
    write(site / "assets/img/later.jpg", jpeg(7))
    report = builder(site).build()
    assert "later-test-filter-" in (out_dir(site) / "_posts/2024-03-01-later.md").read_text()
    assert report.images_stylized == 1


def test_corrupt_image_is_a_warning(site):
    write(site / "assets/img/broken.jpg", b"\xff\xd8\xffnot really a jpeg")
    write(site / "_posts/2024-03-01-broken.md", "---\nalgorotoscope: test-filter\n---\n![x](/assets/img/broken.jpg)\n")
    report = builder(site).build()
    assert report.errors == []
    assert any("2024-03-01-broken.md:4: cannot stylize /assets/img/broken.jpg" in w for w in report.warnings)
    assert "![x](/assets/img/broken.jpg)" in (out_dir(site) / "_posts/2024-03-01-broken.md").read_text()


def test_foreign_output_folder_is_refused(site, tmp_path):
    foreign = tmp_path / "elsewhere"
    write(foreign / "important.txt", "keep me")
    with pytest.raises(ConfigError, match="not made by blogroto"):
        builder(site, out=foreign).build()
    assert (foreign / "important.txt").read_text() == "keep me"


def test_stray_files_in_output_are_removed_when_manifest_is_lost(site):
    builder(site).build()
    write(out_dir(site) / "stray.txt", "x")
    import shutil

    shutil.rmtree(site / ".blogroto-cache/builds")
    report = builder(site).build()
    assert "stray.txt" in report.removed and not (out_dir(site) / "stray.txt").exists()
    assert report.images_stylized == 0  # images still came from the cache


# -- front matter forms ----------------------------------------------------------------------


def test_front_matter_image_forms(site):
    write(site / "_projects/board.md", """\
---
title: Board
algorotoscope: {filter: test-filter, strength: 0.5}
image:
  path: /blog/assets/img/a.jpg
  alt: "Social card"
feature: assets/img/b.jpg
images:
  - image: /assets/img/c.png
    caption: "First"
  - /assets/img/b.jpg
  - image: https://example.invalid/x.jpg
---
Project text.
""")
    report = builder(site).build()
    assert report.errors == [], report.errors
    out_text = (out_dir(site) / "_projects/board.md").read_text()
    doc = read_document(out_dir(site) / "_projects/board.md", "_projects/board.md", "projects")
    assert doc.data["image"]["path"].startswith("/blog/assets/algorotoscope/a-test-filter-")  # literal baseurl kept
    assert doc.data["image"]["alt"] == "Social card"
    assert doc.data["feature"].startswith("assets/algorotoscope/b-test-filter-")  # site-relative style kept
    assert doc.data["images"][0]["image"].startswith("/assets/algorotoscope/c-test-filter-")
    assert doc.data["images"][0]["caption"] == "First"
    assert doc.data["images"][1].startswith("/assets/algorotoscope/b-test-filter-")
    assert 'caption: "First"' in out_text  # the author's quoting survives
    for name in stylized_names(out_text):
        assert (out_dir(site) / IMAGES_DIR / name).is_file()


def test_image_keys_setting_decides_which_front_matter_keys_hold_images(site):
    write(site / "_config.yml", (site / "_config.yml").read_text() + "  image_keys: [hero]\n")
    write(site / "_posts/2024-04-03-hero.md", "---\nalgorotoscope: test-filter\nhero: /assets/img/a.jpg\n"
                                              "image: /assets/img/b.jpg\n---\nText.\n")
    assert builder(site).build().errors == []
    doc = read_document(out_dir(site) / "_posts/2024-04-03-hero.md", "p.md", "posts")
    assert doc.data["hero"].startswith("/assets/algorotoscope/a-test-filter-")
    assert doc.data["image"] == "/assets/img/b.jpg"  # not an image key on this site


def test_rewrite_front_matter_falls_back_to_dump_when_needed(tmp_path):
    path = write(tmp_path / "p.md", "---\nalgorotoscope: x\nalgorotoscope_credits: old\n---\nbody\n")
    doc = read_document(path, "p.md", "pages")
    text = rewrite_front_matter(doc, [], [{"filter": "x"}])
    assert yaml.safe_load(text) == {"algorotoscope": "x", "algorotoscope_credits": [{"filter": "x"}]}


def test_only_and_skip(site):
    write(site / "_posts/2024-04-01-sel.md", """\
---
algorotoscope: {filter: test-filter, only: ["assets/img/*.jpg"], skip: [b.jpg]}
---
![a](/assets/img/a.jpg) ![b](/assets/img/b.jpg) ![c](/assets/img/c.png)
""")
    builder(site).build()
    text = (out_dir(site) / "_posts/2024-04-01-sel.md").read_text()
    assert "a-test-filter-" in text and "(/assets/img/b.jpg)" in text and "(/assets/img/c.png)" in text


def test_post_options_reach_the_stylizer_and_the_cache_key(site):
    class Recording(FakeStylizer):
        def stylize_file(self, src, dst, flt, options, name=None, xmp=None):
            seen.append((name, options.strength, options.keep_colors, options.max_size))
            return super().stylize_file(src, dst, flt, options, name)

    seen = []
    write(site / "_posts/2024-04-02-opts.md", "---\nalgorotoscope: {filter: test-filter, strength: 0.8, "
                                              "keep_colors: true, max_size: 64}\n---\n![a](/assets/img/a.jpg)\n")
    b = builder(site)
    b.stylizer = Recording()
    assert b.build().errors == []
    assert ("/assets/img/a.jpg", 0.8, True, 64) in seen
    assert ("/assets/img/a.jpg", 1.0, False, 1600) in seen  # the copper post: the site's defaults
    # other options, another cache key, so another file
    names = {n for rel in ("2024-04-02-opts.md", "2024-01-01-copper.md")
             for n in stylized_names((out_dir(site) / "_posts" / rel).read_text()) if n.startswith("a-")}
    assert len(names) == 2


def test_jekyll_defaults_can_enable_a_filter(site):
    write(site / "_config.yml", "baseurl: /blog\ndefaults:\n  - scope: {path: 'notes'}\n"
                                "    values: {algorotoscope: test-filter, image: /assets/img/b.jpg}\n")
    write(site / "notes/n.md", "---\ntitle: N\n---\n![a](/assets/img/a.jpg)\n")
    report = builder(site).build()
    assert report.errors == []
    doc = read_document(out_dir(site) / "notes/n.md", "notes/n.md", "pages")
    assert "a-test-filter-" in doc.body
    assert doc.data["image"].startswith("/assets/algorotoscope/b-test-filter-")  # default card made explicit


def test_credits_marker_and_site_template(site):
    write(site / "_algorotoscope/credit.html.j2", "<div class=\"mine\">{% for c in credits %}{{ c.title }}{% endfor %}</div>")
    write(site / "_posts/2024-05-01-m.md", "---\nalgorotoscope: test-filter\n---\nA\n\n<!-- algorotoscope-credits -->\n\nB\n"
                                           "![a](/assets/img/a.jpg)\n")
    builder(site).build()
    body = (out_dir(site) / "_posts/2024-05-01-m.md").read_text().split("---\n", 2)[2]
    assert body.startswith("A\n\n<div class=\"mine\">Test Artwork</div>\n<script type=\"application/ld+json\">")
    assert "</script>\n\nB\n" in body
    # changing the template rebuilds every stylized document
    write(site / "_algorotoscope/credit.html.j2", "<div class=\"mine2\"></div>")
    report = builder(site).build()
    assert "_posts/2024-05-01-m.md" in report.written
    assert 'class="mine2"' in (out_dir(site) / "_posts/2024-05-01-m.md").read_text()


def test_credit_template_named_in_config(site):
    cfg = (site / "_config.yml").read_text() + "  credit_template: _theme/credit.j2\n"
    write(site / "_config.yml", cfg)
    with pytest.raises(ConfigError, match="credit_template: template file not found: _theme/credit.j2") as info:
        builder(site).build()
    assert info.value.path == site / "_config.yml" and info.value.line == 8
    write(site / "_theme/credit.j2", "<p class=\"theirs\">{% for c in credits %}{{ c.title }} by {{ c.creator }}"
                                     "{% endfor %}</p>")
    assert builder(site).build().errors == []
    body = (out_dir(site) / "_posts/2024-01-01-copper.md").read_text()
    assert '<p class="theirs">Test Artwork by A. Painter</p>' in body and "algorotoscope-credits" not in body


def test_figure_mode_wraps_images_with_caption(site):
    cfg = (site / "_config.yml").read_text() + "algorotoscope:\n  figure: true\n"
    write(site / "_config.yml", cfg)
    builder(site).build()
    body = (out_dir(site) / "_posts/2024-01-01-copper.md").read_text()
    assert body.count('<figure class="algorotoscope-figure"') == 3
    assert body.count("<figcaption") == 3 and "Test Artwork" in body
    assert 'alt="Alt B"' in body and "![Alt A](" in body


def test_drafts_only_with_flag(site):
    write(site / "_drafts/wip.md", "---\nalgorotoscope: test-filter\n---\n![a](/assets/img/a.jpg)\n")
    builder(site).build()
    assert (out_dir(site) / "_drafts/wip.md").read_text() == (site / "_drafts/wip.md").read_text()
    builder(site, drafts=True).build()
    assert "a-test-filter-" in (out_dir(site) / "_drafts/wip.md").read_text()


def test_remote_images(site, monkeypatch):
    from blogroto.build import remote

    fetched = []

    def fake_fetch(self, url):
        fetched.append(url)
        if "bad" in url:
            raise remote.RemoteImageError(url, "HTTP 404 Not Found")
        return jpeg(42), "photo.jpg"

    monkeypatch.setattr(remote.RemoteFetcher, "fetch", fake_fetch)
    write(site / "_posts/2024-06-01-r.md", "---\nalgorotoscope: test-filter\n---\n![r](https://example.org/p/photo.jpg)\n\n"
                                           "![bad](https://example.org/bad.jpg)\n")
    report = builder(site, jobs=4).build()
    text = (out_dir(site) / "_posts/2024-06-01-r.md").read_text()
    assert "![r]({{site.baseurl}}/assets/algorotoscope/photo-test-filter-" in text
    assert "![bad](https://example.org/bad.jpg)" in text
    assert any("2024-06-01-r.md:6:" in w and "404" in w for w in report.warnings)
    assert sorted(fetched) == ["https://example.org/bad.jpg", "https://example.org/p/photo.jpg"]


def test_render_with_liquid_false_uses_literal_baseurl(site):
    write(site / "_posts/2024-06-02-nl.md", "---\nalgorotoscope: test-filter\nrender_with_liquid: false\n---\n"
                                            "![r](../assets/img/a.jpg)\n")
    builder(site).build()
    assert "![r](/blog/assets/algorotoscope/a-test-filter-" in (out_dir(site) / "_posts/2024-06-02-nl.md").read_text()


# -- incremental API, check mode, gc ---------------------------------------------------------


def test_incremental_paths(site):
    b = builder(site)
    b.build()
    post = site / "_posts/2024-01-02-plain.md"
    write(post, "---\ntitle: Plain\nalgorotoscope: test-filter\n---\n![x](/assets/img/a.jpg)\n")
    new = write(site / "new.txt", "hello")
    report = b.build(paths=[post, new])
    assert set(report.written) == {"_posts/2024-01-02-plain.md", "new.txt"}
    assert "a-test-filter-" in (out_dir(site) / "_posts/2024-01-02-plain.md").read_text()
    new.unlink()
    report = b.build(paths=[new])
    assert report.removed == ["new.txt"]


def test_incremental_template_change_and_removal_rebuild_stylized_documents(site):
    # what `watch` does when the author edits or deletes the site's credit template
    b = builder(site)
    b.build()
    post = "_posts/2024-01-01-copper.md"
    tpl = write(site / "_algorotoscope/credit.html.j2", "<div class=\"mine\">{{ credits[0].title }}</div>")
    report = b.build(paths=[tpl])
    assert post in report.written and "_posts/2024-01-02-plain.md" not in report.written
    assert '<div class="mine">Test Artwork</div>' in (out_dir(site) / post).read_text()
    tpl.unlink()
    report = b.build(paths=[tpl])
    assert post in report.written and 'class="mine"' not in (out_dir(site) / post).read_text()


def test_check_mode_writes_nothing(site):
    b = builder(site, check=True)
    report = b.build()
    assert report.would_change and not report.written
    assert not out_dir(site).exists()
    builder(site).build()
    # replaced, not written in place: a write through the hard link would show in the output at once
    write(site / "index.new", "---\ntitle: Home 2\n---\n")
    os.replace(site / "index.new", site / "index.md")
    report = builder(site, check=True).build()
    assert report.would_change == ["index.md"]
    assert "Home 2" not in (out_dir(site) / "index.md").read_text()


def test_gc_and_prune(site):
    from blogroto.build.cache import OutputCache

    builder(site).build()
    cache = OutputCache(site / ".blogroto-cache")
    assert len(list(cache.entries())) == 3
    write(site / "_posts/2024-01-01-copper.md", POST.replace("test-filter", "other-filter"))
    report = builder(site, prune=True).build()
    assert report.pruned == 3
    assert len(list(cache.entries())) == 3  # only the other filter's
    # gc removes unreferenced stylized images left in the output folder (here: a copy of a cache
    # entry blogroto recorded, under a stylized name), and only those: a file blogroto did not
    # record writing is left alone, whatever its name
    entry = next(iter(cache.entries()))
    key, ext = entry.name.split(".")
    stray = f"stray-test-filter-{key[:10]}.{ext}"
    write(out_dir(site) / IMAGES_DIR / stray, entry.read_bytes())
    write(out_dir(site) / IMAGES_DIR / "orphan-test-filter-0000000000.jpg", jpeg(1))
    gc = builder(site).gc()
    assert gc.output_images_removed == [f"{IMAGES_DIR}/{stray}"]
    assert gc.left_alone == 1 and (out_dir(site) / IMAGES_DIR / "orphan-test-filter-0000000000.jpg").is_file()


# -- CLI -------------------------------------------------------------------------------------


def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "blogroto", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=300)


def test_cli_exit_codes(site):
    # nothing to stylize: exit 0 with a summary line, without importing TensorFlow
    write(site / "_posts/2024-01-01-copper.md", "---\ntitle: x\n---\n")
    ok = run_cli("build", str(site))
    assert ok.returncode == 0, ok.stderr
    assert "0 posts, 0 images stylized, 0 cache hits, 0 warnings, 0 errors" in ok.stdout
    write(site / "_posts/2024-02-01-typo.md", "---\nalgorotoscope: nope-filter\n---\n")
    failed = run_cli("build", str(site), "-q")
    assert failed.returncode == 1 and "unknown filter 'nope-filter'" in failed.stderr and failed.stdout == ""
    write(site / "_config.yml", "algorotoscope:\n  strength: lots\n")
    bad = run_cli("build", str(site))
    assert bad.returncode == 2 and "_config.yml:2:" in bad.stderr and "Traceback" not in bad.stderr
    assert run_cli("build", str(site), "--jobs", "0").returncode == 2


def test_cli_out_drafts_force_verbose_and_gc(site, tmp_path):
    write(site / "_drafts/wip.md", "---\nalgorotoscope: test-filter\n---\n![a](/assets/img/a.jpg)\n")
    builder(site, drafts=True).build()  # fills the cache, so the CLI runs below never stylize (no TF)
    other = tmp_path / "other-out"
    res = run_cli("build", str(site), "--out", str(other), "--drafts", "--verbose")
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().endswith(f"-> {other}") and "0 images stylized" in res.stdout
    assert "wrote _drafts/wip.md" in res.stderr.splitlines()
    assert "a-test-filter-" in (other / "_drafts/wip.md").read_text()
    # the earlier default build (SITE/_blogroto) and the cache are not copied into the new output
    assert not (other / "_blogroto").exists() and not (other / ".blogroto-cache").exists()
    assert (site / "_blogroto/site/_posts/2024-01-01-copper.md").exists()  # the default output is left alone
    res = run_cli("build", str(site), "--out", str(other), "--drafts", "--force", "--verbose")
    assert res.returncode == 0 and "wrote " not in res.stderr, res.stderr  # re-checked everything, wrote nothing
    orphan = other / IMAGES_DIR / "orphan-test-filter-0000000000.jpg"
    write(orphan, jpeg(1))
    res = run_cli("gc", str(site), "--out", str(other))
    # a file blogroto did not record writing is never deleted, whatever its name
    assert res.returncode == 0 and "and 0 output images; left 1 file blogroto" in res.stdout, res.stdout + res.stderr
    assert orphan.exists() and (other / "_drafts/wip.md").exists()


def test_real_stylizer_tiny_filter(tmp_path, tiny_filter):
    """End to end with TensorFlow and a real (tiny) network."""
    root = tmp_path / "site"
    write(root / "_config.yml", "title: T\n")
    write(root / "assets/a.jpg", jpeg(1, size=(64, 48)))
    folder = Path(tiny_filter.folder) if hasattr(tiny_filter, "folder") else Path(tiny_filter)
    write(root / "_config.yml", f"algorotoscope:\n  filters: [{folder.parent}]\n")
    write(root / "_posts/2024-01-01-x.md", f"---\nalgorotoscope: {folder.name}\n---\n![a](/assets/a.jpg)\n")
    report = Builder(root).build()
    assert report.errors == [] and report.images_stylized == 1
    (name,) = set(stylized_names((root / "_blogroto/site/_posts/2024-01-01-x.md").read_text()))
    with Image.open(root / "_blogroto/site" / IMAGES_DIR / name) as im:
        assert im.format == "JPEG" and im.size == (64, 48)


def test_broken_filter_fails_its_documents(site):
    from blogroto.errors import FilterError

    class Broken(FakeStylizer):
        def stylize_file(self, src, dst, flt, options, name=None, xmp=None):
            if flt.slug == OTHER:
                raise FilterError("weights file is corrupt", flt.folder / "weights.npz")
            return super().stylize_file(src, dst, flt, options, name)

    write(site / "_posts/2024-07-01-o.md", "---\nalgorotoscope: other-filter\n---\n![a](/assets/img/a.jpg)\n")
    b = builder(site)
    b.stylizer = Broken()
    report = b.build()
    assert len(report.errors) == 1 and "2024-07-01-o.md:4:" in report.errors[0] and "corrupt" in report.errors[0]
    assert (out_dir(site) / "_posts/2024-07-01-o.md").read_text() == (site / "_posts/2024-07-01-o.md").read_text()
    assert report.posts == 1  # the test-filter post still built


def test_symlink_inside_the_site_is_published_as_what_it_points_to(site):
    # Jekyll publishes an in-site link as its target; the output holds no symlinks at all
    os.symlink("index.md", site / "home.md")
    os.symlink("assets", site / "media")
    builder(site).build()
    out = out_dir(site)
    assert not (out / "home.md").is_symlink() and (out / "home.md").read_bytes() == (site / "index.md").read_bytes()
    assert not (out / "media").is_symlink() and (out / "media/img/a.jpg").read_bytes() == (site / "assets/img/a.jpg").read_bytes()
    assert builder(site).build().written == []


def test_only_the_documents_of_a_changed_filter_rebuild(site):
    write(site / "_posts/2024-07-01-o.md", "---\nalgorotoscope: other-filter\n---\n![a](/assets/img/a.jpg)\n")
    builder(site).build()
    meta = site / "_filters" / OTHER / "filter.yaml"
    data = yaml.safe_load(meta.read_text())
    data["source"]["title"] = "Renamed Artwork"
    meta.write_text(yaml.safe_dump(data))
    report = builder(site).build()
    # the test-filter post is untouched; the other post and its image are rewritten, because the
    # image embeds the (changed) artwork credit as XMP
    assert [w for w in report.written if w.endswith(".md")] == ["_posts/2024-07-01-o.md"]
    assert "Renamed Artwork" in (out_dir(site) / "_posts/2024-07-01-o.md").read_text()
    # a filter folder appearing in the site that shadows nothing used changes nothing
    make_filter(site / "_filters", "unrelated-filter")
    report = builder(site).build()
    assert sorted(report.written) == ["_filters/unrelated-filter/filter.yaml", "_filters/unrelated-filter/weights.npz"]


def test_front_matter_edits_keep_quoting_flow_lists_and_crlf(site):
    text = ("---\r\ntitle: 'It''s here'\r\ndate: 2024-01-05 10:00:00 +0100\r\nalgorotoscope: test-filter\r\n"
            "image: '/assets/img/a.jpg'\r\nimages: [/assets/img/b.jpg, \"/assets/img/c.png\"]\r\n---\r\nBody\r\n")
    write(site / "_posts/2024-01-05-crlf.md", text.encode())
    report = builder(site).build()
    assert report.errors == []
    out = (out_dir(site) / "_posts/2024-01-05-crlf.md").read_bytes().decode()
    head = out.split("\r\n---\r\n", 1)[0]
    assert "\n" not in head.replace("\r\n", "")  # every line ends in CRLF, as the author's
    assert "title: 'It''s here'\r\ndate: 2024-01-05 10:00:00 +0100\r\n" in head  # untouched text
    assert "image: '/assets/algorotoscope/a-test-filter-" in head  # single quotes kept
    assert 'images: [/assets/algorotoscope/b-test-filter-' in head and ', "/assets/algorotoscope/c-test-filter-' in head
    assert out.endswith("Body\r\n\r\n" + out.split("Body\r\n\r\n", 1)[1])  # credits appended after the body


def test_yaml_alias_falls_back_to_a_full_dump(site):
    write(site / "_posts/2024-01-06-alias.md", "---\nalgorotoscope: test-filter\nimage: &card /assets/img/a.jpg\n"
                                               "thumb: *card\n---\nx\n")
    builder(site).build()
    doc = read_document(out_dir(site) / "_posts/2024-01-06-alias.md", "p.md", "posts")
    assert doc.data["image"].startswith("/assets/algorotoscope/a-test-filter-")
    assert doc.data["thumb"] == "/assets/img/a.jpg"  # the other user of the anchor keeps its value
    assert doc.data["algorotoscope_credits"][0]["filter"] == FILTER


def test_incremental_image_change_rebuilds_dependent_posts(site):
    b = builder(site)
    b.build()
    before = (out_dir(site) / "_posts/2024-01-01-copper.md").read_text()
    os.replace(write(site / "assets/img/a.new", jpeg(77)), site / "assets/img/a.jpg")
    report = b.build(paths=[site / "assets/img/a.jpg"])
    after = (out_dir(site) / "_posts/2024-01-01-copper.md").read_text()
    assert "_posts/2024-01-01-copper.md" in report.written and before != after
    assert report.images_stylized == 1 and report.posts_rebuilt == 1


def test_copy_fallback_when_hard_links_fail(site, monkeypatch):
    import errno as errno_mod

    def no_links(src, dst, *a, **kw):
        raise OSError(errno_mod.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", no_links)
    report = builder(site).build()
    assert report.errors == []
    out = out_dir(site)
    assert (out / "index.md").read_bytes() == (site / "index.md").read_bytes()
    assert (out / "index.md").stat().st_ino != (site / "index.md").stat().st_ino
    assert builder(site).build().written == []  # copies are recognised as up to date
