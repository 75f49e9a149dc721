"""XMP embedded in the stylized files: the credit for photo tools and image search.

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

No heavy imports here: the build calls this for every stylized image it plans.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any
from xml.sax.saxutils import escape, quoteattr

from blogroto.credits.record import artwork_line, as_record, credit_text

if TYPE_CHECKING:  # pragma: no cover
    from blogroto.filters import Filter

DIGITAL_SOURCE_TYPE = "http://cv.iptc.org/newscodes/digitalsourcetype/compositeWithTrainedAlgorithmicMedia"
BLOGROTO_NS = "urn:blogroto:xmp:1.0/"

_NS = {
    "dc": "http://purl.org/dc/elements/1.1/",
    "photoshop": "http://ns.adobe.com/photoshop/1.0/",
    "Iptc4xmpExt": "http://iptc.org/std/Iptc4xmpExt/2008-02-29/",
    "xmp": "http://ns.adobe.com/xap/1.0/",
    "blogroto": BLOGROTO_NS,
}
# XML 1.0 cannot hold most control characters, not even escaped: drop them from metadata text.
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")

def _t(value: Any) -> str:
    return escape(_XML_INVALID.sub("", str(value)))


def _alt(prop: str, text: str) -> str:
    return f'<{prop}><rdf:Alt><rdf:li xml:lang="x-default">{_t(text)}</rdf:li></rdf:Alt></{prop}>'


def xmp_for(flt: Filter | dict, original_name: str | None = None) -> bytes:
    """An XMP packet crediting the artwork behind `flt` (a Filter or its credit record)."""
    r = as_record(flt)
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
