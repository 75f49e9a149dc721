"""The Jekyll site model: `_config.yml`, collections, documents with front matter.

This module only *reads* the author's site. It knows Jekyll's rules for which files are posts,
drafts, collection documents, pages or static files, how front matter is delimited, how
`defaults:` scopes apply, and how a URL path written in a post maps back to a file in the site.
Nothing here imports TensorFlow, PIL or Jinja2: a no-op build goes through it on every run.
"""

from __future__ import annotations

import difflib
import fnmatch
import os
import re
import stat as stat_mod
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from blogroto.errors import ConfigError
from blogroto.safeyaml import (  # noqa: F401  (re-exported: the YAML helpers used to live here)
    MAX_YAML_DEPTH, FastDumper, FastLoader, check_yaml_depth, compose_checked, yaml_error_line, yaml_error_text,
)

CONFIG_NAMES = ("_config.yml", "_config.yaml", "_config.toml")
DEFAULT_IMAGE_KEYS = ("image", "feature", "images")
DEFAULT_OUTPUT = "_blogroto/site"
DEFAULT_CACHE = ".blogroto-cache"
DEFAULT_FILTER_DIRS = ("_filters",)
SITE_TEMPLATE_DIR = "_algorotoscope"
FRONT_MATTER_KEY = "algorotoscope"
CREDITS_KEY = "algorotoscope_credits"
IMAGES_KEY = "algorotoscope_images"  # front-matter images' sizes and candidates, for layouts (responsive)

# Never part of the output tree: version control, Jekyll's own caches and metadata. Everything
# else is copied so that the output builds exactly like the source.
NEVER_COPIED = frozenset({".git", ".hg", ".svn", ".jekyll-cache", ".sass-cache", ".jekyll-metadata"})

# Files that cannot start with YAML front matter; skipping the 3-byte read keeps a cold scan of a
# big image-heavy site cheap.
BINARY_SUFFIXES = frozenset(
    ".jpg .jpeg .png .gif .webp .avif .heic .tif .tiff .bmp .ico .psd .pdf .zip .gz .tgz .bz2 .xz"
    " .woff .woff2 .ttf .otf .eot .mp3 .mp4 .m4a .mov .webm .ogg .wav .npz .npy .bin .exe".split()
)

# Jekyll's YAML_FRONT_MATTER_REGEXP, translated from Ruby (where /m means dot-all).
_FRONT_MATTER_RE = re.compile(r"\A(---[^\S\n]*\r?\n)(.*?\n?)^((?:---|\.\.\.)[^\S\n]*\r?$\n?)", re.M | re.S)
_POST_NAME_RE = re.compile(r"^\d{2,4}-\d{1,2}-\d{1,2}-.+\.[^.]+$")

SETTINGS_KEYS = (
    "filters", "output", "cache", "credit_template", "figcaption_template", "image_keys", "remote",
    "figure", "strength", "keep_colors", "max_size", "format", "quality", "catalog", "animation", "responsive",
)
POST_OPTION_KEYS = ("filter", "strength", "keep_colors", "max_size", "format", "quality", "only", "skip",
                    "responsive")
REMOTE_KEYS = ("enabled", "timeout", "max_bytes", "allow_private", "duration")
ANIMATION_KEYS = ("enabled", "max_frames", "max_pixels", "smoothing", "max_video_seconds")
RESPONSIVE_KEYS = ("enabled", "preset", "presets", "social_card")
PRESET_KEYS = ("widths", "formats", "quality", "sizes", "lazy")
PRESET_FORMATS = ("webp", "avif", "jpeg", "png", "original")  # original: the stylized file's own format
# British spellings accepted wherever the American one is (the CLI takes --keep-colours too).
KEY_ALIASES = {"keep_colours": "keep_colors"}


def _unalias(mapping: dict, where, line_of) -> dict:
    """`mapping` with aliased keys (keep_colours) under their canonical name; both given is an error."""
    if not any(k in mapping for k in KEY_ALIASES):
        return mapping
    out = dict(mapping)
    for alias, key in KEY_ALIASES.items():
        if alias in out:
            if key in out:
                raise ConfigError(f"both {key!r} and {alias!r} are given; keep one", where, line_of(alias))
            out[key] = out.pop(alias)
    return out
IMAGE_FORMATS = ("jpeg", "jpg", "png", "webp")  # what the stylizer writes


# --------------------------------------------------------------------------------------------
# settings


@dataclass(frozen=True)
class RemoteSettings:
    enabled: bool = True
    timeout: float = 10.0
    max_bytes: int = 20 * 1024 * 1024
    allow_private: bool = False
    duration: float = 86400.0  # seconds a cached remote image is used before revalidating; inf: never


@dataclass(frozen=True)
class AnimationSettings:
    """Animated GIF/WebP/APNG and video: the bounds past which one is left as it is, and the
    flicker reduction (blogroto.animation, blogroto.video)."""

    max_frames: int = 300
    max_pixels: int = 100_000_000  # all frames together, at output size: ~400 MB of RGBA in memory
    smoothing: float = 0.6  # 0: frames stylized independently; 1: as much of the last frame as the flow allows
    max_video_seconds: float = 120.0  # videos stream frame by frame: their bound is time, not memory


@dataclass(frozen=True)
class Preset:
    """One responsive preset (in the manner of jekyll_picture_tag's): the widths and formats every
    stylized image is written in, and how the <img>/<picture> asks the browser to choose."""

    widths: tuple[int, ...] = (480, 960, 1600)
    formats: tuple[str, ...] = ("webp", "original")  # the last one is the <img> fallback
    quality: tuple[tuple[str, int], ...] = (("webp", 80), ("avif", 60))  # others: the post's quality
    sizes: str = "(max-width: 800px) 100vw, 800px"
    lazy: bool = True  # every stylized image of a document but the first gets loading="lazy"

    def quality_for(self, fmt: str, default: int) -> int:
        return dict(self.quality).get(fmt, default)


