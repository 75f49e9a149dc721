"""blogroto.references: finding and rewriting image references in post bodies."""

from __future__ import annotations

import pytest

from blogroto.references import ImageRef, find_image_refs, rewrite_image_refs


def paths(body: str) -> list[str]:
    return [r.path for r in find_image_refs(body)]


def to_x(ref: ImageRef) -> str:
    return "X"


def check_spans(body: str) -> list[ImageRef]:
    refs = find_image_refs(body)
    for r in refs:
        assert body[r.start:r.end] == r.path
        assert r.path in r.raw
    return refs


# ------------------------------------------------------------------ Markdown inline images

def test_inline_image_plain():
    [r] = check_spans("Look: ![a cat](/img/cat.jpg) here.")
    assert (r.kind, r.raw, r.path, r.alt, r.title, r.opt_out, r.line) == (
        "md-inline", "/img/cat.jpg", "/img/cat.jpg", "a cat", None, False, 1)


@pytest.mark.parametrize("title_src, title", [
    ('"A title"', "A title"), ("'A title'", "A title"), ("(A title)", "A title"),
    (r'"say \"hi\""', 'say "hi"'),
])
def test_inline_image_titles(title_src, title):
    [r] = check_spans(f"![alt](pic.png {title_src})")
    assert r.path == "pic.png" and r.title == title


def test_inline_image_angle_form_with_spaces():
    [r] = check_spans("![x](<my holiday pic.jpg> 'T')")
    assert r.path == "my holiday pic.jpg" and r.title == "T"
    assert rewrite_image_refs("![x](<my holiday pic.jpg> 'T')", lambda r: "out/a b.jpg") == \
        "![x](<out/a b.jpg> 'T')"


def test_inline_image_balanced_parens_and_escapes():
    assert paths("![a](photo(1).jpg)") == ["photo(1).jpg"]
    assert paths(r"![a](photo\).jpg)") == [r"photo\).jpg"]
    assert paths("![a](a b.jpg)") == []  # a bare destination cannot hold a space


def test_inline_image_over_two_lines():
    body = "Text ![a long\ndescription](/x.jpg\n  \"title\") more"
    [r] = check_spans(body)
    assert r.path == "/x.jpg" and r.title == "title" and r.line == 2


def test_empty_destination_is_not_reported():
    assert paths("![a]() ![b](<>)") == []


def test_percent_encoded_path_reported_as_written():
    [r] = check_spans("![a](/img/my%20photo%281%29.jpg?v=2#top)")
    assert r.path == "/img/my%20photo%281%29.jpg?v=2#top"
    assert r.local_path == "/img/my photo(1).jpg"


def test_link_is_not_an_image():
    assert paths("[text](x.jpg) and <a href='y.jpg'>y</a> and [ref][r]\n\n[r]: z.jpg") == []


def test_image_nested_in_link():
    body = "[![alt](img.jpg)](page.html)"
    [r] = check_spans(body)
    assert r.path == "img.jpg" and r.alt == "alt"
    assert rewrite_image_refs(body, to_x) == "[![alt](X)](page.html)"


def test_html_image_inside_link():
    assert paths('[<img src="thumb.jpg">](big.jpg)') == ["thumb.jpg"]


def test_image_in_image_description_is_only_alt_text():
    assert paths("![![inner](in.jpg)](outer.jpg)") == ["outer.jpg"]


def test_escaped_bang_and_bracket_are_not_images():
    assert paths(r"\![a](x.jpg)") == []  # still a link, not an image
    assert paths(r"!\[a](x.jpg)") == []


# ------------------------------------------------------------------ reference images

def test_full_reference_reports_the_definition():
    body = "![Cat][c1]\n\n[c1]: /img/cat.jpg \"Title\"\n"
    [r] = check_spans(body)
    assert (r.kind, r.path, r.alt, r.title, r.line) == ("md-reference", "/img/cat.jpg", "Cat",
                                                        "Title", 3)


