"""`blogroto build --check / --strict / --json`: the build as a CI step.

    --check   a dry run that writes nothing (not the output, not the cache, not its indexes) and
              fails (exit 1), listing the posts, when the output is not up to date or a post
              names an image or filter that does not exist: for pull-request checks.
    --strict  warnings (an unreachable remote image, a refused path, ...) fail the build (exit 1).
    --json    one JSON object on stdout and nothing else (progress and messages go to stderr).

Exit status: 0 success; 1 failed documents, strict warnings or (check) a stale output; 2 a
configuration error (as for every command).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import click

from blogroto import ui
from blogroto.build import IMAGES_DIR, Builder, BuildOptions, BuildReport
from blogroto.errors import BlogrotoError, ConfigError


@dataclass
class Outcome:
    """A build report judged by the CI flags."""

    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    stale_posts: list[str] = field(default_factory=list)  # check: documents whose output would change
    stale_other: list[str] = field(default_factory=list)  # check: other output paths that would change
    images_to_stylize: int = 0  # check: cache misses

    @property
    def exit_code(self) -> int:
        return 1 if self.errors or self.stale_posts or self.stale_other else 0


def judge(report: BuildReport, site: str | Path, *, check: bool = False, strict: bool = False) -> Outcome:
    out = Outcome(errors=list(report.errors))
    missing = set(report.missing)
    for message in report.warnings:
        if strict:
            out.errors.append(f"{message} (--strict)")
        elif check and message in missing:
            out.errors.append(message)  # a PR must not reference an image that is not there
        else:
            out.warnings.append(message)
    if check:
        posts = list(report.would_change_posts)
        site = Path(site)
        images = 0
        for rel in report.would_change:
            if rel.startswith(IMAGES_DIR + "/"):
                images += 1  # to stylize or to link; the posts showing them are in would_change_posts
                continue
            shown = str(site / rel)
            if shown in posts:
                continue
            if os.path.lexists(shown):
                out.stale_other.append(shown)  # a source copied unchanged (a page, a static file)
            else:
                # no source: a removed post's output, or a page blogroto generates (the catalog)
                out.stale_other.append(str(report.out_dir / rel) if report.out_dir else rel)
        out.stale_posts = posts
        out.images_to_stylize = images
        if images and not posts and not out.stale_other:
            out.stale_other.append(f"{images} stylized image{'s' if images != 1 else ''} in {IMAGES_DIR}/")
    return out


def summary(report: BuildReport, outcome: Outcome, *, check: bool, strict: bool) -> dict:
    """The --json object (the keys are a stable interface: CI scripts read them)."""
    return {
        "ok": outcome.exit_code == 0,
        "check": check,
        "strict": strict,
        "posts": report.posts,
        # A dry run rebuilds nothing: what it found out of date is `posts_to_rebuild`.
        "posts_rebuilt": 0 if check else report.posts_rebuilt,
        "posts_to_rebuild": report.posts_rebuilt if check else 0,
        "images_stylized": report.images_stylized,
        "cache_hits": report.cache_hits,
        "warnings": outcome.warnings,
        "errors": outcome.errors,
        "seconds": round(report.seconds, 3),
        "would_change": list(report.would_change),
        "would_change_posts": outcome.stale_posts,
        "images_to_stylize": outcome.images_to_stylize,
        "failed": list(report.failed),
        "written": len(report.written),
        "removed": len(report.removed),
        "out_dir": str(report.out_dir) if report.out_dir else None,
    }


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Send everything written to stdout (Python's and the C-level file descriptor 1, where
    TensorFlow and friends may print) to stderr, so that --json owns stdout."""
    sys.stdout.flush()
    try:
        saved = os.dup(1)
        os.dup2(2, 1)
    except OSError:
        saved = None  # no usable fd 1 (embedded, test runner): the Python-level redirect still works
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stderr.flush()
        if saved is not None:
            os.dup2(saved, 1)
            os.close(saved)


def run(site: str, options: BuildOptions, *, check: bool, strict: bool, as_json: bool, quiet: bool = False,
        verbose: bool = False, no_config: bool = False) -> int:
    """Build (or check) `site`; print the report the way the flags ask; return the exit status."""
    from blogroto.locate import site_for_command

    options.check = check
    if as_json:
        try:
            with stdout_to_stderr():
                site = site_for_command(site, no_config, note=None if quiet else ui.err)
                report = Builder(site, options).build()
        except BlogrotoError as exc:
            # Still one JSON object: the CI script parses stdout whatever happened.
            code = 2 if isinstance(exc, ConfigError) else 1
            # The documents that failed before the fault, then the fault (see cli._print_partial).
            partial = getattr(exc, "partial_report", None)
            errors = [m for m in getattr(partial, "errors", ()) or () if m != str(exc)] + [str(exc)]
            for message in errors:
                ui.error(message)
            # Every documented key, as on success, so a script reading one of them does not crash.
            data = summary(BuildReport(), Outcome(errors=errors), check=check, strict=strict)
            click.echo(json.dumps(data, ensure_ascii=False))
            return code
    else:
        site = site_for_command(site, no_config, note=None if quiet else ui.err)
        report = Builder(site, options).build()
    outcome = judge(report, site, check=check, strict=strict)

    if as_json:
        for message in outcome.errors:
            ui.error(message)
        click.echo(json.dumps(summary(report, outcome, check=check, strict=strict), ensure_ascii=False))
        return outcome.exit_code

    if not quiet:
        for message in outcome.warnings:
            ui.warning(message)
    for message in outcome.errors:
        ui.error(message)
    if verbose and not check:
        for rel in report.written:
            click.echo(f"wrote {rel}", err=True)
        for rel in report.removed:
            click.echo(f"removed {rel}", err=True)
    if check:
        # The list goes to stdout even with --quiet: it is the answer a PR check asks for.
        for shown in outcome.stale_posts + outcome.stale_other:
            click.echo(f"would change: {shown}")
        if not quiet:
            if outcome.exit_code == 0:
                click.echo(f"check: up to date ({_n(report.posts, 'post')}, {report.seconds:.2f}s)")
            else:
                click.echo(f"check: {_n(len(outcome.stale_posts), 'post')} would change, "
                           f"{_n(len(outcome.stale_other), 'other output file')}, "
                           f"{_n(outcome.images_to_stylize, 'image')} to stylize, {_n(len(outcome.errors), 'error')} "
                           f"({report.seconds:.2f}s); nothing was written")
    elif not quiet:
        line = report.summary(warnings=len(outcome.warnings), errors=len(outcome.errors))
        if options.prune:
            line += f", {report.pruned} pruned"
        click.echo(f"{line} -> {report.out_dir}")
    return outcome.exit_code
