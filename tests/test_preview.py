"""The Ruby-free preview: Jekyll's Liquid (python-liquid), Markdown into one layout at Jekyll's URLs, a local server."""

from __future__ import annotations

import datetime as dt
import os
import re
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from blogroto.errors import ConfigError
from blogroto.publish.liquid import JekyllLiquid
from blogroto.publish.preview import (
    BANNER,
    PREVIEW_MARKER,
    render_preview,
    serve_preview,
)
from tests.test_catalog import built_sample, write_site  # noqa: F401 - a shared session fixture

# --------------------------------------------------------------------------------------------
# Jekyll's Liquid

CTX = {"site": {"title": "Notes", "baseurl": "/blog", "posts": [
    {"title": "B", "url": "/b.html", "date": dt.datetime(2024, 5, 1)},
    {"title": "A", "url": "/a.html", "date": dt.datetime(2024, 3, 2)}]},
    "page": {"title": "Hello", "image": {"path": "/img/x.jpg"}, "tags": ["x", "y"], "nothing": ""}}


def render(text: str, **kw) -> str:
    return JekyllLiquid(baseurl="/blog", url="https://example.org", **kw).render(text, CTX)


@pytest.mark.parametrize("text, expected", [
    ("{{ site.baseurl }}/a.jpg", "/blog/a.jpg"),
    ("{{site.baseurl}}/a.jpg", "/blog/a.jpg"),
    ("{{ page.title }} · {{ site.title }}", "Hello · Notes"),
    ("{{ '/a.jpg' | relative_url }}", "/blog/a.jpg"),
    ('{{ "a.jpg" | absolute_url }}', "https://example.org/blog/a.jpg"),
    ("{{ page.image.path | relative_url }}", "/blog/img/x.jpg"),
    ("{{ 'https://x.org/a.jpg' | relative_url }}", "https://x.org/a.jpg"),
    ("{{ page.missing | default: 'none' }}", "none"),
    ("{{ page.nothing | default: 'none' }}", "none"),
    ("{{ page.tags | join: ', ' | upcase }}", "X, Y"),
    ("{{ site.posts.size }} {{ site.posts.first.title }}", "2 B"),
    ("{{ site.posts[1].date | date: '%B %-d, %Y' }}", "March 2, 2024"),
    ("{{ page.title | append: '!' | escape }}", "Hello!"),
    ("{{ '<b>' | escape }}", "&lt;b&gt;"),
    ("{{ page.title | some_plugin_filter: 3 }}", "Hello"),
    ("{% raw %}{{ site.baseurl }}{% endraw %}", "{{ site.baseurl }}"),
    ("a{% comment %}{{ page.title }}{% endcomment %}b", "ab"),
    ("{% for p in site.posts %}{{ forloop.index }}:{{ p.title }}{% unless forloop.last %},{% endunless %}{% endfor %}",
     "1:B,2:A"),
    ("{% for p in site.posts limit:1 %}{{ p.title }}{% endfor %}", "B"),
    ("{% for p in site.posts reversed %}{{ p.title }}{% endfor %}", "AB"),
    ("{% for p in page.none %}x{% else %}empty{% endfor %}", "empty"),
    ("{% if page.image %}yes{% else %}no{% endif %}", "yes"),
    ("{% if page.nothing %}truthy{% endif %}", "truthy"),  # Liquid: only nil and false are false
    ("{% if page.title == 'Nope' %}1{% elsif page.title == 'Hello' %}2{% else %}3{% endif %}", "2"),
    ("{% if page.tags contains 'y' and site.title %}ok{% endif %}", "ok"),
    ("{% unless page.missing %}ok{% endunless %}", "ok"),
    ("{% assign n = site.posts | size %}{{ n }}", "2"),
    ("{% capture t %}[{{ page.title }}]{% endcapture %}{{ t }}{{ t }}", "[Hello][Hello]"),
    ("{% case page.title %}{% when 'x' %}1{% when 'Hello' %}2{% endcase %}", "2"),
    ("a {% include header.html %}b{% seo %}", "a b"),  # other tags are dropped
    ("x  {%- if true -%}  y  {%- endif -%}  z", "xyz"),
    ("{% highlight python %}a < b{% endhighlight %}", '<figure class="highlight"><pre><code class="language-python" '
                                                      'data-lang="python">a &lt; b</code></pre></figure>'),
])
def test_liquid(text, expected):
    assert render(text) == expected


def test_liquid_inside_highlight_is_shown_not_run():
    assert render("{% highlight liquid %}\n{{ page.title }} {% if x %}{% endhighlight %}") == (
        '<figure class="highlight"><pre><code class="language-liquid" data-lang="liquid">'
        "{{ page.title }} {% if x %}</code></pre></figure>")


def test_broken_liquid_leaves_the_text_as_written():
    assert render("a {{ page.title | ") == "a {{ page.title | "


