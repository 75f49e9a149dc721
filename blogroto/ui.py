"""What the commands print: `error:`/`warning:` prefixes in colour on a terminal, counted nouns.

Colour follows click's rule (only when the stream is a terminal) and the NO_COLOR convention
(https://no-color.org): set to anything non-empty, no colour at all.
"""

from __future__ import annotations

import os
import re

import click

_PREFIX = re.compile(r"^(\s*)(error|warning|note)(:)")
_STYLES = {"error": {"fg": "red", "bold": True}, "warning": {"fg": "yellow", "bold": True}, "note": {"fg": "cyan"}}


def colour() -> bool | None:
    """click's `color` argument: False under NO_COLOR, else None (click decides: terminals only)."""
    return False if os.environ.get("NO_COLOR") else None


def wants_colour(stream) -> bool:
    """Whether text for `stream` may carry colour: a terminal, and NO_COLOR not set."""
    isatty = getattr(stream, "isatty", None)
    return not os.environ.get("NO_COLOR") and bool(isatty and isatty())


def styled(line: str, stream=None) -> str:
    """`line` with a leading `error:` / `warning:` / `note:` styled. Without `stream` the caller
    prints with click, which strips the styles off non-terminals; with one (for printers that do
    not, like tqdm.write) the styles are added only where `wants_colour(stream)`."""
    if stream is not None and not wants_colour(stream):
        return line
    return _PREFIX.sub(lambda m: m.group(1) + click.style(m.group(2) + m.group(3), **_STYLES[m.group(2)]), line, 1)


def err(line: str) -> None:
    """Print one line on stderr, its prefix in colour where colour is wanted."""
    click.echo(styled(line), err=True, color=colour())


def error(message: str) -> None:
    err(f"error: {message}")


def warning(message: str) -> None:
    err(f"warning: {message}")


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """'1 image', '2 images', '0 errors', '1 cache hit'."""
    return f"{count} {noun if count == 1 else nouns or noun + 's'}"


def verbosity_options(func):
    """`-q/--quiet` (errors only) and `-v/--verbose` (more detail), the same on every command that
    prints; they exclude each other (checked by `check_verbosity`)."""
    func = click.option("--verbose", "-v", is_flag=True, help="Print more: every file written, every step.")(func)
    func = click.option("--quiet", "-q", is_flag=True, help="Print errors only.")(func)
    return func


def check_verbosity(quiet: bool, verbose: bool) -> None:
    if quiet and verbose:
        raise click.UsageError("--quiet and --verbose exclude each other")
