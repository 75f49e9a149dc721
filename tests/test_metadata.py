"""Machine-readable credits: XMP packets in the written images, schema.org JSON-LD in the pages."""

from __future__ import annotations

import html.parser
import io
import json
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from PIL import Image

from blogroto.credits import jsonld
from blogroto.credits import xmp as credit_xmp
from blogroto.credits.record import credit_record
from blogroto.credits.render import CreditRenderer
from blogroto.filters import Filter


def fake_filter(tmp_path, **source) -> Filter:
    src = {"title": "Copper Circuit", "creator": "Ada Etcher", "year": 2026, "url": "https://example.org/copper",
           "licence": "CC0-1.0", "licence_url": "https://creativecommons.org/publicdomain/zero/1.0/", "credit": None}
    src.update(source)
    return Filter("copper-circuit", tmp_path, {"name": "copper-circuit", "display_name": "Copper Circuit", "source": src})


# --------------------------------------------------------------------------------------------
# XMP


def test_xmp_is_wellformed_and_credits_the_artwork(tmp_path):
    xmp = credit_xmp.xmp_for(fake_filter(tmp_path), "coffee.jpg")
    text = xmp.decode("utf-8")
    assert text.startswith("<?xpacket begin=") and text.rstrip().endswith("<?xpacket end=\"w\"?>")
    ET.fromstring(text[text.index("<x:xmpmeta"): text.rindex("</x:xmpmeta>") + 12])  # parses
    fields = credit_xmp.read_xmp(xmp)
    assert fields["Iptc4xmpExt:DigitalSourceType"] == credit_xmp.DIGITAL_SOURCE_TYPE
    assert fields["dc:source"] == "https://example.org/copper"
    assert fields["blogroto:filter"] == "copper-circuit"
    assert fields["blogroto:original"] == "coffee.jpg"
    assert "Copper Circuit" in fields["photoshop:Credit"] and "Ada Etcher" in fields["photoshop:Credit"]
    assert "CC0-1.0" in fields["dc:rights"]
    assert fields["Iptc4xmpExt:AOCreator"] == "Ada Etcher"
    assert fields["Iptc4xmpExt:AOTitle"] == "Copper Circuit"
    # The photo's author is not replaced by the artwork's: no dc:creator at all.
    assert "dc:creator" not in fields


def test_xmp_is_deterministic_and_tracks_the_credit(tmp_path):
    a = credit_xmp.xmp_for(fake_filter(tmp_path), "x.jpg")
    assert a == credit_xmp.xmp_for(fake_filter(tmp_path), "x.jpg")
    assert a != credit_xmp.xmp_for(fake_filter(tmp_path, creator="Someone Else"), "x.jpg")


def test_xmp_escapes_markup_and_drops_control_characters(tmp_path):
    flt = fake_filter(tmp_path, title="<b>Fish & Chips</b>\x07", creator="A \"quoted\" </x:xmpmeta> name")
    xmp = credit_xmp.xmp_for(flt, "a&b<c>.jpg")
    fields = credit_xmp.read_xmp(xmp)
    assert fields["Iptc4xmpExt:AOTitle"] == "<b>Fish & Chips</b>"
    assert fields["blogroto:original"] == "a&b<c>.jpg"
    assert "</x:xmpmeta> name" in fields["Iptc4xmpExt:AOCreator"]


@pytest.mark.parametrize("fmt", ["jpeg", "webp", "png"])
def test_xmp_survives_encoding_with_the_photos_exif(tmp_path, fmt):
    from blogroto.imaging.encode import encode_image

    exif = Image.Exif()
    exif[0x013B] = "The Photographer"  # Artist
    rgb = np.random.default_rng(0).random((16, 24, 3), dtype=np.float32)
    data = encode_image(rgb, None, fmt, 90, exif=exif.tobytes(), xmp=credit_xmp.xmp_for(fake_filter(tmp_path), "p.jpg"))
    with Image.open(io.BytesIO(data)) as im:
        im.load()
        xmp = im.info.get("xmp") or im.info.get("XML:com.adobe.xmp")
        assert xmp, f"no XMP in the {fmt}"
        assert credit_xmp.read_xmp(xmp)["blogroto:filter"] == "copper-circuit"
        assert im.getexif().get(0x013B) == "The Photographer"