def test_hostile_liquid_is_bounded():
    """A post that loops a billion times or prints without end renders nothing more, quickly."""
    loops = "{% for a in (1..100000) %}{% for b in (1..10000) %}x{% endfor %}{% endfor %}"
    started = time.monotonic()
    out = render("before " + loops)
    assert out == "before "  # the loop past the limit renders nothing
    assert time.monotonic() - started < 30


def test_liquid_link_tags():
    out = render("{% post_url 2024-03-02-a %} {% link about.md %} {% link nope.md %}",
                 link={"about.md": "/blog/about.html"}.get, post_url={"2024-03-02-a": "/blog/a.html"}.get)
    assert out == "/blog/a.html /blog/about.html "


# --------------------------------------------------------------------------------------------
# rendering a site


@pytest.fixture
def out_site(tmp_path) -> Path:
    """An 'output site' as blogroto build leaves one (written by hand: no TensorFlow here)."""
    return write_site(tmp_path / "out", "title: Notes\nbaseurl: /blog\nurl: https://example.org\n"
                      "permalink: /:year/:month/:day/:title.html\n"
                      "collections:\n  projects: {output: true, permalink: /projects/:name.html}\n"
                      "  hidden: {output: false}\n"
                      "defaults:\n  - scope: {path: '', type: posts}\n    values: {layout: post}\n"
                      "exclude: [NOTES.md]\n", {
                          "_posts/2024-03-02-first.md": (
                              "---\ntitle: First post\nimage: /assets/a.jpg\nalgorotoscope: copper-circuit\n---\n"
                              "Hello *world*.\n\n![cat]({{ site.baseurl }}/assets/a.jpg){: .wide}\n\n"
                              '<figure class="algorotoscope-figure" markdown="1">\n![x](/blog/assets/a.jpg)\n'
                              '<figcaption class="algorotoscope-caption">{% raw %}Restyled {{ x }}{% endraw %}</figcaption>\n'
                              "</figure>\n\n"
                              '<aside class="algorotoscope-credits"><p>Credit</p></aside>\n'
                              '<script type="application/ld+json">{"@type":"ImageObject"}</script>\n'),
                          "_posts/2024-04-01-second.md": "---\n---\nSee [the first]({% post_url 2024-03-02-first %}).\n",
                          "_projects/board.md": "---\ntitle: Board\n---\n# Board\n",
                          "_hidden/secret.md": "---\ntitle: Secret\n---\nno\n",
                          "_layouts/default.html": "{{ content }}",
                          "_drafts/draft.md": "---\ntitle: Draft\n---\n",
                          "about.md": "---\ntitle: About\n---\nAbout **me**.\n",
                          "index.html": "---\nlayout: default\ntitle: Home\n---\n<ul>{% for p in site.posts %}"
                                        "<li><a href=\"{{ p.url | relative_url }}\">{{ p.title }}</a></li>{% endfor %}</ul>\n",
                          "feed.xml": "---\nlayout: null\n---\n<feed>{{ site.title }}</feed>\n",
                          "filters/index.html": "---\nlayout: default\ntitle: Filters\npermalink: /filters/\n"
                                                "algorotoscope_catalog: index\n---\n<p>catalog</p>\n",
                          "assets/a.jpg": "jpeg bytes",
                          "assets/style.scss": "---\n---\nbody { color: red; }\n",
                          "NOTES.md": "excluded",
                          "Gemfile": "source 'x'",
                          ".blogroto-output": "marker",
                      })


def test_render_preview_pages(out_site, tmp_path):
    warnings: list[str] = []
    dest = render_preview(out_site, tmp_path / "preview", warnings=warnings)
    root = dest / "blog"
    files = sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file())
    assert files == [PREVIEW_MARKER, "blog/2024/03/02/first.html", "blog/2024/04/01/second.html", "blog/about.html",
                     "blog/assets/a.jpg", "blog/feed.xml", "blog/filters/index.html", "blog/index.html",
                     "blog/projects/board.html", "index.html"]
    assert any("style.scss" in w for w in warnings)
    post = (root / "2024/03/02/first.html").read_text()
    assert BANNER.split(":")[0] in post and "<h1>First post</h1>" in post and "March 2, 2024" in post
    assert '<img alt="cat" class="wide" src="/blog/assets/a.jpg" />' in post
    assert '<img class="social-card" src="/blog/assets/a.jpg"' in post
    assert "<em>world</em>" in post
    # the figure's Markdown is rendered, the raw caption shown as written; the credits and JSON-LD kept
    assert '<figure class="algorotoscope-figure">' in post and '<img alt="x" src="/blog/assets/a.jpg" />' in post
    assert "Restyled {{ x }}</figcaption>" in post
    assert '<aside class="algorotoscope-credits">' in post and '<script type="application/ld+json">' in post
    # nav: home, pages with titles, output collections, the catalog
    assert '<a href="/blog/about">About</a>' in post and '<a href="/blog/projects/board.html">Board</a>' in post
    assert '<a href="/blog/filters/">Filters</a>' in post and "Secret" not in post
    assert 'href="/blog/2024/03/02/first.html"' in (root / "2024/04/01/second.html").read_text()
    home = (root / "index.html").read_text()
    assert '<a href="/blog/2024/04/01/second.html">Second</a>' in home  # Jekyll's title for an untitled post
    assert home.count("first.html") == 1  # the page lists the posts itself: no extra list
    assert (root / "feed.xml").read_text() == "<feed>Notes</feed>\n"  # layout: null, not wrapped
    assert "url=/blog/" in (dest / "index.html").read_text()
    assert (root / "assets/a.jpg").read_bytes() == b"jpeg bytes"