def test_collapsed_and_shortcut_references():
    body = "![Cat][] and ![Dog]\n\n[cat]: cat.jpg\n[DOG]: <dog pic.jpg> 'D'\n"
    refs = check_spans(body)
    assert [(r.kind, r.path) for r in refs] == [("md-reference", "cat.jpg"),
                                              ("md-reference", "dog pic.jpg")]
    assert refs[1].title == "D"


def test_definition_used_several_times_is_rewritten_once():
    body = "![a][p] ![b][p] ![P][]\n\n[p]: /img/p.jpg\n"
    refs = find_image_refs(body)
    assert len(refs) == 1 and refs[0].alt == "a"
    seen = []
    out = rewrite_image_refs(body, lambda r: seen.append(r.path) or "/out/p.jpg")
    assert seen == ["/img/p.jpg"]
    assert out == "![a][p] ![b][p] ![P][]\n\n[p]: /out/p.jpg\n"


def test_definition_before_use_and_label_normalisation():
    body = "[My  Pic]: a.jpg\n\nText ![x][my pic]\n"
    assert paths(body) == ["a.jpg"]


def test_undefined_reference_is_not_an_image():
    assert paths("![a][nope] ![b] ![c][]") == []


def test_unused_definition_is_not_reported():
    assert paths("[a]: a.jpg\n[b]: b.jpg\n\n![x][b]\n") == ["b.jpg"]


def test_first_definition_wins():
    assert paths("![x][a]\n\n[a]: first.jpg\n[a]: second.jpg\n") == ["first.jpg"]


def test_definition_title_on_next_line():
    [r] = find_image_refs("![x][a]\n\n[a]: /a.jpg\n   (The title)\n")
    assert r.title == "The title"


def test_definition_with_trailing_junk_is_not_a_definition():
    assert paths('![x][a]\n\n[a]: /a.jpg "t" junk\n') == []


def test_reference_opt_out_on_any_use_protects_the_definition():
    body = "![a][p] ![b][p]{: .no-algorotoscope}\n\n[p]: p.jpg\n"
    [r] = find_image_refs(body)
    assert r.opt_out
    assert rewrite_image_refs(body, to_x) == body


# ------------------------------------------------------------------ HTML

@pytest.mark.parametrize("tag", [
    '<img src="/a.jpg" alt="A">',
    "<img alt='A' src='/a.jpg'>",
    "<img src=/a.jpg alt=A>",
    '<IMG ALT="A"\n     SRC = "/a.jpg" />',
    '<img class="wide" alt="A" width=300 src="/a.jpg"/>',
])
def test_html_img_attribute_orders_and_quoting(tag):
    [r] = check_spans(f"Before {tag} after")
    assert (r.kind, r.path, r.alt) == ("html-src", "/a.jpg", "A")


def test_html_img_rewrite_keeps_quoting():
    body = "<img src='/a.jpg' alt=\"x\"> <img src=/b.jpg>"
    assert rewrite_image_refs(body, lambda r: "/o" + r.path) == \
        "<img src='/o/a.jpg' alt=\"x\"> <img src=/o/b.jpg>"


def test_html_src_whitespace_is_not_part_of_the_path():
    body = '<img src="  /a.jpg  ">'
    [r] = check_spans(body)
    assert r.path == "/a.jpg"
    assert rewrite_image_refs(body, to_x) == '<img src="  X  ">'


def test_html_entities_in_alt_and_title():
    [r] = find_image_refs('<img src="a.jpg" alt="Tom &amp; Jerry" title="&quot;hi&quot;">')
    assert r.alt == "Tom & Jerry" and r.title == '"hi"'


def test_srcset_candidates_are_separate_refs():
    body = '<img src="s.jpg" srcset="a.jpg 480w, b.jpg 800w,c.jpg 2x">'
    refs = check_spans(body)
    assert [(r.kind, r.path) for r in refs] == [
        ("html-src", "s.jpg"), ("html-srcset", "a.jpg"), ("html-srcset", "b.jpg"),
        ("html-srcset", "c.jpg")]


