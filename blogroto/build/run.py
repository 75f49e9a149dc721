"""One build run, stage by stage: scan -> plan -> images -> stylize -> emit -> catalog -> remove stale
-> save. Each stage is a function of the build's one `BuildState` (blogroto.build.state)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from blogroto.build.emit import emit_document
from blogroto.build.finish import save, write_catalog
from blogroto.build.images import prepare_images
from blogroto.build.output import check_intact, check_output_folder, remove_stale
from blogroto.build.planning import plan_documents
from blogroto.build.scan import changed_sources
from blogroto.build.stylizing import responsive_files, stylize_jobs

if TYPE_CHECKING:  # pragma: no cover
    from blogroto.build.state import BuildState


def execute(state: BuildState, paths) -> None:
    """Build `paths` (None: the whole site) of `state`'s site into its output folder."""
    check_output_folder(state)
    dirty_docs = changed_sources(state, paths)
    plans = plan_documents(state, dirty_docs)
    if plans:
        prepare_images(state, plans)
        stylize_jobs(state)
        responsive_files(state, plans)
        for plan in plans:
            emit_document(state, plan)
    write_catalog(state)
    remove_stale(state)
    check_intact(state)
    save(state)
