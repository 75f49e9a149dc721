"""The state of one build: what the stages read and fill in, kept off the Builder so that builds never
leak state into each other. Every stage is a function of this one object (blogroto.build.run)."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import blogroto
from blogroto.build.manifest import load_manifest, stat_or_none, stat_sig
from blogroto.build.plan import Job, Plan
from blogroto.build.report import BuildReport
from blogroto.errors import BlogrotoError
from blogroto.owned_tree import OwnedTree
from blogroto.site.model import Site, SourceFile

if TYPE_CHECKING:  # pragma: no cover
    from blogroto.build.api import Builder


class BuildState:
    """The state of one build."""

    def __init__(self, builder: Builder, site: Site, report: BuildReport, *, fresh: bool = False,
                 reclaim: tuple[int, int] | None = None):
        self.b = builder
        self.opts = builder.options
        self.site = site
        self.report = report
        self.out = site.settings.output
        self.out_str = str(self.out)
        self.cache_dir = site.settings.cache
        self.check = self.opts.check
        # Every write and delete in the output and the cache goes through these (never through a
        # symlink, never outside the folder): blogroto.owned_tree.OwnedTree.
        self.tree = OwnedTree(self.out, "output", warn=self.tree_warn)
        self.ctree = OwnedTree(self.cache_dir, "cache", warn=self.tree_warn)
        self.reclaim = reclaim  # the identity of our own output folder whose marker vanished last try
        self.manifest_path = builder._manifest_path(site)
        self.old = {} if self.opts.force or fresh else load_manifest(self.manifest_path, report.warnings.append)
        self.old_files: dict[str, dict] = self.old.get("files", {})
        self.new_files: dict[str, dict] = {}
        self.images: dict[str, list[str]] = {}  # output image name -> [cache key, ext]
        self.sources: dict[str, SourceFile] = {}
        self.out_stats: dict[str, os.stat_result | None] = {}
        self.stat_index = None
        self.cache = None
        self.jobs: dict[tuple, Job] = {}
        self.sets: dict[tuple, Any] = {}  # (job key, preset) -> responsive.ImageSet or None
        self.variant_files: dict[str, tuple[str, str, Path]] = {}  # name -> (cache key, ext, cache path)
        self.filter_sigs: dict[str, Any] = {}
        self.remote: dict[str, tuple[bytes, str] | str] = {}
        self.recheck: dict[str, float | None] = {}  # URL -> when to go to the network for it again
        self.glob = ""  # the global signature (config, templates, filter folders): set by the scan
        self.changed = False
        self.catalog: Any = None  # blogroto.build.catalog.CatalogResult of this build


    def tree_warn(self, message: str) -> None:
        self.report.warnings.append(message)


    def reclaim_identity(self) -> tuple[int, int] | None:
        """The output folder's identity when it is still the one this run pinned (only its
        contents or marker vanished): a retry may take it back without its marker."""
        return self.tree.identity if self.tree.identity is not None and self.tree.root_intact() else None


    def note(self, message: str) -> None:
        if self.opts.log:
            self.opts.log(message)


    def warn(self, message: str, rel: str | None = None, line: int | None = None, plan: Plan | None = None) -> str:
        text = str(BlogrotoError(message, self.b._display(rel) if rel else None, line))
        self.report.warnings.append(text)
        if plan is not None:
            plan.warned = True  # the document is processed again next time, so the warning repeats
        return text


    def global_signature(self) -> str:
        """Everything outside a document that changes its output (config, templates, filters)."""
        site = self.site
        parts: list[Any] = [blogroto.__version__, blogroto.ENGINE_VERSION, self.opts.drafts, str(self.out),
                            site.baseurl]
        if site.config_path:
            parts.append(stat_sig(site.config_path.stat()))
        renderer = self.b._credit_renderer(site)
        for path in renderer.template_files():
            st = stat_or_none(path)
            parts.append([str(path), stat_sig(st) if st else None])
        # The filters are not in here: each document depends on its own filter only (_filter_sig),
        # so a filter being trained or added elsewhere does not rebuild every post.
        parts.append([str(d) for d in self.b._library_for(site).search_dirs])
        return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()


    def filter_sig(self, name: str):
        """Which folder filter `name` resolves to and the stats of its files (None: not found)."""
        if name in self.filter_sigs:
            return self.filter_sigs[name]
        from blogroto.filters import FILTER_FILE

        sig = None
        for base in self.b._library_for(self.site).search_dirs:
            folder = os.path.join(base, name)
            if os.path.isfile(os.path.join(folder, FILTER_FILE)):
                try:
                    files = sorted((e.name, e.stat().st_size, e.stat().st_mtime_ns) for e in os.scandir(folder)
                                   if e.is_file())
                except OSError:
                    files = None
                sig = [folder, [list(f) for f in files] if files is not None else None]
                break
        self.filter_sigs[name] = sig
        return sig


    def out_stat(self, rel: str) -> os.stat_result | None:
        try:
            return self.out_stats[rel]
        except KeyError:
            st = self.out_stats[rel] = stat_or_none(f"{self.out_str}/{rel}")  # str, not Path: this runs per file
            return st


    def record(self, rel: str, sf: SourceFile, kind: str, outputs: Iterable[str], **extra) -> None:
        entry = {"st": sf.sig, "k": kind, "kind": sf.kind,
                 "out": {o: (stat_sig(st) if (st := stat_or_none(self.out / o)) else None) for o in outputs}}
        entry.update(extra)
        self.new_files[rel] = entry
        self.changed = True


    def mark_changed(self, out_rel: str) -> None:
        (self.report.would_change if self.check else self.report.written).append(out_rel)
        self.changed = True