def test_srcset_rewrite_keeps_descriptors():
    body = '<img srcset="/a.jpg 1x, /a@2.jpg 2x" src="/a.jpg">'
    out = rewrite_image_refs(body, lambda r: r.path.replace(".jpg", "-copper.jpg"))
    assert out == '<img srcset="/a-copper.jpg 1x, /a@2-copper.jpg 2x" src="/a-copper.jpg">'


def test_srcset_with_data_uri_commas_and_no_descriptor():
    body = "<img srcset='data:image/png;base64,AAAA 1x, b.jpg'>"
    refs = check_spans(body)
    assert [r.path for r in refs] == ["data:image/png;base64,AAAA", "b.jpg"]
    assert refs[0].scheme == "data"


def test_source_srcset_in_picture():
    body = '<picture><source srcset="a.webp" type="image/webp"><img src="a.jpg"></picture>'
    assert [(r.kind, r.path) for r in check_spans(body)] == [
        ("html-srcset", "a.webp"), ("html-src", "a.jpg")]


def test_first_of_repeated_attribute_wins():
    assert paths('<img src="one.jpg" src="two.jpg">') == ["one.jpg"]


def test_not_a_tag():
    assert paths("a < b and <img") == []
    assert paths('<img src="unterminated.jpg') == []


# ------------------------------------------------------------------ Liquid

@pytest.mark.parametrize("url", [
    "{{ site.baseurl }}/img.jpg",
    "{{site.baseurl}}/img.jpg",
    "{{ site.url }}{{ site.baseurl }}/img.jpg",
    '{{ "/img.jpg" | relative_url }}',
    "{{ '/img.jpg' | absolute_url }}",
    "{{- site.baseurl -}}/img.jpg",
    "{{ '/img.jpg' | prepend: site.baseurl }}",
])
def test_liquid_wrapped_urls_expose_the_bare_path(url):
    for body in (f"![a]({url})", f'<img src="{url}">', f"<img src='{url}'>",
                 f"![a][r]\n\n[r]: {url}\n", f'<img srcset="{url} 2x">'):
        if "'" in url and "src='" in body:
            continue
        [r] = check_spans(body)
        assert (r.raw, r.path) == (url, "/img.jpg"), body
        out = rewrite_image_refs(body, lambda r: "/out/img.jpg")
        assert out == body.replace("/img.jpg", "/out/img.jpg"), body


def test_liquid_double_quotes_inside_double_quoted_attribute():
    body = '<img src="{{ "/a.jpg" | relative_url }}" alt="A">'
    [r] = check_spans(body)
    assert r.path == "/a.jpg" and r.alt == "A"
    assert rewrite_image_refs(body, lambda r: '/o/"b".jpg') == \
        '<img src="{{ "/o/%22b%22.jpg" | relative_url }}" alt="A">'


def test_unknown_liquid_is_dynamic():
    [r] = check_spans("![a]({{ page.image }})")
    assert r.path == "{{ page.image }}" and r.is_dynamic and r.local_path is None


def test_liquid_tag_in_html_attributes_does_not_hide_the_image():
    body = '<img {% if page.wide %}class="wide"{% endif %} src="{{ site.baseurl }}/w.jpg">'
    assert paths(body) == ["/w.jpg"]


# ------------------------------------------------------------------ exclusions

@pytest.mark.parametrize("code", [
    "`![a](x.jpg)`",
    "``![a](x.jpg) ` <img src=x.jpg>``",
    "``` ![a](x.jpg) ```",
    "`` `![a](x.jpg)` ``",
])
def test_code_spans(code):
    assert paths(f"Say {code} and ![b](y.jpg)") == ["y.jpg"]


