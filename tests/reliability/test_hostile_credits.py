"""Text from filter folders and posts that blogroto publishes: inert to Liquid, no markup, no secrets.

A filter's `source.title`/`source.credit` and a post's title reach credit blocks, figure captions,
front matter and catalog pages, all of which `jekyll build` renders with Liquid. `{% raw %}` is
no guard ('{%endraw%}' closes it: that published `site.*` values and a live <script>); instead
every `{`, `}` and `%` of such text is written as an HTML character reference
(`blogroto.credits.templates.liquid_inert`), so no Liquid delimiter can exist in it whatever it holds,
and browsers still show the characters. URLs are published through `record.safe_url` only,
which drops `user:password@`.
"""

from __future__ import annotations

import html
import os
import re
import shutil
import subprocess

import pytest

from blogroto.credits.record import safe_url
from blogroto.credits.templates import liquid_inert
from tests.reliability.kit import FILTER, fake_filter

# Every way to start or end a Liquid tag or output that we know of, alone and combined with markup.
DELIMITERS = [
    "{%endraw%}", "{% endraw %}", "{%- endraw -%}", "{%-endraw-%}", "{%\tendraw\n%}", "{%  endraw  -%}",
    "{%raw%}", "{% raw %}", "{%- raw %}", "{% comment %}", "{% endcomment %}", "{%liquid echo site.title%}",
    "{{ site.title }}", "{{site.title}}", "{{- site.title -}}", "{{-site.title-}}", "{{\nsite.title\n}}",
    "{{", "}}", "{%", "%}", "{{{", "}}}", "{%%}", "{ {", "{ %", "%", "{", "}",
    "{%endraw%}{{ site.title }}{% raw %}", "{%endraw%}<script>alert(1)</script>{%raw%}",
    "{%endraw%}{% include secret.html %}{%raw%}", "{% assign x = site | jsonify %}{{ x }}",
]
SECRET = "SITE-TITLE-SECRET"


def no_liquid(text: str) -> bool:
    return "{{" not in text and "{%" not in text


@pytest.mark.parametrize("variant", DELIMITERS)
def test_liquid_inert_leaves_no_delimiter(variant):
    out = liquid_inert(f"a {variant} b")
    assert no_liquid(out) and "{" not in out and "%" not in out.replace("&#37;", "")
    assert html.unescape(out) == f"a {variant} b"


@pytest.mark.parametrize("variant", DELIMITERS)
def test_credit_and_post_title_with_liquid_are_inert_everywhere(kit, variant):
    kit.config["title"] = SECRET
    kit.write_config(figure=True)
    title = f"Art {variant} <script>alert(1)</script> end"
    fake_filter(kit.filters, FILTER, meta={
        "format": 1, "name": FILTER, "display_name": f"Tiny {variant}",
        "source": {"title": title, "creator": f"Who {variant}", "credit": f"Credit {variant}", "licence": "CC0-1.0",
                   "url": "https://example.org/art"},
        "network": {"width": 4, "blocks": 1}})
    post_title = f"Post {variant} <script>x</script>"
    rel = kit.post("liquid", "![a](/assets/img/good.jpg)\n",
                   front=f"title: {yaml_str(post_title)}\nalgorotoscope: {FILTER}\n")
    result = kit.build()
    assert result.code == 0, result.text
    assert len(kit.stylized(rel)) == 1
    text = kit.output(rel)
    authors = f"title: {yaml_str(post_title)}\n"
    assert text.count(authors) == 1
    assert no_liquid(text.replace(authors, "")), text  # all that blogroto wrote
    assert "<script>alert" not in text.split("---", 2)[1].replace(authors, "")  # front-matter credits: escaped too
    body = text.split("---", 2)[2]
    assert body.count("<script") == 1 and '<script type="application/ld+json">' in body  # only the JSON-LD
    assert "<script>alert" not in body and "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    shown = html.unescape(body)
    assert f"Art {variant} <script>alert(1)</script> end" in shown  # readable once a browser decodes it
    for page in (kit.out / "filters").rglob("*.html"):
        page_text = page.read_text()
        assert no_liquid(page_text), (page, page_text)
        assert "<script>" not in page_text
    catalog = (kit.out / "filters/tiny/index.html").read_text()
    assert f"Post {variant} <script>x</script>" in html.unescape(catalog.replace("&lt;", "<").replace("&gt;", ">"))


def yaml_str(value: str) -> str:
    import json

    return json.dumps(value)


