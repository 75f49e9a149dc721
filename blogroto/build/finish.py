"""The last stages: the filter catalog (once every document is known) and the manifest."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from blogroto.build.manifest import MANIFEST_FORMAT, stat_sig
from blogroto.build.output import write_if_changed
from blogroto.build.plan import IMAGES_DIR
from blogroto.errors import BlogrotoError

if TYPE_CHECKING:  # pragma: no cover
    from blogroto.build.state import BuildState


def write_catalog(state: BuildState) -> None:
    """The filter catalog pages (blogroto.build.catalog): written once every document is known, as
    they list which documents use which filter. Cheap when nothing they show has changed."""
    from blogroto.build import catalog

    uses = {rel: (e["flt"], e["st"], e.get("kind")) for rel, e in state.new_files.items()
            if e.get("k") == "doc" and e.get("flt") and e.get("imgs")}
    previous = state.old.get("catalog") or {}
    try:
        result = catalog.render_catalog(
            state.site, uses, library=state.b._library_for(state.site), previous=previous,
            base_signature=state.glob, filter_sig=state.filter_sig, out_stat=state.out_stat, taken=state.new_files)
        for message in result.warnings:
            state.warn(message)
        for rel, data in result.pages.items():
            write_if_changed(state, rel, data)
        if result.rendered:
            result.record_written(state.out_stat)
        state.catalog = result
    except BlogrotoError as exc:
        # A broken catalog template or setting must not cost the rest of the build: report it
        # and keep the pages (and state) of the last good catalog, so the next build retries.
        state.report.errors.append(str(exc))
        state.catalog = catalog.CatalogResult(state=previous, files=list(previous.get("files") or ()))


def save(state: BuildState) -> None:
    """The new manifest, in the cache; nothing at all when the build changed nothing."""
    if state.check:
        return
    image_sigs = {}
    for name in state.images:
        st = state.out_stat(f"{IMAGES_DIR}/{name}")
        image_sigs[name] = stat_sig(st) if st else None
    used = sorted({e["flt"] for e in state.new_files.values() if e.get("flt")})
    filters = {name: state.filter_sig(name) for name in used}
    data = {"format": MANIFEST_FORMAT, "global": state.glob, "out": str(state.out),
            "files": state.new_files, "images": state.images, "image_sigs": image_sigs, "filters": filters,
            "catalog": state.catalog.state if state.catalog else {}}
    if (not state.changed and image_sigs == state.old.get("image_sigs") and data["global"] == state.old.get("global")
            and filters == state.old.get("filters") and data["catalog"] == state.old.get("catalog", {})):
        return  # a no-op build writes nothing at all
    state.ctree.write_bytes(state.ctree.rel_of(state.manifest_path), json.dumps(data, separators=(",", ":")).encode())
