"""Errors an author can act on: each names the file (and line, when known) it is about."""

from __future__ import annotations

from pathlib import Path


class BlogrotoError(Exception):
    """An expected failure with a message meant for the author, not a traceback."""

    def __init__(self, message: str, path: str | Path | None = None, line: int | None = None):
        self.message = message
        self.path = Path(path) if path is not None else None
        self.line = line
        super().__init__(str(self))

    def __str__(self) -> str:
        where = ""
        if self.path is not None:
            where = f"{self.path}"
            if self.line is not None:
                where += f":{self.line}"
            where += ": "
        return where + self.message


class FilterError(BlogrotoError):
    """A filter folder is missing, malformed, or refused (e.g. it carries code)."""


class UnknownFilterError(FilterError):
    def __init__(self, name: str, close_matches: list[str], available: list[str]):
        self.name = name
        self.close_matches = close_matches
        self.available = available
        hint = ""
        if close_matches:
            hint = " Did you mean: " + ", ".join(close_matches) + "?"
        elif available:
            hint = " Available filters: " + ", ".join(available) + "."
        super().__init__(f"unknown filter {name!r}.{hint}")


class ImageError(BlogrotoError):
    """An image cannot be read, is corrupt, too large, or of an unsupported kind."""


class ConfigError(BlogrotoError):
    """Site configuration or front matter is malformed."""


class WeightsUnavailableError(BlogrotoError):
    """No VGG16 ImageNet weights could be found for training."""


def describe_error(exc: BaseException) -> str:
    """An exception as the short text a message can quote (its type when it says nothing)."""
    text = str(exc).strip()
    return text or type(exc).__name__

