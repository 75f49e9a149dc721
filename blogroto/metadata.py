"""Machine-readable credits: schema.org JSON-LD for pages, XMP embedded in the stylized files.

A person reads the credit block under a post; search engines, image search and photo tools read
these instead. Both say the same things as the visible credit: the picture is a photo that was
algorithmically restyled (IPTC digital source type `compositeWithTrainedAlgorithmicMedia`) after
a named artwork, by whom, under which licence.

Choices:

* The stylized image keeps the photo's own authorship: the XMP never sets `dc:creator` (that
  would name the *artwork's* creator as the photo's author, and contradict the EXIF `Artist` the
  image keeps). The artwork is described where IPTC puts depicted or source works,
  `Iptc4xmpExt:ArtworkOrObject`, and in `dc:source`, `photoshop:Credit` and `dc:rights`.
* The XMP depends only on the filter's metadata and the original file name, never on the time or
  the blogroto version, so the same inputs always give the same bytes (the output cache is
  content-addressed; the build puts a hash of this XMP in the cache key).
* JSON-LD is escaped so that neither an HTML parser (`</script>`) nor Liquid (`{{`, `{%`) can
  read anything into it: the credit block is pasted into documents Jekyll renders.

No heavy imports here: the build calls this for every stylized image it plans.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any
from xml.sax.saxutils import escape, quoteattr

if TYPE_CHECKING:  # pragma: no cover
    from blogroto.filters import Filter
    from blogroto.site import Site

DIGITAL_SOURCE_TYPE = "http://cv.iptc.org/newscodes/digitalsourcetype/compositeWithTrainedAlgorithmicMedia"
BLOGROTO_NS = "urn:blogroto:xmp:1.0/"
SCHEMA_CONTEXT = "https://schema.org"

_NS = {
    "dc": "http://purl.org/dc/elements/1.1/",
    "photoshop": "http://ns.adobe.com/photoshop/1.0/",
    "Iptc4xmpExt": "http://iptc.org/std/Iptc4xmpExt/2008-02-29/",
    "xmp": "http://ns.adobe.com/xap/1.0/",
    "blogroto": BLOGROTO_NS,
}
# XML 1.0 cannot hold most control characters, not even escaped: drop them from metadata text.
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _record(flt_or_record) -> dict:
    if isinstance(flt_or_record, dict):
        return flt_or_record
    from blogroto.credits import credit_record

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


# --------------------------------------------------------------------------------------------
# XMP


def _t(value: Any) -> str:
    return escape(_XML_INVALID.sub("", str(value)))


def _alt(prop: str, text: str) -> str:
    return f'<{prop}><rdf:Alt><rdf:li xml:lang="x-default">{_t(text)}</rdf:li></rdf:Alt></{prop}>'


def xmp_for(flt: Filter | dict, original_name: str | None = None) -> bytes:
    """An XMP packet crediting the artwork behind `flt` (a Filter or its credit record)."""
    r = _record(flt)
    name = r.get("display_name") or r.get("filter")
    desc = f"Photo {original_name}" if original_name else "Photo"
    desc += f" restyled by blogroto's {name} filter, a neural network trained on {artwork_line(r)}."
    rights = f"Style learned from {artwork_line(r)}"
    if r.get("licence_url"):
        rights += f", {r['licence_url']}"
    props = [
        _alt("dc:description", desc),
        _alt("dc:rights", rights + "."),
        f"<photoshop:Credit>{_t(credit_text(r))}</photoshop:Credit>",
        f"<Iptc4xmpExt:DigitalSourceType>{DIGITAL_SOURCE_TYPE}</Iptc4xmpExt:DigitalSourceType>",
        "<xmp:CreatorTool>blogroto</xmp:CreatorTool>",
        f"<blogroto:filter>{_t(r.get('filter') or '')}</blogroto:filter>",
    ]
    if r.get("url"):
        props.append(f"<dc:source>{_t(r['url'])}</dc:source>")
    elif r.get("title"):
        props.append(f"<dc:source>{_t(r['title'])}</dc:source>")
    if original_name:
        props.append(f"<blogroto:original>{_t(original_name)}</blogroto:original>")
    # The source work, as IPTC describes works shown in or underlying a picture.
    art = []
    if r.get("title"):
        art.append(_alt("Iptc4xmpExt:AOTitle", r["title"]))
    if r.get("creator"):
        art.append(f"<Iptc4xmpExt:AOCreator><rdf:Seq><rdf:li>{_t(r['creator'])}</rdf:li></rdf:Seq></Iptc4xmpExt:AOCreator>")
    if r.get("year"):
        art.append(f"<Iptc4xmpExt:AODateCreated>{_t(r['year'])}</Iptc4xmpExt:AODateCreated>")
    if r.get("licence"):
        art.append(f"<Iptc4xmpExt:AOCopyrightNotice>{_t(r['licence'])}</Iptc4xmpExt:AOCopyrightNotice>")
    if r.get("url"):
        art.append(f"<Iptc4xmpExt:AOSourceInvURL>{_t(r['url'])}</Iptc4xmpExt:AOSourceInvURL>")
    if art:
        props.append('<Iptc4xmpExt:ArtworkOrObject><rdf:Bag><rdf:li rdf:parseType="Resource">'
                     + "".join(art) + "</rdf:li></rdf:Bag></Iptc4xmpExt:ArtworkOrObject>")
    ns = " ".join(f"xmlns:{p}={quoteattr(u)}" for p, u in _NS.items())
    xml = ('<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
           '<x:xmpmeta xmlns:x="adobe:ns:meta/">\n'
           '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">\n'
           f'<rdf:Description rdf:about="" {ns}>\n' + "\n".join(props) + "\n</rdf:Description>\n"
           "</rdf:RDF>\n</x:xmpmeta>\n<?xpacket end=\"w\"?>")
    return xml.encode("utf-8")


def read_xmp(xmp: bytes | str) -> dict:
    """The blogroto-relevant fields of an XMP packet (for tests and `blogroto` tooling)."""
    import xml.etree.ElementTree as ET

    text = xmp.decode("utf-8") if isinstance(xmp, bytes) else xmp
    root = ET.fromstring(text[text.index("<x:xmpmeta"): text.rindex("</x:xmpmeta>") + len("</x:xmpmeta>")])
    rdf = "{http://www.w3.org/1999/02/22-rdf-syntax-ns#}"
    out: dict[str, Any] = {}
    for desc in root.iter(f"{rdf}Description"):
        for prop in desc:
            uri, _, local = prop.tag[1:].partition("}")
            prefix = next((p for p, u in _NS.items() if u == uri), uri)
            if local == "ArtworkOrObject":
                continue  # a structure: its fields are read below
            values = [li.text or "" for li in prop.iter(f"{rdf}li") if len(li) == 0]
            out[f"{prefix}:{local}"] = values[0] if len(values) == 1 else (values or (prop.text or ""))
    for li in root.iter(f"{rdf}li"):
        for prop in li:
            uri, _, local = prop.tag[1:].partition("}")
            if uri == _NS["Iptc4xmpExt"]:
                vals = [x.text or "" for x in prop.iter(f"{rdf}li")]
                out[f"Iptc4xmpExt:{local}"] = vals[0] if vals else (prop.text or "")
    return out


# --------------------------------------------------------------------------------------------
# JSON-LD


def site_url(site: Site | None, path: str) -> str:
    """`path` (a site path, '/assets/x.jpg') as the published URL: url + baseurl + path.

    Without `url:` in _config.yml the result is root-relative, which is the best there is."""
    from blogroto.credits import safe_url

    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", path):
        return safe_url(path) or ""
    base = ""
    if site is not None:
        base = (safe_url(site.config.get("url")) or "").rstrip("/") + (site.baseurl or "")
    return safe_url(base + "/" + path.lstrip("/")) or ""


def _licence_url(value: Any) -> str | None:
    from blogroto.credits import safe_url

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
    from blogroto.credits import safe_url

    data = data or {}
    licence = _licence_url(data.get("license")) or _licence_url(site.config.get("license") if site else None)
    seen: set[str] = set()
    out = []
    for stylized, local, remote in images:
        if stylized in seen:
            continue
        seen.add(stylized)
        # Every URL through credits.safe_url: a remote original's `user:password@` never gets published.
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
