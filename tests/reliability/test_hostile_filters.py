"""Broken and hostile filter folders: refused with a clear message, no code from them ever runs.

A filter folder is data: `filter.yaml` (safe YAML) and `weights.npz` (numpy, allow_pickle=False).
Pickles, Keras archives (which can hold Lambda layers), SavedModels and Python YAML tags are
refused. Every payload here would create a marker file if it ran; the marker never appears.
The documents using a refused filter fail (exit 1, copied unchanged); the rest of the site builds.
"""

from __future__ import annotations

import builtins
import io
import json
import pickle
import shutil
import zipfile

import numpy as np
import pytest

from tests.reliability.kit import FILTER, Kit, fake_filter


class Payload:
    """Unpickling this creates the marker file: proof that code ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return builtins.open, (self.marker, "w")


def meta(slug: str, **changes) -> dict:
    data = {"format": 1, "name": slug, "source": {"title": "Art", "licence": "CC0-1.0"},
            "network": {"width": 4, "blocks": 1}}
    data.update(changes)
    return data


def npz(**arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def keras_archive(marker) -> bytes:
    """What a `.keras` file looks like: a zip of config.json (here with a Lambda layer) and weights."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("metadata.json", json.dumps({"keras_version": "3.0.0"}))
        z.writestr("config.json", json.dumps({"class_name": "Sequential", "config": {"layers": [
            {"class_name": "Lambda", "config": {"function": {"class_name": "__lambda__", "config": {
                "code": "exec(\"open(%r, 'w')\")" % str(marker)}}}}]}}))
        z.writestr("model.weights.h5", b"\x89HDF\r\n\x1a\n")
        z.writestr("payload.pkl", pickle.dumps(Payload(marker)))
    return buffer.getvalue()


def post_for(kit, slug: str) -> str:
    """A post using filter `slug`: the key on line 2, the image on line 4."""
    rel = f"_posts/2024-02-01-{slug}.md"
    kit.write(rel, f"---\nalgorotoscope: {slug}\n---\n![g](/assets/img/good.jpg)\n")
    return rel


def assert_refused(kit, result, expected: dict[str, tuple[int, list[str]]]) -> None:
    assert result.code == 1, result.text
    errors = result.lines("error")
    assert len(errors) == len(expected), "\n".join(errors)
    for slug, (line, fragments) in expected.items():
        rel = f"_posts/2024-02-01-{slug}.md"
        mine = [e for e in errors if e.startswith(f"{kit.root}/{rel}:{line}: ")]
        assert len(mine) == 1, (slug, errors)
        for fragment in fragments:
            assert fragment in mine[0], (slug, fragment, mine[0])
        assert kit.unchanged_copy(rel)
    kit.assert_good_post_built()


# -- refused when the filter is loaded (no TensorFlow needed) ---------------------------------


