"""Bad documents and configuration: one clear line naming file and line, the rest of the site builds.

A document that fails is copied to the output unchanged (so `jekyll build` of the output still
works) and the build exits 1; a broken `_config.yml` stops the build with exit 2.
"""

from __future__ import annotations

import time

import pytest

from tests.reliability.kit import FILTER, GOOD_POST


def expect_failed(kit, result, rel: str, line: int | None, *fragments: str) -> str:
    """The build exit 1 with exactly one error, for `rel` at `line`; the post copied unchanged."""
    assert result.code == 1, result.text
    (error,) = result.lines("error")
    prefix = f"{kit.root}/{rel}:{line}: " if line is not None else f"{kit.root}/{rel}:"
    assert error.startswith(prefix), (error, prefix)
    for fragment in fragments:
        assert fragment in error, (fragment, error)
    assert kit.unchanged_copy(rel)
    kit.assert_good_post_built()
    assert "1 post," in result.out  # the summary still comes, counting the good post
    return error


def test_malformed_yaml_names_file_and_line(kit):
    rel = kit.post("bad-yaml", "![x](/assets/img/good.jpg)\n", front=f'title: "unclosed\nalgorotoscope: {FILTER}\n')
    expect_failed(kit, kit.build(), rel, 2, "invalid YAML")


def test_yaml_tab_indentation_names_its_line(kit):
    rel = kit.post("tabs", "![x](/assets/img/good.jpg)\n", front=f"title: t\nalgorotoscope:\n\tfilter: {FILTER}\n")
    expect_failed(kit, kit.build(), rel, 4, "invalid YAML")


@pytest.mark.parametrize("front, what", [
    (f"- algorotoscope\n- {FILTER}\n", "list"),
    ("just algorotoscope text\n", "scalar"),
])
def test_front_matter_that_is_not_a_mapping(kit, front, what):
    rel = kit.post(f"not-mapping-{what}", "![x](/assets/img/good.jpg)\n", front=front)
    expect_failed(kit, kit.build(), rel, 2, "front matter must be a YAML mapping")


@pytest.mark.parametrize("option, message", [
    ('strength: "lots"', "algorotoscope.strength must be a number, not 'lots'"),
    ("strength: 3", "algorotoscope.strength must be between 0.0 and 1.0, not 3"),
    ("max_size: -5", "algorotoscope.max_size must be between 16 and 65536, not -5"),
    ("keep_colors: maybe", "algorotoscope.keep_colors must be true or false, not 'maybe'"),
    ("only: 3", "algorotoscope.only must be a string or a list of strings, not 3"),
    ("quality: 0", "algorotoscope.quality must be between 1 and 100, not 0"),
    ("format: gif", "algorotoscope.format must be one of jpeg, jpg, png, webp, not 'gif'"),
    ("strenght: 0.5", "unknown algorotoscope option 'strenght'. Did you mean: strength?"),
    ("keep_colours: maybe", "algorotoscope.keep_colours must be true or false, not 'maybe'"),
])
def test_wrong_option_types(kit, option, message):
    rel = kit.post("options", "![x](/assets/img/good.jpg)\n",
                   front=f"title: t\nalgorotoscope:\n  filter: {FILTER}\n  {option}\n")
    # the faulty key's own line (5), not the `algorotoscope:` line (3)
    expect_failed(kit, kit.build(), rel, 5, message)


def test_filter_name_of_the_wrong_type(kit):
    rel = kit.post("filter-type", "![x](/assets/img/good.jpg)\n", front="title: t\nalgorotoscope: {filter: 42}\n")
    expect_failed(kit, kit.build(), rel, 3, "needs a filter name")


def test_unknown_filter_suggests(kit):
    rel = kit.post("typo", "![x](/assets/img/good.jpg)\n", front="algorotoscope: tinny\n")
    expect_failed(kit, kit.build(), rel, 2, "unknown filter 'tinny'", "Did you mean: tiny?")


def test_python_yaml_tags_are_refused_and_never_run(kit, tmp_path):
    marker = tmp_path / "pwned"
    rel = kit.post("tag", "![x](/assets/img/good.jpg)\n",
                   front=f'algorotoscope: !!python/object/apply:os.system ["touch {marker}"]\n')
    expect_failed(kit, kit.build(), rel, 2, "invalid YAML", "python/object/apply")
    assert not marker.exists()


