"""The filter folder format: validation, refusal of code, resolution by name, fingerprints."""

from __future__ import annotations

import shutil

import pytest

from blogroto.errors import FilterError, UnknownFilterError
from blogroto.filters import FilterLibrary, load_filter


def clone(src, dst_parent, slug):
    dst = dst_parent / slug
    shutil.copytree(src, dst)
    meta = (dst / "filter.yaml").read_text()
    (dst / "filter.yaml").write_text(meta.replace(f"name: {src.name}", f"name: {slug}"))
    return dst


def test_loads_credits_and_training(tiny_filter):
    assert tiny_filter.slug == "tiny"
    assert tiny_filter.source["title"] == "Tiny Test Pattern"
    assert tiny_filter.source["licence"] == "CC0-1.0"
    assert tiny_filter.network.width == 4 and tiny_filter.network.blocks == 1
    assert tiny_filter.file("weights").name == "weights.npz"
    assert tiny_filter.file("preview") is None  # optional files may be absent
    assert "Tiny Test Pattern" in tiny_filter.credit_line()


def test_fingerprint_is_stable_and_tracks_weights(tiny_filter_dir, tmp_path):
    a = load_filter(tiny_filter_dir / "tiny")
    assert a.fingerprint == load_filter(tiny_filter_dir / "tiny").fingerprint
    assert a.fingerprint != load_filter(tiny_filter_dir / "tiny-two").fingerprint
    copy = clone(tiny_filter_dir / "tiny", tmp_path, "copy")
    assert load_filter(copy).fingerprint == a.fingerprint  # name and credits don't change pixels
    text = (copy / "filter.yaml").read_text().replace("Tiny Test Pattern", "Renamed")
    (copy / "filter.yaml").write_text(text)
    assert load_filter(copy).fingerprint == a.fingerprint


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: (d / "weights.npz").unlink(), "weights.npz"),
        (lambda d: (d / "filter.yaml").write_text("- just\n- a list\n"), "must be a mapping"),
        (lambda d: (d / "filter.yaml").write_text("name: [unclosed\n"), "malformed YAML"),
        (lambda d: (d / "filter.yaml").write_text("name: other\nsource: {title: x}\n"), "does not match"),
        (lambda d: (d / "filter.yaml").write_text("name: bad\n"), "source"),
        (lambda d: (d / "filter.yaml").write_text("name: bad\nsource: {title: x}\nnetwork: {width: -3}\n"), "network.width"),
        (lambda d: (d / "filter.yaml").write_text("name: bad\nsource: {title: x}\nnetwork: {norm: batch}\n"), "network.norm"),
        (lambda d: (d / "filter.yaml").write_text("name: bad\nsource: {title: x}\nfiles: {weights: ../../etc/passwd}\n"), "plain file name"),
        (lambda d: (d / "model.pkl").write_bytes(b"cos\nsystem\n(S'echo pwned'\ntR."), "executable code"),
        (lambda d: (d / "model.keras").write_bytes(b"PK"), "executable code"),
        (lambda d: (d / "filter.yaml").write_text("name: bad\nsource: {title: x}\nformat: 99\n"), "format"),
    ],
)
def test_bad_folders_are_refused_naming_the_file(tiny_filter_dir, tmp_path, mutate, message):
    folder = clone(tiny_filter_dir / "tiny", tmp_path, "bad")
    mutate(folder)
    with pytest.raises(FilterError, match=message) as info:
        load_filter(folder)
    assert "bad" in str(info.value)  # the message names the folder or file


def test_yaml_tags_cannot_execute_code(tiny_filter_dir, tmp_path):
    folder = clone(tiny_filter_dir / "tiny", tmp_path, "evil")
    (folder / "filter.yaml").write_text("name: evil\nsource: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(FilterError, match="malformed YAML"):
        load_filter(folder)


def test_library_prefers_site_filters_then_builtin(tiny_filter_dir, tmp_path):
    site = tmp_path / "site_filters"
    clone(tiny_filter_dir / "tiny-two", site, "tiny")  # a site filter shadowing "tiny"
    lib = FilterLibrary([site, tiny_filter_dir], include_builtin=False)
    assert lib.get("tiny").folder == site / "tiny"
    assert lib.get("tiny-two").folder == tiny_filter_dir / "tiny-two"
    assert lib.names() == ["tiny", "tiny-two"]


def test_unknown_filter_lists_close_matches(tiny_filter_dir):
    lib = FilterLibrary([tiny_filter_dir], include_builtin=False)
    with pytest.raises(UnknownFilterError) as info:
        lib.get("tiny-tow")
    assert info.value.close_matches[0] == "tiny-two"
    assert "Did you mean" in str(info.value)
    with pytest.raises(UnknownFilterError):
        lib.get("../tiny")  # names are slugs, never paths


def test_every_builtin_filter_is_trained_credited_and_current():
    """What ships in styles/ was trained by blogroto's own code and says how; a distilled filter's
    teacher is a built-in whose weights are still the ones it learned from."""
    from blogroto.engine.precision import BF16_MIN_PSNR_DB
    from blogroto.filters import BUILTIN_STYLES_DIR

    library = FilterLibrary()
    builtins = [flt for flt in library.all() if flt.folder.parent == BUILTIN_STYLES_DIR]
    assert len(builtins) >= 5
    for flt in builtins:
        t = flt.training
        assert t["steps"] > 0 and t["seconds"] > 0 and t["resolution"] > 0 and t["device"], flt.slug
        assert t["final_losses"]["total"] > 0 and t["blogroto_version"] and t["vgg_weights"], flt.slug
        assert flt.source["title"] and flt.source["licence"], flt.slug
        # measured when trained; below the gate `--precision auto` applies it in float32 (slower, same picture).
        # The floor catches a broken measurement, not a filter: the worst of 65 photos, and the board's full
        # network grows vias out of a white backdrop's JPEG noise differently in bfloat16 (25.9 dB; median 54)
        precision = flt.meta["precision"]
        assert precision["threshold_db"] == BF16_MIN_PSNR_DB and precision["bfloat16_psnr_db"] >= 25, flt.slug
        for key in ("artwork", "preview", "example_before", "example_after"):
            assert flt.file(key) is not None, (flt.slug, key)
        if "teacher" in t:
            teacher = library.get(t["teacher"]["name"])
            assert teacher.fingerprint == t["teacher"]["fingerprint"], f"{flt.slug}: its teacher was retrained"
            assert flt.source == teacher.source
