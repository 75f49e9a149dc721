"""Stage 5, emit: write each document with its references pointing at the stylized images, its
figures and credits; copy (hard-link) static files; record every output in the new manifest."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from blogroto.build.figures import wrap_figures
from blogroto.build.files import kind_name
from blogroto.build.front_matter import rewrite_front_matter
from blogroto.build.images import remote_state
from blogroto.build.manifest import stat_or_none
from blogroto.build.output import link_or_copy, write_if_changed
from blogroto.build.plan import IMAGES_DIR, Plan, Ref
from blogroto.errors import BlogrotoError
from blogroto.site.config import FRONT_MATTER_KEY
from blogroto.site.model import SourceFile

if TYPE_CHECKING:  # pragma: no cover
    from blogroto.build.state import BuildState


def emit_static(state: BuildState, sf: SourceFile, kind: str = "static", **extra) -> None:
    try:
        link_or_copy(state, sf.path, sf.rel, sf.st if sf.recorded is None else None)
    except FileNotFoundError:
        return  # vanished during the build
    state.record(sf.rel, sf, kind, [sf.rel], **extra)


def fail(state: BuildState, sf: SourceFile, exc: Exception) -> None:
    msg = str(exc)
    if isinstance(exc, BlogrotoError) and exc.path is not None:
        # Name the file as the author does (site/_posts/x.md), not by its absolute path.
        try:
            rel = Path(exc.path).resolve().relative_to(state.site.root).as_posix()
            msg = str(BlogrotoError(exc.message, state.b._display(rel), exc.line))
        except ValueError:
            pass
    state.report.errors.append(msg)
    state.report.failed.append(state.b._display(sf.rel))
    state.note(f"failed: {msg}")
    # The document is copied unchanged so the output still builds; it is retried next time.
    emit_static(state, sf, kind="failed")


def new_path(state: BuildState, plan: Plan, ref: Ref, name: str) -> str:
    """The replacement for a reference's bare path, in the author's style."""
    new_root = f"/{IMAGES_DIR}/{name}"
    raw = ref.raw.strip()
    baseurl = state.site.baseurl
    if ref.where == "front":
        # Front-matter paths are site paths (jekyll-seo-tag and themes add the baseurl).
        if baseurl and (raw == baseurl or raw.startswith(baseurl + "/")):
            return baseurl + new_root
        if not raw.startswith("/") and ref.target and ref.target.local == os.path.normpath(raw):
            return new_root.lstrip("/")  # written relative to the site root: keep it that way
        return new_root
    if ref.handle.raw != ref.handle.path and "{" in ref.handle.raw:
        return new_root  # the author's {{ site.baseurl }} / relative_url wrapper is kept around it
    if raw.startswith("/") and not raw.startswith("//"):
        if baseurl and (raw == baseurl or raw.startswith(baseurl + "/")):
            return baseurl + new_root
        return new_root
    # Relative paths and remote URLs: the page URL decides what a relative path means, so
    # point at the site path through the baseurl, in Liquid where the document renders it.
    # No spaces inside the tag: a space would end a bare Markdown destination.
    return "{{site.baseurl}}" + new_root if plan.liquid else baseurl + new_root


def emit_document(state: BuildState, plan: Plan) -> None:
    doc = plan.doc
    sf = state.sources[doc.rel]
    used = []
    fatal = next((r for r in plan.refs if r.job is not None and r.job.fatal), None)
    if fatal is not None:
        fail(state, sf, BlogrotoError(f"cannot stylize {fatal.raw} with filter {plan.flt.slug!r}: {fatal.job.failed}",
                                     plan.display, fatal.line))
        return
    for ref in plan.refs:
        job = ref.job
        if job is None:
            continue
        if job.failed:
            state.warn(f"cannot stylize {ref.raw}: {job.failed}; left as it is", doc.rel, ref.line, plan)
            continue
        ref.new = new_path(state, plan, ref, ref.card.name if ref.card else job.name)
        used.append(job)
    if not used:
        if plan.refs:
            state.note(f"{plan.display}: no image was stylized")
        else:
            state.warn("algorotoscope is set but the document references no images", doc.rel,
                      doc.key_line(FRONT_MATTER_KEY), plan)
    try:
        text = render_document(state, plan, bool(used))
    except BlogrotoError as exc:
        fail(state, sf, exc)
        return
    if text is None:
        # Nothing stylized: the document stays as it is, but its inputs are still tracked.
        emit_static(state, sf, kind="doc", deps={k: list(v) for k, v in plan.deps.items()}, imgs=[],
                          remote=sorted(set(plan.remote)), retry=plan.warned, flt=plan.flt.slug,
                          **remote_state(state, plan))
        state.report.posts += 1
        return
    imgs, mark = [], len(state.report.would_change)
    for job in dict.fromkeys(used):
        out_rel = f"{IMAGES_DIR}/{job.name}"
        if job.cached is not None:
            link_or_copy(state, job.cached, out_rel, follow=False)
        state.images[job.name] = [job.key, job.ext]
        imgs.append(job.name)
    derived = {v.name for r in plan.refs for v in ([r.card] if r.card else []) + (r.images.files if r.images else [])}
    for name in sorted(derived - set(imgs)):
        key, ext, cached = state.variant_files[name]
        link_or_copy(state, cached, f"{IMAGES_DIR}/{name}", follow=False)
        state.images[name] = [key, ext]
        imgs.append(name)
    count_bytes(state, plan)
    write_if_changed(state, doc.rel, doc.encode(text))
    if state.check and (len(state.report.would_change) > mark or any(j.cached is None for j in used)):
        state.report.would_change_posts.append(plan.display)  # its text, or an image it shows, would change
    deps = {k: list(v) for k, v in plan.deps.items()}
    state.record(doc.rel, sf, "doc", [doc.rel], deps=deps, imgs=imgs, remote=sorted(set(plan.remote)),
                 retry=plan.warned, flt=plan.flt.slug, **remote_state(state, plan))
    state.report.posts += 1
    state.report.posts_rebuilt += 1


def count_bytes(state: BuildState, plan: Plan) -> None:
    """Source bytes against what a browser fetches at full width, for the build summary."""
    for ref in {id(r.job): r for r in plan.refs if r.new and r.job is not None and r.where == "body"}.values():
        job = ref.job
        served = ref.images.by_format[0][1][-1] if ref.images else None
        path = state.variant_files[served.name][2] if served and served.key != job.key else job.cached
        src = stat_or_none(job.source) if isinstance(job.source, Path) else None
        out = stat_or_none(path) if path is not None else None
        if out is not None and (src is not None or isinstance(job.source, bytes)):
            state.report.bytes_in += src.st_size if src is not None else len(job.source)
            state.report.bytes_out += out.st_size


def render_document(state: BuildState, plan: Plan, stylized: bool) -> str | None:
    """The rewritten text of a document, or None when it stays as it is."""
    if not stylized:
        return None
    from blogroto import references, responsive
    from blogroto.credits.record import credit_record
    from blogroto.credits.render import front_matter_record, place_credits

    doc = plan.doc
    renderer = state.b._renderer or state.b._credit_renderer(state.site)
    record = credit_record(plan.flt)
    records = [record]
    body_refs = [r for r in plan.refs if r.where == "body" and r.new]
    body = doc.body
    if body_refs:
        new_for = {(r.handle.start, r.handle.end): r.new for r in body_refs}
        body = references.rewrite_image_refs(body, lambda ref: new_for.get((ref.start, ref.end)))
        if state.site.settings.figure:
            body = wrap_figures(doc.body, body, renderer, record, body_refs, markdown=doc.is_markdown)
        sets = {r.job.name: r.images for r in body_refs if r.images}
        if sets:
            body = responsive.rewrite_body(body, sets, IMAGES_DIR)
    from blogroto.credits.jsonld import document_jsonld

    jsonld = document_jsonld(state.site, record, [(f"{IMAGES_DIR}/{r.job.name}", r.target.local, r.target.url)
                                                 for r in plan.refs if r.new and r.job is not None], doc.data)
    html = renderer.render_block(records, document={"path": doc.rel, "title": doc.data.get("title"),
                                                    "kind": doc.kind, "kind_name": kind_name(doc.kind)},
                                 jsonld=jsonld)
    body = place_credits(body, html, markdown=doc.is_markdown)
    front = [r for r in plan.refs if r.where == "front" and r.new]
    base = f"{state.site.baseurl}/{IMAGES_DIR}"
    layout_images = {r.new: responsive.layout_data(r.images, base) for r in front if r.images}
    yaml_text = rewrite_front_matter(doc, front, [front_matter_record(r) for r in records],
                                     layout_images)
    return doc.text[: doc.front.yaml_start] + yaml_text + doc.text[doc.front.yaml_end: doc.front.body_start] + body