@dataclass(frozen=True)
class ResponsiveSettings:
    """`algorotoscope.responsive` (blogroto.responsive): named presets, the one documents use
    unless they name another, and the size of the social card made for the `image:` key."""

    presets: tuple[tuple[str, Preset], ...] = (("default", Preset()),)
    preset: str = "default"
    social_card: tuple[int, int] | None = (1200, 630)  # Open Graph's recommended size

    def get(self, name: str) -> Preset | None:
        return dict(self.presets).get(name)


_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdwy]?)\s*$")
_DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "y": 365 * 86400}


def parse_duration(value, what, path, line) -> float:
    """eleventy-img style durations: seconds as a number, or '30s', '10m', '2h', '1d', '1w', '1y';
    '*' means never revalidate (use the cached copy for ever); 0 means revalidate on every build."""
    if value == "*":
        return float("inf")
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
        return float(value)
    m = _DURATION_RE.match(value) if isinstance(value, str) else None
    if m is None:
        raise ConfigError(f"{what} must be a duration like 30m, 12h, 1d, 2w (or seconds, or '*' for never), "
                          f"not {value!r}", path, line)
    return float(m.group(1)) * _DURATION_UNITS[m.group(2)]


@dataclass(frozen=True)
class Settings:
    """The `algorotoscope:` section of `_config.yml`, with paths made absolute."""

    filter_dirs: tuple[Path, ...]
    output: Path
    cache: Path
    credit_template: Path | None = None
    figcaption_template: Path | None = None
    image_keys: tuple[str, ...] = DEFAULT_IMAGE_KEYS
    remote: RemoteSettings = RemoteSettings()
    animation: AnimationSettings | None = AnimationSettings()  # None: animations become their first frame
    figure: bool = False
    strength: float = 1.0
    keep_colors: bool = False
    max_size: int = 1600  # long side in px; 0 = full size
    format: str | None = None
    quality: int = 90
    # None (no `responsive:` section, or `responsive: false`): one file per image, references keep their form
    responsive: ResponsiveSettings | None = None


@dataclass(frozen=True)
class PostOptions:
    """What one document's `algorotoscope:` front matter asks for (site defaults filled in)."""

    filter: str
    strength: float
    keep_colors: bool
    max_size: int  # 0 = full size
    format: str | None
    quality: int
    only: tuple[str, ...] = ()
    skip: tuple[str, ...] = ()
    responsive: Preset | None = None  # None: this document's images get one file each, no srcset

    def wants(self, *names: str) -> bool:
        """Whether an image known by any of `names` (as written, site path, file name) is selected."""
        names = tuple(n for n in names if n)

        def hit(patterns):
            return any(fnmatch.fnmatchcase(n, p) or fnmatch.fnmatchcase(n, p.lstrip("/"))
                       for p in patterns for n in names)

        if self.only and not hit(self.only):
            return False
        return not (self.skip and hit(self.skip))


def _hint(key: str, known) -> str:
    close = difflib.get_close_matches(key, list(known), n=3)
    return f" Did you mean: {', '.join(close)}?" if close else f" Known keys: {', '.join(known)}."


def _check_number(value, what, path, line, *, lo=None, hi=None, integer=False, allow_none=False):
    if value is None and allow_none:
        return None
    ok_types = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, ok_types):
        kind = "an integer" if integer else "a number"
        raise ConfigError(f"{what} must be {kind}, not {value!r}", path, line)
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise ConfigError(f"{what} must be between {lo} and {hi}, not {value!r}", path, line)
    return value


def _check_bool(value, what, path, line):
    if not isinstance(value, bool):
        raise ConfigError(f"{what} must be true or false, not {value!r}", path, line)
    return value


def _max_size(value, what, path, line) -> int:
    # null / 0 / false mean "full size" (the stylizer's 0)
    if value is None or value is False or value == 0:
        return 0
    return _check_number(value, what, path, line, lo=16, hi=65536, integer=True)


def _check_format(value, what, path, line):
    if value is None:
        return None
    if not isinstance(value, str) or value.lower() not in IMAGE_FORMATS:
        raise ConfigError(f"{what} must be one of {', '.join(IMAGE_FORMATS)}, not {value!r}", path, line)
    value = value.lower()
    return "jpeg" if value == "jpg" else value


def _str_list(value, what, path, line) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise ConfigError(f"{what} must be a string or a list of strings, not {value!r}", path, line)