def test_filter_folders_carrying_code_or_bad_metadata_are_refused(kit, tmp_path):
    marker = tmp_path / "code-ran"
    f = kit.filters
    fake_filter(f, "has-pickle")
    (f / "has-pickle/model.pkl").write_bytes(pickle.dumps(Payload(marker)))
    fake_filter(f, "keras-archive")
    (f / "keras-archive/model.keras").write_bytes(keras_archive(marker))
    fake_filter(f, "saved-model")
    (f / "saved-model/model").mkdir()
    (f / "saved-model/model/saved_model.pb").write_bytes(b"\x08\x01")
    fake_filter(f, "h5-model")
    (f / "h5-model/model.h5").write_bytes(b"\x89HDF\r\n\x1a\n")
    fake_filter(f, "python-file")
    (f / "python-file/__init__.py").write_text(f"open({str(marker)!r}, 'w')\n")
    fake_filter(f, "yaml-tag", meta=f'format: 1\nname: yaml-tag\nsource: !!python/object/apply:builtins.open ["{marker}", "w"]\n')
    fake_filter(f, "meta-list", meta="- format: 1\n- name: meta-list\n")
    fake_filter(f, "meta-scalar", meta="just a string\n")
    fake_filter(f, "meta-empty", meta="")
    fake_filter(f, "bad-yaml", meta="format: 1\nname: [bad-yaml\n")
    fake_filter(f, "name-mismatch", meta=meta("someone-else"))
    fake_filter(f, "no-credit", meta=meta("no-credit", source=None))
    fake_filter(f, "huge-width", meta=meta("huge-width", network={"width": 100_000, "blocks": 1}))
    fake_filter(f, "escaping-files", meta=meta("escaping-files", files={"weights": "../../../../etc/passwd"}))
    fake_filter(f, "deep-yaml", meta="format: 1\nx: " + "[" * 5000 + "]" * 5000 + "\n")
    fake_filter(f, "no-weights")
    (f / "no-weights/weights.npz").unlink()
    code = "refused: filter folders hold weights as .npz only; this file could carry executable code"
    expected = {
        "has-pickle": (2, [code, "has-pickle/model.pkl"]),
        "keras-archive": (2, [code, "keras-archive/model.keras"]),
        "saved-model": (2, [code, "saved-model/model"]),
        "h5-model": (2, [code, "h5-model/model.h5"]),
        "python-file": (2, [code, "__init__.py"]),
        "yaml-tag": (2, ["yaml-tag/filter.yaml:3: malformed YAML", "python/object/apply"]),
        "meta-list": (2, ["metadata must be a mapping, not list"]),
        "meta-scalar": (2, ["metadata must be a mapping, not str"]),
        "meta-empty": (2, ["metadata must be a mapping, not NoneType"]),
        "bad-yaml": (2, ["bad-yaml/filter.yaml", "malformed YAML"]),
        "name-mismatch": (2, ["name 'someone-else' does not match the folder name 'name-mismatch'"]),
        "no-credit": (2, ["`source` must be a mapping with at least a `title`"]),
        "huge-width": (2, ["network.width must be an integer between 1 and 256, got 100000"]),
        "escaping-files": (2, ["files.weights must be a plain file name inside the filter folder"]),
        "no-weights": (2, ["weights file 'weights.npz' is missing"]),
        "deep-yaml": (2, ["deep-yaml/filter.yaml:2: malformed YAML: YAML nested more than 200 levels deep"]),
    }
    for slug in expected:
        post_for(kit, slug)
    result = kit.build()
    for slug, (_line, fragments) in expected.items():
        fragments.insert(0, f"filter {slug!r}: ")
    assert_refused(kit, result, expected)
    assert not marker.exists()


# -- refused when the weights are read (the real network, TensorFlow) -------------------------


@pytest.fixture
def real_kit(tmp_path, tiny_filter_dir):
    """A guarded site using the real Stylizer and the tiny trained-shape filter `tiny`."""
    return Kit(tmp_path, filter_dir=tiny_filter_dir, fake_filter_folder=False)