def test_unmatched_backticks_are_literal():
    assert paths("`` a ` ![b](y.jpg)") == ["y.jpg"]


@pytest.mark.parametrize("fence", [
    "```\n![a](x.jpg)\n```",
    "~~~\n![a](x.jpg)\n~~~",
    "```markdown title=\"x\"\n![a](x.jpg)\n<img src=x.jpg>\n```",
    "~~~ liquid linenos\n![a](x.jpg)\n~~~~~~",
    "   ```\n![a](x.jpg)\n   ```",
    "````\n```\n![a](x.jpg)\n```\n````",
])
def test_fenced_code_blocks(fence):
    assert paths(f"![b](y.jpg)\n{fence}\n![c](z.jpg)\n") == ["y.jpg", "z.jpg"]


def test_four_space_indented_fence_is_not_a_fence():
    # "    ```" is indented code, so the image after it is real.
    assert paths("Para\n\n    ```\n\n![a](x.jpg)\n") == ["x.jpg"]


def test_unclosed_fence_runs_to_the_end():
    assert paths("![b](y.jpg)\n```\n![a](x.jpg)\n") == ["y.jpg"]


def test_indented_code_block():
    body = "Para.\n\n    ![a](x.jpg)\n\t<img src=x.jpg>\n\n![b](y.jpg)\n"
    assert paths(body) == ["y.jpg"]


def test_indented_line_continuing_a_paragraph_is_text():
    assert paths("Para\n    ![a](x.jpg)\n") == ["x.jpg"]


def test_indented_image_in_a_list_item_is_text():
    body = "1. Step one\n\n    ![shot](shot.png)\n\n- item\n\n        ![c](code.png)\n"
    assert paths(body) == ["shot.png"]


def test_block_quote():
    body = "> ![q](q.jpg)\n> ```\n> ![no](no.jpg)\n> ```\n> ![q2](q2.jpg)\n"
    assert paths(body) == ["q.jpg", "q2.jpg"]


@pytest.mark.parametrize("wrapped", [
    "{% raw %}![a](x.jpg) <img src=x.jpg>{% endraw %}",
    "{%- raw -%}\n![a](x.jpg)\n{%- endraw -%}",
    "{% highlight markdown %}\n![a](x.jpg)\n{% endhighlight %}",
    "{% highlight html linenos %}\n<img src=\"x.jpg\">\n{% endhighlight %}",
    "{% comment %}\n![a](x.jpg)\n{% endcomment %}",
    "{::comment}\n![a](x.jpg)\n{:/comment}",
    "<!-- ![a](x.jpg) -->",
    "<!--\n![a](x.jpg)\n\n<img src=x.jpg>\n-->",
    "<pre>\n![a](x.jpg)\n\n<img src=\"x.jpg\">\n</pre>",
    "<pre class=\"x\"><code>![a](x.jpg)</code></pre>",
    "Use <code>![a](x.jpg)</code> in text",
    "<script>var s = '<img src=\"x.jpg\">';</script>",
    "<textarea>![a](x.jpg)</textarea>",
])
def test_excluded_regions(wrapped):
    body = f"![b](y.jpg)\n\n{wrapped}\n\n![c](z.jpg)\n"
    assert paths(body) == ["y.jpg", "z.jpg"]
    assert rewrite_image_refs(body, to_x) == f"![b](X)\n\n{wrapped}\n\n![c](X)\n"


def test_reference_use_inside_raw_does_not_count():
    body = "{% raw %}![a][r]{% endraw %}\n\n[r]: /r.jpg\n"
    assert paths(body) == []
    assert paths(body + "\n![b][r]\n") == ["/r.jpg"]


def test_unclosed_comment_hides_the_rest():
    assert paths("![b](y.jpg) <!-- ![a](x.jpg)\n\n![c](z.jpg)") == ["y.jpg"]


def test_comment_markers_inside_code_span_are_text():
    assert paths("`<!--` ![b](y.jpg) `-->`") == ["y.jpg"]


