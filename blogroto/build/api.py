"""`Builder`: the build's API. Builds a site into its output (`build`), or removes what no build
needs from the cache (`gc`); one build at a time per output (a lock)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat as stat_mod
import time
from collections.abc import Iterable
from pathlib import Path

from blogroto.build.manifest import MANIFEST_DIR, load_manifest, source_owns
from blogroto.build.output import LOCK_NAME, OUTPUT_MARKER, output_lock
from blogroto.build.plan import IMAGES_DIR, SHORT_HASH, STYLIZED_NAME_RE
from blogroto.build.report import BuildOptions, BuildReport, GcReport
from blogroto.build.run import execute
from blogroto.build.state import BuildState
from blogroto.errors import (
    BlogrotoError,
)
from blogroto.fsutil import (
    describe_os_error,
    file_lock,
)
from blogroto.owned_tree import OwnedTree, TreeVanishedError
from blogroto.site.model import Site


class Builder:
    """A reusable build of one site. Keep it around (a watcher does): it keeps the `Stylizer`, and
    with it the loaded networks, warm between builds."""

    def __init__(self, site_dir: str | Path, options: BuildOptions | None = None):
        self.site_dir = Path(site_dir)
        self.options = options or BuildOptions()
        self.stylizer = None  # blogroto.engine.stylize.Stylizer, created on the first cache miss
        self.site: Site | None = None
        self._library = None
        self._library_key = None
        self._renderer = None

    # -- helpers shared by build and gc -----------------------------------------------------

    def load_site(self) -> Site:
        self.site = Site(self.site_dir, output=self.options.out, cache=self.options.cache)
        return self.site

    def _display(self, rel: str) -> str:
        """A path for messages: as the author named the site on the command line."""
        return str(self.site_dir / rel)

    def _manifest_path(self, site: Site) -> Path:
        digest = hashlib.sha256(str(site.settings.output).encode()).hexdigest()[:16]
        return site.settings.cache / MANIFEST_DIR / f"{digest}.json"

    def _library_for(self, site: Site):
        from blogroto.filters import FilterLibrary

        # A fresh library per build: filter folders may have changed since the last one (a
        # watcher's builds). The Stylizer's warm networks are keyed by weights fingerprint, so an
        # unchanged filter still finds its loaded network.
        if self._library is None or self._library_key is not site:
            self._library = FilterLibrary(site_dirs=list(site.settings.filter_dirs))
            self._library_key = site
        return self._library

    def _credit_renderer(self, site: Site):
        from blogroto.credits.render import CreditRenderer

        s = site.settings
        self._renderer = CreditRenderer(site.root, credit_template=s.credit_template,
                                        figcaption_template=s.figcaption_template)
        return self._renderer

    # -- the build --------------------------------------------------------------------------

    def build(self, paths: Iterable[str | Path] | None = None) -> BuildReport:
        """Build the output; returns what happened. Raises ConfigError for site-wide problems.

        `paths=None` walks the whole site (still cheap: unchanged files cost a stat each).
        `paths=[...]` (a watcher's changed files or folders, existing or deleted) trusts the
        build manifest for every other file: only documents that are, or depend on, those paths
        are re-read. Changes to _config.yml, credit templates or a used filter are noticed either
        way. Without a manifest (first build) it walks the whole site.
        """
        started = time.perf_counter()
        site = self.load_site()
        report = BuildReport(out_dir=site.settings.output)
        report.warnings.extend(site.warnings)
        try:
            if self.options.check:
                execute(BuildState(self, site, report), paths)
            else:
                with file_lock(site.settings.cache / LOCK_NAME), output_lock(site.settings.output):
                    self._execute_recovering(site, report, paths)
                    if self.options.prune:
                        gc = self._gc_locked(site)
                        report.pruned = gc.cache_entries_removed + len(gc.output_images_removed)
                        report.warnings.extend(w for w in gc.warnings if w not in report.warnings)
        except OSError as exc:
            # A file-system fault outside the atomic writers (mkdir on a read-only or full disk,
            # an I/O error): one clear line, not a traceback. Nothing is torn: writes are atomic.
            fault = BlogrotoError(describe_os_error(exc), exc.filename or site.settings.output)
            fault.partial_report = report  # what failed before the fault: the CLI prints it
            raise fault from exc
        except BlogrotoError as exc:
            # A fault that stops the build (the manifest cannot be written on a full disk): the
            # documents that failed before it must still be reported, not only under -v.
            exc.partial_report = report
            raise
        report.seconds = time.perf_counter() - started
        return report

    def _execute_recovering(self, site: Site, report: BuildReport, paths) -> None:
        """One build; when the output folder (or its marker) vanished while it ran, the output is
        incomplete: build once more from scratch, else fail with a clear message. Either way the
        manifest of the incomplete output is never saved, so the next build starts clean."""
        state = BuildState(self, site, report)
        try:
            execute(state, paths)
            return
        except TreeVanishedError as exc:
            reclaim = state.reclaim_identity()
            self._drop_manifest(site)
            first = exc
        # Start the report over (the first try's messages describe an output that is gone).
        report.__dict__.update(BuildReport(out_dir=site.settings.output).__dict__)
        report.warnings.extend(site.warnings)
        report.warnings.append(f"{first}; building it again from scratch")
        retry = BuildState(self, site, report, fresh=True, reclaim=reclaim)
        try:
            # When the folder itself was removed, the retry makes a new one: lock that one too (the
            # same folder is already locked by this process; flock again would wait for ourselves).
            with output_lock(site.settings.output) if reclaim is None else contextlib.nullcontext():
                execute(retry, None)
        except TreeVanishedError as exc:
            self._drop_manifest(site)
            raise BlogrotoError("the output folder was removed or emptied during the build, twice; it is "
                                "incomplete: run the build again when nothing else deletes it",
                                site.settings.output) from exc

    def _drop_manifest(self, site: Site) -> None:
        tree = OwnedTree(site.settings.cache, "cache")
        try:
            tree.remove(tree.rel_of(self._manifest_path(site)))
        except BlogrotoError:
            pass

    # -- garbage collection -----------------------------------------------------------------

    def gc(self) -> GcReport:
        site = self.load_site()
        with file_lock(site.settings.cache / LOCK_NAME):
            return self._gc_locked(site)

    def _gc_locked(self, site: Site) -> GcReport:
        """Remove cache entries and output images that no manifest of this cache references.

        Deletes only what blogroto recorded writing, with its hash unchanged (the cache's
        EntryLedger), through OwnedTrees (never through a symlink, never outside the folders):
        whatever else lies in the cache or output folder is left alone.
        """
        from blogroto.build.cache import OutputCache

        report = GcReport()
        warn = report.warnings.append
        keep_objects: set[Path] = set()
        keep_remote: set[str] = set()
        cache = OutputCache(site.settings.cache, warn=warn)
        ctree = cache.tree
        own_path = self._manifest_path(site)
        own = load_manifest(own_path, warn)
        for name, st in ctree.scan(MANIFEST_DIR):
            if not name.endswith(".json") or not stat_mod.S_ISREG(st.st_mode):
                continue
            data = own if f"{MANIFEST_DIR}/{name}" == ctree.rel_of(own_path) else \
                load_manifest(site.settings.cache / MANIFEST_DIR / name, warn)
            for key, ext in data.get("images", {}).values():
                keep_objects.add(cache.path_for(key, ext))
            for entry in data.get("files", {}).values():
                keep_remote.update(entry.get("remote", ()))
        report.cache_entries_removed = cache.remove_except(keep_objects)
        report.left_alone += cache.unrecorded
        # Remote bodies are cached by URL; keep those some document still references.
        from blogroto.build.remote import REMOTE_DIR

        # A download's records (`.json`: when fetched, ETag; `.failed.json`: a remembered failure)
        # are kept with it.
        keep_remote_rels = set()
        for url in keep_remote:
            digest = hashlib.sha256(url.encode("utf-8")).hexdigest()
            for suffix in ("", ".json", ".failed.json"):
                keep_remote_rels.add(f"{REMOTE_DIR}/{digest[:2]}/{digest}{suffix}")
        for sub, sst in ctree.scan(REMOTE_DIR):
            if not stat_mod.S_ISDIR(sst.st_mode):
                continue
            for name, st in ctree.scan(f"{REMOTE_DIR}/{sub}"):
                rel = f"{REMOTE_DIR}/{sub}/{name}"
                if rel in keep_remote_rels or not stat_mod.S_ISREG(st.st_mode):
                    continue
                if not cache.ledger.matches(rel, rehash=False):
                    report.left_alone += 1  # not a download blogroto recorded: never deleted
                    continue
                if ctree.remove(rel):
                    report.remote_removed += 1
                cache.ledger.forget(rel)
            ctree.remove_empty_dirs(f"{REMOTE_DIR}/{sub}")
        # Output images: stylized images in assets/algorotoscope/ this output's manifest does not
        # name, and only those that are copies of a cache entry blogroto recorded (same hash).
        otree = OwnedTree(site.settings.output, "output", warn=warn)
        marker = otree.lstat(OUTPUT_MARKER) if site.settings.output.is_dir() else None
        if marker is not None and stat_mod.S_ISREG(marker.st_mode):
            wanted = set(own.get("images", {}))
            by_short: dict[tuple[str, str], list[str]] = {}
            for rel in cache.ledger.entries:
                if rel.startswith("objects/"):
                    stem, ext = rel.rsplit("/", 1)[-1].rsplit(".", 1)
                    by_short.setdefault((stem[:SHORT_HASH], ext), []).append(rel)
            for name, st in otree.scan(IMAGES_DIR):
                rel = f"{IMAGES_DIR}/{name}"
                m = STYLIZED_NAME_RE.fullmatch(name)
                if (m is None or not stat_mod.S_ISREG(st.st_mode) or name in wanted or source_owns(own, rel)):
                    continue
                if not self._made_by_blogroto(otree, rel, st, cache, by_short.get((m.group(1), m.group(2)), [])):
                    report.left_alone += 1
                    continue
                if otree.remove(rel):
                    report.output_images_removed.append(rel)
        for rel in list(cache.ledger.entries):
            if ctree.lstat(rel) is None:
                cache.ledger.forget(rel)  # removed by someone else: nothing left to vouch for
        cache.ledger.save()
        return report

    @staticmethod
    def _made_by_blogroto(otree: OwnedTree, rel: str, st: os.stat_result, cache, candidates: list[str]) -> bool:
        """Whether an output file is a link to, or a copy of, a cache entry blogroto recorded."""
        sha = None
        for crel in candidates:
            rec = cache.ledger.get(crel)
            if rec is None or rec[0] != st.st_size:
                continue
            if rec[2] == st.st_ino and rec[1] == st.st_mtime_ns:
                return True
            if sha is None:
                try:
                    with otree.open_read(rel) as handle:
                        sha = hashlib.file_digest(handle, "sha256").hexdigest()
                except (OSError, BlogrotoError):
                    return False
            if sha == rec[3]:
                return True
        return False
