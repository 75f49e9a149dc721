"""Crash-safe file writes and locks.

Every file blogroto writes goes through `atomic_writer`: a temporary file in the same folder,
fsync, then rename. A reader (Jekyll, a browser, a second build) therefore sees either the old
file or the complete new one, never a torn one, even after `kill -9` or a full disk. Inside the
folders blogroto owns (the output, the cache, the preview) it writes through
`blogroto.owned_tree.OwnedTree`, which does the same without ever following a symlink.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from blogroto.errors import BlogrotoError

TMP_PREFIX = ".blogroto-tmp-"


def describe_os_error(exc: OSError) -> str:
    """A short reason for an OSError ('no space left on device', 'read-only file system', ...)."""
    return _describe_os_error(exc)


def _describe_os_error(exc: OSError) -> str:
    if exc.errno == errno.ENOSPC:
        return "no space left on device"
    if exc.errno in (errno.EROFS,):
        return "read-only file system"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    return exc.strerror or str(exc)


@contextlib.contextmanager
def atomic_writer(path: str | Path, mode: str = "wb") -> Iterator:
    """Open a temporary file beside `path`; on success fsync and rename it over `path`.

    On any error the temporary file is removed and `path` is left as it was.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=TMP_PREFIX, dir=path.parent)
    except OSError as exc:
        raise BlogrotoError(f"cannot write: {_describe_os_error(exc)}", path) from exc
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise BlogrotoError(f"cannot write: {_describe_os_error(exc)}", path) from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_writer(path, "wb") as handle:
        handle.write(data)


def atomic_write_text(path: str | Path, text: str, encoding: str = "utf-8") -> None:
    atomic_write_bytes(path, text.encode(encoding))


@contextlib.contextmanager
def file_lock(path: str | Path, shared: bool = False) -> Iterator[None]:
    """An advisory lock (flock) held for the duration of the block; released if the process dies."""
    path = Path(path)
    # Read-only: flock needs no write access, and a file opened for writing is reported as changed
    # when closed (inotify IN_CLOSE_WRITE), which would set `jekyll serve`'s watcher off every build.
    # That is also why this is not the `filelock` package: 4.3.2 opens an existing lock file O_RDWR.
    flags = os.O_RDONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, flags, 0o644)
        except OSError as exc:
            if exc.errno != errno.ELOOP:
                raise
            # A symlink where the lock file belongs (a restored or tampered cache): never open
            # (and so never create) what it points to; replace the link itself.
            os.unlink(path)
            fd = os.open(path, flags | os.O_EXCL, 0o644)
        handle = os.fdopen(fd, "rb")
    except OSError as exc:
        raise BlogrotoError(f"cannot lock: {_describe_os_error(exc)}", path) from exc
    with handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        except OSError as exc:
            raise BlogrotoError(f"cannot lock: {_describe_os_error(exc)}", path) from exc
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