def test_fence_inside_comment_is_not_a_fence():
    body = "<!--\n```\n-->\n![b](y.jpg)\n"
    assert paths(body) == ["y.jpg"]


def test_raw_block_around_code_span_still_pairs_backticks():
    # After Liquid the text is "`{{ x }}` and ![b](y.jpg)": the image is real.
    assert paths("`{% raw %}{{ x }}{% endraw %}` and ![b](y.jpg)") == ["y.jpg"]


def test_liquid_comment_hides_backticks():
    assert paths("{% comment %}`{% endcomment %} ![b](y.jpg) `x") == ["y.jpg"]


def test_image_after_comment_on_the_same_line():
    assert paths("<!-- note --> ![b](y.jpg)") == ["y.jpg"]


# ------------------------------------------------------------------ opt-outs

@pytest.mark.parametrize("ial", [
    "{: .no-algorotoscope}", "{:.no-algorotoscope}", "{: .wide .no-algorotoscope #id}",
    '{: class="wide no-algorotoscope"}', "{: data-algorotoscope='off'}",
])
def test_ial_opt_out(ial):
    body = f"![a](a.jpg){ial} ![b](b.jpg)"
    refs = find_image_refs(body)
    assert [(r.path, r.opt_out) for r in refs] == [("a.jpg", True), ("b.jpg", False)]


def test_ial_without_opt_out_class():
    [r] = find_image_refs("![a](a.jpg){: .wide}")
    assert not r.opt_out


def test_ial_must_follow_directly():
    [r] = find_image_refs("![a](a.jpg) {: .no-algorotoscope}")
    assert not r.opt_out


@pytest.mark.parametrize("tag", [
    '<img src="a.jpg" data-algorotoscope="off">',
    "<img data-algorotoscope=OFF src=a.jpg>",
    '<img class="wide no-algorotoscope" src="a.jpg">',
    '<img src="a.jpg" srcset="a2.jpg 2x" class=no-algorotoscope>',
])
def test_html_opt_out(tag):
    refs = find_image_refs(tag)
    assert refs and all(r.opt_out for r in refs)


def test_html_without_opt_out():
    refs = find_image_refs('<img class="no-algorotoscope-ish" data-algorotoscope="on" src=a.jpg>')
    assert [r.opt_out for r in refs] == [False]


def test_opted_out_refs_are_never_passed_to_replace():
    body = "![a](a.jpg){: .no-algorotoscope} <img src=b.jpg data-algorotoscope=off> ![c](c.jpg)"
    seen = []
    out = rewrite_image_refs(body, lambda r: seen.append(r.path) or "X")
    assert seen == ["c.jpg"]
    assert out == "![a](a.jpg){: .no-algorotoscope} <img src=b.jpg data-algorotoscope=off> ![c](X)"


# ------------------------------------------------------------------ schemes

@pytest.mark.parametrize("url, scheme, remote", [
    ("https://example.com/a.png", "https", True),
    ("HTTP://example.com/a.png", "http", True),
    ("//cdn.example.com/a.png", "https", True),
    ("data:image/png;base64,iVBOR", "data", False),
    ("javascript:alert(1)", "javascript", False),
    ("java\tscript:alert(1)", "javascript", False),
    ("file:///etc/passwd", "file", False),
    ("ftp://host/a.png", "ftp", False),
    ("mailto:me@example.com", "mailto", False),
    ("/img/a.png", None, False),
    ("img/a.png", None, False),
    ("../a.png", None, False),
])
def test_schemes(url, scheme, remote):
    [r] = find_image_refs(f'<img src="{url}">')
    assert (r.path, r.scheme, r.is_remote) == (url, scheme, remote)
    assert (r.local_path is None) == (scheme is not None)


def test_remote_markdown_image_reported_as_is():
    [r] = find_image_refs("![a](https://example.com/x.png?size=2 'T')")
    assert r.path == "https://example.com/x.png?size=2" and r.is_remote


