"""A full disk and a read-only output or cache: a clear error, nothing torn, the next build heals.

Real file systems where we may mount them (a tiny tmpfs; `mount -o remount,ro`), skipped where
we may not; the same faults injected with monkeypatch always run.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.reliability.kit import (
    Kit,
    assert_consistent,
    cli,
    leftovers,
    photo,
    snapshot_objects,
    snapshot_output,
    tree_state,
)

N_IMAGES = 6


def populate(kit: Kit) -> None:
    """Photos big enough to fill a small file system; two posts showing them."""
    for i in range(N_IMAGES):
        kit.write(f"assets/photos/p{i}.jpg", photo((320, 240), seed=100 + i, quality=95))
    half = N_IMAGES // 2
    for n, (a, b) in enumerate(((0, half), (half, N_IMAGES))):
        kit.post(f"photos{n}", "".join(f"![p{i}](/assets/photos/p{i}.jpg)\n\n" for i in range(a, b)))


def reference(kit: Kit, name: str) -> tuple[dict, dict]:
    """A clean build of the site as it is now, elsewhere: (output snapshot, cache objects)."""
    out, cache = kit.base / f"ref-{name}" / "out", kit.base / f"ref-{name}" / "cache"
    before = tree_state(kit.root)
    result = cli("build", kit.root, "--out", out, "--cache", cache, "-q")
    assert result.code == 0, result.text
    assert tree_state(kit.root) == before
    return snapshot_output(out), snapshot_objects(cache)


@pytest.fixture
def mount_tmpfs():
    """mount_tmpfs(path, size) -> path: a tmpfs of `size` there (unmounted afterwards); skips if not permitted."""
    mounted = []

    def mount(path: Path, size: str) -> Path:
        path.mkdir(parents=True, exist_ok=True)
        proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({proc.stderr.strip()}); the monkeypatched tests cover this")
        mounted.append(path)
        return path

    yield mount
    for path in reversed(mounted):
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def remount(path: Path, options: str) -> None:
    proc = subprocess.run(["mount", "-o", f"remount,{options}", str(path)], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot remount {options}: {proc.stderr.strip()}")


def assert_clear_error(result, *fragments: str) -> str:
    assert result.code == 1, result.text
    assert "Traceback" not in result.err
    errors = result.lines("error")
    assert errors, result.err
    assert any(all(f in e for f in fragments) for e in errors), errors
    return errors[0]


# -- disk full --------------------------------------------------------------------------------


def test_full_disk_under_the_output(kit, mount_tmpfs):
    populate(kit)
    ref = reference(kit, "full")
    mount_tmpfs(kit.out, "400k")  # the output's copies alone need more than this
    result = kit.build()
    assert_clear_error(result, str(kit.out), "cannot write: no space left on device")
    assert leftovers(kit.out, kit.cache) == []
    assert_consistent(kit.out, kit.cache, ref)
    remount(kit.out, "size=64m")
    assert kit.build().code == 0
    assert_consistent(kit.out, kit.cache, ref, complete=True)


def test_full_disk_under_the_cache(kit, mount_tmpfs):
    populate(kit)
    ref = reference(kit, "full-cache")
    mount_tmpfs(kit.cache, "64k")
    result = kit.build()
    assert_clear_error(result, "no space left on device")
    assert leftovers(kit.out, kit.cache) == []
    assert_consistent(kit.out, kit.cache, ref, source=kit.root, degraded=("filters/",))
    remount(kit.cache, "size=64m")
    assert kit.build().code == 0
    assert_consistent(kit.out, kit.cache, ref, complete=True)


class Budget:
    """Writes through blogroto.fsutil fail with ENOSPC once `limit` bytes have been written."""

    def __init__(self, limit: int):
        self.limit, self.used = limit, 0

    def wrap(self, real_fdopen):
        budget = self

        class Handle:
            def __init__(self, handle):
                self._h = handle

            def write(self, data):
                budget.used += len(data)
                if budget.used > budget.limit:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                return self._h.write(data)

            def __getattr__(self, name):
                return getattr(self._h, name)

            def __enter__(self):
                self._h.__enter__()
                return self

            def __exit__(self, *exc):
                return self._h.__exit__(*exc)

        return lambda fd, *a, **k: Handle(real_fdopen(fd, *a, **k))


@pytest.mark.parametrize("limit", [0, 2_000, 30_000, 120_000])
def test_full_disk_injected(kit, monkeypatch, limit):
    """Same as above without mounting: fsutil's writes hit ENOSPC after `limit` bytes."""
    from blogroto import fsutil

    populate(kit)
    ref = reference(kit, f"budget-{limit}")
    budget = Budget(limit)
    with monkeypatch.context() as m:
        m.setattr(fsutil.os, "fdopen", budget.wrap(os.fdopen))
        result = kit.build()
    assert_clear_error(result, "cannot write: no space left on device")
    assert leftovers(kit.out, kit.cache) == []
    assert_consistent(kit.out, kit.cache, ref, source=kit.root, degraded=("filters/",))
    assert kit.build().code == 0
    assert_consistent(kit.out, kit.cache, ref, complete=True)


# -- read-only --------------------------------------------------------------------------------