def parse_settings(section: Any, root: Path, config_path: Path | None, line_of=lambda key: None,
                   warnings: list[str] | None = None) -> Settings:
    """Validate the `algorotoscope:` mapping of `_config.yml`."""
    section = {} if section is None else section
    where = config_path or root / "_config.yml"
    if not isinstance(section, dict):
        raise ConfigError("'algorotoscope' must be a mapping", where, line_of(FRONT_MATTER_KEY))
    alias_of = {v: k for k, v in KEY_ALIASES.items() if k in section}
    section = _unalias(section, where, line_of)
    if alias_of:  # messages about keep_colors point at the line that spells it keep_colours
        line_of = (lambda inner: lambda key: inner(alias_of.get(key.split(".")[0], key)))(line_of)
    for key in section:
        if key not in SETTINGS_KEYS and warnings is not None:
            warnings.append(f"{where}:{line_of(key) or '?'}: unknown algorotoscope setting {key!r}."
                            + _hint(str(key), SETTINGS_KEYS))

    def p(key):
        # remote.timeout: the `remote:` line; keep_colors: as the author spelt it
        return f"algorotoscope.{alias_of.get(key, key)}", where, line_of(key.split(".")[0])

    def site_path(value, key):
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"algorotoscope.{key} must be a folder name, not {value!r}", where, line_of(key))
        return (root / os.path.expanduser(value)).resolve()

    filters = _str_list(section.get("filters", list(DEFAULT_FILTER_DIRS)), *p("filters"))
    remote = _switchable_section(section, "remote", REMOTE_KEYS, where, line_of, warnings)
    rdefault = RemoteSettings()
    remote_settings = RemoteSettings(
        enabled=_check_bool(remote.get("enabled", rdefault.enabled), *p("remote.enabled")),
        timeout=float(_check_number(remote.get("timeout", rdefault.timeout), *p("remote.timeout"), lo=0.1, hi=600)),
        max_bytes=_check_number(remote.get("max_bytes", rdefault.max_bytes), *p("remote.max_bytes"),
                                lo=1, hi=2**40, integer=True),
        allow_private=_check_bool(remote.get("allow_private", rdefault.allow_private), *p("remote.allow_private")),
        duration=parse_duration(remote.get("duration", rdefault.duration), *p("remote.duration")),
    )
    animation = _animation_settings(section, where, line_of, p, warnings)
    responsive = _responsive_settings(section, where, line_of, p, warnings)
    image_keys = _str_list(section.get("image_keys", list(DEFAULT_IMAGE_KEYS)), *p("image_keys"))
    templates = {}
    for key in ("credit_template", "figcaption_template"):
        value = section.get(key)
        templates[key] = site_path(value, key) if value is not None else None
        if templates[key] is not None and not templates[key].is_file():
            # Checked here, not when rendering, so the message points at the config line.
            raise ConfigError(f"algorotoscope.{key}: template file not found: {value}", where, line_of(key))
    return Settings(
        filter_dirs=tuple(site_path(d, "filters") for d in filters),
        output=site_path(section.get("output", DEFAULT_OUTPUT), "output"),
        cache=site_path(section.get("cache", DEFAULT_CACHE), "cache"),
        credit_template=templates["credit_template"],
        figcaption_template=templates["figcaption_template"],
        image_keys=image_keys,
        remote=remote_settings,
        animation=animation,
        figure=_check_bool(section.get("figure", False), *p("figure")),
        strength=float(_check_number(section.get("strength", 1.0), *p("strength"), lo=0.0, hi=1.0)),
        keep_colors=_check_bool(section.get("keep_colors", False), *p("keep_colors")),
        max_size=_max_size(section.get("max_size", 1600), *p("max_size")),
        format=_check_format(section.get("format"), *p("format")),
        quality=_check_number(section.get("quality", 90), *p("quality"), lo=1, hi=100, integer=True),
        responsive=responsive,
    )


def _switchable_section(parent: dict, name: str, keys: tuple[str, ...], where, line_of, warnings) -> dict:
    """A sub-mapping of `algorotoscope:` that `name: false` / `name: true` switches off or on."""
    section = parent.get(name)
    section = {} if section is None else section  # not `or {}`: `name: false` must switch it off
    if isinstance(section, bool):
        section = {"enabled": section}
    if not isinstance(section, dict):
        raise ConfigError(f"algorotoscope.{name} must be a mapping, not {section!r}", where, line_of(name))
    for key in section:
        if key not in keys and warnings is not None:
            warnings.append(f"{where}:{line_of(name) or '?'}: unknown algorotoscope.{name} setting "
                            f"{key!r}." + _hint(str(key), keys))
    return section


def _animation_settings(parent: dict, where, line_of, p, warnings) -> AnimationSettings | None:
    """`animation: false`, or a mapping of ANIMATION_KEYS (docs/animation.md)."""
    section = _switchable_section(parent, "animation", ANIMATION_KEYS, where, line_of, warnings)
    if not _check_bool(section.get("enabled", True), *p("animation.enabled")):
        return None
    d = AnimationSettings()
    return AnimationSettings(
        max_frames=_check_number(section.get("max_frames", d.max_frames), *p("animation.max_frames"),
                                 lo=1, hi=100_000, integer=True),
        max_pixels=_check_number(section.get("max_pixels", d.max_pixels), *p("animation.max_pixels"),
                                 lo=1, hi=2**40, integer=True),
        smoothing=float(_check_number(section.get("smoothing", d.smoothing), *p("animation.smoothing"), lo=0.0, hi=1.0)),
        max_video_seconds=float(_check_number(section.get("max_video_seconds", d.max_video_seconds),
                                              *p("animation.max_video_seconds"), lo=0.1, hi=86400)),
    )