# ------------------------------------------------------------------ lines and order

def test_line_numbers_and_order():
    body = ("# Title\n\n![one](1.jpg)\r\n\r\nText <img\n  src=\"2.jpg\">\n\n"
            "![three][t]\n\n```\n![no](no.jpg)\n```\n\n[t]: 3.jpg\n")
    refs = find_image_refs(body)
    assert [(r.path, r.line) for r in refs] == [("1.jpg", 3), ("2.jpg", 6), ("3.jpg", 14)]


def test_image_in_heading_and_list_and_table():
    body = "## ![h](h.jpg)\n\n- ![l](l.jpg)\n  * ![n](n.jpg)\n\n| a | ![t](t.jpg) |\n|---|---|\n"
    assert paths(body) == ["h.jpg", "l.jpg", "n.jpg", "t.jpg"]


# ------------------------------------------------------------------ rewriting

def test_rewrite_exact_output_mixed_document():
    body = (
        "---ignored: front matter is not the body, but this is just text---\n"
        "![A](/img/a.jpg \"T\") and `![B](/img/b.jpg)`\n\n"
        "<img src=\"{{ '/img/c.jpg' | relative_url }}\"\n"
        "     srcset=\"/img/c.jpg 1x, /img/c2.jpg 2x\">\n\n"
        "![D][d]{: .no-algorotoscope} ![E][e]\n\n"
        "[d]: /img/d.jpg\n[e]: {{ site.baseurl }}/img/e.jpg 'E'\n"
    )
    out = rewrite_image_refs(body, lambda r: r.path.replace("/img/", "/styled/"))
    assert out == (
        "---ignored: front matter is not the body, but this is just text---\n"
        "![A](/styled/a.jpg \"T\") and `![B](/img/b.jpg)`\n\n"
        "<img src=\"{{ '/styled/c.jpg' | relative_url }}\"\n"
        "     srcset=\"/styled/c.jpg 1x, /styled/c2.jpg 2x\">\n\n"
        "![D][d]{: .no-algorotoscope} ![E][e]\n\n"
        "[d]: /img/d.jpg\n[e]: {{ site.baseurl }}/styled/e.jpg 'E'\n"
    )


def test_rewrite_none_keeps_everything():
    body = "![a](a.jpg) <img src=b.jpg>"
    assert rewrite_image_refs(body, lambda r: None) == body


def test_rewrite_selective():
    body = "![a](a.jpg) ![r](https://x/r.jpg) ![d](data:,x)"
    out = rewrite_image_refs(body, lambda r: None if r.scheme else "/o/" + r.path)
    assert out == "![a](/o/a.jpg) ![r](https://x/r.jpg) ![d](data:,x)"


@pytest.mark.parametrize("body, new, expected", [
    ("![a](a.jpg)", "my pic (1.jpg", "![a](my%20pic%20%281.jpg)"),
    ("![a](a.jpg)", "pic(1).jpg", "![a](pic(1).jpg)"),
    ("![a](a.jpg)", "<x>.jpg", "![a](%3Cx>.jpg)"),
    ("![a](a.jpg)", "dir\\", "![a](dir%5C)"),
    ("![a](<a b.jpg>)", "c<d>.jpg", "![a](<c%3Cd%3E.jpg>)"),
    ("<img src=\"a.jpg\">", 'q"q.jpg', "<img src=\"q%22q.jpg\">"),
    ("<img src='a.jpg'>", "q'q.jpg", "<img src='q%27q.jpg'>"),
    ("<img src=a.jpg alt=x>", "a b>.jpg", "<img src=a%20b%3E.jpg alt=x>"),
    ('<img srcset="a.jpg 1x, b.jpg 2x">', "c d.jpg,",
     '<img srcset="c%20d.jpg%2C 1x, c%20d.jpg%2C 2x">'),
    ("[r]: a.jpg\n\n![x][r]\n", "new pic.jpg", "[r]: new%20pic.jpg\n\n![x][r]\n"),
])
def test_rewrite_encodes_only_what_would_break_the_syntax(body, new, expected):
    out = rewrite_image_refs(body, lambda r: new)
    assert out == expected
    # ... so the result parses back to the same number of references.
    assert len(find_image_refs(out)) == len(find_image_refs(body))


