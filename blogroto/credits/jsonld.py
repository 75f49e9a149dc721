"""schema.org JSON-LD for pages: the credit for search engines, in the same words as the block.

JSON-LD is escaped so that neither an HTML parser (`</script>`) nor Liquid (`{{`, `{%`) can read
anything into it: the credit block is pasted into documents Jekyll renders.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from blogroto.credits.record import credit_text, safe_url
from blogroto.credits.xmp import DIGITAL_SOURCE_TYPE

if TYPE_CHECKING:  # pragma: no cover
    from blogroto.site import Site

SCHEMA_CONTEXT = "https://schema.org"


def site_url(site: Site | None, path: str) -> str:
    """`path` (a site path, '/assets/x.jpg') as the published URL: url + baseurl + path.

    Without `url:` in _config.yml the result is root-relative, which is the best there is."""
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", path):
        return safe_url(path) or ""
    base = ""
    if site is not None:
        base = (safe_url(site.config.get("url")) or "").rstrip("/") + (site.baseurl or "")
    return safe_url(base + "/" + path.lstrip("/")) or ""


def _licence_url(value: Any) -> str | None:
    if isinstance(value, str) and re.match(r"^https?://", value.strip(), re.I):
        return safe_url(value)
    return None


def image_object(record: dict, *, content_url: str, original_url: str | None = None,
                 original_name: str | None = None, license_url: str | None = None) -> dict:
    """A schema.org ImageObject for one stylized image (a VideoObject for a stylized video)."""
    artwork: dict[str, Any] = {"@type": "CreativeWork", "name": record.get("title")}
    if record.get("creator"):
        artwork["creator"] = record["creator"]
    if record.get("year"):
        artwork["dateCreated"] = str(record["year"])
    if record.get("url"):
        artwork["url"] = record["url"]
    licence = record.get("licence_url") or record.get("licence")
    if licence:
        artwork["license"] = licence
    based_on: list[dict] = []
    if original_url:
        photo = {"@type": _media_type(original_url), "contentUrl": original_url}
        if original_name:
            photo["name"] = original_name
        based_on.append(photo)
    based_on.append(artwork)
    obj: dict[str, Any] = {
        "@context": SCHEMA_CONTEXT,
        "@type": _media_type(content_url),
        "contentUrl": content_url,
        "creditText": credit_text(record),
        "digitalSourceType": DIGITAL_SOURCE_TYPE,
        "isBasedOn": based_on,
    }
    if license_url:
        obj["license"] = license_url
    return obj


def _media_type(url: str) -> str:
    path = urllib.parse.urlsplit(url).path.lower()
    return "VideoObject" if path.endswith(VIDEO_SUFFIXES) else "ImageObject"


VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".webm")


def document_jsonld(site: Site | None, record: dict, images: Iterable[tuple[str, str | None, str | None]],
                    data: dict | None = None) -> list[dict]:
    """ImageObjects for a document's stylized images.

    `images`: (output site path of the stylized file, site path of the original or None, remote
    URL of the original or None). The image `license` is the document's `license:` front matter,
    else the site's (an http(s) URL): it is the author's licence for their photo, which blogroto
    cannot know otherwise.
    """
    data = data or {}
    licence = _licence_url(data.get("license")) or _licence_url(site.config.get("license") if site else None)
    seen: set[str] = set()
    out = []
    for stylized, local, remote in images:
        if stylized in seen:
            continue
        seen.add(stylized)
        # Every URL through record.safe_url: a remote original's `user:password@` never gets published.
        original = safe_url(remote) if remote else (site_url(site, local) if local else None)
        name = (local or urllib.parse.urlsplit(original or "").path or "").rsplit("/", 1)[-1] or None
        out.append(image_object(record, content_url=site_url(site, stylized), original_url=original,
                                original_name=name, license_url=licence))
    return out


def jsonld_script(objects: list[dict] | dict) -> str:
    """`<script type="application/ld+json">` holding `objects`, safe inside HTML, Markdown and Liquid."""
    if isinstance(objects, list) and len(objects) == 1:
        objects = objects[0]
    text = json.dumps(objects, ensure_ascii=False, separators=(",", ":"))
    # '<', '>' and '&' only occur inside JSON strings, so \u escapes keep the same data while an
    # HTML parser can no longer see '</script>' or '<!--'. '{{' / '{%' likewise only occur inside
    # strings (object keys are strings), so escaping the second character hides them from Liquid.
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    text = text.replace("{{", "{\\u007b").replace("{%", "{\\u0025")
    return f'<script type="application/ld+json">{text}</script>'
