"""The Jekyll site model: config, collections, front matter, document kinds, path resolution."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from blogroto.errors import ConfigError
from blogroto.site.config import Settings, parse_post_options
from blogroto.site.documents import read_document, split_front_matter
from blogroto.site.model import Site, normalize_baseurl


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def site_dir(tmp_path):
    root = tmp_path / "site"
    write(root / "_config.yml", "title: T\nbaseurl: /blog/\ncollections:\n  projects:\n    output: true\n")
    return root


# -- front matter ----------------------------------------------------------------------------


def test_split_front_matter_like_jekyll():
    text = "---\ntitle: A\n---\nbody\n"
    fm = split_front_matter(text)
    assert fm.yaml_text(text) == "title: A\n"
    assert text[fm.body_start:] == "body\n"
    # '...' also closes, trailing spaces allowed, CRLF kept
    text = "---  \r\ntitle: A\r\n...\r\nbody"
    fm = split_front_matter(text)
    assert fm.yaml_text(text) == "title: A\r\n"
    assert text[fm.body_start:] == "body"
    assert split_front_matter("---\n---\nx") is not None
    assert split_front_matter("no front matter\n---\n") is None
    assert split_front_matter("----\ntitle: x\n---\n") is None


def test_read_document_reports_yaml_errors_with_file_line(tmp_path):
    path = write(tmp_path / "_posts/2024-01-01-x.md", "---\ntitle: ok\nbad: [unclosed\nmore: 1\n---\nbody\n")
    with pytest.raises(ConfigError) as info:
        read_document(path, "_posts/2024-01-01-x.md", "posts")
    err = info.value
    assert err.path == path
    assert err.line == 3  # where the unclosed list starts, not where the parser gave up
    assert str(err).startswith(f"{path}:{err.line}: invalid YAML")


def test_read_document_bom_and_lines(tmp_path):
    path = write(tmp_path / "p.md", b"\xef\xbb\xbf---\ntitle: x\nalgorotoscope: copper-circuit\n---\n\nHello\n")
    doc = read_document(path, "p.md", "pages")
    assert doc.bom and doc.data["algorotoscope"] == "copper-circuit"
    assert doc.body_line == 5 and doc.yaml_line == 2
    assert doc.key_line("algorotoscope") == 3
    assert doc.encode(doc.text) == path.read_bytes()  # byte-identical round trip


def test_read_document_without_front_matter_and_non_mapping(tmp_path):
    assert read_document(write(tmp_path / "a.md", "just text\n"), "a.md", "pages") is None
    with pytest.raises(ConfigError):
        read_document(write(tmp_path / "b.md", "---\n- a\n- b\n---\n"), "b.md", "pages")
    with pytest.raises(ConfigError, match="UTF-8") as info:
        read_document(write(tmp_path / "c.md", b"---\ntitle: \xff\n---\n"), "c.md", "pages")
    assert info.value.line == 2


def test_front_matter_is_read_through_python_frontmatter(tmp_path):
    """The reader is a python-frontmatter handler: through the library's own API it keeps Jekyll's
    delimiters (not the library's `^-{3,}` anywhere) and blogroto's safe YAML (path:line errors)."""
    import frontmatter

    from blogroto.site.jekyll_front_matter import JekyllYAMLHandler

    handler = JekyllYAMLHandler("p.md")
    assert isinstance(handler, frontmatter.YAMLHandler)
    assert frontmatter.parse("---\ntitle: A\n...\nbody\n---\n", handler=handler) == ({"title": "A"}, "body\n---")
    for text in ("----\ntitle: x\n----\nbody", "intro\n---\ntitle: x\n---\nbody"):
        assert frontmatter.parse(text, handler=handler)[0] == {}  # the library's default finds title: x
        assert frontmatter.parse(text, handler=frontmatter.YAMLHandler())[0] == {"title": "x"}
        assert not handler.detect(text)
    with pytest.raises(ConfigError) as info:
        frontmatter.loads("---\ntitle: ok\nbad: [unclosed\nmore: 1\n---\nbody\n", handler=handler)
    assert str(info.value).startswith("p.md:3: invalid YAML")
    with pytest.raises(ConfigError, match="constructor"):
        frontmatter.loads("---\nx: !!python/object/apply:os.system [echo]\n---\n", handler=handler)
    with pytest.raises(ConfigError, match="mapping"):
        frontmatter.loads("---\n- a\n---\n", handler=handler)
    # read_document reads what the library reads, and splices at the same boundary
    text = "---  \r\ntitle: A\r\nsub: {k: '---'}\r\n---\r\n\r\nbody ---\r\n"
    path = write(tmp_path / "p.md", text.encode())
    doc = read_document(path, "p.md", "pages")
    post = frontmatter.loads(text, handler=JekyllYAMLHandler(path))
    assert doc.data == post.metadata == {"title": "A", "sub": {"k": "---"}}
    assert (doc.yaml_text, doc.body) == handler.split(text)


# -- config and settings ---------------------------------------------------------------------


def test_defaults_without_config(tmp_path):
    site = Site(tmp_path)
    s = site.settings
    assert site.baseurl == ""
    assert s.output == tmp_path.resolve() / "_blogroto/site"
    assert s.cache == tmp_path.resolve() / ".blogroto-cache"
    assert s.filter_dirs == (tmp_path.resolve() / "_filters",)
    assert s.image_keys == ("image", "feature", "images")
    assert s.remote.enabled and not s.remote.allow_private


def test_baseurl_normalised(site_dir):
    assert Site(site_dir).baseurl == "/blog"
    assert normalize_baseurl("blog/") == "/blog"
    assert normalize_baseurl("") == "" and normalize_baseurl("/") == ""


def test_settings_parsed_and_validated(site_dir):
    write(site_dir / "_config.yml", """\
baseurl: ""
algorotoscope:
  filters: [_my_filters, _more]
  output: _out/site
  cache: .c
  image_keys: [hero]
  figure: true
  strength: 0.5
  keep_colors: true
  max_size: null
  format: jpg
  quality: 70
  remote: {enabled: false, timeout: 3, max_bytes: 1000, allow_private: true}
""")
    s = Site(site_dir).settings
    root = site_dir.resolve()
    assert s.filter_dirs == (root / "_my_filters", root / "_more")
    assert s.output == root / "_out/site" and s.cache == root / ".c"
    assert s.image_keys == ("hero",) and s.figure and s.strength == 0.5 and s.keep_colors
    assert s.max_size == 0 and s.format == "jpeg" and s.quality == 70
    assert s.remote.enabled is False and s.remote.timeout == 3 and s.remote.max_bytes == 1000 and s.remote.allow_private


@pytest.mark.parametrize("bad, line", [
    ("  strength: 2\n", 3),
    ("  keep_colors: yes please\n", 3),
    ("  quality: 0\n", 3),
    ("  format: bmp\n", 3),
    ("  image_keys: 3\n", 3),
    ("  figure: false\n  credit_template: _theme/nope.html.j2\n", 4),
])
def test_bad_settings_are_config_errors_naming_the_line(site_dir, bad, line):
    write(site_dir / "_config.yml", "title: x\nalgorotoscope:\n" + bad)
    with pytest.raises(ConfigError) as info:
        Site(site_dir)
    assert info.value.path == site_dir / "_config.yml"
    assert info.value.line == line


def test_unknown_setting_is_a_warning_with_hint(site_dir):
    write(site_dir / "_config.yml", "algorotoscope:\n  figures: true\n")
    site = Site(site_dir)
    assert any("figures" in w and "figure" in w and ":2:" in w for w in site.warnings)


def test_bad_config_yaml(site_dir):
    write(site_dir / "_config.yml", "title: x\nbaseurl: [\n")
    with pytest.raises(ConfigError) as info:
        Site(site_dir)
    assert info.value.line is not None and info.value.line >= 2


def test_toml_config(tmp_path):
    write(tmp_path / "_config.toml", 'baseurl = "/x"\n[algorotoscope]\nfigure = true\n')
    site = Site(tmp_path)
    assert site.baseurl == "/x" and site.settings.figure


def test_output_visible_to_jekyll_is_refused(site_dir):
    write(site_dir / "_config.yml", "algorotoscope:\n  output: public/site\n")
    with pytest.raises(ConfigError, match="inside the site's own content"):
        Site(site_dir)
    # an excluded folder is still the author's (scripts, vendor, ...): refused too
    write(site_dir / "_config.yml", "exclude: [public]\nalgorotoscope:\n  output: public/site\n")
    with pytest.raises(ConfigError, match="inside the site's own content"):
        Site(site_dir)
    # underscore/dot folders of blogroto's own, and folders outside the site, are fine
    Site(site_dir, output=site_dir / ".out")
    Site(site_dir, output=site_dir / "_out", cache=site_dir / ".c")
    Site(site_dir, output=site_dir.parent / "elsewhere")


@pytest.mark.parametrize("what,rel", [
    ("cache", "assets"), ("cache", "assets/.cache"), ("cache", "_posts"), ("out", "_posts/generated"),
    ("out", "_layouts/x"), ("cache", "_data"), ("cache", ".git"), ("out", "_site"), ("cache", "_filters"),
    ("out", "blog/_posts/x"), ("cache", "_algorotoscope"),
])
def test_output_or_cache_inside_author_content_is_refused(site_dir, what, rel):
    kwargs = {"output": site_dir.parent / "o", "cache": site_dir.parent / "c"}
    kwargs["output" if what == "out" else "cache"] = site_dir / rel
    with pytest.raises(ConfigError, match="inside the site's own content"):
        Site(site_dir, **kwargs)


def test_output_containing_the_site_is_refused(site_dir):
    with pytest.raises(ConfigError, match="must not contain the site"):
        Site(site_dir, output=site_dir.parent)
    with pytest.raises(ConfigError):
        Site(site_dir, output=site_dir)


def test_output_and_cache_must_be_separate(site_dir):
    with pytest.raises(ConfigError, match="must be separate"):
        Site(site_dir, output=site_dir / "_out", cache=site_dir / "_out/.cache")
    with pytest.raises(ConfigError, match="must be separate"):
        Site(site_dir, output=site_dir / ".c/out", cache=site_dir / ".c")


def test_post_options():
    s = Settings(filter_dirs=(), output=Path("/o"), cache=Path("/c"), strength=0.7, max_size=800)
    o = parse_post_options("copper-circuit", s, Path("p.md"), 2)
    assert (o.filter, o.strength, o.max_size, o.keep_colors) == ("copper-circuit", 0.7, 800, False)
    o = parse_post_options({"filter": "x", "strength": 1, "only": "*.jpg", "skip": ["a.png"]}, s, Path("p"), 2)
    assert o.strength == 1.0 and o.only == ("*.jpg",) and o.skip == ("a.png",)
    assert parse_post_options(False, s, Path("p"), 2) is None
    assert parse_post_options(None, s, Path("p"), 2) is None
    with pytest.raises(ConfigError, match="filter name") as info:
        parse_post_options({"strength": 1}, s, Path("p.md"), 4)
    assert info.value.line == 4
    with pytest.raises(ConfigError, match="Did you mean: strength"):
        parse_post_options({"filter": "x", "strenght": 1}, s, Path("p"), 2)
    with pytest.raises(ConfigError, match="between 0"):
        parse_post_options({"filter": "x", "strength": 1.5}, s, Path("p"), 2)
    with pytest.raises(ConfigError):
        parse_post_options(["x"], s, Path("p"), 2)


def test_only_and_skip_globs():
    s = Settings(filter_dirs=(), output=Path("/o"), cache=Path("/c"))
    o = parse_post_options({"filter": "x", "only": ["assets/img/*.jpg"], "skip": ["*banner*"]}, s, Path("p"), 1)
    assert o.wants("/assets/img/a.jpg", "assets/img/a.jpg", "a.jpg")
    assert not o.wants("/assets/img/a.png", "assets/img/a.png", "a.png")
    assert not o.wants("assets/img/banner.jpg", "banner.jpg")


# -- walking and kinds -----------------------------------------------------------------------


def test_document_kinds(site_dir):
    site = Site(site_dir)
    assert site.document_kind("_posts/2024-01-02-x.md") == "posts"
    assert site.document_kind("news/_posts/2024-01-02-x.md") == "posts"
    assert site.document_kind("_posts/not-a-dated-name.md") is None
    assert site.document_kind("_drafts/x.md") is None
    assert site.document_kind("_drafts/x.md", include_drafts=True) == "drafts"
    assert site.document_kind("_projects/board.md") == "projects"
    assert site.document_kind("_other/thing.md") is None  # not a declared collection
    assert site.document_kind("about.md") == "pages"
    assert site.document_kind("docs/guide/index.html") == "pages"
    assert site.document_kind("_layouts/post.html") is None
    assert site.document_kind("assets/img/a.jpg") is None


def test_collections_dir(site_dir):
    write(site_dir / "_config.yml", "collections_dir: coll\ncollections: [projects]\n")
    site = Site(site_dir)
    assert site.document_kind("coll/_projects/a.md") == "projects"
    assert site.document_kind("coll/_posts/2024-01-01-a.md") == "posts"


def test_walk_skips_output_cache_site_and_vcs(site_dir):
    for rel in ["index.md", "_posts/2024-01-01-a.md", "assets/x.png", "_blogroto/site/index.md",
                "_blogroto/other.txt", ".blogroto-cache/objects/ab/c", "_site/index.html", ".git/HEAD",
                ".jekyll-cache/x", "_layouts/default.html"]:
        write(site_dir / rel, "x")
    rels = {sf.rel for sf in Site(site_dir).walk()}
    assert rels == {"_config.yml", "index.md", "_posts/2024-01-01-a.md", "assets/x.png", "_layouts/default.html"}


def test_walk_skips_default_output_and_cache_when_building_elsewhere(site_dir, tmp_path):
    # `build --out/--cache` elsewhere: an earlier default build must not be copied into the new output
    for rel in ["index.md", "_blogroto/site/index.md", ".blogroto-cache/objects/ab/c"]:
        write(site_dir / rel, "x")
    site = Site(site_dir, output=tmp_path / "out", cache=tmp_path / "cache")
    assert {sf.rel for sf in site.walk()} == {"_config.yml", "index.md"}


def test_walk_follows_jekylls_symlink_rule(site_dir, tmp_path):
    write(tmp_path / "outside.txt", "secret")
    write(tmp_path / "outdir/x.txt", "secret")
    write(site_dir / "a.txt", "a")
    write(site_dir / "d/b.txt", "b")
    os.symlink(tmp_path / "outside.txt", site_dir / "link.txt")  # outside: not published
    os.symlink(tmp_path / "outdir", site_dir / "linkdir")  # outside folder: not published
    os.symlink("a.txt", site_dir / "alias.txt")  # inside: published as its target
    os.symlink("d", site_dir / "e")  # inside folder: its files published under the link's name
    os.symlink(".", site_dir / "d/loop")  # a loop: not published
    os.symlink("missing", site_dir / "dangling")
    site = Site(site_dir)
    files = {sf.rel: sf for sf in site.walk()}
    assert "link.txt" not in files and not any(r.startswith("linkdir") for r in files)
    assert not files["alias.txt"].is_link and files["alias.txt"].st.st_ino == os.stat(site_dir / "a.txt").st_ino
    assert "e/b.txt" in files and "d/b.txt" in files
    assert not any("loop" in r for r in files) and "dangling" not in files
    assert len([w for w in site.warnings if "not published" in w]) == 5, site.warnings


def test_hidden_from_jekyll(site_dir):
    write(site_dir / "_config.yml", "exclude: [vendor, '*.log']\ninclude: [_redirects]\n")
    site = Site(site_dir)
    assert site.hidden_from_jekyll("_blogroto/site")
    assert site.hidden_from_jekyll(".cache")
    assert site.hidden_from_jekyll("vendor/x")
    assert site.hidden_from_jekyll("debug.log")
    assert not site.hidden_from_jekyll("_redirects")
    assert not site.hidden_from_jekyll("assets/x")


def test_front_matter_defaults(site_dir):
    write(site_dir / "_config.yml", """\
defaults:
  - scope: {path: ""}
    values: {algorotoscope: copper-circuit, layout: page}
  - scope: {path: "", type: posts}
    values: {algorotoscope: {filter: hubble-deep-field}}
  - scope: {path: "travel"}
    values: {algorotoscope: false}
""")
    site = Site(site_dir)
    assert site.defaults_for("about.md", "pages")["algorotoscope"] == "copper-circuit"
    assert site.defaults_for("_posts/2024-01-01-x.md", "posts")["algorotoscope"] == {"filter": "hubble-deep-field"}
    assert site.defaults_for("_drafts/x.md", "drafts")["algorotoscope"] == {"filter": "hubble-deep-field"}
    assert site.defaults_for("travel/_posts/2024-01-01-x.md", "posts")["algorotoscope"] is False
    assert site.has_defaults_for("algorotoscope")


# -- resolving references --------------------------------------------------------------------


def test_resolve_local_paths(site_dir, tmp_path):
    write(site_dir / "assets/img/a.jpg", "x")
    write(site_dir / "_posts/b.jpg", "x")
    write(site_dir / "my photo.jpg", "x")
    site = Site(site_dir)
    assert site.resolve_local("/assets/img/a.jpg", "_posts") == ("assets/img/a.jpg", "ok")
    assert site.resolve_local("/blog/assets/img/a.jpg", "_posts") == ("assets/img/a.jpg", "ok")  # baseurl stripped
    assert site.resolve_local("assets/img/a.jpg", "_posts") == ("assets/img/a.jpg", "ok")  # site root fallback
    assert site.resolve_local("b.jpg", "_posts") == ("_posts/b.jpg", "ok")  # next to the post
    assert site.resolve_local("../assets/img/a.jpg?v=2#x", "_posts") == ("assets/img/a.jpg", "ok")
    assert site.resolve_local("/my%20photo.jpg", "") == ("my photo.jpg", "ok")
    assert site.resolve_local("/nope.jpg", "") == (None, "missing")


def test_resolve_refuses_escapes(site_dir, tmp_path):
    write(tmp_path / "secret.jpg", "x")
    os.symlink(tmp_path / "secret.jpg", site_dir / "link.jpg")
    write(site_dir / "_blogroto/site/x.jpg", "x")
    site = Site(site_dir)
    assert site.resolve_local("../../secret.jpg", "_posts")[0] is None
    assert site.resolve_local("../secret.jpg", "") == (None, "outside")
    assert site.resolve_local("/link.jpg", "") == (None, "outside")  # symlink resolving outside
    assert site.resolve_local(str(tmp_path / "secret.jpg"), "") == (None, "outside")  # filesystem path
    assert site.resolve_local("/_blogroto/site/x.jpg", "") == (None, "outside")  # our own output
    assert site.resolve_local("..\\..\\secret.jpg", "")[0] is None


def test_yaml_error_line_for_block_mapping_points_at_the_bad_line(tmp_path):
    path = write(tmp_path / "y.md", "---\ntitle: a\nok: 1\n  bad: b\nc: d\n---\nbody\n")
    with pytest.raises(ConfigError) as info:
        read_document(path, "y.md", "pages")
    assert info.value.line == 4


@pytest.mark.parametrize("depth", [250, 5_000])
@pytest.mark.parametrize("opener, closer", [("[", "]"), ("{a: ", "}")])
def test_deep_yaml_is_refused_in_our_words_whatever_pyyaml_does(depth, opener, closer):
    """250 levels pass PyYAML's own limit (1000 in 6.0.4) and meet ours; 5000 meet PyYAML's first
    in 6.0.4 and ours in older versions: the message and line are the same either way."""
    from blogroto.safeyaml import MAX_YAML_DEPTH, check_yaml_depth

    text = "title: t\nx: " + opener * depth + "1" + closer * depth + "\n"
    with pytest.raises(ConfigError) as caught:
        check_yaml_depth(text, "front.yml", 10)
    assert f"YAML nested more than {MAX_YAML_DEPTH} levels deep" in str(caught.value)
    assert caught.value.line == 11


def test_yaml_depth_check_leaves_other_errors_to_the_load():
    from blogroto.safeyaml import check_yaml_depth

    check_yaml_depth("x: " + "[" * 198 + "a: 1, b: 2\n'unclosed\n", "front.yml", 1)  # 200 levels (with the mapping around), then a syntax error the load reports


def test_keep_colours_spelling_is_accepted_everywhere(site_dir):
    s = Site(site_dir).settings
    assert parse_post_options({"filter": "x", "keep_colours": True}, s, Path("p"), 2).keep_colors is True
    write(site_dir / "_config.yml", "title: x\nalgorotoscope:\n  keep_colours: true\n")
    site = Site(site_dir)
    assert site.settings.keep_colors is True and site.warnings == []
    write(site_dir / "_config.yml", "title: x\nalgorotoscope:\n  strength: 1\n  keep_colours: maybe\n")
    with pytest.raises(ConfigError, match="keep_colours must be true or false") as info:
        Site(site_dir)
    assert info.value.line == 4  # the line that spells it so
    with pytest.raises(ConfigError, match="both 'keep_colors' and 'keep_colours'") as info:
        parse_post_options({"filter": "x", "keep_colours": True, "keep_colors": False}, s, Path("p"), 2,
                           {"filter": 3, "keep_colours": 4, "keep_colors": 5})
    assert info.value.line == 4


def test_option_errors_point_at_the_options_own_line(site_dir):
    s = Site(site_dir).settings
    lines = {"filter": 4, "strength": 5, "quality": 6}
    with pytest.raises(ConfigError) as info:
        parse_post_options({"filter": "x", "strength": 2, "quality": 50}, s, Path("p"), 3, lines)
    assert info.value.line == 5
    with pytest.raises(ConfigError) as info:
        parse_post_options({"filter": "x", "qualty": 50}, s, Path("p"), 3, {"filter": 4, "qualty": 7})
    assert info.value.line == 7
    # a document's own option lines, as the build passes them
    from blogroto.site.documents import read_document

    post = write(site_dir / "_posts/2024-01-01-x.md", "---\ntitle: t\nalgorotoscope:\n  filter: x\n  strength: 9\n---\n")
    doc = read_document(post, "_posts/2024-01-01-x.md", "posts")
    assert doc.option_lines("algorotoscope") == {"filter": 4, "strength": 5}


@pytest.mark.parametrize("value, seconds", [("1d", 86400), ("10m", 600), ("2h", 7200), ("1w", 604800), (30, 30),
                                            ("45s", 45), (0, 0), ("*", float("inf"))])
def test_remote_duration(site_dir, value, seconds):
    write(site_dir / "_config.yml", f"algorotoscope:\n  remote: {{duration: {value!r}}}\n")
    assert Site(site_dir).settings.remote.duration == seconds


def test_remote_duration_default_and_errors(site_dir):
    assert Site(site_dir).settings.remote.duration == 86400
    write(site_dir / "_config.yml", "title: x\nalgorotoscope:\n  remote:\n    duration: soon\n")
    with pytest.raises(ConfigError, match="algorotoscope.remote.duration must be a duration like 30m") as info:
        Site(site_dir)
    assert info.value.line == 3