# -- credentials in published URLs ---------------------------------------------------------------


@pytest.mark.parametrize("url, published", [
    ("https://user:s3cret@example.org/art", "https://example.org/art"),
    ("https://s3cret@example.org/a?b=c#d", "https://example.org/a?b=c#d"),
    ("//user:s3cret@example.org/x", "//example.org/x"),
    ("http://u:s3cret@[::1]:8080/x", "http://[::1]:8080/x"),
    ("https://example.org/p@th", "https://example.org/p@th"),
    ("javascript:alert(1)", None), ("http://[::1/x", None), ("", None),
])
def test_safe_url_strips_credentials(url, published):
    assert safe_url(url) == published


def test_credentials_in_filter_urls_are_never_published(kit):
    fake_filter(kit.filters, FILTER, meta={
        "format": 1, "name": FILTER,
        "source": {"title": "Art", "url": "https://user:s3cret@example.org/art",
                   "licence": "CC-BY-4.0", "licence_url": "https://lic:s3cret@creativecommons.org/licenses/by/4.0/"},
        "network": {"width": 4, "blocks": 1}})
    kit.write_config(figure=True)
    result = kit.build()
    assert result.code == 0, result.text
    # _filters/ is the author's own folder copied as it is (Jekyll does not publish `_` folders).
    leaked = [p for p in kit.out.rglob("*") if p.is_file() and b"s3cret" in p.read_bytes()
              and p.relative_to(kit.out).parts[0] != "_filters"]
    assert leaked == []  # posts, JSON-LD, front matter, catalog pages, the images' XMP
    assert "https://example.org/art" in kit.output("_posts/2024-01-01-good.md")


# -- with real Jekyll --------------------------------------------------------------------------


def jekyll() -> str:
    exe = shutil.which("jekyll")
    if exe is None:
        if os.environ.get("BLOGROTO_REQUIRE_JEKYLL") == "1":
            pytest.fail("jekyll is not installed but BLOGROTO_REQUIRE_JEKYLL=1")
        pytest.skip("jekyll is not installed")
    return exe


@pytest.mark.slow
def test_jekyll_renders_hostile_credits_as_text(kit, tmp_path):
    """`jekyll build` of the output: every variant shows as written, no site value or script leaks."""
    kit.config["title"] = SECRET
    kit.config["secret_key"] = SECRET
    kit.write_config(figure=True)
    title = " | ".join(DELIMITERS) + " <script>alert(1)</script>"
    fake_filter(kit.filters, FILTER, meta={
        "format": 1, "name": FILTER, "source": {"title": title, "credit": title, "creator": "{{ site.secret_key }}"},
        "network": {"width": 4, "blocks": 1}})
    kit.write("_layouts/default.html", "<html><title>{{ page.title }}</title>{{ content }}</html>\n")
    kit.write("_layouts/post.html", "<html>{{ content }}</html>\n")  # the post's title is the author's own
    kit.post("liquid", "![a](/assets/img/good.jpg)\n",
             front=f"title: {yaml_str('Post ' + title)}\nlayout: post\nalgorotoscope: {FILTER}\n")
    result = kit.build()
    assert result.code == 0, result.text
    dest = tmp_path / "jekyll-out"
    proc = subprocess.run([jekyll(), "build", "-s", str(kit.out), "-d", str(dest), "--safe", "--disable-disk-cache",
                           "--quiet"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    pages = [p for p in dest.rglob("*.html")]
    post = next(p for p in pages if "liquid" in p.as_posix())
    rendered = post.read_text()
    assert SECRET not in rendered
    assert "<script>alert" not in rendered
    visible = html.unescape(re.sub(r"<(?!script)[^>]*>", "", rendered))
    assert title in visible
    catalog = [p for p in pages if "filters" in p.relative_to(dest).parts]
    assert len(catalog) == 2
    for page in catalog:  # the filter's title in <title> (front matter), the post's title listed
        text = page.read_text()
        assert SECRET not in text and "<script>alert" not in text
    filter_page = (dest / "filters/tiny/index.html").read_text()
    head, body = filter_page.split("</title>", 1)
    assert html.unescape(head).endswith("tiny: a filter learned from "
                                        + title.replace("<script>alert(1)</script>", "scriptalert(1)/script"))
    assert "Post " + title in html.unescape(re.sub(r"<[^>]*>", "", body))  # markup dropped, Liquid shown
