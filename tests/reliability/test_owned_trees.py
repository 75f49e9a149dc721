"""The output and the cache are the only folders blogroto writes or deletes in, and only what it made.

Each class below was a real escape before `blogroto.owned_tree.OwnedTree` (every write and delete in the
output and cache, walked with openat/O_NOFOLLOW from the folder's root), the validated manifest,
the cache's `EntryLedger` (what blogroto wrote there, with its sha256) and the refusal of outputs
and caches inside the author's content. Every build here runs under the kit's guard (the whole
site hashed before and after); the folders outside the site are guarded the same way.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from tests.reliability.kit import (
    Kit,
    cli,
    cli_command,
    decodes_fully,
    photo,
    snapshot_output,
    subprocess_env,
    tree_state,
    write,
)

IMAGES = "assets/algorotoscope"


def outside_folder(kit: Kit, name: str = "outside") -> tuple:
    """A folder outside the site, output and cache with a few files of someone's; and its state."""
    folder = kit.base / name
    write(folder / "keep.jpg", photo(seed=77))
    write(folder / "notes.txt", "not blogroto's")
    return folder, tree_state(folder)


def manifest_of(kit: Kit):
    paths = sorted((kit.cache / "builds").glob("*.json"))
    assert len(paths) == 1, paths
    return paths[0], json.loads(paths[0].read_bytes())


def reference_output(kit: Kit) -> dict:
    out, cache = kit.base / "ref" / "out", kit.base / "ref" / "cache"
    result = cli("build", kit.root, "--out", out, "--cache", cache, "-q")
    assert result.code == 0, result.text
    return snapshot_output(out)


# -- symlinks in the site ---------------------------------------------------------------------


@pytest.mark.parametrize("link", ["assets/algorotoscope", "assets"])
def test_symlinked_images_folder_to_outside_is_never_written_through(kit, link):
    outside, state = outside_folder(kit)
    if link == "assets":
        shutil.move(kit.root / "assets", outside / "assets")  # the author's assets live elsewhere
        state = tree_state(outside)
    os.symlink(outside if link == "assets/algorotoscope" else outside / "assets", kit.root / link)
    for args in ((), ("--prune",), ("--force",)):
        result = kit.build(*args)
        assert result.code == 0, result.text
        assert tree_state(outside) == state, "blogroto wrote or deleted outside the output"
    assert not [p for p in kit.out.rglob("*") if p.is_symlink()]
    assert "not published: a symlink" in result.err
    assert cli("gc", kit.root, "--out", kit.out, "--cache", kit.cache).code == 0
    assert tree_state(outside) == state


def test_relative_assets_symlink_inside_the_site_builds(kit):
    shutil.move(kit.root / "assets", kit.root / "static")
    os.symlink("static", kit.root / "assets")  # a relative link (was: "File exists", whole build aborted)
    result = kit.build()
    assert result.code == 0, result.text
    kit.assert_good_post_built()
    assert (kit.out / "static/img/good.jpg").is_file() and not (kit.out / "assets").is_symlink()
    assert kit.build().code == 0


def test_symlink_planted_in_the_output_is_never_followed(kit):
    """An output from an older blogroto (which mirrored links), or tampered with: a symlink inside it
    where blogroto writes is removed as a link, never written or deleted through."""
    assert kit.build().code == 0
    outside, state = outside_folder(kit)
    shutil.rmtree(kit.out / IMAGES)
    os.symlink(outside, kit.out / IMAGES)
    (kit.out / "index.md").unlink()
    os.symlink(outside / "notes.txt", kit.out / "index.md")
    result = kit.build("--force", "--prune")
    assert result.code == 0, result.text
    assert tree_state(outside) == state
    assert not (kit.out / IMAGES).is_symlink() and not (kit.out / "index.md").is_symlink()
    kit.assert_good_post_built()


def test_symlinks_planted_in_the_cache_are_never_followed(kit):
    outside, state = outside_folder(kit)
    kit.cache.mkdir(parents=True)
    os.symlink(outside, kit.cache / "objects")
    os.symlink(outside, kit.cache / "builds")
    os.symlink(outside / "notes.txt", kit.cache / "build.lock")
    os.symlink(outside / "notes.txt", kit.cache / "stat-index.json")
    result = kit.build("--prune")
    assert result.code == 0, result.text
    assert cli("gc", kit.root, "--out", kit.out, "--cache", kit.cache).code == 0
    assert tree_state(outside) == state
    kit.assert_good_post_built()


# -- the manifest and cache are untrusted input ---------------------------------------------------


