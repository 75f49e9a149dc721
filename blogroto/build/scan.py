"""Stage 1, scan: which source files changed since the manifest (the rest is carried over as it was)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from blogroto.build.emit import emit_static
from blogroto.build.files import walk_one
from blogroto.build.manifest import stat_sig
from blogroto.build.plan import IMAGES_DIR
from blogroto.site.model import SourceFile

if TYPE_CHECKING:  # pragma: no cover
    from blogroto.build.state import BuildState


def changed_sources(state: BuildState, paths) -> list[SourceFile]:
    """The documents to process again; static files that changed are emitted on the way, and what
    did not change is carried over from the old manifest (its outputs, images and warnings)."""
    state.glob = state.global_signature()
    same_global = state.old.get("global") == state.glob and not state.opts.force
    seen = len(state.site.warnings)
    state.sources = scan(state, paths)
    state.report.warnings.extend(state.site.warnings[seen:])  # symlinks not published, unreadable folders

    dirty_docs: list[SourceFile] = []
    for rel, sf in state.sources.items():
        prev = state.old_files.get(rel)
        if same_global and prev is not None and up_to_date(state, sf, prev):
            state.new_files[rel] = prev
            for name in prev.get("imgs", ()):
                state.images[name] = state.old["images"][name]
            if prev.get("k") == "doc":
                state.report.posts += 1
            # Remote images that could not be fetched: the failure is remembered until its
            # retry time (blogroto.build.remote), and so is the warning, reported on every build.
            state.report.warnings.extend(prev.get("rwarn", ()))
            continue
        if sf.is_link:
            continue  # never produced by the walk: symlinks are published as what they point to
        if sf.kind is None:
            emit_static(state, sf)
        else:
            dirty_docs.append(sf)
    return dirty_docs


def scan(state: BuildState, paths) -> dict[str, SourceFile]:
    site = state.site
    if paths is None or not state.old_files:
        return {sf.rel: sf for sf in site.walk(state.opts.drafts)}
    # Incremental: trust the manifest for everything but the given paths.
    sources: dict[str, SourceFile] = {}
    for rel, entry in state.old_files.items():
        sources[rel] = SourceFile(rel, f"{site.root}/{rel}", None, entry.get("kind"), False,
                                  recorded=entry["st"])
    for p in paths:
        p = Path(p)
        full = (p if p.is_absolute() else Path.cwd() / p).resolve() if p.exists() else Path(os.path.abspath(p))
        try:
            rel = full.relative_to(site.root).as_posix()
        except ValueError:
            continue
        for known in [r for r in sources if r == rel or r.startswith(rel + "/")]:
            del sources[known]
        if full.is_dir():
            for sf in site.walk(state.opts.drafts):
                if sf.rel.startswith(rel + "/"):
                    sources[sf.rel] = sf
        elif full.exists() or full.is_symlink():
            for sf in walk_one(site, rel, state.opts.drafts):
                sources[sf.rel] = sf
    return sources


def up_to_date(state: BuildState, sf: SourceFile, prev: dict) -> bool:
    """Unchanged source, unchanged inputs, outputs as we left them: nothing to do."""
    if prev.get("k") == "failed" or prev.get("retry"):
        return False  # report its errors and warnings again until the author fixes them
    recheck = prev.get("recheck")
    if recheck is not None and time.time() >= recheck:
        return False  # a remote image is due: revalidate a cached copy, retry a failed fetch
    if state.opts.refresh_remote and prev.get("remote"):
        return False
    cur = sf.sig
    if cur != prev.get("st"):
        return False
    flt = prev.get("flt")
    if flt is not None and state.filter_sig(flt) != state.old.get("filters", {}).get(flt):
        return False  # the document's filter changed (weights, metadata) or resolves elsewhere
    for dep, dsig in prev.get("deps", {}).items():
        src = state.sources.get(dep)
        if src is None or src.sig[:2] != dsig:
            return False
    for rel, osig in prev.get("out", {}).items():
        st = state.out_stat(rel)
        if st is None or stat_sig(st) != osig:
            return False
    for name in prev.get("imgs", ()):
        rel = f"{IMAGES_DIR}/{name}"
        osig = state.old.get("image_sigs", {}).get(name)
        st = state.out_stat(rel)
        if st is None or stat_sig(st) != osig:
            return False
    return True