def _responsive_settings(parent: dict, where, line_of, p, warnings) -> ResponsiveSettings | None:
    """`responsive: false`, or a mapping of RESPONSIVE_KEYS (docs/responsive.md). A preset given in
    the config fills in what it leaves out from the built-in `default` preset."""
    if parent.get("responsive") is None:
        return None  # opt-in: an existing site's output keeps its form until its config asks
    section = _switchable_section(parent, "responsive", RESPONSIVE_KEYS, where, line_of, warnings)
    if not _check_bool(section.get("enabled", True), *p("responsive.enabled")):
        return None
    given = section.get("presets") or {}
    if not isinstance(given, dict):
        raise ConfigError(f"algorotoscope.responsive.presets must be a mapping of preset names, not {given!r}",
                          where, line_of("responsive"))
    presets = {"default": Preset()}
    for name, value in given.items():
        presets[str(name)] = _preset(str(name), value, where, line_of("responsive"), warnings)
    default = section.get("preset", "default")
    if default not in presets:
        raise ConfigError(f"algorotoscope.responsive.preset: no preset named {default!r}." + _hint(str(default), presets),
                          where, line_of("responsive"))
    card = section.get("social_card", {})
    if card is False:
        social = None
    elif isinstance(card, dict) and set(card) <= {"width", "height"}:
        d = ResponsiveSettings().social_card
        social = tuple(_check_number(card.get(k, dv), f"algorotoscope.responsive.social_card.{k}", where,
                                     line_of("responsive"), lo=16, hi=8192, integer=True)
                       for k, dv in zip(("width", "height"), d))
    else:
        raise ConfigError("algorotoscope.responsive.social_card must be false or {width: W, height: H}, "
                          f"not {card!r}", where, line_of("responsive"))
    return ResponsiveSettings(presets=tuple(presets.items()), preset=default, social_card=social)


def _preset(name: str, value, where, line, warnings) -> Preset:
    what = f"algorotoscope.responsive.presets.{name}"
    if not isinstance(value, dict):
        raise ConfigError(f"{what} must be a mapping, not {value!r}", where, line)
    for key in value:
        if key not in PRESET_KEYS and warnings is not None:
            warnings.append(f"{where}:{line or '?'}: unknown {what} setting {key!r}." + _hint(str(key), PRESET_KEYS))
    d = Preset()
    widths = value.get("widths", list(d.widths))
    if not isinstance(widths, list) or not widths:
        raise ConfigError(f"{what}.widths must be a list of widths in px, not {widths!r}", where, line)
    widths = tuple(sorted({_check_number(w, f"{what}.widths", where, line, lo=16, hi=16384, integer=True)
                           for w in widths}))
    formats = _str_list(value.get("formats", list(d.formats)), f"{what}.formats", where, line)
    formats = tuple(dict.fromkeys("jpeg" if f.lower() == "jpg" else f.lower() for f in formats))
    bad = [f for f in formats if f not in PRESET_FORMATS]
    if bad or not formats:
        raise ConfigError(f"{what}.formats: {bad[0] if bad else 'none'!r} is not one of {', '.join(PRESET_FORMATS)}",
                          where, line)
    quality = value.get("quality", dict(d.quality))
    if not isinstance(quality, dict):
        raise ConfigError(f"{what}.quality must be a mapping of format to quality (webp: 80), not {quality!r}",
                          where, line)
    quality = {**dict(d.quality), **{("jpeg" if str(k).lower() == "jpg" else str(k).lower()):
                                     _check_number(q, f"{what}.quality.{k}", where, line, lo=1, hi=100, integer=True)
                                     for k, q in quality.items()}}
    sizes = value.get("sizes", d.sizes)
    if not isinstance(sizes, str) or not sizes.strip() or any(c in sizes for c in "\"<>{}"):
        raise ConfigError(f"{what}.sizes must be an HTML sizes value such as \"(max-width: 800px) 100vw, 800px\", "
                          f"not {sizes!r}", where, line)
    return Preset(widths=widths, formats=formats, quality=tuple(sorted(quality.items())), sizes=sizes.strip(),
                  lazy=_check_bool(value.get("lazy", d.lazy), f"{what}.lazy", where, line))


def parse_post_options(value: Any, settings: Settings, path: Path, line: int | None,
                       key_lines: dict[str, int] | None = None) -> PostOptions | None:
    """Front matter `algorotoscope:` -> PostOptions; None when the document opts out (false/null/'').

    `line` is the `algorotoscope:` line; `key_lines` the lines of its option keys, so that a bad
    option is reported on its own line (`Document.option_lines`)."""
    if value is None or value is False or value == "":
        return None
    if isinstance(value, str):
        value = {"filter": value}
    if not isinstance(value, dict):
        raise ConfigError(f"'algorotoscope' must be a filter name or a mapping, not {value!r}", path, line)
    key_lines = key_lines or {}

    def at(key):
        return key_lines.get(key, line)

    alias_of = {v: k for k, v in KEY_ALIASES.items() if k in value}
    value = _unalias(value, path, at)
    unknown = [k for k in value if k not in POST_OPTION_KEYS]
    if unknown:
        raise ConfigError(f"unknown algorotoscope option {unknown[0]!r}." + _hint(str(unknown[0]), POST_OPTION_KEYS),
                          path, at(unknown[0]))

    def p(key):
        return f"algorotoscope.{alias_of.get(key, key)}", path, at(alias_of.get(key, key))

    name = value.get("filter")
    if not isinstance(name, str) or not name.strip():
        raise ConfigError("'algorotoscope' needs a filter name (algorotoscope: {filter: NAME, ...})", path,
                          at("filter") if "filter" in value else line)
    return PostOptions(
        filter=name.strip(),
        strength=float(_check_number(value.get("strength", settings.strength), *p("strength"), lo=0.0, hi=1.0)),
        keep_colors=_check_bool(value.get("keep_colors", settings.keep_colors), *p("keep_colors")),
        max_size=_max_size(value.get("max_size", settings.max_size), *p("max_size")),
        format=_check_format(value.get("format", settings.format), *p("format")),
        quality=_check_number(value.get("quality", settings.quality), *p("quality"), lo=1, hi=100, integer=True),
        only=_str_list(value.get("only"), *p("only")),
        skip=_str_list(value.get("skip"), *p("skip")),
        responsive=_post_preset(value.get("responsive", True), settings, *p("responsive")),
    )