def test_render_preview_copies_where_links_are_impossible(out_site, tmp_path, monkeypatch):
    """A preview folder on another file system: static files are copied (the same primitive as the
    build's, OwnedTree.link_or_copy), equal bytes, a file of its own."""
    import errno

    def no_links(src, dst, *a, **kw):
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", no_links)
    dest = render_preview(out_site, tmp_path / "preview")
    copied = dest / "blog/assets/a.jpg"
    assert copied.read_bytes() == b"jpeg bytes"
    assert copied.stat().st_ino != (out_site / "assets/a.jpg").stat().st_ino

def test_render_preview_again_removes_stale_files(out_site, tmp_path):
    dest = render_preview(out_site, tmp_path / "preview")
    (out_site / "about.md").unlink()
    (dest / "blog/stray.txt").write_text("x")
    render_preview(out_site, dest)
    assert not (dest / "blog/about.html").exists() and not (dest / "blog/stray.txt").exists()
    assert (dest / "blog/index.html").is_file()


def test_render_preview_refuses_foreign_or_nested_folders(out_site, tmp_path):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "important.txt").write_text("keep me")
    with pytest.raises(ConfigError, match="not made by blogroto"):
        render_preview(out_site, foreign)
    assert (foreign / "important.txt").read_text() == "keep me"
    with pytest.raises(ConfigError, match="outside the output site"):
        render_preview(out_site, out_site / "_preview")
    with pytest.raises(ConfigError, match="build"):
        render_preview(tmp_path / "missing", tmp_path / "p")


def test_home_page_without_a_post_list_gets_one(tmp_path):
    site = write_site(tmp_path / "out", "title: T\n", {"index.md": "---\nlayout: home\n---\nWelcome\n",
                                                       "_posts/2024-01-01-hi.md": "---\ntitle: Hi\n---\nhi\n"})
    dest = render_preview(site, tmp_path / "p")
    home = (dest / "index.html").read_text()
    assert "Welcome" in home and '<a href="/2024/01/01/hi.html">Hi</a>' in home


# --------------------------------------------------------------------------------------------
# serving


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, resp.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, ""


def test_serve_preview(out_site, tmp_path):
    dest = render_preview(out_site, tmp_path / "preview")
    server = serve_preview(dest, "127.0.0.1", 0, block=False)
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        status, body = _get(f"{base}/blog/2024/03/02/first.html")
        assert status == 200 and "First post" in body
        assert _get(f"{base}/blog/about")[0] == 200  # Jekyll's extensionless URL
        assert _get(f"{base}/blog/filters/")[0] == 200
        assert "url=/blog/" in _get(f"{base}/")[1]
        assert _get(f"{base}/blog/nope.html")[0] == 404
    finally:
        server.shutdown()
        server.server_close()


def test_preview_command_builds_and_renders(built_sample, tmp_path):  # noqa: F811
    from click.testing import CliRunner

    from blogroto.cli import cli

    dest = tmp_path / "pv"
    result = CliRunner().invoke(cli, ["preview", str(built_sample.root), "--no-serve", "--dest", str(dest),
                                      "--cache", str(built_sample.cache)])
    assert result.exit_code == 0, result.output
    root = dest / "blog"
    assert str(root) in result.output
    post = (root / "2024/03/02/copper-morning.html").read_text()
    assert "/blog/assets/algorotoscope/coffee-copper-circuit-" in post and "algorotoscope-credits" in post
    for src in re.findall(r'<img[^>]* src="([^"]+)"', post):
        assert (dest / src.lstrip("/")).is_file(), src
    catalog_page = (root / "filters/copper-circuit/index.html").read_text()
    assert ">Copper morning<" in catalog_page and 'src="artwork.jpg"' in catalog_page
    # the catalog page brings its own heading; the preview layout does not add a second one
    assert catalog_page.count("<h1") == 1 and '<h1 class="ac-heading">Copper Circuit</h1>' in catalog_page
    assert 'src="example-before.jpg"' in catalog_page and 'src="example-after.jpg"' in catalog_page
    assert (root / "filters/copper-circuit/artwork.jpg").is_file()
