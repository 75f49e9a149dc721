"""The output folder blogroto owns: its marker and the lock one build holds while it writes."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from pathlib import Path

from blogroto.errors import (
    BlogrotoError,
    ConfigError,
)
from blogroto.fsutil import (
    describe_os_error,
)

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
