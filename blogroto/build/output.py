"""The output folder blogroto owns, the one place a build writes or deletes in it: its marker, the
lock one build holds while it writes, write-if-changed, link-or-copy and the removal of stale files.
Every write goes through the build's OwnedTree (blogroto.owned_tree): never through a symlink, never
outside the folder."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat as stat_mod
from pathlib import Path
from typing import TYPE_CHECKING

from blogroto.build.files import walk_files
from blogroto.build.plan import IMAGES_DIR
from blogroto.errors import BlogrotoError, ConfigError
from blogroto.fsutil import (
    TMP_PREFIX,
    describe_os_error,
)
from blogroto.owned_tree import TreeVanishedError, is_safe_rel

if TYPE_CHECKING:  # pragma: no cover
    from blogroto.build.state import BuildState

OUTPUT_MARKER = ".blogroto-output"  # marks a folder blogroto owns, so it may delete files in it
LOCK_NAME = "build.lock"


@contextlib.contextmanager
def output_lock(out: Path):
    """An flock on the output folder itself, so builds sharing an output (even with different
    caches) take turns. The folder is created here when missing (its parents too)."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd = os.open(out, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR, errno.EEXIST):
            raise ConfigError("the output path exists and is not a folder", out) from exc
        raise BlogrotoError(f"cannot use the output folder: {describe_os_error(exc)}", out) from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def check_intact(state: BuildState) -> None:
    """The output folder and its marker are still there: nobody removed or emptied the output
    while this build ran (else its manifest would describe files that are gone)."""
    if state.check:
        return
    if not state.tree.root_intact():
        raise TreeVanishedError("the output folder was removed or replaced during the build", state.out)
    if state.tree.lstat(OUTPUT_MARKER) is None:
        raise TreeVanishedError(f"the output folder was emptied during the build (its marker {OUTPUT_MARKER} "
                                f"vanished)", state.out)


def check_output_folder(state: BuildState) -> None:
    out = state.out
    if out.exists() and not out.is_dir():
        raise ConfigError("the output path exists and is not a folder", out)
    if out.is_symlink():
        raise ConfigError("the output path is a symlink; give the folder it points to", out)
    if state.check and not out.is_dir():
        return
    ident = state.tree.pin()
    marker = state.tree.lstat(OUTPUT_MARKER)
    if marker is not None and not stat_mod.S_ISREG(marker.st_mode):
        raise ConfigError(f"the output folder's marker {OUTPUT_MARKER} is not a file; it was not written by "
                          f"blogroto", out)
    if marker is None and ident != state.reclaim:
        # Temporary files of a killed blogroto writer do not make a folder foreign.
        foreign = sorted(name for name, _st in state.tree.scan() if not name.startswith(TMP_PREFIX))
        if foreign:
            # Never take over a folder blogroto did not make: the build deletes what it did not write.
            raise ConfigError(f"the output folder is not empty and was not made by blogroto (it has no "
                              f"{OUTPUT_MARKER} marker and holds {', '.join(foreign[:3])}"
                              f"{', ...' if len(foreign) > 3 else ''}); choose another folder or empty it", out)
    if marker is None:
        if not state.check:
            state.tree.write_bytes(OUTPUT_MARKER, b"This folder is written by `blogroto build`; do not edit.\n")
        return
    if not state.old and not state.opts.force and not state.check and ident != state.reclaim \
            and any(n != OUTPUT_MARKER and not n.startswith(TMP_PREFIX) for n, _st in state.tree.scan()):
        # Made by blogroto, but this cache has no record of it: another cache built it (or this
        # one was lost). Say so; this build takes it over and rebuilds what it cannot vouch for.
        state.report.warnings.append(
            f"{out}: this output was built by blogroto with another cache folder (or this cache, "
            f"{state.cache_dir}, lost its record of it); taking it over. Builds of one output should share one "
            f"cache: with two, each rebuilds what the other wrote")


def write_if_changed(state: BuildState, out_rel: str, data: bytes) -> None:
    if state.tree.holds(out_rel, data):
        return
    state.mark_changed(out_rel)
    if not state.check:
        state.tree.write_bytes(out_rel, data)
    state.out_stats.pop(out_rel, None)


def link_or_copy(state: BuildState, src: Path, out_rel: str, src_st: os.stat_result | None = None, *,
                  follow: bool = True) -> None:
    """Make `out_rel` a hard link to `src` (a copy where links are impossible); never written
    through: the new link replaces the old name atomically, so a source is never modified.
    `follow=False` for cache entries: a symlink there is never published."""
    src_st = src_st or os.stat(src, follow_symlinks=follow)
    cur = state.tree.lstat(out_rel)
    if cur is not None and (cur.st_ino, cur.st_dev) == (src_st.st_ino, src_st.st_dev):
        return
    if cur is not None and _same_content(state, src, out_rel, src_st, cur):
        return  # an equal copy (e.g. across file systems): compare before writing
    state.mark_changed(out_rel)
    if state.check:
        return
    try:
        state.tree.link_or_copy(src, out_rel, follow=follow, src_st=src_st)
    except OSError as exc:
        raise BlogrotoError(f"cannot link into the output: {describe_os_error(exc)}", state.out / out_rel) from exc
    state.out_stats.pop(out_rel, None)


def _same_content(state: BuildState, src: Path, out_rel: str, sta: os.stat_result, stb: os.stat_result) -> bool:
    if not stat_mod.S_ISREG(stb.st_mode) or sta.st_size != stb.st_size:
        return False
    try:
        with open(src, "rb") as fa, state.tree.open_read(out_rel) as fb:
            while True:
                x, y = fa.read(1 << 20), fb.read(1 << 20)
                if x != y:
                    return False
                if not x:
                    return True
    except (OSError, BlogrotoError):
        return False


def remove_stale(state: BuildState) -> None:
    """Delete what an earlier build wrote and this one did not (found by manifest, or by walking the
    output when there is none); never the marker, never outside the output."""
    wanted = {o for e in state.new_files.values() for o in e.get("out", {})}
    wanted.update(f"{IMAGES_DIR}/{n}" for n in state.images)
    old = {o for e in state.old_files.values() for o in e.get("out", {})}
    old.update(f"{IMAGES_DIR}/{n}" for n in state.old.get("images", {}))
    old.update(rel for rel, e in state.old_files.items() if e.get("k") == "link")
    wanted.update(rel for rel, e in state.new_files.items() if e.get("k") == "link")
    wanted.update(state.catalog.files if state.catalog else ())
    old.update((state.old.get("catalog") or {}).get("files") or ())
    if not state.old and state.out.is_dir():
        # No manifest (first build, --force, lost cache): find strays by walking the output.
        old.update(walk_files(state.out))
    for rel in sorted(old - wanted):
        if rel == OUTPUT_MARKER or not is_safe_rel(rel):
            continue
        if state.tree.lstat(rel) is None:
            continue
        (state.report.would_change if state.check else state.report.removed).append(rel)
        state.changed = True
        if not state.check and state.tree.remove(rel) and "/" in rel:
            state.tree.remove_empty_dirs(rel.rsplit("/", 1)[0])