def _post_preset(value, settings: Settings, what, path, line) -> Preset | None:
    """A document's `responsive:` option: a preset name, true (the site's preset) or false."""
    if settings.responsive is None or value is False or value is None:
        return None
    if value is True:
        return settings.responsive.get(settings.responsive.preset)
    preset = settings.responsive.get(value) if isinstance(value, str) else None
    if preset is None:
        names = dict(settings.responsive.presets)
        raise ConfigError(f"{what}: no responsive preset named {value!r} (presets: {', '.join(names)})."
                          + _hint(str(value), names), path, line)
    return preset


# --------------------------------------------------------------------------------------------
# YAML helpers


def mapping_key_lines(node: yaml.Node | None, first_line: int) -> dict[str, int]:
    """Top-level key -> 1-based file line, from a composed YAML mapping node."""
    if not isinstance(node, yaml.MappingNode):
        return {}
    return {str(k.value): first_line + k.start_mark.line for k, _ in node.value if isinstance(k, yaml.ScalarNode)}


# --------------------------------------------------------------------------------------------
# documents


@dataclass
class FrontMatter:
    """Where the YAML block of a document lies in its text (character offsets)."""

    yaml_start: int  # first character of the YAML text (after the opening '---' line)
    yaml_end: int  # one past its last character (the closing '---' line starts here)
    body_start: int  # first character after the closing line

    def yaml_text(self, text: str) -> str:
        return text[self.yaml_start:self.yaml_end]


def split_front_matter(text: str) -> FrontMatter | None:
    """Locate Jekyll front matter in `text` (BOM already removed); None if there is none."""
    m = _FRONT_MATTER_RE.match(text)
    if m is None:
        return None
    return FrontMatter(m.start(2), m.end(2), m.end(3))


@dataclass
class Document:
    """A file with front matter: a post, draft, collection document or page."""

    path: Path  # absolute
    rel: str  # posix path relative to the site root
    kind: str  # "posts", "drafts", "pages" or a collection label
    text: str  # whole file, BOM removed
    bom: bool
    front: FrontMatter
    data: dict  # the document's own front matter (not including defaults)

    @property
    def body(self) -> str:
        return self.text[self.front.body_start:]

    @property
    def body_line(self) -> int:
        """1-based file line on which the body starts."""
        return self.text.count("\n", 0, self.front.body_start) + 1

    @property
    def yaml_line(self) -> int:
        """1-based file line of the first line of YAML text."""
        return self.text.count("\n", 0, self.front.yaml_start) + 1

    @property
    def yaml_text(self) -> str:
        return self.front.yaml_text(self.text)

    @property
    def folder_rel(self) -> str:
        return posixpath_dirname(self.rel)

    def key_line(self, key: str) -> int | None:
        """The file line of top-level front-matter `key` (None if it is not in the file)."""
        try:
            node = yaml.compose(self.yaml_text, Loader=FastLoader)
        except yaml.YAMLError:
            return None
        return mapping_key_lines(node, self.yaml_line).get(key)

    def option_lines(self, key: str) -> dict[str, int]:
        """File lines of the keys inside top-level mapping `key` (e.g. algorotoscope's options)."""
        try:
            node = yaml.compose(self.yaml_text, Loader=FastLoader)
        except yaml.YAMLError:
            return {}
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                if isinstance(k, yaml.ScalarNode) and k.value == key:
                    return mapping_key_lines(v, self.yaml_line)
        return {}

    @property
    def is_markdown(self) -> bool:
        return Path(self.rel).suffix.lower() in MARKDOWN_SUFFIXES

    def encode(self, text: str) -> bytes:
        return (("\ufeff" + text) if self.bom else text).encode("utf-8")


MARKDOWN_SUFFIXES = frozenset({".md", ".markdown", ".mkdown", ".mkdn", ".mkd", ".mdown", ".mdwn", ".mdtxt", ".mdtext"})


def posixpath_dirname(rel: str) -> str:
    return rel.rsplit("/", 1)[0] if "/" in rel else ""


def read_document(path: Path, rel: str, kind: str, *, raw: bytes | None = None) -> Document | None:
    """Parse a file's front matter; None if it has none. Raises ConfigError naming file:line."""
    if raw is None:
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise ConfigError(f"cannot read: {exc.strerror}", path) from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ConfigError("not valid UTF-8 text", path, line) from exc
    bom = text.startswith("\ufeff")
    if bom:
        text = text[1:]
    front = split_front_matter(text)
    if front is None:
        return None
    doc = Document(path, rel, kind, text, bom, front, {})
    yaml_text = front.yaml_text(text)
    if yaml_text.strip():
        data = compose_checked(yaml_text, path, doc.yaml_line)[0]
        if isinstance(data, dict):
            doc.data = data
        elif data is not None:
            raise ConfigError("front matter must be a YAML mapping (key: value lines)", path, doc.yaml_line)
    return doc


# --------------------------------------------------------------------------------------------
# the site


_UNSET = object()


