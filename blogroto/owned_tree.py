"""Owned trees: the only way blogroto writes or deletes inside its output, cache and preview folders.

`OwnedTree` checks every path lexically (`split_rel`), then walks it from the folder's root with
`openat(O_NOFOLLOW | O_DIRECTORY)`, one component at a time: nothing it writes or deletes can lie
outside the folder, whatever symlinks the disk holds (docs/reliability.md, "Owned folders").
Writes are atomic like `blogroto.fsutil.atomic_writer`'s: a temporary file, fsync, rename.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from blogroto.errors import BlogrotoError
from blogroto.fsutil import TMP_PREFIX, describe_os_error

# link() failures that mean "this file system cannot link here": copy instead
CANNOT_LINK = (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EACCES)

# The most blogroto reads of one of its own JSON records in the cache (manifest, ledger, stat
# index, remote metadata): the largest real one, a 1,000-post site's manifest, is under 2 MB; a
# planted multi-gigabyte file must not be read into memory.
RECORD_MAX_BYTES = 64 * 1024 * 1024


class UnsafePathError(BlogrotoError):
    """A path that would leave a folder blogroto owns, or go through a symlink in it."""


class TreeVanishedError(BlogrotoError):
    """The owned folder itself was removed or replaced while blogroto was using it."""


_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def split_rel(rel: str) -> tuple[str, ...]:
    """The components of a relative posix path that stays inside its folder; raises ValueError for
    anything else (absolute, '..', '.', empty components, NUL), whatever the disk holds."""
    if not isinstance(rel, str) or not rel or "\x00" in rel or rel.startswith("/"):
        raise ValueError(f"not a relative path: {rel!r}")
    parts = tuple(rel.split("/"))
    if any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"not a plain relative path: {rel!r}")
    return parts


def is_safe_rel(rel: object) -> bool:
    try:
        split_rel(rel)  # type: ignore[arg-type]
    except ValueError:
        return False
    return True


class OwnedTree:
    """A folder blogroto owns (the output, the cache), and every write and delete inside it.

    Paths are relative to the root and checked lexically (`split_rel`); then every operation walks
    from the root with `openat(O_NOFOLLOW | O_DIRECTORY)`, one component at a time, so no symlink
    is ever followed, whatever replaced what on disk: a file written or deleted through this class
    lies inside the root. A symlink found where a folder is needed is never followed: for a write
    the link itself (an entry of this tree) is removed and a real folder made in its place; a
    delete below it is refused. The root itself is never created implicitly (only `create_root`),
    so a root removed during a build is noticed (`TreeVanishedError`) instead of half recreated.
    """

    def __init__(self, root: str | Path, what: str = "folder", warn=None, *, autocreate: bool | None = None):
        self.root = Path(os.path.abspath(root))
        self.what = what
        self.warn = warn
        # Whether a write may create a missing root: yes for the cache, never for the output (a
        # missing output root means someone removed it during the build).
        self.autocreate = (what == "cache") if autocreate is None else autocreate
        self.identity: tuple[int, int] | None = None  # (st_dev, st_ino) the root must keep

    # -- the root ---------------------------------------------------------------------------

    def create_root(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise BlogrotoError(f"cannot create the {self.what} folder: {describe_os_error(exc)}", self.root) from exc

    def pin(self) -> tuple[int, int]:
        """Remember the root's identity: from now on a replaced root is an error."""
        fd = self._root_fd()
        try:
            st = os.fstat(fd)
        finally:
            os.close(fd)
        self.identity = (st.st_dev, st.st_ino)
        return self.identity

    def root_intact(self) -> bool:
        try:
            st = os.stat(self.root, follow_symlinks=False)
        except OSError:
            return False
        import stat as stat_mod

        return stat_mod.S_ISDIR(st.st_mode) and (self.identity is None or (st.st_dev, st.st_ino) == self.identity)

    def _root_fd(self, create: bool = False) -> int:
        try:
            fd = os.open(self.root, _DIR_FLAGS)
        except FileNotFoundError as exc:
            if self.identity is None:
                if create and self.autocreate:
                    self.create_root()
                    return self._root_fd()
                raise  # not there yet (nothing pinned): a plain missing file for readers
            raise TreeVanishedError(f"the {self.what} folder was removed while blogroto was using it", self.root) from exc
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                raise UnsafePathError(f"the {self.what} folder is not a folder (a symlink or a file)", self.root) from exc
            raise BlogrotoError(f"cannot open the {self.what} folder: {describe_os_error(exc)}", self.root) from exc
        if self.identity is not None:
            st = os.fstat(fd)
            if (st.st_dev, st.st_ino) != self.identity:
                os.close(fd)
                raise TreeVanishedError(f"the {self.what} folder was replaced while blogroto was using it", self.root)
        return fd

    # -- walking ----------------------------------------------------------------------------

    def rel_of(self, path: str | Path) -> str:
        """`path` (absolute, or relative to the root) as a checked relative path of this tree."""
        p = os.path.abspath(os.path.join(self.root, path))
        root = str(self.root)
        if not p.startswith(root + os.sep):
            raise UnsafePathError(f"refusing a path outside the {self.what} folder {root}", path)
        rel = p[len(root) + 1:].replace(os.sep, "/")
        self._parts(rel)
        return rel

    def _parts(self, rel: str) -> tuple[str, ...]:
        try:
            return split_rel(rel)
        except ValueError as exc:
            raise UnsafePathError(f"refusing {rel!r}: it is not a path inside the {self.what} folder",
                                  self.root) from exc

    def _dir_fd(self, parts: tuple[str, ...], create: bool) -> int:
        """An fd of the folder `parts` (relative to the root), walked without following symlinks."""
        fd = self._root_fd(create)
        try:
            for i, part in enumerate(parts):
                try:
                    nxt = os.open(part, _DIR_FLAGS, dir_fd=fd)
                except FileNotFoundError:
                    if not create:
                        raise
                    try:
                        os.mkdir(part, 0o755, dir_fd=fd)
                    except FileExistsError:
                        pass
                    nxt = os.open(part, _DIR_FLAGS, dir_fd=fd)
                except OSError as exc:
                    if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                        raise
                    where = "/".join(parts[: i + 1])
                    st = os.stat(part, dir_fd=fd, follow_symlinks=False)
                    import stat as stat_mod

                    if not create or not stat_mod.S_ISLNK(st.st_mode):
                        what = "a symlink" if stat_mod.S_ISLNK(st.st_mode) else "not a folder"
                        raise UnsafePathError(f"refusing to go through {where!r} in the {self.what} folder: "
                                              f"it is {what}", self.root / where) from exc
                    # A link where our folder belongs: remove the link (never what it points to).
                    target = os.readlink(part, dir_fd=fd)
                    os.unlink(part, dir_fd=fd)
                    if self.warn is not None:
                        self.warn(f"{self.root / where}: removed a symlink (to {target}) where the {self.what} "
                                  f"needs a folder; blogroto never writes through a symlink")
                    os.mkdir(part, 0o755, dir_fd=fd)
                    nxt = os.open(part, _DIR_FLAGS, dir_fd=fd)
                os.close(fd)
                fd = nxt
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _parent(self, rel: str, create: bool) -> tuple[int, str]:
        parts = self._parts(rel)
        return self._dir_fd(parts[:-1], create), parts[-1]

    def _err(self, exc: OSError, verb: str, rel: str) -> BlogrotoError:
        if isinstance(exc, BlogrotoError):
            return exc
        return BlogrotoError(f"cannot {verb}: {describe_os_error(exc)}", self.root / rel)

    # -- writing ----------------------------------------------------------------------------

    @contextlib.contextmanager
    def writer(self, rel: str) -> Iterator:
        """Like `atomic_writer`, inside this tree: a temporary file beside the target, then rename."""
        try:
            dfd, name = self._parent(rel, create=True)
        except OSError as exc:
            raise self._err(exc, "write", rel) from exc
        tmp = f"{TMP_PREFIX}{os.getpid()}-{os.urandom(4).hex()}"
        try:
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644,
                             dir_fd=dfd)
            except OSError as exc:
                raise self._err(exc, "write", rel) from exc
            try:
                with os.fdopen(fd, "wb") as handle:
                    yield handle
                    handle.flush()
                    os.fsync(handle.fileno())
                    os.fchmod(handle.fileno(), 0o644)
                os.replace(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
            except OSError as exc:
                _unlink_quietly(tmp, dfd)
                raise self._err(exc, "write", rel) from exc
            except BaseException:
                _unlink_quietly(tmp, dfd)
                raise
        finally:
            os.close(dfd)

    def write_bytes(self, rel: str, data: bytes) -> None:
        with self.writer(rel) as handle:
            handle.write(data)

    def link(self, src: str | Path, rel: str, *, follow: bool = True) -> None:
        """Make `rel` a hard link to `src` (replacing the name atomically). Raises OSError when the
        file system cannot link (EXDEV, EPERM, ...), so the caller can copy instead."""
        dfd, name = self._parent(rel, create=True)
        tmp = f"{TMP_PREFIX}{os.getpid()}-{os.urandom(4).hex()}"
        try:
            os.link(src, tmp, dst_dir_fd=dfd, follow_symlinks=follow)
            try:
                os.replace(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
            except BaseException:
                _unlink_quietly(tmp, dfd)
                raise
        finally:
            os.close(dfd)

    def link_or_copy(self, src: str | Path, rel: str, *, follow: bool = True,
                     src_st: os.stat_result | None = None) -> None:
        """`rel` a hard link to `src`, or a copy of it (keeping its mtime) where the file system cannot
        link; other failures raise OSError."""
        try:
            self.link(src, rel, follow=follow)
            return
        except OSError as exc:
            if exc.errno not in CANNOT_LINK:
                raise
        src_st = src_st or os.stat(src, follow_symlinks=follow)
        flags = os.O_RDONLY | os.O_CLOEXEC | (0 if follow else os.O_NOFOLLOW)
        with os.fdopen(os.open(src, flags), "rb") as fin, self.writer(rel) as fout:
            while chunk := fin.read(1 << 20):
                fout.write(chunk)
            fout.flush()
            os.utime(fout.fileno(), ns=(src_st.st_atime_ns, src_st.st_mtime_ns))

    def adopt(self, src_name: str, rel: str) -> None:
        """Move a file the caller wrote at the top of this tree (`src_name`, a plain name) to `rel`."""
        self._parts(src_name)
        if "/" in src_name:
            raise UnsafePathError(f"not a plain name: {src_name!r}", self.root)
        rfd = self._root_fd()
        try:
            dfd, name = self._parent(rel, create=True)
            try:
                os.replace(src_name, name, src_dir_fd=rfd, dst_dir_fd=dfd)
            finally:
                os.close(dfd)
        except OSError as exc:
            _unlink_quietly(src_name, rfd)
            raise self._err(exc, "write", rel) from exc
        finally:
            os.close(rfd)

    # -- reading ----------------------------------------------------------------------------

    def lstat(self, rel: str) -> os.stat_result | None:
        """The entry's own stat (a symlink is reported as one); None when it, or a folder on the
        way, is missing or is not a real folder."""
        try:
            dfd, name = self._parent(rel, create=False)
        except (OSError, BlogrotoError):
            return None
        try:
            return os.stat(name, dir_fd=dfd, follow_symlinks=False)
        except OSError:
            return None
        finally:
            os.close(dfd)

    def open_read(self, rel: str):
        """A binary file object for a regular file of this tree (never through a symlink)."""
        dfd, name = self._parent(rel, create=False)
        try:
            # O_NONBLOCK: a FIFO planted in a restored cache must not hang the build on open.
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, dir_fd=dfd)
        finally:
            os.close(dfd)
        import stat as stat_mod

        if not stat_mod.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise UnsafePathError(f"refusing to read {rel!r} in the {self.what} folder: not a regular file", self.root / rel)
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")

    def holds(self, rel: str, data: bytes) -> bool:
        """Whether `rel` is a regular file with exactly these bytes (then there is nothing to write)."""
        st = self.lstat(rel)
        try:
            return st is not None and stat.S_ISREG(st.st_mode) and st.st_size == len(data) \
                and self.read_bytes(rel) == data
        except (OSError, BlogrotoError):
            return False

    def read_bytes(self, rel: str, limit: int | None = None) -> bytes:
        """The file's bytes; with `limit`, an UnsafePathError instead when it is larger."""
        with self.open_read(rel) as handle:
            data = handle.read() if limit is None else handle.read(limit + 1)
        if limit is not None and len(data) > limit:
            raise UnsafePathError(f"refusing to read {rel!r} in the {self.what} folder: larger than "
                                  f"{limit:,} bytes", self.root / rel)
        return data

    def read_record(self, rel: str) -> bytes:
        """One of blogroto's own JSON records, at most RECORD_MAX_BYTES."""
        return self.read_bytes(rel, limit=RECORD_MAX_BYTES)

    def scan(self, rel_dir: str = "") -> list[tuple[str, os.stat_result]]:
        """(name, lstat) of the entries of a folder of this tree; [] when it is missing or unsafe."""
        try:
            dfd = self._dir_fd(self._parts(rel_dir) if rel_dir else (), create=False)
        except (OSError, BlogrotoError):
            return []
        try:
            out = []
            with os.scandir(dfd) as it:
                for entry in it:
                    try:
                        out.append((entry.name, entry.stat(follow_symlinks=False)))
                    except OSError:
                        pass
            return out
        finally:
            os.close(dfd)

    # -- deleting ---------------------------------------------------------------------------

    def remove(self, rel: str) -> bool:
        """Delete the entry `rel` (a file or a symlink itself, never a folder and never what a link
        points to). False when it is not there or the way to it is not plain folders."""
        try:
            dfd, name = self._parent(rel, create=False)
        except FileNotFoundError:
            return False
        except UnsafePathError as exc:
            if self.warn is not None:
                self.warn(f"not deleted: {exc}")
            return False
        except OSError as exc:
            raise self._err(exc, "remove", rel) from exc
        try:
            os.unlink(name, dir_fd=dfd)
            return True
        except FileNotFoundError:
            return False
        except IsADirectoryError:
            return False
        except OSError as exc:
            if exc.errno in (errno.EISDIR, errno.EPERM) and os.path.isdir(self.root / rel):
                return False
            raise self._err(exc, "remove", rel) from exc
        finally:
            os.close(dfd)

    def remove_empty_dirs(self, rel_dir: str) -> None:
        """Remove `rel_dir` and its parents while they are empty (never the root)."""
        parts = list(self._parts(rel_dir)) if rel_dir else []
        while parts:
            try:
                dfd = self._dir_fd(tuple(parts[:-1]), create=False)
            except (OSError, BlogrotoError):
                return
            try:
                os.rmdir(parts[-1], dir_fd=dfd)
            except OSError:
                return
            finally:
                os.close(dfd)
            parts.pop()


def _unlink_quietly(name: str, dir_fd: int) -> None:
    try:
        os.unlink(name, dir_fd=dir_fd)
    except OSError:
        pass
