"""Responsive output: every stylized still in several widths and formats, referenced the way image
plugins do it (jekyll_picture_tag's presets, eleventy-img): `srcset`/`sizes`, a `<picture>` with
one `<source type>` per extra format, `width`/`height` (no layout shift), `loading="lazy"` below the
document's first image, `decoding="async"`; and one Open Graph sized card for the `image:` key.

An image is stylized once, at the document's `max_size`; every smaller width and every other format
is that file resized and re-encoded (cheap next to stylizing), cached by content hash like it.
Markdown images become the equivalent HTML in the output only; the author's files never change.
"""

from __future__ import annotations

import html
import io
import re
from dataclasses import dataclass
from pathlib import Path

from blogroto.errors import ImageError
from blogroto.site.config import Preset

MIME = {"webp": "image/webp", "avif": "image/avif", "jpeg": "image/jpeg", "png": "image/png"}
EXTENSION = {"webp": "webp", "avif": "avif", "jpeg": "jpg", "png": "png"}
# An author keeps one image as a single file with the class (kramdown IAL or HTML) or attribute.
OPT_OUT_CLASS = "no-srcset"
OPT_OUT_ATTR = "data-srcset"
CARD_QUALITY = 85


@dataclass(frozen=True)
class Variant:
    """One file of a responsive set: the stylized image at `width` in `fmt`."""

    key: str  # cache key (the stylized file's own key for the full-size file in its own format)
    name: str  # file name in the output's image folder
    fmt: str
    width: int
    height: int
    quality: int


@dataclass(frozen=True)
class ImageSet:
    """Everything a rewritten reference needs: the candidates per format, fallback last."""

    width: int
    height: int
    by_format: tuple[tuple[str, tuple[Variant, ...]], ...]
    sizes: str
    lazy: bool

    @property
    def files(self) -> list[Variant]:
        return [v for _fmt, vs in self.by_format for v in vs]


def plan_set(*, key: str, name: str, fmt: str, size: tuple[int, int], alpha: bool, preset: Preset,
             quality: int, cache_key, short_hash: int) -> ImageSet:
    """The files a stylized image (`name`, `fmt`, `size`, cache `key`) is published as under
    `preset`: every preset width below its own width, and its own width (never upscaled), in every
    format the preset names ('original' = `fmt`; JPEG is skipped where there is transparency)."""
    width, height = size
    widths = [w for w in preset.widths if w < width] + [width]
    base, _dot, _ext = name.rpartition(".")
    by_format = []
    for wanted in preset.formats:
        f = fmt if wanted == "original" else wanted
        if f == "jpeg" and alpha or any(f == g for g, _ in by_format):
            continue
        q = quality if f == fmt else preset.quality_for(f, quality)
        variants = []
        for w in widths:
            h = max(1, round(height * w / width))
            if f == fmt and w == width:
                variants.append(Variant(key, name, f, w, h, q))  # the stylized file itself
                continue
            vkey = cache_key(variant_of=key, width=w, format=f, quality=q)
            # named like a stylized file (…-<short key>.<ext>), so `blogroto gc` knows it for ours
            variants.append(Variant(vkey, f"{base}-{w}w-{vkey[:short_hash]}.{EXTENSION[f]}", f, w, h, q))
        by_format.append((f, tuple(variants)))
    if not by_format:  # e.g. formats: [jpeg] for a transparent PNG: keep its own file
        by_format.append((fmt, (Variant(key, name, fmt, width, height, quality),)))
    return ImageSet(width, height, tuple(by_format), preset.sizes, preset.lazy)


def single_file(key: str, name: str, ext: str, size: tuple[int, int], preset: Preset) -> ImageSet:
    """An image published as its one file (an animation): its size and loading attributes only."""
    variant = Variant(key, name, ext, size[0], size[1], 0)
    return ImageSet(size[0], size[1], ((ext, (variant,)),), preset.sizes, preset.lazy)


def card_variant(*, key: str, name: str, size: tuple[int, int], cache_key, short_hash: int) -> Variant:
    """The social card (Open Graph) for a stylized image: `size`, cropped to fill, JPEG."""
    w, h = size
    vkey = cache_key(card_of=key, width=w, height=h, quality=CARD_QUALITY)
    base = name.rpartition(".")[0]
    return Variant(vkey, f"{base}-card-{vkey[:short_hash]}.jpg", "jpeg", w, h, CARD_QUALITY)