class SourceFile:
    """One file of the source tree as found by `Site.walk`: one stat, nothing read.

    The path object and the document kind are computed on first use: a no-op build looks at
    thousands of these and needs neither (plain strings keep the walk cheap).
    """

    __slots__ = ("rel", "_path", "st", "_kind", "is_link", "_site", "_drafts", "recorded")

    def __init__(self, rel: str, path: str | Path, st: os.stat_result | None, kind=_UNSET, is_link: bool = False,
                 *, site: Site | None = None, drafts: bool = False, recorded: list[int] | None = None):
        self.rel = rel
        self._path = path
        self.st = st
        self._kind = kind
        self.is_link = is_link
        self._site = site
        self._drafts = drafts
        self.recorded = recorded  # the stat signature from a build manifest, when not stat'ed now

    @property
    def path(self) -> Path:
        if not isinstance(self._path, Path):
            self._path = Path(self._path)
        return self._path

    @property
    def kind(self) -> str | None:
        """The document kind if the file may be a document ("posts", "pages", ...), else None."""
        if self._kind is _UNSET:
            self._kind = None if self.is_link or self._site is None else self._site.document_kind(self.rel, self._drafts)
        return self._kind

    @property
    def sig(self) -> list[int]:
        if self.recorded is not None:
            return self.recorded
        return [self.st.st_size, self.st.st_mtime_ns, self.st.st_ino]

    def __repr__(self) -> str:
        return f"SourceFile({self.rel!r})"


@dataclass
class Collection:
    label: str
    folder: str  # posix path relative to the site root, e.g. "_projects" or "coll/_projects"
    output: bool
    meta: dict = field(default_factory=dict)