def test_hostile_manifest_paths_are_refused(kit):
    outside, state = outside_folder(kit)
    assert kit.build().code == 0
    path, data = manifest_of(kit)
    sig = [1, 2, 3]
    for rel in ("../site/_posts/2024-01-01-good.md", "../site/index.md", str(outside / "notes.txt"),
                "assets/../../outside/keep.jpg", "./index.md"):
        data["files"][rel] = {"st": sig, "k": "static", "kind": None, "out": {rel: sig}}
    data["files"]["index.md"]["out"]["../outside/keep.jpg"] = sig
    data["images"]["../../outside/keep.jpg"] = ["ab" * 16, "jpg"]
    data.setdefault("catalog", {})["files"] = {"../outside/notes.txt": sig}
    path.write_text(json.dumps(data))
    site_state = tree_state(kit.root)
    result = kit.build()
    assert result.code == 0, result.text
    assert "ignored" in result.err and "build manifest" in result.err
    assert tree_state(outside) == state and tree_state(kit.root) == site_state
    assert cli("gc", kit.root, "--out", kit.out, "--cache", kit.cache).code == 0
    assert tree_state(outside) == state
    kit.assert_good_post_built()


def test_oversized_cache_records_are_not_read(kit, monkeypatch):
    """A multi-gigabyte file planted as the manifest, ledger or stat index is refused unread
    (here with the limit lowered to keep the test small): one warning, and a build as from scratch."""
    from blogroto import owned_tree
    from blogroto.build.cache import INDEX_NAME
    from blogroto.build.ledger import LEDGER_NAME

    assert kit.build().code == 0
    monkeypatch.setattr(owned_tree, "RECORD_MAX_BYTES", 4096)
    path, data = manifest_of(kit)
    data["padding"] = "x" * 5000
    path.write_text(json.dumps(data))
    for name in (LEDGER_NAME, INDEX_NAME):
        (kit.cache / name).write_text(json.dumps({"format": 1, "entries": {}, "padding": "x" * 5000}))
    result = kit.build()
    assert result.code == 0, result.text
    assert "larger than 4,096 bytes" in result.err and "build manifest" in result.err
    kit.assert_good_post_built()


def test_non_hex_image_key_in_the_manifest(kit):
    assert kit.build().code == 0
    path, data = manifest_of(kit)
    name = next(iter(data["images"]))
    data["images"][name] = ["../../../etc/passwd", "jpg"]
    data["images"]["x.jpg"] = ["not-hex!", "../jpg"]
    path.write_text(json.dumps(data))
    result = cli("gc", kit.root, "--out", kit.out, "--cache", kit.cache)
    assert result.code == 0 and "Traceback" not in result.err, result.text
    assert kit.build("--prune").code == 0
    kit.assert_good_post_built()


