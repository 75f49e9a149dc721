"""Credits: records from filter metadata, rendering, site overrides, placement in the body."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from blogroto.credits import record
from blogroto.credits.record import credit_record, safe_url
from blogroto.credits.render import CreditRenderer, place_credits
from blogroto.credits.templates import liquid_inert
from blogroto.errors import ConfigError


def fake_filter(**source):
    base = {"title": "Circuit No. 1", "creator": "Ada <Lovelace>", "year": 2024, "url": "https://example.org/art",
            "licence": "CC0-1.0", "licence_url": "https://creativecommons.org/publicdomain/zero/1.0/",
            "credit": "Drawn by a program", "description": None}
    base.update(source)
    return SimpleNamespace(slug="copper-circuit", display_name="Copper Circuit", source=base)


def test_credit_record_has_every_key():
    rec = credit_record(fake_filter())
    assert list(rec) == list(record.RECORD_KEYS)
    assert rec["filter"] == "copper-circuit" and rec["year"] == 2024 and rec["creator"] == "Ada <Lovelace>"


def test_unsafe_urls_are_dropped():
    rec = credit_record(fake_filter(url="javascript:alert(1)", licence_url="data:text/html,x"))
    assert rec["url"] is None and rec["licence_url"] is None
    assert safe_url("https://x.org") == "https://x.org"
    assert safe_url("/local/page") == "/local/page"
    assert safe_url("JavaScript:alert(1)") is None
    assert safe_url("") is None


def test_render_block_contains_title_author_source_licence_and_escapes():
    html = CreditRenderer().render_block([credit_record(fake_filter())], document={"kind_name": "post"})
    assert 'class="algorotoscope-credits"' in html
    assert "Copper Circuit" in html and "<cite>Circuit No. 1</cite>" in html
    assert 'href="https://example.org/art"' in html
    assert "Ada &lt;Lovelace&gt;" in html and "<Lovelace>" not in html  # autoescaped
    assert "2024" in html and 'rel="license"' in html and "CC0-1.0" in html
    # one HTML block for kramdown: no blank lines, no indented (code) lines
    assert all(line.strip() and not line.startswith("    ") for line in html.splitlines())


def test_render_block_without_optional_fields():
    rec = credit_record(fake_filter(url=None, licence_url=None, creator=None, year=None, credit=None))
    html = CreditRenderer().render_block([rec])
    assert "<cite>Circuit No. 1</cite>" in html and "None" not in html and "href" not in html
    assert CreditRenderer().render_block([]) == ""


def test_liquid_in_credit_text_is_neutralised():
    html = CreditRenderer().render_block([credit_record(fake_filter(title="{{ site.secret }} {%endraw%} {% include x %}"))])
    assert "{{" not in html and "{%" not in html and "{% raw %}" not in html
    assert "&#123;&#123; site.secret &#125;&#125; &#123;&#37;endraw&#37;&#125;" in html
    assert liquid_inert("plain") == "plain"


def test_site_override_and_builtin_extends(tmp_path):
    tdir = tmp_path / "_algorotoscope"
    tdir.mkdir()
    (tdir / "credit.html.j2").write_text(
        '{% extends "builtin/credit.html.j2" %}{% block intro %}<p>CUSTOM INTRO</p>{% endblock %}')
    html = CreditRenderer(tmp_path).render_block([credit_record(fake_filter())])
    assert "CUSTOM INTRO" in html and "<cite>Circuit No. 1</cite>" in html
    assert CreditRenderer(tmp_path).template_files()[0] == tdir / "credit.html.j2"


def test_explicit_template_path_and_errors(tmp_path):
    path = tmp_path / "mine.j2"
    path.write_text("<p>{% for c in credits %}{{ c.title }}{% endfor %}</p>")
    assert CreditRenderer(tmp_path, credit_template=path).render_block([credit_record(fake_filter())]) == \
        "<p>Circuit No. 1</p>"
    with pytest.raises(ConfigError, match="not found"):
        CreditRenderer(tmp_path, credit_template=tmp_path / "missing.j2")
    path.write_text("<p>{% for c in credits %}</p>")
    with pytest.raises(ConfigError, match="template error") as info:
        CreditRenderer(tmp_path, credit_template=path).render_block([credit_record(fake_filter())])
    assert info.value.line == 1


def test_templates_are_sandboxed(tmp_path):
    path = tmp_path / "evil.j2"
    path.write_text("{{ credits.__class__.__mro__[1].__subclasses__() }}")
    with pytest.raises(ConfigError):
        CreditRenderer(tmp_path, credit_template=path).render_block([credit_record(fake_filter())])


def test_figcaption_and_figure():
    r = CreditRenderer()
    rec = credit_record(fake_filter())
    cap = r.render_figcaption(rec, title="Sunrise")
    assert cap.startswith('<figcaption class="algorotoscope-caption">Sunrise.') and "Circuit No. 1" in cap
    fig = r.wrap_figure('<img src="/a.jpg" alt="A">', rec, alt="A")
    assert fig.startswith('<figure class="algorotoscope-figure"><img src="/a.jpg" alt="A"><figcaption')
    md = r.wrap_figure("![A](/a.jpg)", rec, alt="A")
    assert 'markdown="1"' in md and "\n![A](/a.jpg)\n" in md


def test_place_credits_at_end_and_marker():
    html = "<aside>C</aside>"
    assert place_credits("Para.\n", html) == "Para.\n\n<aside>C</aside>\n"
    assert place_credits("Para.", html) == "Para.\n\n<aside>C</aside>\n"
    assert place_credits("a\r\nb\r\n", html) == "a\r\nb\r\n\r\n<aside>C</aside>\r\n"
    body = "Intro\n\n<!-- algorotoscope-credits -->\n\nMore\n"
    assert place_credits(body, html) == "Intro\n\n<aside>C</aside>\n\nMore\n"
    assert place_credits(body, "") == body


def test_marker_inside_code_fence_is_not_replaced():
    body = "Use:\n\n```html\n<!-- algorotoscope-credits -->\n```\n\nEnd\n"
    out = place_credits(body, "<aside>C</aside>")
    assert out.startswith(body) and out.endswith("<aside>C</aside>\n")
    body2 = body + "\n<!-- algorotoscope-credits -->\n"
    out2 = place_credits(body2, "<aside>C</aside>")
    assert "```html\n<!-- algorotoscope-credits -->\n```" in out2
    assert out2.endswith("\n<aside>C</aside>\n")


def test_builtin_templates_ship(tmp_path):
    files = CreditRenderer(tmp_path).template_files()
    assert [f.name for f in files] == ["credit.html.j2", "figcaption.html.j2"]
    assert all(Path(f).is_file() for f in files)