def test_rewrite_rejects_empty_and_non_string():
    with pytest.raises(ValueError):
        rewrite_image_refs("![a](a.jpg)", lambda r: "")
    with pytest.raises(TypeError):
        rewrite_image_refs("![a](a.jpg)", lambda r: 3)


def test_rewrite_preserves_crlf_and_unicode():
    body = "Ünïcode ✓\r\n![ä](/bilder/ä.jpg)\r\n"
    assert rewrite_image_refs(body, lambda r: "/o/ö.jpg") == "Ünïcode ✓\r\n![ä](/o/ö.jpg)\r\n"


# ------------------------------------------------------------------ robustness on large input

# Shapes that make naive scanners quadratic (or worse): unclosed openers of every kind, deep
# nesting, long runs of one special character.
HOSTILE_INLINE = [
    "![a](x.jpg) text `code` <img src=\"y.jpg\"> [l](z) **b**\n",
    "![", "[", "]", "`", "``` ", "\\", "{{", "{%", "}}", "[x](", "[x](a(", "![a](<", "](a \"",
    "](a (", "![a][", "<img src=\"", "<img alt='", "<a title=\"x\" ", "<a b=\"<a b=\"", "<!",
    "<?", "< ", "<img {{ ", "{: ", "<!-->", "<![CDATA[",
]
HOSTILE_BLOCK = ["    ", "> - ", "1. ", "- - ", "* ", "> ", "#", "~~~ x\n~~~\n", "```\n```\n"]
# Nesting shapes, each built to about `size` characters.
HOSTILE_NESTED = [
    lambda k: "![" * k + "x" + "](a.jpg)" * k,
    lambda k: "![" * k + "x" + "][r]" * k,
    lambda k: "![" * k + "r" + "]" * k,
    lambda k: "[" * k + "![a](b.jpg)" + "](c)" * k,
    lambda k: "<!-- -->`" * k,
]
# These swallow the rest of the text by design (unclosed comment/raw/pre), so they come last.
HOSTILE_TAIL = ["{% raw %}", "<pre>", "<!--"]


def test_one_megabyte_hostile_body_completes():
    n_blocks = len(HOSTILE_INLINE) + len(HOSTILE_BLOCK) + len(HOSTILE_NESTED) + len(HOSTILE_TAIL)
    size = 1_100_000 // n_blocks
    blocks = [("p " + u * (size // len(u) + 1)) for u in HOSTILE_INLINE]  # keep them inline
    blocks += [u * (size // len(u) + 1) for u in HOSTILE_BLOCK]
    blocks += ["p " + make(size // 10) for make in HOSTILE_NESTED]
    tail = [u * (size // len(u) + 1) for u in HOSTILE_TAIL]
    parts = [f"{b}\n\n![s](sentinel-{i}.jpg)" for i, b in enumerate(blocks)]
    body = "\n\n".join(parts + ["[r]: /r.jpg"] + tail)
    assert len(body) > 1_000_000
    refs = find_image_refs(body)  # no timing assertion: a quadratic scan would simply not finish
    found = {r.path for r in refs}
    # Every block was scanned and the parse recovered after it, up to the swallowing tail.
    assert {f"sentinel-{i}.jpg" for i in range(len(blocks))} <= found
    assert "/r.jpg" in found
    assert all(body[r.start:r.end] == r.path for r in refs)
    out = rewrite_image_refs(body, to_x)
    assert len(out) == len(body) - sum(len(r.path) - 1 for r in refs if not r.opt_out)