def test_non_utf8_post_names_the_line_of_the_first_bad_byte(kit):
    rel = "_posts/2024-02-01-latin1.md"
    kit.write(rel, f"---\ntitle: Caf\xe9\nalgorotoscope: {FILTER}\n---\n![x](/assets/img/good.jpg)\n".encode("latin-1"))
    expect_failed(kit, kit.build(), rel, 2, "not valid UTF-8 text")


def test_non_utf8_file_without_the_key_is_just_copied(kit):
    rel = "_posts/2024-02-01-latin1.md"
    kit.write(rel, "---\ntitle: Caf\xe9\n---\nd\xe9j\xe0 vu\n".encode("latin-1"))
    result = kit.build()
    assert result.code == 0 and result.lines("error") == [], result.text
    assert kit.unchanged_copy(rel)
    kit.assert_good_post_built()


def test_bom_is_kept_and_the_post_builds(kit):
    rel = kit.post("bom", "![x](/assets/img/good.jpg)\n")
    kit.write(rel, b"\xef\xbb\xbf" + (kit.root / rel).read_bytes())
    result = kit.build()
    assert result.code == 0 and not result.lines("error"), result.text
    data = (kit.out / rel).read_bytes()
    assert data.startswith(b"\xef\xbb\xbf---\n") and data.count(b"\xef\xbb\xbf") == 1
    assert len(kit.stylized(rel)) == 1


def test_crlf_post_builds_and_keeps_crlf_in_front_matter(kit):
    rel = "_posts/2024-02-01-crlf.md"
    kit.write(rel, f"---\r\ntitle: Windows\r\nalgorotoscope: {FILTER}\r\nimage: /assets/img/good.jpg\r\n---\r\n"
                   "Text.\r\n\r\n![x](/assets/img/good.jpg)\r\n")
    result = kit.build()
    assert result.code == 0 and not result.lines("error"), result.text
    data = (kit.out / rel).read_bytes()
    front = data.split(b"---\r\n")[1]
    assert b"\n" not in front.replace(b"\r\n", b""), front  # no bare LF inside the front matter
    assert b"image: /assets/algorotoscope/good-tiny-" in front
    assert len(kit.stylized(rel)) == 1


@pytest.mark.parametrize("content", [b"", b"---\n---\n", b"---\n---", b"\n", b"---\n"])
def test_empty_and_nearly_empty_posts_are_copied(kit, content):
    rel = "_posts/2024-02-01-empty.md"
    kit.write(rel, content)
    result = kit.build()
    assert result.code == 0 and not result.lines("error"), result.text
    assert kit.unchanged_copy(rel)
    kit.assert_good_post_built()


def test_post_with_the_filter_but_no_images_warns(kit):
    rel = kit.post("no-images", "")
    result = kit.build()
    assert result.code == 0, result.text
    assert f"{kit.root}/{rel}:3: algorotoscope is set but the document references no images" in result.lines("warning")
    assert kit.unchanged_copy(rel)


def test_huge_post_builds(kit):
    """A 5 MB post (long prose, tables, code, many references to one image) builds in seconds."""
    paragraph = ("Lorem ipsum dolor sit amet, *consectetur* adipiscing elit, [a link](https://example.org) "
                 "`code` and <span>html</span>. ") * 8 + "\n\n"
    chunk = paragraph + "| a | b |\n|---|---|\n| 1 | 2 |\n\n```\n![not me](/assets/img/good.jpg)\n```\n\n"
    body = []
    size = 0
    i = 0
    while size < 5 * 1024 * 1024:
        part = chunk + ("![x](/assets/img/good.jpg)\n\n" if i % 500 == 0 else "")
        body.append(part)
        size += len(part)
        i += 1
    rel = kit.post("huge", "".join(body))
    assert (kit.root / rel).stat().st_size > 5 * 1024 * 1024
    started = time.process_time()
    result = kit.build()
    cpu = time.process_time() - started
    assert result.code == 0 and not result.lines("error"), result.text
    assert len(kit.stylized(rel)) == 1
    text = kit.output(rel)
    assert text.count("![x](/assets/algorotoscope/good-tiny-") == len(range(0, i, 500))
    assert "![not me](/assets/img/good.jpg)" in text  # code blocks untouched
    assert cpu < 60, f"{cpu:.1f}s of CPU for a 5 MB post"


