"""The site's settings: the `algorotoscope:` section of `_config.yml` and the per-post options,
as a table of known keys checked with path:line errors (unknown keys get a did-you-mean)."""

from __future__ import annotations

import difflib
import fnmatch
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from blogroto.errors import ConfigError

CONFIG_NAMES = ("_config.yml", "_config.yaml", "_config.toml")
DEFAULT_IMAGE_KEYS = ("image", "feature", "images")
DEFAULT_OUTPUT = "_blogroto/site"
DEFAULT_CACHE = ".blogroto-cache"
DEFAULT_FILTER_DIRS = ("_filters",)
SITE_TEMPLATE_DIR = "_algorotoscope"
FRONT_MATTER_KEY = "algorotoscope"
CREDITS_KEY = "algorotoscope_credits"
IMAGES_KEY = "algorotoscope_images"  # front-matter images' sizes and candidates, for layouts (responsive)

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


