"""Responsive output (blogroto.responsive): widths and formats derived from the stylized file,
srcset/sizes/<picture>, width/height, lazy loading, social cards, and PNG inputs that do not grow."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from PIL import Image

from blogroto import responsive
from blogroto.credits import xmp as credit_xmp
from blogroto.errors import ConfigError
from blogroto.site.config import Preset, parse_post_options, parse_settings
from tests.conftest import make_photo

PRESET = """\
  responsive:
    presets:
      default: {widths: [16, 32, 64], sizes: "(max-width: 40em) 100vw, 40em"}
      small: {widths: [16], formats: [original]}
    social_card: {width: 40, height: 21}
"""

BODY = """\
First, with a class and an id:

![A *cup*](/assets/cup.jpg "Morning"){: .wide #cup}

![kept as one file](/assets/cup.jpg){: .no-srcset}

<img src="/assets/cup.jpg" alt="html" sizes="50vw" width="10">

<img src="/assets/cup.jpg" srcset="/assets/cup.jpg 80w" alt="own srcset">

![by reference][ref]

[ref]: /assets/cup.jpg
"""


def site(root: Path, tiny_filter_dir: Path, body: str = BODY, config: str = PRESET, front: str = "") -> Path:
    (root / "_posts").mkdir(parents=True)
    (root / "_config.yml").write_text("title: T\nalgorotoscope:\n  catalog: false\n  max_size: 0\n" + config)
    shutil.copytree(tiny_filter_dir / "tiny", root / "_filters" / "tiny")
    make_photo(root / "assets" / "cup.jpg", size=(80, 48))
    (root / "_posts" / "2024-01-01-a.md").write_text(f"---\n{front}algorotoscope: tiny\n---\n" + body)
    return root


def build(root: Path, stylizer):
    from blogroto.build import Builder, BuildOptions

    b = Builder(root, BuildOptions(progress=False))
    b.stylizer = stylizer
    return b.build()


def output(root: Path) -> str:
    return (root / "_blogroto" / "site" / "_posts" / "2024-01-01-a.md").read_text()


def images_dir(root: Path) -> Path:
    return root / "_blogroto" / "site" / "assets" / "algorotoscope"


def candidates(srcset: str) -> list[tuple[str, int]]:
    return [(url.rsplit("/", 1)[1], int(w[:-1])) for url, w in (c.split() for c in srcset.split(", "))]


def test_markdown_and_html_images_become_responsive(tmp_path, tiny_filter_dir, stylizer):
    root = site(tmp_path / "s", tiny_filter_dir)
    author = (root / "_posts" / "2024-01-01-a.md").read_bytes()
    report = build(root, stylizer)
    assert report.errors == [] and report.images_stylized == 1, report
    post = output(root)
    pictures = re.findall(r"<picture>.*?</picture>", post)
    assert len(pictures) == 4, post  # the Markdown image, the plain <img>, the <img> with its own srcset, by reference
    md = pictures[0]
    webp = re.search(r'<source type="image/webp" srcset="([^"]+)" sizes="\(max-width: 40em\) 100vw, 40em">', md)
    jpeg = re.search(r'<img src="/assets/algorotoscope/([^"]+)" alt="A \*cup\*" title="Morning" class="wide" id="cup" '
                     r'srcset="([^"]+)" sizes="[^"]+" width="80" height="48" decoding="async">', md)
    assert webp and jpeg, md  # the first image of the post: not lazy
    stylized = jpeg.group(1)
    assert [w for _n, w in candidates(webp.group(1))] == [16, 32, 64, 80]
    assert candidates(jpeg.group(2))[-1] == (stylized, 80) and [w for _n, w in candidates(jpeg.group(2))] == [16, 32, 64, 80]
    for name, width in candidates(webp.group(1)) + candidates(jpeg.group(2)):
        with Image.open(images_dir(root) / name) as im:
            assert im.width == width and im.height == round(48 * width / 80)
            assert im.format == ("WEBP" if name.endswith(".webp") else "JPEG")
            credit = credit_xmp.read_xmp(im.info["xmp"])
        assert credit["blogroto:filter"] == "tiny"  # every derived file carries the credit
    # the author's <img>: attributes added in place, theirs kept (sizes, width: no height added)
    html_img = pictures[1]
    assert 'sizes="50vw"' in html_img and 'width="10"' in html_img and "height=" not in html_img
    assert 'loading="lazy"' in html_img and html_img.count("sizes=") == 2  # <source> takes the author's sizes
    # the author's own srcset: kept, each candidate offered as WebP too, and the size added
    own = pictures[2]
    assert re.search(r'<source type="image/webp" srcset="/assets/algorotoscope/[^" ]+-80w-\w+\.webp 80w"', own), own
    assert f'srcset="/assets/algorotoscope/{stylized} 80w"' in own and 'width="80" height="48"' in own
    # reference-style: the use becomes HTML (the definition stays, unused); opted out: one file, in Markdown
    assert re.search(r'<img src="/assets/algorotoscope/[^"]+" alt="by reference" srcset=[^>]+ loading="lazy"', pictures[3])
    assert f"[ref]: /assets/algorotoscope/{stylized}" in post and "![by reference][ref]" not in post
    assert f"![kept as one file](/assets/algorotoscope/{stylized}){{: .no-srcset}}" in post
    assert (root / "_posts" / "2024-01-01-a.md").read_bytes() == author  # Markdown -> HTML in the output only
    assert "images " in report.summary() and report.bytes_in > 0 and report.bytes_out > 0


def test_variants_are_cached_and_follow_the_preset(tmp_path, tiny_filter_dir, stylizer, monkeypatch):
    root = site(tmp_path / "s", tiny_filter_dir)
    assert build(root, stylizer).errors == []
    first = sorted(p.name for p in images_dir(root).iterdir())
    assert len(first) == 8  # 4 WebP + 3 derived JPEG + the stylized JPEG

    calls = []
    real = responsive.render_variant
    monkeypatch.setattr(responsive, "render_variant", lambda *a, **k: calls.append(a) or real(*a, **k))
    (root / "_posts" / "2024-01-01-a.md").write_text((root / "_posts" / "2024-01-01-a.md").read_text() + "\nmore\n")
    report = build(root, stylizer)
    assert report.images_stylized == 0 and calls == []  # nothing re-stylized, nothing re-encoded
    assert sorted(p.name for p in images_dir(root).iterdir()) == first

    # a damaged cache entry is not published: it is made again
    cache = root / ".blogroto-cache"
    entry = next(p for p in cache.rglob("*.webp"))
    entry.write_bytes(b"not a webp")
    (root / "_posts" / "2024-01-01-a.md").write_text((root / "_posts" / "2024-01-01-a.md").read_text() + "\n!\n")
    report = build(root, stylizer)
    assert len(calls) == 1 and any("does not match" in w for w in report.warnings), report.warnings

    # another preset for the post: its files replace the old ones in the output
    text = (root / "_posts" / "2024-01-01-a.md").read_text()
    (root / "_posts" / "2024-01-01-a.md").write_text(text.replace("algorotoscope: tiny",
                                                                  "algorotoscope: {filter: tiny, responsive: small}"))
    assert build(root, stylizer).errors == []
    names = sorted(p.name for p in images_dir(root).iterdir())
    assert not any(n.endswith(".webp") for n in names) and len(names) == 2, names  # 16w + the stylized file
    assert "<picture>" not in output(root) and re.search(r'srcset="[^"]+-16w-\w+\.jpg 16w, [^"]+ 80w"', output(root))
    # gc: the old preset's derived files go from the cache (its 16w JPEG is the new one), the output stays
    from blogroto.build import Builder

    gc = Builder(root).gc()
    assert gc.cache_entries_removed == 6 and sorted(p.name for p in images_dir(root).iterdir()) == names
    assert build(root, stylizer).images_stylized == 0

    (root / "_posts" / "2024-01-01-a.md").write_text(text.replace("algorotoscope: tiny",
                                                                  "algorotoscope: {filter: tiny, responsive: false}"))
    assert build(root, stylizer).errors == []
    assert "<picture>" not in output(root) and "w-" not in output(root) and "decoding" not in output(root)
    assert len(list(images_dir(root).iterdir())) == 1


def test_social_card_png_and_transparency(tmp_path, tiny_filter_dir, stylizer):
    body = "![grey](/assets/grey.png)\n\n![clear](/assets/clear.png)\n"
    root = site(tmp_path / "s", tiny_filter_dir, body, front="image: /assets/cup.jpg\n")
    make_photo(root / "assets" / "grey.png", size=(80, 48), mode="L")
    clear = Image.open(make_photo(root / "assets" / "clear.png", size=(80, 48))).convert("RGBA")
    clear.putalpha(Image.linear_gradient("L").resize((80, 48)))
    clear.save(root / "assets" / "clear.png")
    report = build(root, stylizer)
    assert report.errors == [], report
    post = output(root)
    card = re.search(r"^image: /assets/algorotoscope/(cup-tiny-\w+-card-\w+\.jpg)$", post, re.M)
    assert card, post
    with Image.open(images_dir(root) / card.group(1)) as im:
        assert im.size == (40, 21) and im.format == "JPEG"
    # an opaque (greyscale) PNG is stylized to JPEG: a stylized photo gains nothing from PNG
    assert re.search(r'<img src="/assets/algorotoscope/grey-tiny-\w+\.jpg"', post), post
    # a transparent PNG stays PNG, WebP keeps its alpha, and no JPEG candidate is made for it
    clear = re.search(r'<source type="image/webp" srcset="([^"]+)"[^>]*><img src="/assets/algorotoscope/(clear-[^"]+\.png)"',
                      post)
    assert clear, post
    for name, _w in candidates(clear.group(1)):
        with Image.open(images_dir(root) / name) as im:
            assert im.mode == "RGBA"
    assert not list(images_dir(root).glob("clear-*.jpg"))


def test_animation_gets_size_and_loading_only(tmp_path, tiny_filter_dir, stylizer):
    from tests.test_animation import clip, encoded

    root = site(tmp_path / "s", tiny_filter_dir, "![cup](/assets/cup.jpg)\n\n![wave](/assets/wave.gif)\n")
    (root / "assets" / "wave.gif").write_bytes(encoded(clip(3), "GIF", [40] * 3, loop=0))
    assert build(root, stylizer).errors == []
    gif = re.search(r'<img src="/assets/algorotoscope/wave-[^"]+\.gif" alt="wave"([^>]*)>', output(root))
    assert gif and gif.group(1) == ' width="48" height="32" loading="lazy" decoding="async"', output(root)


def test_markup_helpers():
    assert responsive.markdown_attributes('![a](b){: .x .y #i data-k="v" k2=\'w\'}', 6) == [
        ("class", "x y"), ("id", "i"), ("data-k", "v"), ("k2", "w")]
    assert responsive.markdown_attributes("![a](b){: someald}", 6) is None  # an ALD reference: not ours to expand
    assert responsive.markdown_attributes("![a](b)", 6) == []
    tag = '<img src="x.jpg" data-src="y" SIZES=\'50vw\' alt="a &amp; b">'
    assert responsive.tag_attribute_names(tag) == {"src", "data-src", "sizes", "alt"}
    assert responsive.tag_attribute(tag, "sizes") == "50vw" and responsive.tag_attribute(tag, "alt") == "a & b"
    assert responsive.tag_attribute(tag, "src") == "x.jpg"
    images = responsive.plan_set(key="k" * 8, name="a-k.jpg", fmt="jpeg", size=(100, 50), alpha=False,
                                 preset=Preset(widths=(50, 100, 200)), quality=90,
                                 cache_key=lambda **p: "0123456789abcdef", short_hash=10)
    assert [(f, [v.width for v in vs]) for f, vs in images.by_format] == [("webp", [50, 100]), ("jpeg", [50, 100])]
    assert images.by_format[1][1][-1].name == "a-k.jpg"  # the stylized file itself is the largest JPEG
    # Liquid in URLs reaches Jekyll as written
    body = "![a]({{ site.baseurl }}/assets/algorotoscope/a-k.jpg)\n"
    out = responsive.rewrite_body(body, {"a-k.jpg": images}, "assets/algorotoscope")
    assert 'srcset="{{ site.baseurl }}/assets/algorotoscope/a-k-50w-0123456789.jpg 50w, {{ site.baseurl }}' in out


def test_settings(tmp_path):
    cfg = tmp_path / "_config.yml"

    def parse(section):
        return parse_settings(section, tmp_path, cfg)

    assert parse({}).responsive is None  # opt-in: an existing site's output keeps its form
    assert parse({"responsive": False}).responsive is None
    on = parse({"responsive": True}).responsive
    assert on.get("default") == Preset() and on.social_card == (1200, 630)
    custom = parse({"responsive": {"preset": "wide", "presets": {"wide": {"widths": [800, 400, 400], "formats": ["jpg"]}},
                                   "social_card": False}}).responsive
    wide = custom.get("wide")
    assert wide.widths == (400, 800) and wide.formats == ("jpeg",) and wide.sizes == Preset().sizes
    assert custom.social_card is None and custom.preset == "wide"
    for bad, words in [({"presets": {"p": {"widths": []}}}, "widths"),
                       ({"presets": {"p": {"formats": ["gif"]}}}, "'gif' is not one of"),
                       ({"presets": {"p": {"sizes": '100vw" onload="x'}}}, "sizes"),
                       ({"presets": {"p": {"quality": {"webp": 0}}}}, "quality"),
                       ({"preset": "nope"}, "no preset named 'nope'"),
                       ({"social_card": {"width": 5}}, "social_card")]:
        with pytest.raises(ConfigError, match=re.escape(words) if "'" in words else words):
            parse({"responsive": bad})
    settings = parse({"responsive": {"presets": {"thumb": {"widths": [100]}}}})
    post = tmp_path / "p.md"
    assert parse_post_options({"filter": "f", "responsive": "thumb"}, settings, post, 3).responsive.widths == (100,)
    assert parse_post_options({"filter": "f"}, settings, post, 3).responsive == Preset()
    assert parse_post_options({"filter": "f", "responsive": False}, settings, post, 3).responsive is None
    with pytest.raises(ConfigError, match=r"no responsive preset named 'thumbs'.*Did you mean: thumb") as info:
        parse_post_options({"filter": "f", "responsive": "thumbs"}, settings, post, 3, {"responsive": 5})
    assert info.value.line == 5