# --------------------------------------------------------------------------------------------
# pixels


def image_size(path: Path) -> tuple[tuple[int, int], bool]:
    """(width, height) and whether it has transparency, from the file's header."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return im.size, im.mode in ("RGBA", "LA", "PA") or "transparency" in im.info
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise ImageError(f"cannot read the stylized image: {exc}", path) from exc


def render_variant(source: Path, variant: Variant, *, crop: bool = False, xmp: bytes | None = None) -> bytes:
    """`source` (a stylized file) resized to the variant's size and encoded in its format, with
    the source's EXIF and the credit's XMP. `crop`: fill the size, cutting the overflow evenly."""
    import numpy as np
    from PIL import Image, ImageOps

    from blogroto.imaging.encode import encode_uint8

    size = (variant.width, variant.height)
    try:
        with Image.open(source) as im:
            im.load()
            exif = im.info.get("exif")
            alpha = im.mode in ("RGBA", "LA", "PA") or "transparency" in im.info
            im = im.convert("RGBA" if alpha else "RGB")
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise ImageError(f"cannot read the stylized image: {exc}", source) from exc
    if crop:
        im = ImageOps.fit(im, size, Image.Resampling.LANCZOS)
    elif im.size != size:
        im = im.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    if variant.fmt == "avif":
        out = io.BytesIO()
        params = {"quality": variant.quality, **({"xmp": xmp} if xmp else {}), **({"exif": exif} if exif else {})}
        try:
            im.save(out, "AVIF", **params)
        except (OSError, ValueError, KeyError) as exc:
            raise ImageError(f"cannot encode AVIF: {exc}", source) from exc
        return out.getvalue()
    pixels = np.asarray(im)
    return encode_uint8(np.ascontiguousarray(pixels[..., :3]), pixels[..., 3].copy() if alpha else None,
                        variant.fmt, variant.quality, exif, xmp)


def can_write(fmt: str) -> bool:
    """Whether this Pillow writes `fmt` (AVIF needs a Pillow built with libavif)."""
    if fmt != "avif":
        return True
    from PIL import features

    return bool(features.check("avif"))


# --------------------------------------------------------------------------------------------
# markup

_IAL_TOKEN_RE = re.compile(
    r"\s*(?:\.(?P<cls>[-\w]+)|#(?P<id>[-\w]+)|(?P<key>[-\w:]+)=(?:\"(?P<dq>[^\"]*)\"|'(?P<sq>[^']*)'))\s*"
)
_ATTR_NAMES_RE = re.compile(r"[\s\"'/]([A-Za-z_:][-A-Za-z0-9_:.]*)\s*(?==|\s|/?>|$)")


def markdown_attributes(element: str, dest_end: int) -> list[tuple[str, str]] | None:
    """The attributes a kramdown IAL after the image (`{: .cls #id key="v"}`) gives it, or None
    when the IAL says more than that (an attribute list definition's name, say): then the image
    stays Markdown."""
    ial_at = element.rfind("{:")
    if ial_at < dest_end or not element.endswith("}"):
        return []
    text, pos, classes, attrs = element[ial_at + 2:-1], 0, [], []
    while pos < len(text):
        m = _IAL_TOKEN_RE.match(text, pos)
        if m is None or m.end() == pos:
            return None
        pos = m.end()
        if m.group("cls"):
            classes.append(m.group("cls"))
        elif m.group("id"):
            attrs.append(("id", m.group("id")))
        else:
            attrs.append((m.group("key").lower(), m.group("dq") if m.group("dq") is not None else m.group("sq")))
    if classes:
        attrs.insert(0, ("class", " ".join(classes)))
    return attrs


def tag_attribute_names(tag: str) -> set[str]:
    """Lower-case attribute names of an HTML start tag (Liquid inside values does not matter here:
    only names matter, to leave what the author set alone)."""
    inner = re.sub(r"\"[^\"]*\"|'[^']*'", '""', tag)
    return {m.group(1).lower() for m in _ATTR_NAMES_RE.finditer(inner[4:])}


def tag_attribute(tag: str, name: str) -> str | None:
    """The value of attribute `name` in an HTML start tag (entities decoded), or None."""
    m = re.search(r"[\s\"'/]" + re.escape(name) + r"\s*=\s*(?:\"([^\"]*)\"|'([^']*)'|([^\s\"'>]+))", tag, re.I)
    if m is None:
        return None
    return html.unescape(next(g for g in m.groups() if g is not None))


def layout_data(images: ImageSet, base: str) -> dict:
    """What a layout needs to write a responsive <img> for a front-matter image (`images:` galleries,
    `feature:`), as the output's `algorotoscope_images` lists it under the image's path."""
    url_of = lambda n: f"{base}/{n}"  # noqa: E731
    return {"width": images.width, "height": images.height, "sizes": images.sizes,
            "srcset": _srcset(url_of, images.by_format[-1][1]),
            "sources": [{"type": MIME[f], "srcset": _srcset(url_of, vs)} for f, vs in images.by_format[:-1]]}


def _srcset(url_of, variants: tuple[Variant, ...]) -> str:
    return ", ".join(f"{url_of(v.name)} {v.width}w" for v in variants)


def _picture(img_tag: str, url_of, images: ImageSet, sizes: str) -> str:
    """`img_tag` (carrying the fallback format) inside a <picture> with a <source> per other
    format, or alone when there is one format."""
    sources = "".join(f'<source type="{MIME[f]}" srcset="{_srcset(url_of, vs)}" sizes="{html.escape(sizes)}">'
                      for f, vs in images.by_format[:-1])
    return f"<picture>{sources}{img_tag}</picture>" if sources else img_tag


def _added(images: ImageSet, url_of, present: set[str], *, first: bool) -> str:
    """The attributes the <img> gets (as HTML), leaving alone what the author set."""
    fallback = images.by_format[-1][1]
    add = []
    if "srcset" not in present:  # the author's own srcset (and sizes) are left as they are
        if len(fallback) > 1:
            add.append(f' srcset="{_srcset(url_of, fallback)}"')
        if "sizes" not in present and (len(fallback) > 1 or len(images.by_format) > 1):
            add.append(f' sizes="{html.escape(images.sizes)}"')
    if not present & {"width", "height"}:
        add.append(f' width="{images.width}" height="{images.height}"')
    if "loading" not in present and images.lazy and not first:
        add.append(' loading="lazy"')  # below the first image: most likely below the fold
    if "decoding" not in present:
        add.append(' decoding="async"')
    return "".join(add)


def _attrs_html(attrs: list[tuple[str, str]]) -> str:
    return "".join(f' {k}="{html.escape(v, quote=True)}"' for k, v in attrs)


_LIQUID_RE = re.compile(r"\{\{.*?\}\}|\{%.*?%\}", re.S)


def _attribute_safe(raw: str) -> str:
    """`raw` fit for a double-quoted attribute: Liquid string literals in double quotes become
    single-quoted (the same to Liquid) when that is all the double quotes there are."""
    if '"' in raw and "'" not in raw and '"' not in _LIQUID_RE.sub("", raw):
        return _LIQUID_RE.sub(lambda m: m.group().replace('"', "'"), raw)
    return raw


def _url_of(raw: str, name: str):
    """Candidate URLs written like the rewritten reference (`{{site.baseurl}}/…`, a relative_url
    wrapper, …): Liquid reaches Jekyll unescaped, so only `&` is escaped, and only outside it."""
    def url_of(candidate: str) -> str:
        url = raw.replace(name, candidate)
        return url if "{" in url else url.replace("&", "&amp;")
    return url_of


_DESCRIPTOR_RE = re.compile(r"\s+(\d+(?:\.\d+)?[wx])\s*$")


def _author_sources(srcset: str, sets: dict[str, ImageSet], images: ImageSet, sizes: str) -> str | None:
    """<source>s for an <img> with the author's own srcset: each candidate (a stylized file) swapped
    for its full-width file in the other format, the author's descriptors kept; None unless every
    candidate is one of ours."""
    sources = []
    for fmt, _variants in images.by_format[:-1]:
        items = []
        for candidate in srcset.split(","):  # our URLs hold no commas; Liquid may hold spaces
            m = _DESCRIPTOR_RE.search(candidate)
            url = (candidate[: m.start()] if m else candidate).strip()
            name = url.rsplit("/", 1)[-1]
            other = dict(sets[name].by_format).get(fmt) if name in sets else None
            if not url or other is None or '"' in url:
                return None
            items.append(f"{url.replace(name, other[-1].name)}{' ' + m.group(1) if m else ''}")
        sources.append(f'<source type="{MIME[fmt]}" srcset="{html.escape(", ".join(items)).replace("&#x27;", chr(39))}" '
                       f'sizes="{html.escape(sizes)}">')
    return "".join(sources) or None


def _inside_picture(body: str, pos: int) -> bool:
    lower = body[:pos].lower()
    return lower.rfind("<picture") > lower.rfind("</picture")


def rewrite_body(body: str, sets: dict[str, ImageSet], images_dir: str) -> str:
    """`body` with every Markdown image (inline or reference-style) and <img> that shows a stylized
    file of `sets` (by file name) made responsive; the rest byte-identical. Left as they are (one
    file): images the author opted out (class `no-srcset`, `data-srcset="off"`), Markdown images
    whose IAL says more than classes, ids and attributes, and URLs with quotes or escapes. An <img>
    with the author's own srcset gets WebP <source>s for its candidates; one inside the author's
    <picture> gets only its size and loading attributes."""
    from blogroto import references

    found = []  # (start, end, make(first) -> replacement)
    for ref in references.find_image_refs(body):
        name = ref.path.rsplit("/", 1)[-1]
        images = sets.get(name)
        raw = _attribute_safe(ref.raw)
        if (ref.opt_out or images is None or not ref.path.endswith(f"{images_dir}/{name}")
                or any(c in raw for c in "\"\\<>")):
            continue
        url_of = _url_of(raw, name)
        if ref.kind == references.MD_REFERENCE:  # each use becomes HTML; the definition stays, unused
            for s, e, alt in ref.uses:
                element = body[s:e]
                found.append((s, e, _markdown_image(element, element.rfind("]"), alt, ref.title, name, url_of,
                                                    images)))
        elif ref.element is not None:
            s, e = ref.element
            element = body[s:e]
            if ref.kind == references.MD_INLINE:
                make = _markdown_image(element, ref.end - s, ref.alt, ref.title, name, url_of, images)
            else:
                make = _html_image(element, _inside_picture(body, s), name, url_of, images, sets)
            found.append((s, e, make))
    out, last, first = [], 0, True
    for s, e, make in sorted((f for f in found if f[2] is not None), key=lambda f: f[0]):
        out += [body[last:s], make(first)]
        last, first = e, False
    out.append(body[last:])
    return "".join(out)


def _markdown_image(element: str, dest_end: int, alt: str | None, title: str | None, name: str, url_of,
                    images: ImageSet):
    """The HTML a Markdown image becomes (as a function of whether it is the document's first), or
    None when it stays Markdown."""
    attrs = markdown_attributes(element, dest_end)
    if attrs is None or opted_out(dict(attrs).get("class", ""), dict(attrs).get(OPT_OUT_ATTR)):
        return None
    attrs = [(k, v) for k, v in attrs if k not in ("src", "alt", "title", OPT_OUT_ATTR)]
    given = [("alt", alt or "")] + ([("title", title)] if title else []) + attrs
    present = {k for k, _ in given}
    sizes = dict(attrs).get("sizes", images.sizes)

    def make(first: bool) -> str:
        tag = f'<img src="{url_of(name)}"{_attrs_html(given)}{_added(images, url_of, present, first=first)}>'
        return _picture(tag, url_of, images, sizes)
    return make


def _html_image(element: str, in_picture: bool, name: str, url_of, images: ImageSet, sets: dict[str, ImageSet]):
    """The author's <img> with attributes added in place (and a <picture> around it), or None."""
    present = tag_attribute_names(element)
    if opted_out(tag_attribute(element, "class") or "", tag_attribute(element, OPT_OUT_ATTR)):
        return None
    closing = "/>" if element.endswith("/>") else ">"
    sizes = tag_attribute(element, "sizes") or images.sizes
    # the author's candidates are each offered in the other formats too; the author's <picture>: left
    sources = _author_sources(tag_attribute(element, "srcset") or "", sets, images, sizes) if "srcset" in present else ""

    def make(first: bool) -> str:
        tag = (element[: -len(closing)].rstrip() + _added(images, url_of, present, first=first)
               + (" />" if closing == "/>" else ">"))
        if in_picture:
            return tag
        if "srcset" in present:
            return f"<picture>{sources}{tag}</picture>" if sources else tag
        return _picture(tag, url_of, images, sizes)
    return make


def opted_out(classes: str, attr_value: str | None) -> bool:
    return OPT_OUT_CLASS in classes.split() or (attr_value or "").strip().lower() in ("off", "false", "no", "0")