# --------------------------------------------------------------------------------------------
# JSON-LD


class _Scripts(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.scripts, self._in = [], False

    def handle_starttag(self, tag, attrs):
        self._in = tag == "script" and dict(attrs).get("type") == "application/ld+json"
        if self._in:
            self.scripts.append("")

    def handle_endtag(self, tag):
        self._in = False

    def handle_data(self, data):
        if self._in:
            self.scripts[-1] += data


def test_image_object_has_the_required_fields(tmp_path):
    record = credit_record(fake_filter(tmp_path))
    obj = jsonld.image_object(record, content_url="https://ex.org/blog/assets/algorotoscope/a.jpg",
                                original_url="https://ex.org/blog/assets/img/a.jpg", original_name="a.jpg",
                                license_url="https://creativecommons.org/licenses/by/4.0/")
    assert obj["@context"] == "https://schema.org" and obj["@type"] == "ImageObject"
    assert obj["contentUrl"].endswith("/assets/algorotoscope/a.jpg")
    assert obj["digitalSourceType"] == credit_xmp.DIGITAL_SOURCE_TYPE
    assert obj["license"] == "https://creativecommons.org/licenses/by/4.0/"
    assert "Ada Etcher" in obj["creditText"]
    photo, artwork = obj["isBasedOn"]
    assert photo["contentUrl"].endswith("/assets/img/a.jpg")
    assert artwork == {"@type": "CreativeWork", "name": "Copper Circuit", "creator": "Ada Etcher", "dateCreated": "2026",
                       "url": "https://example.org/copper",
                       "license": "https://creativecommons.org/publicdomain/zero/1.0/"}


def test_jsonld_script_cannot_be_broken_out_of(tmp_path):
    record = credit_record(fake_filter(tmp_path, title="</script><script>alert(1)</script> {{ site.x }} {% raw %}"))
    script = jsonld.jsonld_script([jsonld.image_object(record, content_url="/a.jpg")])
    assert script.count("</script>") == 1 and "{{" not in script and "{%" not in script
    parser = _Scripts()
    parser.feed(script)
    data = json.loads(parser.scripts[0])
    assert data["isBasedOn"][0]["name"] == "</script><script>alert(1)</script> {{ site.x }} {% raw %}"


class _FakeSite:
    def __init__(self, **config):
        self.config = config
        self.baseurl = config.get("baseurl", "")


def test_document_jsonld_builds_absolute_urls_and_dedupes(tmp_path):
    record = credit_record(fake_filter(tmp_path))
    site = _FakeSite(url="https://example.org/", baseurl="/blog", license="https://creativecommons.org/licenses/by/4.0/")
    images = [("assets/algorotoscope/a-1.jpg", "assets/img/a.jpg", None),
              ("assets/algorotoscope/a-1.jpg", "assets/img/a.jpg", None),
              ("assets/algorotoscope/b-2.jpg", None, "https://cdn.example.net/b.jpg")]
    objs = jsonld.document_jsonld(site, record, images, {"license": "not a url"})
    assert [o["contentUrl"] for o in objs] == ["https://example.org/blog/assets/algorotoscope/a-1.jpg",
                                               "https://example.org/blog/assets/algorotoscope/b-2.jpg"]
    assert objs[0]["isBasedOn"][0]["contentUrl"] == "https://example.org/blog/assets/img/a.jpg"
    assert objs[1]["isBasedOn"][0]["contentUrl"] == "https://cdn.example.net/b.jpg"
    assert all(o["license"] == "https://creativecommons.org/licenses/by/4.0/" for o in objs)  # the site's
    own = jsonld.document_jsonld(site, record, images[:1], {"license": "https://example.org/my-licence"})
    assert own[0]["license"] == "https://example.org/my-licence"
    assert "license" not in jsonld.document_jsonld(_FakeSite(), record, images[:1])[0]
    assert jsonld.document_jsonld(_FakeSite(), record, images[:1])[0]["contentUrl"] == "/assets/algorotoscope/a-1.jpg"


def test_credit_block_carries_the_jsonld(tmp_path):
    record = credit_record(fake_filter(tmp_path))
    objs = jsonld.document_jsonld(_FakeSite(url="https://e.org"), record, [("assets/algorotoscope/a.jpg", "a.jpg", None)])
    html = CreditRenderer(tmp_path).render_block([record], document={"kind_name": "post"}, jsonld=objs)
    parser = _Scripts()
    parser.feed(html)
    assert len(parser.scripts) == 1
    assert json.loads(parser.scripts[0])["contentUrl"] == "https://e.org/assets/algorotoscope/a.jpg"
    assert "\n\n" not in html  # still one Markdown HTML block
    assert "application/ld+json" not in CreditRenderer(tmp_path).render_block([record])  # optional


# --------------------------------------------------------------------------------------------
# end to end: a phone photo through `blogroto build`, out as JPEG and as WebP


@pytest.fixture
def kit(tmp_path, monkeypatch):
    """The reliability suite's guarded site, with its fake network (blogroto's own decoding,
    metadata and encoding; colours inverted instead of TensorFlow)."""
    from blogroto.engine import stylize
    from tests.reliability.kit import Kit, install_fake_stylizer

    monkeypatch.setattr(stylize, "Stylizer", stylize.Stylizer)  # restored afterwards
    install_fake_stylizer()
    return Kit(tmp_path)


@pytest.mark.parametrize("fmt, pillow_format", [("jpeg", "JPEG"), ("webp", "WEBP")])
def test_built_images_carry_the_credit_and_keep_the_photos_own_metadata(kit, fmt, pillow_format):
    from PIL import ExifTags, ImageCms

    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6  # stored sideways: shown rotated 90 degrees clockwise
    exif[ExifTags.Base.Artist] = "The Photographer"
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef] = "N"
    gps[ExifTags.GPS.GPSLatitude] = (51.0, 30.0, 0.0)
    stored = np.zeros((32, 48, 3), np.uint8)
    stored[:, :24] = (255, 255, 255)  # the stored left half is white: the shown top half
    buffer = io.BytesIO()
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    Image.fromarray(stored).save(buffer, "JPEG", quality=95, exif=exif, icc_profile=srgb)
    kit.write("assets/img/phone.jpg", buffer.getvalue())
    rel = kit.post("phone", "![phone](/assets/img/phone.jpg)\n",
                   front=f"title: Phone\nalgorotoscope: {{filter: tiny, format: {fmt}}}\n")
    result = kit.build()
    assert result.code == 0 and not result.lines("warning"), result.text
    (name,) = kit.stylized(rel)
    with Image.open(kit.out / "assets/algorotoscope" / name) as im:
        im.load()
        assert im.format == pillow_format
        # XMP: the artwork, its creator and licence, the filter, the IPTC digital source type
        fields = credit_xmp.read_xmp(im.info.get("xmp") or im.info["XML:com.adobe.xmp"])
        assert fields["Iptc4xmpExt:AOTitle"] == "Tiny Test Pattern"
        assert fields["Iptc4xmpExt:AOCreator"] == "The Test Suite"
        assert "CC0-1.0" in fields["dc:rights"] and "Tiny Test Pattern" in fields["photoshop:Credit"]
        assert fields["blogroto:filter"] == "tiny" and fields["blogroto:original"] == "phone.jpg"
        assert fields["Iptc4xmpExt:DigitalSourceType"] == credit_xmp.DIGITAL_SOURCE_TYPE
        # the photo's own EXIF: the photographer kept, the location dropped, the orientation applied
        carried = im.getexif()
        assert carried[ExifTags.Base.Artist] == "The Photographer"
        assert ExifTags.IFD.GPSInfo not in carried and carried.get_ifd(ExifTags.IFD.GPSInfo) == {}
        assert carried.get(ExifTags.Base.Orientation, 1) == 1
        assert im.size == (32, 48)  # upright now
        top, bottom = np.asarray(im.convert("RGB"))[[4, 44], 16].astype(int)
        assert top.max() < 40 and bottom.min() > 215  # white on top, inverted by the fake network
        # colour: converted to sRGB when read (tests/test_images.py), written untagged (= sRGB on the web)
        assert not im.info.get("icc_profile")
