"""What a remote fetch may do (`RemotePolicy`) and how it fails (`RemoteImageError`): the vocabulary
every part of `blogroto.build.remote` shares."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from blogroto.errors import BlogrotoError, ConfigError

DEFAULT_DURATION = 86400.0  # a cached copy is used without asking the server for this long


class RemoteImageError(BlogrotoError):
    """A remote image cannot or may not be fetched. The message names the URL (credentials in it
    are masked); `path`/`line` may name the post that references it. `retry_at`: when a failure
    that was remembered will be tried again (None: not remembered)."""

    def __init__(self, url: str, reason: str, path: str | Path | None = None, line: int | None = None,
                 retry_at: float | None = None):
        self.url = url
        self.reason = reason
        self.retry_at = retry_at
        super().__init__(f"{redact(url)}: {reason}", path, line)


@dataclass
class RemotePolicy:
    timeout: float = 10.0             # seconds: the whole fetch (total_timeout) unless that is set
    max_bytes: int = 25 * 1024 * 1024
    max_redirects: int = 5
    allow_private: bool = False       # loopback/private/link-local/multicast/reserved refused unless True
    enabled: bool = True
    total_timeout: float | None = None  # whole fetch, all hops (None: `timeout`): no drip-feed stalls a build
    duration: float = DEFAULT_DURATION  # seconds a cached copy is used before revalidating (inf: never)

    def __post_init__(self):
        if self.total_timeout is None:
            self.total_timeout = self.timeout
        if not self.timeout > 0 or not self.total_timeout > 0:
            raise ConfigError(f"remote image timeouts must be positive, got {self.timeout}/{self.total_timeout}")
        if self.max_bytes <= 0:
            raise ConfigError(f"remote image max_bytes must be positive, got {self.max_bytes}")
        if not self.duration >= 0:
            raise ConfigError(f"remote image duration must be >= 0, got {self.duration}")
        if self.max_redirects < 0:
            raise ConfigError(f"remote image max_redirects must be >= 0, got {self.max_redirects}")


def redact(url: str) -> str:
    """The URL without a password, for messages and logs."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if parts.password is None:
        return url
    netloc = f"{parts.username}:***@" + parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=netloc).geturl()
