"""Built-in data: every file credited (and every credit a file), files decode, sizes as stated."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from blogroto import datasets
from blogroto.errors import BlogrotoError
from tools import rebuild_data

# CC BY only with the attribution in `credit` (checked below); no share-alike, no GFDL
ALLOWED_LICENCES = {"CC0-1.0", "public domain", "no known copyright restrictions", "CC-BY-3.0", "CC-BY-4.0"}


@pytest.fixture(scope="module")
def entries() -> list[dict]:
    return datasets.credits()


def _open(rel: str) -> Image.Image:
    im = Image.open(datasets.DATA_DIR / rel)
    im.load()  # decodes every byte: a truncated file fails here
    return im


def test_every_shipped_file_has_a_credit_and_every_credit_a_file(entries):
    credited = [e["file"] for e in entries]
    assert len(credited) == len(set(credited)), "duplicate credit entries"
    assert sorted(credited) == datasets.shipped_files()


def test_credit_entries_are_complete(entries):
    for e in entries:
        for key in ("title", "creator", "licence", "credit", "obtained_from"):
            assert e[key], f"{e['file']}: {key} is empty"
        assert e["licence"] in ALLOWED_LICENCES, f"{e['file']}: licence {e['licence']!r}"
        if e["licence"].startswith("CC-BY"):
            assert e["creator"] in e["credit"] or "Pexels" in e["credit"], f"{e['file']}: CC BY needs attribution"
        assert set(datasets.CREDIT_KEYS) <= set(e)
        w, h = e["original_size"]
        assert w > 0 and h > 0


def test_rebuild_table_matches_credits(entries):
    by_file = {e["file"]: e for e in entries}
    for rel, (src, _) in rebuild_data._FROM_SKIMAGE.items():
        assert by_file[rel]["obtained_from"].endswith("skimage/data/" + src)
    assert "draw_circuit_board" in by_file[rebuild_data._COPPER]["obtained_from"]


def test_files_decode_as_rgb_jpegs_at_quality_88(entries):
    buf = io.BytesIO()
    Image.new("RGB", (16, 16)).save(buf, "JPEG", quality=datasets.JPEG_QUALITY)
    reference = Image.open(buf).quantization
    for e in entries:
        im = _open(e["file"])
        assert im.format == "JPEG" and im.mode == "RGB", e["file"]
        assert im.quantization == reference, f"{e['file']} is not quality {datasets.JPEG_QUALITY}"
        assert (datasets.DATA_DIR / e["file"]).stat().st_size < 400_000, f"{e['file']} is too big for the repo"


def test_sizes_as_stated(entries):
    for e in entries:
        w, h = _open(e["file"]).size
        ow, oh = e["original_size"]
        limit = datasets.ARTWORK_LONG_SIDE if e["file"].startswith("artworks/") else datasets.CONTENT_LONG_SIDE
        # long side is the limit, unless the original was smaller: never upscaled
        assert max(w, h) == min(limit, max(ow, oh)), e["file"]
        assert abs(w / h - ow / oh) < 0.01, f"{e['file']}: aspect ratio changed"
    assert _open(rebuild_data._COPPER).size == (1024, 1024)
    assert max(Image.open(datasets.preview_photo()).size) == 512


def test_content_images_are_the_content_folder_sorted():
    paths = datasets.content_images()
    names = [p.name for p in paths]
    assert names == sorted(names) and len(names) >= 25  # a real content set, in a stable order
    assert {"astronaut.jpg", "chelsea.jpg", "rocket.jpg"} <= set(names)
    assert all(p.parent == datasets.CONTENT_DIR and p.is_file() for p in paths)
    # the preview must stay out of training, or previews would flatter the filter
    assert datasets.preview_photo() not in paths
    assert datasets.preview_photo().is_file()


@pytest.mark.parametrize("name", ["copper-circuit", "copper_circuit", "copper-circuit.jpg", "Copper-Circuit"])
def test_artwork_by_name(name):
    assert datasets.artwork(name) == datasets.ARTWORK_DIR / "copper-circuit.jpg"


def test_artwork_names():
    assert datasets.artwork("hubble_deep_field").name == "hubble-deep-field.jpg"
    assert datasets.artwork("ihc").name == "ihc.jpg"
    assert [p.stem for p in datasets.artworks()] == ["copper-circuit", "hubble-deep-field", "ihc"]


def test_unknown_artwork_lists_the_available_ones():
    with pytest.raises(BlogrotoError) as err:
        datasets.artwork("starry-night")
    assert "copper-circuit" in str(err.value) and "starry-night" in str(err.value)


def test_credit_for():
    by_abs = datasets.credit_for(datasets.ARTWORK_DIR / "copper-circuit.jpg")
    assert by_abs["licence"] == "CC0-1.0" and by_abs["year"] == 2026
    assert datasets.credit_for("content/astronaut.jpg")["creator"] == "NASA"
    assert datasets.credit_for(datasets.preview_photo())["file"] == "preview.jpg"
    assert datasets.credit_for(datasets.DATA_DIR.parent / "datasets.py") is None
    assert datasets.credit_for("content/nope.jpg") is None


def test_readme_is_generated_from_credits(entries):
    assert datasets.README_FILE.read_text(encoding="utf-8") == datasets.render_readme(entries), (
        "data/README.md is stale: run python -m tools.rebuild_data readme"
    )
    text = datasets.README_FILE.read_text(encoding="utf-8")
    assert all(f"`{e['file']}`" in text for e in entries)


def test_broken_credits_file_is_a_blogroto_error(tmp_path, monkeypatch):
    bad = tmp_path / "CREDITS.yaml"
    bad.write_text("- file: a.jpg\n  title: [unclosed\n", encoding="utf-8")
    monkeypatch.setattr(datasets, "CREDITS_FILE", bad)
    with pytest.raises(BlogrotoError) as err:
        datasets.credits()
    assert err.value.path == bad and err.value.line is not None
    bad.write_text("file: a.jpg\n", encoding="utf-8")  # a mapping, not a list
    with pytest.raises(BlogrotoError):
        datasets.credits()


def test_long_side_never_upscales():
    assert rebuild_data._long_side((451, 300), 512) == (451, 300)
    assert rebuild_data._long_side((600, 400), 512) == (512, 341)
    assert rebuild_data._long_side((427, 640), 512) == (342, 512)