def edit_site(kit: Kit) -> None:
    """Changes that make the next build write: an edited post, a new photo in a new folder."""
    kit.write("assets/new/extra.jpg", photo((64, 48), seed=7))
    kit.post("photos0", "![p0](/assets/photos/p0.jpg)\n\n![extra](/assets/new/extra.jpg)\n")


def test_read_only_output(kit, mount_tmpfs):
    populate(kit)
    old = reference(kit, "ro-old")
    mount_tmpfs(kit.out, "64m")
    assert kit.build().code == 0
    edit_site(kit)
    new = reference(kit, "ro-new")
    remount(kit.out, "ro")
    before = tree_state(kit.out)
    result = kit.build()
    assert_clear_error(result, str(kit.out), "read-only file system")
    assert tree_state(kit.out) == before  # not one byte of the output changed
    assert_consistent(kit.out, kit.cache, old, new)
    remount(kit.out, "rw")
    assert kit.build().code == 0
    assert_consistent(kit.out, kit.cache, old, new, complete=True)


def test_read_only_cache(kit, mount_tmpfs):
    populate(kit)
    ref = reference(kit, "ro-cache")
    mount_tmpfs(kit.cache, "64m")
    remount(kit.cache, "ro")
    result = kit.build()
    assert_clear_error(result, str(kit.cache), "read-only file system")
    remount(kit.cache, "rw")
    assert kit.build().code == 0
    assert_consistent(kit.out, kit.cache, ref, complete=True)


def test_read_only_output_injected(kit, monkeypatch):
    """EROFS for every write under the output folder, without mounting anything."""
    from blogroto import fsutil

    populate(kit)
    old = reference(kit, "erofs-old")
    assert kit.build().code == 0
    edit_site(kit)
    new = reference(kit, "erofs-new")
    out = str(kit.out)

    def refuse(name):
        real = getattr(os, name)

        def fn(*args, **kwargs):
            paths = [a for a in args if isinstance(a, (str, os.PathLike))] + list(kwargs.values())
            # blogroto's OwnedTree works relative to folder fds (openat): where does each fd point?
            paths += [os.readlink(f"/proc/self/fd/{v}") for k, v in kwargs.items()
                      if k.endswith("dir_fd") and isinstance(v, int)]
            if name == "open" and not (len(args) > 1 and args[1] & (os.O_WRONLY | os.O_RDWR | os.O_CREAT)):
                return real(*args, **kwargs)
            if any(str(os.fspath(p)).startswith(out) for p in paths if isinstance(p, (str, os.PathLike))):
                raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(paths[-1]))
            return real(*args, **kwargs)

        return fn

    before = tree_state(kit.out)
    with monkeypatch.context() as m:
        for name in ("mkdir", "link", "symlink", "replace", "rename", "unlink", "rmdir", "open"):
            m.setattr(os, name, refuse(name))
        real_mkstemp = fsutil.tempfile.mkstemp

        def mkstemp(*args, dir=None, **kwargs):
            if str(dir).startswith(out):
                raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(dir))
            return real_mkstemp(*args, dir=dir, **kwargs)

        m.setattr(fsutil.tempfile, "mkstemp", mkstemp)
        result = kit.build()
    assert_clear_error(result, "read-only file system")
    assert tree_state(kit.out) == before
    assert_consistent(kit.out, kit.cache, old, new)
    assert kit.build().code == 0
    assert_consistent(kit.out, kit.cache, old, new, complete=True)


def test_output_folder_that_is_a_file_or_foreign(kit):
    kit.out.parent.mkdir(parents=True, exist_ok=True)
    kit.out.write_text("I am a file")
    result = kit.build()
    assert result.code == 2 and "is a file" in result.err and "Traceback" not in result.err, result.err
    assert kit.out.read_text() == "I am a file"
    kit.out.unlink()
    (kit.out / "mine.txt").parent.mkdir(parents=True)
    (kit.out / "mine.txt").write_text("someone's file")
    result = kit.build()
    assert result.code == 2 and "the output folder is not empty and was not made by blogroto" in result.err
    assert (kit.out / "mine.txt").read_text() == "someone's file"
    shutil.rmtree(kit.out)
    assert kit.build().code == 0


def test_posts_failed_before_a_fault_are_printed_without_verbose(kit, monkeypatch):
    """A full cache fails the posts whose images cannot be written, then the manifest: every
    failed post is printed (path:line: reason), not only the manifest's error (the posts used to
    show only with -v)."""
    from blogroto import fsutil

    populate(kit)
    budget = Budget(2_000)
    with monkeypatch.context() as m:
        m.setattr(fsutil.os, "fdopen", budget.wrap(os.fdopen))
        result = kit.build()
    assert result.code == 1, result.text
    errors = result.lines("error")
    posts = [e for e in errors if e.startswith(f"{kit.root}/_posts/")]
    assert len(posts) >= 2, errors
    for e in posts:
        assert re.match(rf"{re.escape(str(kit.root))}/_posts/[^:]+\.md:\d+: cannot stylize .*no space left on device", e), e
    assert errors[-1].endswith("cannot write: no space left on device") and "/builds/" in errors[-1]