@pytest.mark.parametrize("damage", ["truncate", "garbage", "swap", "empty"])
def test_damaged_cache_entry_is_never_published(kit, damage):
    kit.write("assets/img/other.jpg", photo(seed=5))
    kit.post("other", "![o](/assets/img/other.jpg)\n")
    assert kit.build().code == 0
    ref = reference_output(kit)
    entries = sorted(p for p in (kit.cache / "objects").rglob("*.*"))
    assert len(entries) == 2
    victim, other = entries
    if damage == "truncate":  # in place: the output's hard link sees it too
        with open(victim, "r+b") as handle:
            handle.truncate(victim.stat().st_size // 2)
    elif damage == "garbage":
        size = victim.stat().st_size
        with open(victim, "r+b") as handle:
            handle.write(os.urandom(size))
    elif damage == "empty":
        victim.write_bytes(b"")
    else:  # another entry's bytes under this entry's name (a new inode)
        tmp = victim.with_name("swap.tmp")
        shutil.copyfile(other, tmp)
        os.replace(tmp, victim)
    for args in (("--force",), ()):
        result = kit.build(*args)
        assert result.code == 0, result.text
        assert snapshot_output(kit.out) == ref, "a damaged cache entry was published"
    # a second output sharing the cache links the entries anew: verified, and correct
    other_out = kit.base / "out2"
    assert cli("build", kit.root, "--out", other_out, "--cache", kit.cache, "-q").code == 0
    assert snapshot_output(other_out) == ref
    for path in (kit.out / IMAGES).iterdir():
        assert decodes_fully(path)


def test_no_op_build_does_not_read_cache_entries(kit, monkeypatch):
    assert kit.build().code == 0
    import hashlib

    real = hashlib.file_digest
    calls = []
    monkeypatch.setattr(hashlib, "file_digest", lambda f, d: calls.append(f) or real(f, d))
    result = kit.build()
    read = [f.name for f in calls if str(kit.cache) in str(f.name) or str(kit.out) in str(f.name)]
    assert result.code == 0 and read == [], read


# -- gc and prune delete only what blogroto made --------------------------------------------------


@pytest.mark.parametrize("flag,rel", [("--cache", "assets"), ("--cache", "_posts"), ("--out", "_posts/generated"),
                                      ("--cache", ".git"), ("--out", "assets/generated"), ("--cache", "_data")])
def test_output_or_cache_inside_author_content_is_refused(kit, flag, rel):
    kit.write("assets/remote/team/ceo.jpg", photo(seed=9))
    kit.write("_data/authors.yml", "a: 1\n")
    args = {"--out": kit.out, "--cache": kit.cache}
    args[flag] = kit.root / rel
    for command in ("build", "gc"):
        before = tree_state(kit.root)
        result = cli(command, kit.root, "--out", args["--out"], "--cache", args["--cache"])
        assert tree_state(kit.root) == before
        assert result.code == 2 and "inside the site's own content" in result.err, result.text


def test_gc_deletes_only_files_blogroto_recorded(kit):
    assert kit.build().code == 0
    foreign = {
        "objects/ab/abcdef0123456789.jpg": photo(seed=3),
        "objects/ab/not-a-key.txt": b"x",
        "remote/cd/" + "cd" * 32: photo(seed=4),
        "remote/team/ceo.jpg": photo(seed=9),
    }
    for rel, data in foreign.items():
        write(kit.cache / rel, data)
    write(kit.out / IMAGES / "someone-tiny-0123456789.jpg", photo(seed=6))
    result = cli("gc", kit.root, "--out", kit.out, "--cache", kit.cache)
    assert result.code == 0, result.text
    for rel, data in foreign.items():
        assert (kit.cache / rel).read_bytes() == data, rel
    assert (kit.out / IMAGES / "someone-tiny-0123456789.jpg").is_file()
    assert "did not record writing" in result.out
    # what blogroto did write and nothing references any more is still collected
    kit.write("_posts/2024-01-01-good.md", "---\ntitle: Good\n---\nno images now\n")
    result = kit.build("--prune")
    assert result.code == 0 and ", 1 pruned" in result.out, result.text
    assert (kit.cache / "objects/ab/abcdef0123456789.jpg").is_file()


# -- the output removed during a build -------------------------------------------------------------


@pytest.mark.parametrize("how", ["rmtree", "empty"])
def test_output_removed_during_a_build_is_rebuilt(kit, fake_stylizer, how):
    kit.write("assets/img/late.jpg", photo(seed=8))
    kit.post("late", "![l](/assets/img/late.jpg)\n")
    assert kit.build().code == 0
    kit.write("assets/img/late.jpg", photo(seed=12))  # a change, so the next build stylizes
    original = fake_stylizer.stylize_file
    done = []

    def remove_output(self, *args, **kwargs):
        if not done:
            done.append(1)
            if how == "rmtree":
                shutil.rmtree(kit.out)
            else:
                for entry in list(kit.out.iterdir()):
                    shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
        return original(self, *args, **kwargs)

    fake_stylizer.stylize_file = remove_output
    result = kit.build()
    fake_stylizer.stylize_file = original
    assert result.code in (0, 1), result.text
    assert "building it again from scratch" in result.err or "during the build" in result.err, result.err
    ref = reference_output(kit)
    if result.code == 0:
        assert snapshot_output(kit.out) == ref
    again = kit.build()
    assert again.code == 0, again.text
    assert snapshot_output(kit.out) == ref


# -- two caches, one output -----------------------------------------------------------------------


def test_two_caches_on_one_output_say_what_happened(kit):
    assert kit.build().code == 0
    other_cache = kit.base / "cache2"
    result = cli("build", kit.root, "--out", kit.out, "--cache", other_cache)
    assert result.code == 0, result.text
    assert "not made by blogroto" not in result.err
    assert "another cache" in result.err


def test_two_caches_on_one_output_at_once(kit):
    for i in range(6):
        kit.write(f"assets/photos/p{i}.jpg", photo((64, 48), seed=300 + i))
    kit.post("photos", "".join(f"![p{i}](/assets/photos/p{i}.jpg)\n\n" for i in range(6)))
    procs = [subprocess.Popen(cli_command("build", kit.root, "--out", kit.out, "--cache", kit.base / f"c{n}", "-q",
                                          fake=True),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=subprocess_env(BLOGROTO_TEST_FAKE_DELAY="0.05")) for n in range(2)]
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0 and "not made by blogroto" not in err and "Traceback" not in err, err
    assert snapshot_output(kit.out) == reference_output(kit)


def test_fifos_planted_in_the_cache_do_not_hang_the_build(kit):
    assert kit.build().code == 0
    path, _data = manifest_of(kit)
    path.unlink()
    os.mkfifo(path)
    os.mkfifo(kit.cache / "entries.json.tmp")
    (kit.cache / "entries.json").unlink()
    os.mkfifo(kit.cache / "entries.json")
    result = kit.build("--force")
    assert result.code == 0, result.text
    kit.assert_good_post_built()
    assert cli("gc", kit.root, "--out", kit.out, "--cache", kit.cache).code == 0
