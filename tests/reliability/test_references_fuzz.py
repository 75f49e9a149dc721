"""Property tests for blogroto.references: rewriting never touches anything but image paths."""

from __future__ import annotations

import zlib

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from blogroto.references import find_image_refs, rewrite_image_refs

FUZZ = settings(max_examples=200, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# ------------------------------------------------------------------ a grammar-ish body generator

# Built from parts rather than st.from_regex: generation, not the scanner, dominates run time.
plain_paths = st.builds(
    "{}{}{}".format,
    st.sampled_from(["", "/", "/img/", "assets/", "/a/b-c/", "../"]),
    st.sampled_from(["a", "cat", "x_1", "photo-2", "IMG.0"]),
    st.sampled_from([".jpg", ".png", ".webp", ".JPG"]),
)
odd_paths = st.sampled_from([
    "a%20b.jpg", "photo(1).jpg", "x/(a(b)).png", "https://example.com/i.png", "//cdn.x/y.jpg",
    "data:image/png;base64,AAAA", "javascript:alert(1)", "../up.jpg", "a.jpg?v=2#frag",
    r"a\_b.jpg", "ümlaut.jpg",
])
paths = st.one_of(plain_paths, plain_paths, odd_paths)
spaced_paths = st.sampled_from(["my pic.jpg", "a b/c d.png", "x.jpg"])
words = st.sampled_from(["the", "cat", "**bold**", "_em_", "a < b", "1 > 0", "x & y", "!", "[",
                         "]", "(", ")", "\\", "*", "#", ":", '"', "'", "{", "}", "|", "é"])
alts = st.sampled_from(["", "alt", "a cat", "a [b] c", "x*y*", "a\\]b"])
titles = st.sampled_from(["", ' "T"', " 'T'", " (T)", ' "say \\"hi\\""'])
labels = st.sampled_from(["r", "R", "pic 1", "x"])
ials = st.sampled_from(["", "", "{: .wide}", "{: .no-algorotoscope}", "{:.a .no-algorotoscope}"])


@st.composite
def liquid_url(draw):
    p = draw(plain_paths)
    p = p if p.startswith("/") else "/" + p
    return draw(st.sampled_from([
        "{{ site.baseurl }}" + p, "{{site.baseurl}}" + p, "{{ site.url }}{{ site.baseurl }}" + p,
        '{{ "%s" | relative_url }}' % p, "{{ '%s' | absolute_url }}" % p, "{{ page.image }}",
    ]))


@st.composite
def md_dest(draw):
    kind = draw(st.integers(0, 3))
    if kind == 0:
        return draw(paths)
    if kind == 1:
        return "<" + draw(spaced_paths) + ">"
    return draw(liquid_url())


@st.composite
def md_image(draw):
    return f"![{draw(alts)}]({draw(md_dest())}{draw(titles)}){draw(ials)}"


@st.composite
def ref_image(draw):
    form = draw(st.integers(0, 2))
    label = draw(labels)
    use = [f"![{draw(alts)}][{label}]", f"![{label}][]", f"![{label}]"][form]
    return use + draw(ials)


@st.composite
def definition(draw):
    return f"\n\n[{draw(labels)}]: {draw(md_dest())}{draw(titles)}\n"


@st.composite
def html_image(draw):
    def attr(name, value):
        q = draw(st.sampled_from(['"', "'", ""]))
        if q == "" and (" " in value or not value or "'" in value or '"' in value):
            q = '"'
        if q == "'" and "'" in value:
            q = '"'
        if q == '"' and '"' in value:
            q = "'"
        return f"{name}={q}{value}{q}"

    src = draw(st.one_of(paths, liquid_url()))
    attrs = [attr("src", src), attr("alt", draw(alts))]
    if draw(st.booleans()):
        cands = draw(st.lists(st.tuples(paths, st.sampled_from(["", " 1x", " 2x", " 480w"])),
                              min_size=1, max_size=3))
        attrs.append(attr("srcset", ", ".join(p + d for p, d in cands)))
    if draw(st.integers(0, 4)) == 0:
        attrs.append(draw(st.sampled_from(['data-algorotoscope="off"',
                                           'class="wide no-algorotoscope"'])))
    attrs = draw(st.permutations(attrs))
    sep = draw(st.sampled_from([" ", "\n  "]))
    return f"<{draw(st.sampled_from(['img', 'IMG']))} " + sep.join(attrs) + draw(
        st.sampled_from([">", " />", "/>"]))


@st.composite
def link(draw):
    inner = draw(st.one_of(st.just("text"), md_image()))
    return f"[{inner}]({draw(paths)})"


images = st.one_of(md_image(), ref_image(), html_image(), link())
syntax_noise = st.sampled_from([
    "```", "```md", "~~~", "````", "`", "``", "<!--", "-->", "{% raw %}", "{% endraw %}",
    "{% highlight html %}", "{% endhighlight %}", "{% comment %}", "{% endcomment %}", "<pre>",
    "</pre>", "<code>", "</code>", "{{", "}}", "    ", "\t", "- ", "1. ", "> ", "# ", "---", "===",
    "<", ">", "![", "](", "\\`", "<div>", "</div>", "{::comment}", "{:/comment}",
])
separators = st.sampled_from(["", " ", " ", "\n", "\n", "\n\n", "\r\n"])


@st.composite
def grammar_body(draw, pieces=st.one_of(images, images, definition(), words, syntax_noise)):
    parts = draw(st.lists(st.tuples(pieces, separators), max_size=25))
    return "".join(p + s for p, s in parts)


any_text = st.one_of(st.text(), grammar_body())


def assert_well_formed(body, refs):
    last_end = -1
    for r in refs:
        assert body[r.start:r.end] == r.path
        assert r.start >= last_end, "refs overlap or are out of order"
        last_end = r.end
        assert 1 <= r.line <= body.count("\n") + body.count("\r") + 1


# ------------------------------------------------------------------ (1) identity is byte-identical

@FUZZ
@given(any_text)
def test_identity_and_none_rewrites_are_byte_identical(body):
    refs = find_image_refs(body)
    assert_well_formed(body, refs)
    assert rewrite_image_refs(body, lambda r: r.path) == body
    assert rewrite_image_refs(body, lambda r: None) == body


# ------------------------------------------------------------------ (2) code is never touched

safe_prefix = st.lists(st.one_of(md_image(), html_image(), link(), st.sampled_from(
    ["Some", "text", "here", "and", "**bold**", "!", "(", ")"])), max_size=6).map(" ".join)
code_content = st.lists(st.one_of(images, st.sampled_from(["code", "x = 1", "[r]: /def.jpg"])),
                        min_size=1, max_size=4)


@st.composite
def code_block(draw):
    """(code text, whether it sits inline in a paragraph)."""
    items = draw(code_content)
    kind = draw(st.sampled_from(["fence", "indent", "span", "comment", "pre", "code", "raw",
                                 "highlight", "liquid-comment"]))
    if kind == "fence":
        ch = draw(st.sampled_from(["`", "~"]))
        n = draw(st.integers(3, 5))
        indent = " " * draw(st.integers(0, 3))
        info = draw(st.sampled_from(["", "md", " markdown {.x}", "html"]))
        body = "\n".join(i.replace("\n", " ") for i in items)
        close = indent + ch * (n + draw(st.integers(0, 2)))
        return f"{indent}{ch * n}{info}\n{body}\n{close}", False
    if kind == "indent":
        lines = [i.replace("\n", " ") for i in items]
        pad = draw(st.sampled_from(["    ", "\t", "      "]))
        return "\n".join(pad + line for line in lines), False
    if kind == "span":
        n = draw(st.integers(1, 3))
        inner = " ".join(i.replace("\n", " ").replace("`", "") for i in items)
        return "`" * n + " " + inner + " " + "`" * n, True
    sep = draw(st.sampled_from(["\n", " ", "\n\n"]))
    inner = sep.join(items)
    wrap = {
        "comment": ("<!-- ", " -->"), "pre": ("<pre>", "</pre>"), "code": ("<code>", "</code>"),
        "raw": ("{% raw %}", "{% endraw %}"),
        "highlight": ("{% highlight md %}\n", "\n{% endhighlight %}"),
        "liquid-comment": ("{% comment %}", "{% endcomment %}"),
    }[kind]
    return wrap[0] + inner + wrap[1], kind in ("code",) and "\n\n" not in inner


@FUZZ
@given(safe_prefix, code_block(), safe_prefix, st.booleans())
def test_references_inside_code_are_never_touched(prefix, code_and_inline, suffix, with_def):
    code, inline = code_and_inline
    sep = " " if inline else "\n\n"
    body = prefix + sep + code + sep + suffix
    if with_def:  # a definition outside code must not make a use inside code count
        body += "\n\n[r]: /def.jpg\n"
    cs, ce = len(prefix) + len(sep), len(prefix) + len(sep) + len(code)
    refs = find_image_refs(body)
    assert_well_formed(body, refs)
    assert not [r for r in refs if r.start < ce and r.end > cs], (body, refs)
    assert "/def.jpg" not in [r.path for r in refs]
    out = rewrite_image_refs(body, lambda r: "X")
    delta = sum(1 - len(r.path) for r in refs if r.end <= cs and not r.opt_out)
    assert out[cs + delta:ce + delta] == code
    # The images around the code were found (the code did not swallow them).
    outside = find_image_refs(prefix) + find_image_refs(suffix)
    assert len(refs) == len(outside)


# ------------------------------------------------------------------ (3) idempotent rewriting

def fixed_new_path(path: str) -> str:
    """Send each path to a fixed new path, and new paths to themselves."""
    if path.startswith("/new/"):
        return path
    return "/new/%08x.jpg" % zlib.crc32(path.encode("utf-8", "surrogatepass"))


@FUZZ
@given(grammar_body())
def test_rewrite_is_idempotent_and_refs_follow_the_new_paths(body):
    refs = find_image_refs(body)
    once = rewrite_image_refs(body, lambda r: fixed_new_path(r.path))
    twice = rewrite_image_refs(once, lambda r: fixed_new_path(r.path))
    assert twice == once

    refs2 = find_image_refs(once)
    assert_well_formed(once, refs2)
    assert [r.kind for r in refs2] == [r.kind for r in refs]
    shift = 0
    for old, new in zip(refs, refs2):
        expected = old.path if old.opt_out else fixed_new_path(old.path)
        assert new.path == expected
        assert new.start == old.start + shift
        assert (new.opt_out, new.alt, new.title) == (old.opt_out, old.alt, old.title)
        shift += len(expected) - len(old.path)
