"""Stage 4, stylize: run the filters on the jobs the cache lacks, then derive the responsive sizes
and social cards from the stylized files (all cached)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import blogroto
from blogroto.build.images import trusted_entry
from blogroto.build.plan import FORMAT_OF_EXT, IMAGES_DIR, SHORT_HASH, Job, Plan
from blogroto.errors import BlogrotoError, ImageError

if TYPE_CHECKING:  # pragma: no cover
    from blogroto.build.state import BuildState


def stylize_jobs(state: BuildState) -> None:
    todo = [j for j in state.jobs.values() if j.cached is None]
    state.report.cache_hits += sum(1 for j in state.jobs.values() if j.cached is not None)
    if not todo:
        return
    if state.check:
        for job in todo:
            state.report.would_change.append(f"{IMAGES_DIR}/{job.name}")
        return
    from tqdm import tqdm

    if state.b.stylizer is None:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TF's start-up chatter off the terminal
        from blogroto.engine.stylize import (
            Stylizer,  # TensorFlow is imported here, and only here
        )

        state.b.stylizer = Stylizer()
    bar = tqdm(todo, desc="stylizing", unit="img", disable=not state.opts.progress, leave=False)
    for job in bar:
        bar.set_postfix_str(Path(job.label).name[:40])
        # The stylizer writes a new file at the top of the cache folder; the cache's tree moves it
        # into place (never through a symlink) and records its hash.
        tmp = state.cache.tmp_name(job.key, job.ext)
        try:
            if job.video:
                state.b.stylizer.stylize_video_file(job.source, state.cache_dir / tmp, job.flt, job.style,
                                                   job.animation, name=job.label, progress=state.opts.progress,
                                                   note=state.note)
            elif job.animation is not None:
                state.b.stylizer.stylize_animation_file(job.source, state.cache_dir / tmp, job.flt, job.style,
                                                       job.animation, name=job.label, xmp=job.xmp,
                                                       progress=state.opts.progress, note=state.note)
            else:
                state.b.stylizer.stylize_file(job.source, state.cache_dir / tmp, job.flt, job.style,
                                             name=job.label, xmp=job.xmp)
            state.cache.adopt(tmp, job.key, job.ext)
        except ImageError as exc:
            job.failed = exc.message  # this image only: a warning, the reference is left as it was
            continue
        except BlogrotoError as exc:
            job.failed, job.fatal = str(exc), True  # e.g. corrupt weights: every document using it fails
            continue
        finally:
            state.cache.tree.remove(tmp)  # left only when something failed
        job.cached = state.cache.get(job.key, job.ext)
        if job.cached is None:
            job.failed = "the stylized image was not written"
            continue
        state.report.images_stylized += 1
        state.note(f"stylized {job.label} -> {job.name}")
    bar.close()
    state.cache.ledger.save()


def responsive_files(state: BuildState, plans: list[Plan]) -> None:
    """Responsive sets for the stylized stills of documents that want them, and social cards for
    their `image:` keys (blogroto.responsive): each file derived from the stylized one, cached."""
    from blogroto import responsive
    from blogroto.references import HTML_SRC, HTML_SRCSET, MD_INLINE, MD_REFERENCE

    settings = state.site.settings.responsive
    card_size = settings.social_card if settings is not None else None
    for plan in plans:
        preset = plan.options.responsive
        for ref in plan.refs:
            job = ref.job
            if job is None or job.failed or job.cached is None or job.video or preset is None:
                continue
            # body images a reader sees as <img> (not posters), and `image:`, the social card
            shown = ref.where == "body" and ref.handle.kind in (MD_INLINE, MD_REFERENCE, HTML_SRC, HTML_SRCSET)
            try:
                if job.animation is not None:  # stays one file in its own format: size and loading only
                    if shown:
                        (w, h), _alpha = responsive.image_size(job.cached)
                        ref.images = responsive.single_file(job.key, job.name, job.ext, (w, h), preset)
                elif shown:
                    ref.images = image_set(state, job, preset, plan.options.quality)
                elif ref.where == "front" and ref.handle.key == "image" and ref.handle.path in ((), ("path",)):
                    if card_size:  # the social card
                        card = responsive.card_variant(key=job.key, name=job.name, size=card_size,
                                                       cache_key=variant_key, short_hash=SHORT_HASH)
                        ref.card = card if derive(state, job, card, crop=True) else None
                elif ref.where == "front":  # a gallery's or a theme's image: data for the layout
                    ref.images = image_set(state, job, preset, plan.options.quality)
            except ImageError as exc:
                state.warn(f"{exc.message}; {ref.raw} is published as one file", plan.doc.rel, ref.line, plan)
    if not state.check:
        state.cache.ledger.save()  # the derived files' hashes, so later builds trust them


def variant_key(**parts) -> str:
    from blogroto.build.cache import cache_key

    return cache_key(**parts, engine=blogroto.ENGINE_VERSION)


def image_set(state: BuildState, job: Job, preset, quality: int):
    if (job.key, preset) in state.sets:
        return state.sets[(job.key, preset)]
    from blogroto import responsive

    size, alpha = responsive.image_size(job.cached)
    images = responsive.plan_set(key=job.key, name=job.name, fmt=FORMAT_OF_EXT.get(job.ext, job.ext),
                                 size=size, alpha=alpha, preset=preset, quality=quality,
                                 cache_key=variant_key, short_hash=SHORT_HASH)
    kept = []
    for fmt, variants in images.by_format:
        if not responsive.can_write(fmt):
            state.note(f"this Pillow cannot write {fmt.upper()}: no {fmt} candidates")
            continue
        if all(derive(state, job, v) for v in variants):
            kept.append((fmt, variants))
    images = responsive.ImageSet(images.width, images.height, tuple(kept), images.sizes, images.lazy)
    state.sets[(job.key, preset)] = images if kept else None
    return state.sets[(job.key, preset)]


def derive(state: BuildState, job: Job, variant, *, crop: bool = False) -> bool:
    """Make sure the cache holds `variant` of the stylized `job` (in check mode: say it would
    change). False when it is not there to publish."""
    if variant.key == job.key:
        return True
    ext = variant.name.rsplit(".", 1)[1]
    if variant.name in state.variant_files:
        return True
    cached = trusted_entry(state, variant.key, ext, variant.name)
    if cached is None:
        if state.check:
            state.report.would_change.append(f"{IMAGES_DIR}/{variant.name}")
            return False
        from blogroto import responsive

        cached = state.cache.put(variant.key, responsive.render_variant(job.cached, variant, crop=crop,
                                                                       xmp=job.xmp), ext)
    state.variant_files[variant.name] = (variant.key, ext, cached)
    return True
