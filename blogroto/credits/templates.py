"""The one sandboxed template environment for everything blogroto renders into a Jekyll site
(credit blocks, figure captions, catalog pages, the preview's layout), its template folders, and
the Liquid-inert encoding of every value printed through it.

Jinja2 is imported only when something is rendered, so a no-op build does not pay for it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from blogroto.errors import ConfigError
from blogroto.resources import builtin_dir
from blogroto.site.config import SITE_TEMPLATE_DIR

# Built-in templates: inside the package when installed from a wheel, else the repository's templates/.
BUILTIN_TEMPLATE_DIRS = [builtin_dir("templates")]


# Liquid's delimiters are `{{` and `{%` (with any `-` trimming and whitespace): with every `{`,
# `}` and `%` of a text written as an HTML character reference, no variant of them can remain,
# whatever the text holds ('{%endraw%}' included), and browsers still show the characters.
_LIQUID_INERT = str.maketrans({"{": "&#123;", "}": "&#125;", "%": "&#37;"})


def liquid_inert(text: str) -> str:
    """`text` with `{`, `}` and `%` as HTML character references: inert to Liquid by construction.

    The one mechanism for text from filter folders and documents that blogroto writes into files
    Jekyll renders: credit blocks, figure captions and catalog pages (HTML, via `inert_html`)
    and front-matter strings (credits, catalog titles)."""
    return str(text).translate(_LIQUID_INERT)


def inert_html(value: Any):
    """Jinja2 `finalize` for every template blogroto renders into a Jekyll site: each printed
    value HTML-escaped (no markup) and Liquid-inert (see liquid_inert). Markup is the template's
    own (or an already inert value) and is left alone."""
    from markupsafe import Markup, escape

    if value is None:
        return ""
    if isinstance(value, Markup):
        return value
    return Markup(liquid_inert(str(escape(value))))


def template_dirs(site_root: str | Path | None) -> tuple[Path | None, list[Path]]:
    """(the site's override folder, the built-in template folders)."""
    site_dir = Path(site_root) / SITE_TEMPLATE_DIR if site_root is not None else None
    return site_dir, list(BUILTIN_TEMPLATE_DIRS)


def template_files(site_root: str | Path | None, subdir: str) -> list[Path]:
    """Every template file a page of `subdir` may use (overrides, includes, the built-in ones)."""
    site_dir, builtin = template_dirs(site_root)
    out = []
    for d in ([site_dir] if site_dir else []) + builtin:
        folder = d / subdir
        if folder.is_dir():
            out.extend(sorted(p for p in folder.rglob("*") if p.is_file()))
    return out


def sandboxed_environment(site_dir: Path | None):
    """Jinja2, sandboxed (templates can come with themes) and autoescaping (their text comes from
    filter folders and posts), with `inert_html` as finalize: every printed value is escaped and
    Liquid-inert, since the page goes through Jekyll. Site templates first; a site template may
    `{% extends "builtin/credit.html.j2" %}` to change one block only."""
    import jinja2
    from jinja2.sandbox import SandboxedEnvironment

    site = [jinja2.FileSystemLoader(str(site_dir))] if site_dir is not None and site_dir.is_dir() else []
    builtin = jinja2.FileSystemLoader([str(d) for d in BUILTIN_TEMPLATE_DIRS])
    loader = jinja2.ChoiceLoader([*site, jinja2.PrefixLoader({"builtin": builtin}), builtin])
    env = SandboxedEnvironment(loader=loader, autoescape=True, trim_blocks=True, lstrip_blocks=True,
                               finalize=inert_html, undefined=jinja2.ChainableUndefined)
    env.filters["thousands"] = lambda n: f"{int(n):,}" if isinstance(n, (int, float)) else n
    return env


def render_template(env, name: str, **context) -> str:
    """Template `name` rendered; any template error as one message naming the file and line."""
    import jinja2

    try:
        return env.get_template(name).render(**context)
    except jinja2.TemplateSyntaxError as exc:
        raise ConfigError(f"template error: {exc.message}", exc.filename or name, exc.lineno) from exc
    except jinja2.TemplateNotFound as exc:
        raise ConfigError(f"template {exc.name!r} not found (blogroto is not installed completely?)", name) from exc
    except jinja2.TemplateError as exc:
        raise ConfigError(f"template error: {exc}", name, getattr(exc, "lineno", None)) from exc
