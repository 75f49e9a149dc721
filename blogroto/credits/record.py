"""One credit record: what every published credit of a filter's artwork is made from.

`credit_record` turns a filter's metadata (untrusted: a filter folder is data) into plain values,
with every URL through `safe_url`; the rendered block (render.py), the XMP in stylized files
(xmp.py) and the page's JSON-LD (jsonld.py) all start from it.
"""

from __future__ import annotations

import urllib.parse
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from blogroto.filters import Filter

RECORD_KEYS = ("filter", "display_name", "title", "creator", "year", "url", "licence", "licence_url", "credit")


def safe_url(value: Any) -> str | None:
    """A URL as blogroto may publish it, or None: the one function every published URL goes through
    (credit blocks, captions, front-matter credits, JSON-LD, XMP, catalog pages).

    Only http(s) and scheme-less URLs become links: a filter folder is data, and a `javascript:`
    URL in its metadata must not turn into script on the author's blog. Credentials
    (`user:password@`) are stripped: they may be fine in a fetch, never on a public page."""
    if not value:
        return None
    text = str(value).strip()
    try:
        parts = urllib.parse.urlsplit(text)
    except ValueError:  # e.g. an unclosed IPv6 bracket
        return None
    if parts.scheme.lower() not in ("http", "https", ""):
        return None
    if "@" in parts.netloc:
        text = parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()
    return text or None


def credit_record(flt: Filter) -> dict:
    """The credit of one filter as plain data (the `algorotoscope_credits:` list items)."""
    src = flt.source
    year = src.get("year")
    return {
        "filter": flt.slug,
        "display_name": flt.display_name,
        "title": _text(src.get("title")),
        "creator": _text(src.get("creator")),
        "year": year if isinstance(year, int) and not isinstance(year, bool) else _text(year),
        "url": safe_url(src.get("url")),
        "licence": _text(src.get("licence")),
        "licence_url": safe_url(src.get("licence_url")),
        "credit": _text(src.get("credit")),
    }


def _text(value) -> str | None:
    return None if value is None or value == "" else str(value)


def as_record(flt_or_record) -> dict:
    if isinstance(flt_or_record, dict):
        return flt_or_record
    return credit_record(flt_or_record)


def artwork_line(record: dict) -> str:
    """“Title” by Creator, 2026 (CC0-1.0): the artwork in one line (or the filter's own credit text)."""
    if record.get("credit"):
        return str(record["credit"])
    line = f"“{record.get('title') or 'untitled'}”"
    if record.get("creator"):
        line += f" by {record['creator']}"
    if record.get("year"):
        line += f", {record['year']}"
    if record.get("licence"):
        line += f" ({record['licence']})"
    return line


def credit_text(record: dict) -> str:
    """The credit of a stylized image, for `creditText` and `photoshop:Credit`."""
    name = record.get("display_name") or record.get("filter") or "a neural"
    return f"Restyled with the {name} filter, learned from {artwork_line(record)}"
