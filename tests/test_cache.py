"""Tests for blogroto.build.cache: stat index and content-addressed output cache."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from pathlib import Path

import pytest

from blogroto.build import cache
from blogroto.build.cache import (
    CacheError,
    OutputCache,
    StatIndex,
    cache_key,
    sha256_file,
)
from blogroto.errors import BlogrotoError
from blogroto.fsutil import TMP_PREFIX


@pytest.fixture
def settled(monkeypatch):
    """Pretend hashing happens well after the files were written, so fresh test files are not
    'racy' (see RACY_WINDOW_NS) and their hashes are trusted and stored."""
    monkeypatch.setattr(cache, "_now_ns", lambda: time.time_ns() + 60 * 10**9)


@pytest.fixture
def count_hashes(monkeypatch):
    calls = []
    real = cache.sha256_file

    def counting(path):
        calls.append(str(path))
        return real(path)

    monkeypatch.setattr(cache, "sha256_file", counting)
    return calls


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


# --- hashing helpers -----------------------------------------------------------------------------


def test_sha256_file_matches_hashlib(tmp_path):
    data = os.urandom(300_000)
    f = write(tmp_path / "a.bin", data)
    assert sha256_file(f) == hashlib.sha256(data).hexdigest()


def test_sha256_file_missing_names_the_file(tmp_path):
    with pytest.raises(BlogrotoError, match="missing.jpg"):
        sha256_file(tmp_path / "missing.jpg")


def test_cache_key_is_canonical():
    a = cache_key(image="abc", filter="f1", opts={"strength": 1.0, "keep_colors": False}, engine="1")
    b = cache_key(engine="1", opts={"keep_colors": False, "strength": 1.0}, filter="f1", image="abc")
    assert a == b
    assert len(a) == 64 and int(a, 16) >= 0
    expected = json.dumps(
        {"engine": "1", "filter": "f1", "image": "abc", "opts": {"keep_colors": False, "strength": 1.0}},
        separators=(",", ":"),
    )
    assert a == hashlib.sha256(expected.encode()).hexdigest()


def test_cache_key_changes_with_any_part():
    base = dict(image="abc", filter="f1", opts={"strength": 1.0}, engine="1")
    key = cache_key(**base)
    assert cache_key(**{**base, "opts": {"strength": 0.5}}) != key
    assert cache_key(**{**base, "engine": "2"}) != key
    assert cache_key(**base, extra=None) != key


def test_cache_key_refuses_non_json_values(tmp_path):
    with pytest.raises(TypeError):
        cache_key(path=tmp_path)
    with pytest.raises(ValueError):
        cache_key(x=float("nan"))


# --- StatIndex -----------------------------------------------------------------------------------


def test_hash_is_correct_and_unchanged_file_is_not_rehashed(tmp_path, settled, count_hashes, monkeypatch):
    f = write(tmp_path / "img.jpg", b"pixels" * 100)
    idx = StatIndex(tmp_path / "cache")
    assert idx.hash(f) == hashlib.sha256(b"pixels" * 100).hexdigest()
    assert len(count_hashes) == 1

    stats = []
    real_stat = cache._stat
    monkeypatch.setattr(cache, "_stat", lambda p: stats.append(p) or real_stat(p))
    assert idx.hash(f) == hashlib.sha256(b"pixels" * 100).hexdigest()
    assert len(count_hashes) == 1
    assert len(stats) == 1  # the fast path is exactly one stat


def test_same_size_edit_with_restored_mtime_is_detected(tmp_path, settled):
    f = write(tmp_path / "img.jpg", b"A" * 64)
    idx = StatIndex(tmp_path / "cache")
    first = idx.hash(f)
    st = os.stat(f)
    with open(f, "r+b") as handle:  # in place: same inode, same size
        handle.write(b"B")
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))  # mtime back to what it was
    assert os.stat(f).st_mtime_ns == st.st_mtime_ns and os.stat(f).st_size == st.st_size
    assert idx.hash(f) == hashlib.sha256(b"B" + b"A" * 63).hexdigest() != first


def test_replaced_file_with_same_size_and_mtime_is_detected(tmp_path, settled):
    f = write(tmp_path / "img.jpg", b"A" * 64)
    idx = StatIndex(tmp_path / "cache")
    idx.hash(f)
    st = os.stat(f)
    other = write(tmp_path / "new.jpg", b"C" * 64)
    os.utime(other, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.replace(other, f)  # like `cp -p` / checkout: new inode, same size and mtime
    assert idx.hash(f) == hashlib.sha256(b"C" * 64).hexdigest()


def test_freshly_written_file_is_not_trusted(tmp_path, count_hashes):
    # Real clock: the file was written just now, so a same-tick rewrite could keep its stat.
    f = write(tmp_path / "img.jpg", b"x" * 10)
    idx = StatIndex(tmp_path / "cache")
    idx.hash(f)
    idx.hash(f)
    assert len(count_hashes) == 2
    idx.save()
    assert not (tmp_path / "cache" / cache.INDEX_NAME).exists()  # nothing trustworthy to store


def test_missing_file_raises_blogroto_error_naming_it(tmp_path, settled):
    idx = StatIndex(tmp_path / "cache")
    with pytest.raises(BlogrotoError, match="gone.png"):
        idx.hash(tmp_path / "gone.png")


def test_index_persists_between_instances(tmp_path, settled, count_hashes):
    files = [write(tmp_path / "site" / f"{i}.png", bytes([i]) * (i + 1)) for i in range(5)]
    idx = StatIndex(tmp_path / "cache")
    digests = [idx.hash(f) for f in files]
    idx.save()
    assert len(count_hashes) == 5
    again = StatIndex(tmp_path / "cache")
    assert [again.hash(f) for f in files] == digests
    assert len(count_hashes) == 5


def test_save_only_when_changed(tmp_path, settled, monkeypatch):
    f = write(tmp_path / "a.png", b"abc")
    idx = StatIndex(tmp_path / "cache")
    idx.hash(f)
    idx.save()
    again = StatIndex(tmp_path / "cache")
    again.hash(f)

    def boom(*args, **kwargs):
        raise AssertionError("index written although nothing changed")

    monkeypatch.setattr(cache.OwnedTree, "write_bytes", boom)
    again.save()


def test_index_file_is_json(tmp_path, settled):
    f = write(tmp_path / "a.png", b"abc")
    idx = StatIndex(tmp_path / "cache")
    digest = idx.hash(f)
    idx.save()
    payload = json.loads((tmp_path / "cache" / cache.INDEX_NAME).read_text())
    st = os.stat(f)
    assert payload["entries"][os.path.abspath(f)] == [st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns, digest]


def test_concurrent_saves_merge(tmp_path, settled, count_hashes):
    a = write(tmp_path / "a.png", b"aaa")
    b = write(tmp_path / "b.png", b"bbb")
    one = StatIndex(tmp_path / "cache")
    two = StatIndex(tmp_path / "cache")  # loaded before `one` saved
    one.hash(a)
    two.hash(b)
    one.save()
    two.save()
    third = StatIndex(tmp_path / "cache")
    assert len(third) == 2
    third.hash(a)
    third.hash(b)
    assert len(count_hashes) == 2


def test_vanished_and_changed_files_are_dropped_on_save(tmp_path, settled):
    a = write(tmp_path / "a.png", b"aaa")
    b = write(tmp_path / "b.png", b"bbb")
    c = write(tmp_path / "c.png", b"ccc")
    idx = StatIndex(tmp_path / "cache")
    for f in (a, b, c):
        idx.hash(f)
    idx.save()
    a.unlink()
    b.write_bytes(b"changed, longer")
    other = StatIndex(tmp_path / "cache")
    other.hash(write(tmp_path / "d.png", b"ddd"))
    other.save()
    entries = json.loads((tmp_path / "cache" / cache.INDEX_NAME).read_text())["entries"]
    assert sorted(Path(k).name for k in entries) == ["c.png", "d.png"]


@pytest.mark.parametrize(
    "content",
    [b'{"format": 1, "entries": {"/x": [1, 2', b"\x00\xff garbage", b"[]", b'{"format": 1, "entries": {"/x": "no"}}', b""],
)
def test_corrupt_index_starts_empty_and_warns_once(tmp_path, settled, caplog, content):
    cache_dir = tmp_path / "cache"
    write(cache_dir / cache.INDEX_NAME, content)
    f = write(tmp_path / "a.png", b"abc")
    with caplog.at_level(logging.WARNING, logger="blogroto.build.cache"):
        idx = StatIndex(cache_dir)
        assert len(idx) == 0
        assert idx.hash(f) == hashlib.sha256(b"abc").hexdigest()
        idx.save()  # reloads the (still corrupt) file under the lock: no second warning
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert cache.INDEX_NAME in warnings[0].getMessage()
    # The save repaired it.
    assert len(StatIndex(cache_dir)) == 1


def test_no_op_rebuild_of_2000_images_rehashes_nothing(tmp_path, settled, count_hashes):
    # How fast that is, is measured in benchmarks/noop_rebuild.py (results/noop_rebuild.md), not
    # asserted here: a wall-clock bound failed on a busy machine (0.5 s) with nothing wrong.
    site = tmp_path / "site"
    files = [write(site / f"{i // 100}" / f"img{i}.jpg", i.to_bytes(4, "big") * 8) for i in range(2000)]
    cache_dir = tmp_path / "cache"
    first = StatIndex(cache_dir)
    digests = [first.hash(f) for f in files]
    first.save()
    assert len(count_hashes) == 2000

    idx = StatIndex(cache_dir)
    assert [idx.hash(f) for f in files] == digests
    idx.save()
    assert len(count_hashes) == 2000  # nothing re-hashed


# --- OutputCache ---------------------------------------------------------------------------------

KEY = "ab" + "0123456789abcdef" * 3 + "0123456789abcd"


def test_path_layout(tmp_path):
    oc = OutputCache(tmp_path / "c")
    assert oc.path_for(KEY, "jpg") == tmp_path / "c" / "objects" / "ab" / f"{KEY}.jpg"
    assert oc.path_for(KEY, ".PNG") == tmp_path / "c" / "objects" / "ab" / f"{KEY}.png"


@pytest.mark.parametrize("key", ["../../etc/passwd", "ABCDEF0123", "abc", "", "ab/cdef0123"])
def test_bad_keys_refused(tmp_path, key):
    with pytest.raises(ValueError):
        OutputCache(tmp_path).path_for(key, "jpg")


@pytest.mark.parametrize("ext", ["", "../x", "j/pg", "a" * 11, "tar.gz"])
def test_bad_extensions_refused(tmp_path, ext):
    with pytest.raises(ValueError):
        OutputCache(tmp_path).path_for(KEY, ext)


def test_put_get_roundtrip(tmp_path):
    oc = OutputCache(tmp_path / "c")
    assert oc.get(KEY, "jpg") is None
    path = oc.put(KEY, b"jpeg bytes", "jpg")
    assert path == oc.path_for(KEY, "jpg")
    assert oc.get(KEY, "jpg") == path
    assert path.read_bytes() == b"jpeg bytes"
    assert oc.get(KEY, "png") is None  # extension is part of the entry


def test_empty_entries_are_not_complete(tmp_path):
    oc = OutputCache(tmp_path / "c")
    write(oc.path_for(KEY, "jpg"), b"")
    assert oc.get(KEY, "jpg") is None
    with pytest.raises(CacheError):
        oc.put(KEY, b"", "jpg")
    empty = write(tmp_path / "empty.jpg", b"")
    with pytest.raises(CacheError):
        oc.put_file(KEY, empty, "jpg")
    assert list(oc.path_for(KEY, "jpg").parent.iterdir()) == [oc.path_for(KEY, "jpg")]  # no tmp left


def test_put_file_copies(tmp_path):
    src = write(tmp_path / "out.webp", os.urandom(200_000))
    oc = OutputCache(tmp_path / "c")
    path = oc.put_file(KEY, src, "webp")
    assert path.read_bytes() == src.read_bytes()
    assert oc.get(KEY, "webp") == path
    with pytest.raises(BlogrotoError, match="nope.webp"):
        oc.put_file(KEY, tmp_path / "nope.webp", "webp")


def test_concurrent_writers_of_one_key(tmp_path):
    oc = OutputCache(tmp_path / "c")
    data = os.urandom(500_000)
    errors = []

    def writer():
        try:
            for _ in range(5):
                oc.put(KEY, data, "png")
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer) for _ in range(4)]
    for t in threads:
        t.start()
    for _ in range(50):
        got = oc.get(KEY, "png")
        if got is not None:
            assert got.read_bytes() == data  # never a torn entry
    for t in threads:
        t.join()
    assert not errors
    assert list(oc.entries()) == [oc.path_for(KEY, "png")]


def test_entries_skip_tmp_files_and_remove_except(tmp_path):
    oc = OutputCache(tmp_path / "c")
    keys = [cache_key(i=i) for i in range(6)]
    paths = [oc.put(k, b"data%d" % i, "jpg") for i, k in enumerate(keys)]
    # Leftovers of killed writers: one old, one fresh (its writer may still be running).
    old_tmp = write(paths[0].parent / f"{TMP_PREFIX}old", b"partial")
    fresh_tmp = write(paths[1].parent / f"{TMP_PREFIX}fresh", b"partial")
    old_root_tmp = write(tmp_path / "c" / f"{TMP_PREFIX}index", b"{")
    hour_ago = time.time() - cache.STALE_TMP_SECONDS - 10
    os.utime(old_tmp, (hour_ago, hour_ago))
    os.utime(old_root_tmp, (hour_ago, hour_ago))

    assert sorted(oc.entries()) == sorted(paths)

    keep = {paths[0], paths[2]}
    assert oc.remove_except(keep) == 4
    assert sorted(oc.entries()) == sorted(keep)
    assert oc.get(keys[0], "jpg") == paths[0] and oc.get(keys[1], "jpg") is None
    assert not old_tmp.exists() and not old_root_tmp.exists()
    assert fresh_tmp.exists()
    # Fan-out folders left empty are removed; ones still holding something are not.
    for p in paths:
        assert p.parent.exists() == (p in keep or p.parent == fresh_tmp.parent)


def test_remove_except_on_missing_cache(tmp_path):
    oc = OutputCache(tmp_path / "none")
    assert list(oc.entries()) == []
    assert oc.remove_except(set()) == 0