def test_yaml_alias_bomb_in_front_matter_is_refused_cheaply(kit):
    """'Billion laughs': aliases nest 9 levels of 9 (387 M leaves if expanded): refused before
    anything is constructed (tests/reliability/test_yaml_aliases.py covers every YAML reader)."""
    levels = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for n in range(1, 9):
        refs = ",".join([f"*a{n - 1}"] * 9)
        levels.append(f"a{n}: &a{n} [{refs}]")
    front = "\n".join(levels) + f"\nalgorotoscope: {FILTER}\n"
    rel = kit.post("laughs", "![x](/assets/img/good.jpg)\n", front=front)
    started = time.process_time()
    result = kit.build()
    cpu = time.process_time() - started
    assert cpu < 10, f"{cpu:.1f}s of CPU"  # was 20 s at 9 x 9, hours at 10 x 10
    expect_failed(kit, result, rel, None, "YAML aliases expand to more than")


def test_deeply_nested_yaml_is_refused_not_a_crash(kit):
    """100 000 nested `[` in 200 kB of front matter crashed libyaml's composer (SIGSEGV).
    Run in a subprocess so that a regression fails this test instead of killing the test run."""
    n = 100_000
    rel = kit.post("deep", "![x](/assets/img/good.jpg)\n", front=f"title: t\nalgorotoscope: {FILTER}\nx: {'[' * n}{']' * n}\n")
    result = kit.build_subprocess(fake=True)
    expect_failed(kit, result, rel, 4, "YAML nested more than 200 levels deep")
    kit.write(rel, f"---\nalgorotoscope: {FILTER}\n---\n![x](/assets/img/good.jpg)\n")
    kit.write("_config.yml", "title: x\nnested: " + "{a: " * n + "1" + "}" * n + "\n")
    result = kit.build_subprocess(fake=True)
    assert result.code == 2 and result.err == f"error: {kit.root}/_config.yml:2: YAML nested more than 200 levels deep\n", result.err


# -- the site configuration: exit 2, nothing written ------------------------------------------


@pytest.mark.parametrize("config, line, message", [
    ("title: x\nalgorotoscope:\n  strength: lots\n", 3, "algorotoscope.strength must be a number, not 'lots'"),
    ("title: x\nalgorotoscope:\n  remote: {timeout: -1}\n", 3, "algorotoscope.remote.timeout must be between"),
    ("title: x\nalgorotoscope:\n  max_size: -5\n", 3, "algorotoscope.max_size must be between 16 and 65536"),
    ('title: "x\nalgorotoscope: {}\n', 1, "invalid YAML"),
    ("- just\n- a list\n", 1, "the site configuration must be a YAML mapping"),
    ("title: !!python/object/apply:os.getcwd []\n", 1, "invalid YAML"),
])
def test_bad_site_config_exits_2_naming_the_line(kit, config, line, message):
    kit.write("_config.yml", config)
    result = kit.build()
    assert result.code == 2, result.text
    assert result.err.strip() == f"error: {kit.root}/_config.yml:{line}: {message}" or (
        result.err.startswith(f"error: {kit.root}/_config.yml:{line}: ") and message in result.err), result.err
    assert not kit.out.exists() or not any(kit.out.iterdir())


def test_non_utf8_config_exits_2(kit):
    kit.write("_config.yml", "title: Caf\xe9\n".encode("latin-1"))
    result = kit.build()
    assert result.code == 2 and f"error: {kit.root}/_config.yml: cannot read" in result.err, result.err


def test_good_post_unaffected_by_many_bad_neighbours(kit):
    """All of the above at once: each bad post one line, the good one built, exit 1."""
    bad = {
        kit.post("b1", "x", front='title: "x\nalgorotoscope: tiny\n'): 2,
        kit.post("b2", "x", front="- algorotoscope\n"): 2,
        kit.post("b3", "x", front="algorotoscope: {filter: tiny, strength: lots}\n"): 2,
        kit.post("b4", "x", front="algorotoscope: nope\n"): 2,
    }
    result = kit.build()
    assert result.code == 1
    errors = result.lines("error")
    assert len(errors) == len(bad), errors
    for rel, line in bad.items():
        assert any(e.startswith(f"{kit.root}/{rel}:{line}: ") for e in errors), (rel, errors)
        assert kit.unchanged_copy(rel)
    kit.assert_good_post_built()
    assert GOOD_POST not in " ".join(errors)