def test_broken_weights_are_refused_by_the_real_network(real_kit, tiny_filter_dir, tmp_path):
    kit = real_kit
    marker = tmp_path / "code-ran"
    good = (tiny_filter_dir / "tiny/weights.npz").read_bytes()
    with np.load(io.BytesIO(good)) as data:
        arrays = {k: data[k] for k in data.files}
    f = kit.filters
    fake_filter(f, "corrupt", weights=b"PK\x03\x04" + bytes(range(256)) * 8)
    fake_filter(f, "truncated", weights=good[: len(good) // 2])
    fake_filter(f, "empty-weights", weights=b"")
    fake_filter(f, "wrong-shapes", weights=good, meta=meta("wrong-shapes", network={"width": 8, "blocks": 1}))
    fake_filter(f, "missing-keys", weights=npz(**{k: v for k, v in arrays.items() if not k.startswith("u2")}))
    fake_filter(f, "pickled", weights=npz(**arrays, evil=np.array([Payload(marker)], dtype=object)))
    fake_filter(f, "raw-pickle", weights=pickle.dumps(Payload(marker)))
    fake_filter(f, "keras-as-npz", weights=keras_archive(marker))
    fake_filter(f, "nan", weights=npz(**{**arrays, "c1/bias": np.full_like(arrays["c1/bias"], np.nan)}))
    fake_filter(f, "int-dtype", weights=npz(**{**arrays, "c1/bias": arrays["c1/bias"].astype(np.int32)}))
    # 256 x 256 would be a 19 GB network: refused from the file's shapes before anything is built
    fake_filter(f, "huge-spec", weights=good, meta=meta("huge-spec", network={"width": 256, "blocks": 256}))
    expected = {
        "corrupt": ["weights file is corrupt or truncated"],
        "truncated": ["weights file is corrupt or truncated"],
        "empty-weights": ["weights file is corrupt or truncated"],
        "wrong-shapes": ["weights do not match the network (width 8, 1 blocks)"],
        "missing-keys": ["weights do not match the network", "u2/kernel is None"],
        "pickled": ["weights file refused (contains pickled objects"],
        "raw-pickle": ["weights file refused (contains pickled objects"],
        "keras-as-npz": ["weights file refused"],
        "nan": ["weight c1/bias contains NaN or infinite values"],
        "int-dtype": ["weight c1/bias has dtype int32, expected floating point"],
        "huge-spec": ["weights do not match the network (width 256, 256 blocks)"],
    }
    for slug in expected:
        post_for(kit, slug)
    result = kit.build()
    assert_refused(kit, result, {
        slug: (4, [f"cannot stylize /assets/img/good.jpg with filter {slug!r}: ", f"{slug}/weights.npz: ", *frags])
        for slug, frags in expected.items()})
    assert not marker.exists()
    # fixed filters are picked up on the next build
    shutil.copy(tiny_filter_dir / "tiny/weights.npz", f / "corrupt/weights.npz")
    again = kit.build()
    assert len([e for e in again.lines("error") if "2024-02-01-corrupt.md" in e]) == 0, again.err
    assert len(kit.stylized("_posts/2024-02-01-corrupt.md")) == 1


def test_expected_shapes_match_the_built_network():
    """`layouts.expected_shapes` (the pre-build check above) agrees with the real architecture."""
    from blogroto.engine.layouts import expected_shapes
    from blogroto.engine.network import TransformNet

    for width, blocks in ((4, 1), (6, 3)):
        built = {k: tuple(v.shape) for k, v in TransformNet(width, blocks).weight_dict().items()}
        assert built == expected_shapes(width, blocks)



# -- weight bombs: refused from the .npy headers, before decompressing (no TensorFlow needed) ---


def _npz_member_bomb(path, key: str, shape: tuple[int, ...], zeros: int | None = None) -> None:
    """An .npz whose member `key` declares `shape` float32 and holds `zeros` zero bytes of data
    (all of it by default), deflated: 256 MiB of zeros is a quarter of a MB on disk."""
    import zipfile

    from numpy.lib import format as npy

    header = io.BytesIO()
    npy.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": shape})
    n = int(np.prod(shape)) * 4 if zeros is None else zeros
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        with zf.open(f"{key}.npy", "w", force_zip64=True) as member:
            member.write(header.getvalue())
            block = bytes(1 << 20)
            while n > 0:
                member.write(block[: min(n, len(block))])
                n -= len(block)


def test_inflating_weights_are_refused_from_their_headers(tmp_path):
    import tracemalloc

    from blogroto.engine.layouts import expected_shapes
    from blogroto.engine.weights_file import read_weights
    from blogroto.errors import FilterError

    bomb = tmp_path / "weights.npz"
    _npz_member_bomb(bomb, "c1/kernel", (8192, 8192))  # 256 MiB once inflated
    assert bomb.stat().st_size < 2 << 20
    tracemalloc.start()
    try:
        with pytest.raises(FilterError, match=r"weights do not match the network: .*c1/kernel is \(8192, 8192\)"):
            read_weights(bomb, expected_shapes(4, 1))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20, f"{peak / 2**20:.0f} MiB allocated before refusing"

    # A member declaring more than it holds (or holds more than it declares) is refused too.
    liar = tmp_path / "liar.npz"
    _npz_member_bomb(liar, "c1/bias", (4,), zeros=1 << 20)
    with pytest.raises(FilterError, match="'c1/bias' declares 16 bytes but holds 1048576"):
        read_weights(liar, {"c1/bias": (4,)})
    # Without expected shapes, the declared total is capped.
    huge = tmp_path / "huge.npz"
    _npz_member_bomb(huge, "w", (1 << 16, 1 << 15), zeros=0)
    with pytest.raises(FilterError, match="declares"):
        read_weights(huge)


def test_header_check_keeps_good_weights(tmp_path):
    from blogroto.engine.layouts import expected_shapes
    from blogroto.engine.weights_file import read_weights

    shapes = expected_shapes(4, 1)
    path = tmp_path / "weights.npz"
    path.write_bytes(npz(**{k: np.zeros(v, np.float32) for k, v in shapes.items()}))
    assert {k: v.shape for k, v in read_weights(path, shapes).items()} == shapes
    compressed = tmp_path / "compressed.npz"
    np.savez_compressed(compressed, **{k: np.ones(v, np.float32) for k, v in shapes.items()})
    assert {k: v.shape for k, v in read_weights(compressed, shapes).items()} == shapes


# -- filter files that are links: refused where filter files are resolved (Filter.file) -------


def test_symlinked_filter_files_are_never_published(kit, tmp_path):
    import os

    from tests.reliability.kit import photo

    secret = tmp_path / "outside" / "secret.jpg"
    secret.parent.mkdir()
    secret.write_bytes(photo(seed=7) + b"SECRET-BYTES-OUTSIDE-THE-FILTER")
    folder = kit.filters / FILTER
    os.symlink(secret, folder / "artwork.jpg")  # absolute link out of the folder
    os.symlink("../../../outside/secret.jpg", folder / "preview.jpg")  # relative, climbing out
    (folder / "real.jpg").write_bytes(photo(seed=8))
    os.symlink("real.jpg", folder / "example-after.jpg")  # inside, but still a link: refused too
    fake_filter(kit.filters, "linked-weights")
    (kit.filters / "linked-weights/weights.npz").unlink()
    os.symlink(kit.filters / FILTER / "weights.npz", kit.filters / "linked-weights/weights.npz")
    rel = post_for(kit, "linked-weights")
    result = kit.build()
    assert result.code == 1, result.text
    (error,) = result.lines("error")
    assert error.startswith(f"{kit.root}/{rel}:2: ") and "linked-weights/weights.npz: refused: weights file" in error
    assert "is a symbolic link" in error
    warnings = result.lines("warning")
    for name in ("artwork.jpg", "preview.jpg", "example-after.jpg"):
        (w,) = [w for w in warnings if f"{FILTER}/{name}" in w and "picture left out" in w]
        assert "is a symbolic link" in w
    # The links that leave the site are also not published as site files (Site.walk, Jekyll's rule),
    # each with its own warning; the one inside the folder is published as what it points to.
    for name in ("artwork.jpg", "preview.jpg"):
        (w,) = [w for w in warnings if f"{FILTER}/{name}" in w and "picture left out" not in w]
        assert "not published: a symlink" in w and "outside the site" in w
    kit.assert_good_post_built()
    leaked = [p for p in kit.out.rglob("*") if p.is_file() and not p.is_symlink()
              and b"SECRET-BYTES-OUTSIDE-THE-FILTER" in p.read_bytes()]
    assert leaked == []
    assert not list((kit.out / "filters" / FILTER).glob("artwork.*"))


def test_filter_file_resolving_outside_is_refused(tmp_path):
    """A file reached through a linked *name component* (files: {artwork: x.jpg} where x.jpg is
    plain but the folder was swapped) is caught by the resolve check as well."""
    from blogroto.errors import FilterError
    from blogroto.filters import Filter

    folder = tmp_path / "f"
    folder.mkdir()
    (tmp_path / "elsewhere.jpg").write_bytes(b"x")
    import os

    os.symlink(tmp_path / "elsewhere.jpg", folder / "artwork.jpg")
    flt = Filter("f", folder, {"source": {"title": "t"}})
    with pytest.raises(FilterError, match="symbolic link"):
        flt.file("artwork")
    assert flt.file("preview") is None  # missing: None, as before
    (folder / "preview.jpg").write_bytes(b"y")
    assert flt.file("preview") == folder / "preview.jpg"