class Site:
    """A Jekyll site on disk (read-only)."""

    def __init__(self, root: str | Path, *, output: str | Path | None = None, cache: str | Path | None = None):
        self.root = Path(root).resolve()
        if not self.root.is_dir():
            raise ConfigError("not a folder", root)
        self.warnings: list[str] = []
        self.config_path: Path | None = None
        self.config: dict = {}
        self._config_lines: dict[str, int] = {}
        self._section_lines: dict[str, int] = {}
        self._load_config()
        cfg = self.config
        self.baseurl = normalize_baseurl(cfg.get("baseurl"), self.config_path, self._config_lines.get("baseurl"))
        self.exclude = [str(x).strip("/") for x in _as_list(cfg.get("exclude"))]
        self.include = [str(x).strip("/") for x in _as_list(cfg.get("include"))]
        self.destination = (self.root / str(cfg.get("destination") or "_site")).resolve()
        self.collections_dir = str(cfg.get("collections_dir") or "").strip("/")
        self.collections = self._load_collections()
        self.render_with_liquid_default = True
        self.settings = parse_settings(cfg.get(FRONT_MATTER_KEY), self.root, self.config_path,
                                       lambda k: self._section_lines.get(k, self._config_lines.get(FRONT_MATTER_KEY)),
                                       self.warnings)
        if output is not None:
            self.settings = _replace(self.settings, output=Path(output).expanduser().resolve())
        if cache is not None:
            self.settings = _replace(self.settings, cache=Path(cache).expanduser().resolve())
        self._defaults = self._load_defaults()
        self._skip_strs: tuple[str, ...] | None = None
        self._check_output_locations()

    # -- configuration ----------------------------------------------------------------------

    def _load_config(self) -> None:
        for name in CONFIG_NAMES:
            path = self.root / name
            if path.is_file():
                self.config_path = path
                break
        else:
            return  # Jekyll builds a site without a config file; so do we
        try:
            text = self.config_path.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read: {exc}", self.config_path) from exc
        if self.config_path.suffix == ".toml":
            import tomllib

            try:
                data = tomllib.loads(text)
            except tomllib.TOMLDecodeError as exc:
                raise ConfigError(f"invalid TOML: {exc}", self.config_path) from exc
        else:
            data, node = compose_checked(text, self.config_path, 1) if text.strip() else ({}, None)
            self._config_lines = mapping_key_lines(node, 1)
            if isinstance(node, yaml.MappingNode):
                for k, v in node.value:
                    if getattr(k, "value", None) == FRONT_MATTER_KEY:
                        self._section_lines = mapping_key_lines(v, 1)
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ConfigError("the site configuration must be a YAML mapping", self.config_path, 1)
        self.config = data

    def _load_collections(self) -> dict[str, Collection]:
        raw = self.config.get("collections") or {}
        if isinstance(raw, list):  # Jekyll accepts a bare list of labels
            raw = {str(label): {} for label in raw}
        if not isinstance(raw, dict):
            raise ConfigError("'collections' must be a mapping or a list", self.config_path,
                              self._config_lines.get("collections"))
        prefix = self.collections_dir + "/" if self.collections_dir else ""
        out = {}
        for label, meta in raw.items():
            meta = meta if isinstance(meta, dict) else {}
            label = str(label)
            if label in ("posts", "drafts"):
                continue  # built in; handled by path
            out[label] = Collection(label, f"{prefix}_{label}", bool(meta.get("output", False)), meta)
        return out

    def _load_defaults(self) -> list[tuple[str, str | None, dict]]:
        out = []
        for entry in _as_list(self.config.get("defaults")):
            if not isinstance(entry, dict) or not isinstance(entry.get("values"), dict):
                continue
            scope = entry.get("scope") or {}
            if not isinstance(scope, dict):
                continue
            path = str(scope.get("path") or "").strip("/")
            out.append((path, scope.get("type"), entry["values"]))
        # Jekyll applies less specific scopes first so that more specific ones win.
        out.sort(key=lambda s: (len([p for p in s[0].split("/") if p]), s[1] is not None))
        return out

    def _check_output_locations(self) -> None:
        """The output and cache may live inside the site only in a folder of blogroto's own that
        Jekyll never reads: a top-level '_' or '.' folder that is not author content (not _posts,
        _drafts, _layouts, _includes, _data, _sass, _plugins, a collection, a filter or template
        folder, `_site`, `.git`, an `include:`d folder). Anywhere else the build (or gc) would write
        into, and delete from, the author's files, or Jekyll would publish the output twice."""
        s = self.settings
        where = self.config_path or self.root
        for what, path in (("output", s.output), ("cache", s.cache)):
            if path == self.root or _is_within(self.root, path):
                raise ConfigError(f"the {what} folder {path} must not contain the site itself", where)
        if s.output == s.cache or _is_within(s.cache, s.output) or _is_within(s.output, s.cache):
            # the build deletes output files it did not write: the cache must not be among them
            raise ConfigError(f"the output folder {s.output} and the cache folder {s.cache} must be separate", where)
        for what, path in (("output", s.output), ("cache", s.cache)):
            if not _is_within(path, self.root):
                continue
            rel = path.relative_to(self.root).as_posix()
            reason = self._author_content(rel)
            if reason:
                raise ConfigError(f"the {what} folder {rel!r} is inside the site's own content ({reason}); "
                                  f"blogroto would write into and delete from the author's files. Use a folder "
                                  f"outside the site, or a folder of its own such as {DEFAULT_OUTPUT!r} / "
                                  f"{DEFAULT_CACHE!r}", where, self._section_lines.get(what))

    def _author_content(self, rel: str) -> str | None:
        """Why the site folder `rel` holds (or is) the author's content; None when it is a folder
        blogroto may own (a top-level '_'/'.' folder with no role in Jekyll or blogroto)."""
        parts = rel.split("/")
        top = parts[0]
        if not top.startswith(("_", ".")):
            return "Jekyll publishes it"
        if top in self.include or rel in self.include:
            return "it is in 'include:'"
        reserved = {"_posts", "_drafts", "_layouts", "_includes", "_data", "_sass", "_plugins", "_config.yml",
                    SITE_TEMPLATE_DIR, ".git", ".github", ".hg", ".svn", ".jekyll-cache", ".sass-cache",
                    ".bundle", "_vendor", "vendor", "node_modules"}
        reserved.update(f"_{label}" for label in self.collections)
        if self.collections_dir:
            reserved.add(self.collections_dir.split("/")[0])
        for d in self.settings.filter_dirs:
            d = Path(d)
            if _is_within(d, self.root):
                reserved.add(d.relative_to(self.root).parts[0])
        if _is_within(self.destination, self.root) or self.destination == self.root:
            reserved.add(self.destination.relative_to(self.root).parts[0] if self.destination != self.root else "")
        if top in reserved:
            return f"{top!r} is a Jekyll or blogroto folder"
        if "_posts" in parts or "_drafts" in parts:
            return "it is a posts folder"
        return None

    def hidden_from_jekyll(self, rel: str) -> bool:
        """Whether Jekyll's reader skips `rel` (a '_'/'.'-prefixed component or an excluded path)."""
        parts = rel.split("/")
        for i, part in enumerate(parts):
            prefix = "/".join(parts[: i + 1])
            if prefix in self.include or part in self.include:
                continue
            if part.startswith(("_", ".", "#")) or part.endswith("~"):
                return True
            if self._excluded(prefix):
                return True
        return False

    def _excluded(self, rel: str) -> bool:
        return any(rel == e or rel.startswith(e + "/") or fnmatch.fnmatchcase(rel, e) for e in self.exclude if e)

    # -- front matter defaults --------------------------------------------------------------

    def defaults_for(self, rel: str, kind: str) -> dict:
        """Jekyll `defaults:` values that apply to document `rel` of type `kind`."""
        merged: dict = {}
        types = {kind, "posts"} if kind == "drafts" else {kind}
        for path, typ, values in self._defaults:
            if typ is not None and str(typ) not in types:
                continue
            if path and not (rel == path or rel.startswith(path + "/")
                             or ("*" in path and any(fnmatch.fnmatchcase(p, path) for p in _prefixes(rel)))):
                continue
            merged = _deep_merge(merged, values)
        return merged

    def has_defaults_for(self, key: str) -> bool:
        return any(key in values for _, _, values in self._defaults)

    # -- walking ----------------------------------------------------------------------------

    def skipped_dirs(self) -> set[Path]:
        """Absolute folders never walked or copied: the output, the cache, `_site`, and the default
        output and cache folders (`_blogroto/`, `.blogroto-cache/`) even when `--out`/`--cache` point
        elsewhere: they hold an earlier build, which must not be copied into the new output."""
        s = self.settings
        default_out = self.root / DEFAULT_OUTPUT.split("/")[0]
        return {s.output, s.cache, self.destination, default_out, self.root / DEFAULT_CACHE}

    def walk(self, include_drafts: bool = False) -> Iterator[SourceFile]:
        """Every file of the source tree that belongs in the output, with its stat and kind.

        Symlinks follow Jekyll's rule: one that resolves inside the site is published as what it
        points to (a file's bytes, a folder's files: the output holds no symlinks at all); one that
        points outside the site (or into the output, the cache, `_site`, `.git`), dangles or loops
        is not published, with a warning.
        """
        skip = {str(p) for p in self.skipped_dirs()}
        root = str(self.root)
        stack = [(root, "", (root,))]
        while stack:
            folder, rel_folder, chain = stack.pop()
            try:
                entries = list(os.scandir(folder))
            except OSError as exc:
                self.warnings.append(f"{folder}: cannot list folder: {exc.strerror}")
                continue
            for entry in entries:
                name = entry.name
                if name in NEVER_COPIED or name.startswith(".blogroto-tmp-"):
                    continue
                rel = f"{rel_folder}/{name}" if rel_folder else name
                try:
                    if entry.is_symlink():
                        real = self.link_target(entry.path)
                        if real is None:
                            self.warnings.append(f"{entry.path}: not published: a symlink to "
                                                 f"{os.readlink(entry.path)}, which is outside the site, missing "
                                                 f"or a loop (Jekyll skips it too)")
                            continue
                        st = os.stat(real)
                        if stat_mod.S_ISDIR(st.st_mode):
                            if any(c == real or c.startswith(real + os.sep) for c in chain):
                                self.warnings.append(f"{entry.path}: not published: a symlink to a folder "
                                                     f"that contains it (a loop)")
                                continue
                            stack.append((entry.path, rel, (*chain, real)))
                            continue
                    elif entry.is_dir(follow_symlinks=False):
                        if entry.path not in skip:
                            stack.append((entry.path, rel, (*chain, os.path.join(chain[-1], name))))
                        continue
                    else:
                        st = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                if stat_mod.S_ISREG(st.st_mode):
                    yield SourceFile(rel, entry.path, st, site=self, drafts=include_drafts)

    def link_target(self, path: str | Path) -> str | None:
        """Where a symlink in the site resolves, when Jekyll would publish it: inside the site,
        not in a folder never copied (output, cache, `_site`, `.git`, ...) and existing; else None."""
        real = os.path.realpath(path)
        root = str(self.root)
        if not real.startswith(root + os.sep):
            return None
        if self._skip_strs is None:
            self._skip_strs = tuple(str(d) for d in self.skipped_dirs())
        if any(real == d or real.startswith(d + os.sep) for d in self._skip_strs):
            return None
        if any(part in NEVER_COPIED for part in real[len(root) + 1:].split(os.sep)):
            return None
        try:
            os.stat(real)
        except OSError:
            return None
        return real

    def document_kind(self, rel: str, include_drafts: bool = False) -> str | None:
        """The kind of document `rel` would be if it has front matter; None if Jekyll never renders it."""
        if os.path.splitext(rel)[1].lower() in BINARY_SUFFIXES:
            return None
        parts = rel.split("/")
        cdir = self.collections_dir.split("/") if self.collections_dir else []
        inner = parts[len(cdir):] if parts[: len(cdir)] == cdir else None
        if inner is not None and len(inner) >= 2:
            top = inner[0]
            if top == "_drafts":
                return "drafts" if include_drafts else None
            if top.startswith("_") and top[1:] in self.collections:
                return top[1:]
        # posts: _posts/ at the top or in any ordinary folder (category/_posts/...)
        if "_posts" in parts[:-1]:
            i = parts.index("_posts")
            if i == 0 or not self.hidden_from_jekyll("/".join(parts[:i])):
                return "posts" if _POST_NAME_RE.match(parts[-1]) else None
            return None
        if self.hidden_from_jekyll(rel):
            return None
        return "pages"

    # -- references -------------------------------------------------------------------------

    def resolve_local(self, ref: str, doc_folder: str, *, decoded: bool = False) -> tuple[str | None, str]:
        """Map a URL path written in a document to a site file.

        Returns (site-relative posix path or None, reason). Paths starting with '/' are site-root
        paths (the baseurl is stripped when the path starts with it); other paths are tried
        relative to the document's folder, then to the site root. A path that escapes the site
        (`..`, an absolute filesystem path, a symlink that resolves outside) gives None and the
        reason "outside"; a missing file gives None and "missing".
        """
        path = ref if decoded else urllib.parse.unquote(ref.split("#", 1)[0].split("?", 1)[0])
        if not path or "\x00" in path or "\\" in path:
            return None, "outside" if "\\" in path else "missing"
        candidates = []
        if path.startswith("/"):
            if self.baseurl and (path == self.baseurl or path.startswith(self.baseurl + "/")):
                candidates.append(path[len(self.baseurl):].lstrip("/"))
            candidates.append(path.lstrip("/"))
        else:
            if doc_folder:
                candidates.append(f"{doc_folder}/{path}")
            candidates.append(path)
        reason = "missing"
        root = str(self.root)
        if self._skip_strs is None:
            self._skip_strs = tuple(str(d) for d in self.skipped_dirs())
        for cand in candidates:
            norm = os.path.normpath(cand)
            if norm == ".." or norm.startswith("../") or os.path.isabs(norm):
                reason = "outside"
                continue
            full = os.path.join(root, norm)
            if not os.path.isfile(full):
                continue
            # Strings, not Paths: this runs for every image of every changed post.
            real = os.path.realpath(full)
            if not real.startswith(root + os.sep) or any(real == d or real.startswith(d + os.sep)
                                                         for d in self._skip_strs):
                reason = "outside"
                continue
            return real[len(root) + 1:].replace(os.sep, "/"), "ok"
        if reason == "missing" and path.startswith("/") and os.path.isfile(path):
            reason = "outside"  # an absolute filesystem path: never read files outside the site
        return None, reason


def normalize_baseurl(value, path=None, line=None) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ConfigError(f"'baseurl' must be a string, not {value!r}", path, line)
    value = value.strip().rstrip("/")
    if value and not value.startswith("/"):
        value = "/" + value
    return value


def _replace(settings: Settings, **changes) -> Settings:
    from dataclasses import replace

    return replace(settings, **changes)


def _as_list(value) -> list:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _prefixes(rel: str) -> list[str]:
    parts = rel.split("/")
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


def _deep_merge(a: dict, b: dict) -> dict:
    out = dict(a)
    for k, v in b.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _is_within(path: Path, folder: Path) -> bool:
    try:
        path.relative_to(folder)
    except ValueError:
        return False
    return path != folder
