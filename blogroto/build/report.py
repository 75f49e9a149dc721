"""What a build was asked to do (`BuildOptions`) and what it did (`BuildReport`, `GcReport`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class BuildOptions:
    out: str | Path | None = None  # output folder (default: the config's, else SITE/_blogroto/site)
    cache: str | Path | None = None  # cache folder (default: the config's, else SITE/.blogroto-cache)
    drafts: bool = False  # also stylize _drafts/
    force: bool = False  # ignore the build manifest: re-read every file, re-check every output
    jobs: int = 1  # threads for fetching remote images; stylizing stays serial (TF uses every core)
    prune: bool = False  # afterwards remove cache entries and output images nothing references
    check: bool = False  # write nothing; report what would change in `would_change`
    progress: bool = False  # tqdm bar while stylizing
    log: Callable[[str], None] | None = None  # verbose per-file messages
    refresh_remote: bool = False  # forget remembered remote failures, revalidate cached remote images now


@dataclass
class BuildReport:
    posts: int = 0  # documents with algorotoscope front matter built without error (incl. up to date)
    posts_rebuilt: int = 0  # of those, documents re-processed by this build
    images_stylized: int = 0
    cache_hits: int = 0
    bytes_in: int = 0  # the stylized images' sources, in the documents this build wrote
    bytes_out: int = 0  # what a browser fetches for them at full width (the first format of a preset)
    warnings: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0
    written: list[str] = field(default_factory=list)  # output paths (relative to out) written or linked
    removed: list[str] = field(default_factory=list)  # output paths removed
    would_change: list[str] = field(default_factory=list)  # check mode: output paths that would change
    would_change_posts: list[str] = field(default_factory=list)  # check mode: documents (as named) among them
    missing: list[str] = field(default_factory=list)  # those warnings that name an image that is not there
    failed: list[str] = field(default_factory=list)  # source paths of documents that failed
    out_dir: Path | None = None
    pruned: int = 0

    @property
    def ok(self) -> bool:
        return not self.errors

    def summary(self, warnings: int | None = None, errors: int | None = None) -> str:
        """The one-line summary. `warnings`/`errors` override the counts where a caller judged the
        report (`--strict` counts warnings as errors), so the line agrees with the exit status."""
        from blogroto.ui import plural

        warnings = len(self.warnings) if warnings is None else warnings
        errors = len(self.errors) if errors is None else errors
        sizes = ""
        if self.bytes_in:
            saved = self.bytes_in - self.bytes_out
            sizes = (f", images {megabytes(self.bytes_in)} -> {megabytes(self.bytes_out)} "
                     f"({'saved ' + megabytes(saved) if saved >= 0 else megabytes(-saved) + ' more'})")
        return (f"{plural(self.posts, 'post')}, {plural(self.images_stylized, 'image')} stylized, "
                f"{plural(self.cache_hits, 'cache hit')}, {plural(warnings, 'warning')}, "
                f"{plural(errors, 'error')}{sizes}, {self.seconds:.2f}s")


def megabytes(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 100_000 else f"{n / 1e3:.0f} kB"


@dataclass
class GcReport:
    cache_entries_removed: int = 0
    output_images_removed: list[str] = field(default_factory=list)
    remote_removed: int = 0
    left_alone: int = 0  # files blogroto did not record writing (or changed since): never deleted
    warnings: list[str] = field(default_factory=list)
