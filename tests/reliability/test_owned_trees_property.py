"""Property: whatever the site's symlinks and hard links, and whatever a restored cache or manifest
holds, build / rebuild / gc / prune change nothing outside the output and cache folders and never
touch an author's file.

Hypothesis draws a site (posts, images, symlinks inside and out of it, to files and folders,
relative and absolute, hard links shared with files outside), hostile cache and output contents
(symlinks planted where blogroto writes, manifests naming paths outside the output or bad keys,
garbage entries, forged ledgers, foreign files) and a sequence of commands. The network is the
reliability suite's fake (no TensorFlow). Everything outside OUT and CACHE (the site and a folder
of someone else's files that the links point into) is hashed before and after.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.reliability.kit import Kit, cli, photo, tree_state, write

LINK_SPOTS = ["assets/algorotoscope", "assets", "assets/img/linked.jpg", "_posts/2024-05-01-linked.md", "media",
              "assets/img/sub", "index2.md", "_posts"]
IN_SITE_TARGETS = ["assets", "assets/img", "assets/img/good.jpg", "index.md", "_posts/2024-01-01-good.md", "."]
OUTSIDE_TARGETS = ["dir", "dir/photo.jpg", "dir/notes.md", "missing", "dir/sub"]
HOSTILE_RELS = ["../site/index.md", "../site/_posts/2024-01-01-good.md", "../outside/dir/photo.jpg",
                "assets/../../outside/dir/notes.md", "/OUTSIDE/dir/photo.jpg", "./index.md", "a//b", ""]

site_link = st.tuples(st.just("link"), st.sampled_from(LINK_SPOTS),
                      st.one_of(st.tuples(st.just("in"), st.sampled_from(IN_SITE_TARGETS)),
                                st.tuples(st.just("out"), st.sampled_from(OUTSIDE_TARGETS))),
                      st.booleans())  # relative?
site_image = st.tuples(st.just("image"), st.integers(0, 3))
site_hardlink = st.tuples(st.just("hardlink"), st.sampled_from(["assets/img/hl.jpg", "assets/shared.jpg"]),
                          st.sampled_from(["outside", "inside"]))
site_op = st.one_of(site_link, site_image, site_hardlink)

hostile_op = st.one_of(
    st.tuples(st.just("manifest_file"), st.sampled_from(HOSTILE_RELS)),
    st.tuples(st.just("manifest_image"), st.sampled_from(["../../x", "zz", "ab" * 40 + "/", "0" * 8]),
              st.sampled_from(["jpg", "../jpg", "", "j" * 20])),
    st.tuples(st.just("cache_link"), st.sampled_from(["objects", "remote", "builds", "entries.json",
                                                      "stat-index.json", "build.lock", "objects/ab"]),
              st.sampled_from(OUTSIDE_TARGETS)),
    st.tuples(st.just("out_link"), st.sampled_from(["assets/algorotoscope", "assets", "index.md",
                                                    "assets/algorotoscope/x.jpg"]),
              st.sampled_from(OUTSIDE_TARGETS)),
    st.tuples(st.just("garbage_entry"), st.sampled_from(["truncate", "garbage", "swap"])),
    st.tuples(st.just("foreign_cache_file"), st.sampled_from(["objects/ab/abcdef0123.jpg", "remote/cd/" + "cd" * 32,
                                                              "remote/team/ceo.jpg", "objects/zz"])),
    st.tuples(st.just("forged_ledger"), st.sampled_from(["objects/ab/abcdef0123.jpg", "../outside/dir/photo.jpg",
                                                         "remote/cd/" + "cd" * 32])),
)
command = st.sampled_from(["build", "build --force", "build --prune", "gc", "build --check"])


def _outside(base: Path) -> Path:
    out = base / "outside"
    write(out / "dir/photo.jpg", photo(seed=91))
    write(out / "dir/notes.md", "---\nalgorotoscope: tiny\n---\n![x](/assets/img/good.jpg)\n")
    write(out / "dir/sub/deep.txt", "deep")
    write(out / "solo.jpg", photo(seed=92))
    return out


def _link(at: Path, target: Path, relative: bool) -> None:
    at.parent.mkdir(parents=True, exist_ok=True)
    if os.path.lexists(at):
        if at.is_dir() and not at.is_symlink():
            shutil.rmtree(at)
        else:
            at.unlink()
    os.symlink(os.path.relpath(target, at.parent) if relative else target, at)


def _apply_site_op(kit: Kit, outside: Path, op) -> None:
    if op[0] == "image":
        n = op[1]
        kit.write(f"assets/img/p{n}.jpg", photo(seed=40 + n))
        kit.post(f"p{n}", f"![p{n}](/assets/img/p{n}.jpg)\n\n![l](/assets/img/linked.jpg)\n\n![m](/media/img/good.jpg)\n")
    elif op[0] == "link":
        _, spot, (where, target), relative = op
        dest = (kit.root / target) if where == "in" else (outside / target)
        if where == "in" and (spot == target or spot.startswith(target + "/") or target == "."):
            dest = kit.root / "assets/img/good.jpg" if target != "." else kit.root
        _link(kit.root / spot, dest, relative)
    elif op[0] == "hardlink":
        _, spot, source = op
        src = outside / "solo.jpg" if source == "outside" else kit.root / "assets/img/good.jpg"
        at = kit.root / spot
        at.parent.mkdir(parents=True, exist_ok=True)
        if not os.path.lexists(at) and src.is_file() and not src.is_symlink():
            os.link(src, at)
            kit.post("hl" + spot.replace("/", "-").replace(".", "-"), f"![h](/{spot})\n")


def _apply_hostile_op(kit: Kit, outside: Path, op) -> None:
    builds = sorted((kit.cache / "builds").glob("*.json")) if (kit.cache / "builds").is_dir() \
        and not (kit.cache / "builds").is_symlink() else []
    kind = op[0]
    if kind in ("manifest_file", "manifest_image") and builds and not builds[0].is_symlink():
        try:
            data = json.loads(builds[0].read_bytes())
        except ValueError:
            return
        if kind == "manifest_file":
            rel = op[1].replace("/OUTSIDE", str(outside))
            data.setdefault("files", {})[rel] = {"st": [1, 2, 3], "k": "static", "kind": None, "out": {rel: [1, 2, 3]}}
            data.setdefault("images", {})[rel or "x"] = ["ab" * 16, "jpg"]
            if isinstance(data.get("files", {}).get("index.md"), dict):
                data["files"]["index.md"].setdefault("out", {})[rel] = [1, 2, 3]
        else:
            name = next(iter(data.get("images") or {"n.jpg": None}))
            data.setdefault("images", {})[name] = [op[1], op[2]]
        builds[0].write_text(json.dumps(data))
    elif kind == "cache_link":
        _link(kit.cache / op[1], outside / op[2], False)
    elif kind == "out_link":
        if kit.out.is_dir():
            _link(kit.out / op[1], outside / op[2], False)
    elif kind == "garbage_entry":
        objects = kit.cache / "objects"
        entries = sorted(p for p in objects.rglob("*.*") if p.is_file() and not p.is_symlink()) \
            if objects.is_dir() and not objects.is_symlink() else []
        if entries:
            victim = entries[0]
            if op[1] == "truncate":
                with open(victim, "r+b") as handle:
                    handle.truncate(max(1, victim.stat().st_size // 2))
            elif op[1] == "garbage":
                victim.write_bytes(os.urandom(500))
            else:
                tmp = victim.with_name("x.tmp")
                tmp.write_bytes(photo(seed=5))
                os.replace(tmp, victim)
    elif kind == "foreign_cache_file":
        path = kit.cache / op[1]
        try:
            if not any(p.is_symlink() for p in [path, *path.parents] if kit.cache in [p, *p.parents]):
                write(path, photo(seed=17))
        except OSError:
            pass
    elif kind == "forged_ledger":
        path = kit.cache / "entries.json"
        if path.is_symlink():
            return
        try:
            data = json.loads(path.read_bytes())
        except (OSError, ValueError):
            data = {"format": 1, "entries": {}}
        data.setdefault("entries", {})[op[1]] = [1, 2, 3, "0" * 64]
        write(path, json.dumps(data))


def _guarded_state(base: Path) -> dict:
    """Everything under base except the output and cache folders blogroto owns."""
    return {rel: value for rel, value in tree_state(base).items()
            if not (rel in ("out", "cache", "out2") or rel.startswith(("out/", "cache/", "out2/")))}


@settings(max_examples=40, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(site_ops=st.lists(site_op, max_size=5), hostile=st.lists(hostile_op, max_size=4),
       commands=st.lists(command, min_size=1, max_size=4))
def test_nothing_outside_output_and_cache_ever_changes(tmp_path, fake_stylizer, site_ops, hostile, commands):
    base = Path(tempfile.mkdtemp(dir=tmp_path))
    kit = Kit(base)
    outside = _outside(base)
    for op in site_ops:
        try:
            _apply_site_op(kit, outside, op)
        except OSError:
            pass  # an op that the tree drawn so far makes impossible (a folder replaced by a link ...)
    before = _guarded_state(base)
    first = cli(*kit.args("-q"))
    assert "Traceback" not in first.err, first.err
    assert first.code in (0, 1), first.text
    for op in hostile:
        try:
            _apply_hostile_op(kit, outside, op)
        except OSError:
            pass
    before_hostile_outside = _guarded_state(base)  # the hostile files themselves live in out/ and cache/
    assert before_hostile_outside == before
    for cmd in commands:
        words = cmd.split()
        if words[0] == "gc":
            result = cli("gc", kit.root, "--out", kit.out, "--cache", kit.cache)
        else:
            result = cli(*kit.args(*words[1:], "-q"))
        assert "Traceback" not in result.err, (cmd, result.err)
        assert result.code in (0, 1), (cmd, result.text)
        assert _guarded_state(base) == before, f"{cmd} changed something outside the output and cache"
    # and a last plain build leaves an output without symlinks, every stylized image whole
    result = cli(*kit.args("-q"))
    assert "Traceback" not in result.err and result.code in (0, 1), result.text
    assert _guarded_state(base) == before
    if kit.out.is_dir():
        assert not [p for p in kit.out.rglob("*") if p.is_symlink()]
