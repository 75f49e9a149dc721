"""Stage 3, images: read or fetch every referenced image and turn it into a `Job` keyed by content
hash, filter, options and credit; a job whose cache entry is trusted needs no stylizing."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING

import blogroto
from blogroto.build.files import opaque_png
from blogroto.build.plan import IMAGES_DIR, SHORT_HASH, STEM_RE, Job, Plan, Ref
from blogroto.errors import BlogrotoError
from blogroto.imaging.sniff import raster_format

# Part of an animation's or video's cache key: 1 since their frames may run in bfloat16 where they
# agree with float32 (engine/stylize.py ClipPrecision); bump when what a clip's pixels depend on changes.
CLIP_PRECISION = 1

if TYPE_CHECKING:  # pragma: no cover
    from blogroto.build.state import BuildState


def prepare_images(state: BuildState, plans: list[Plan]) -> None:
    """Give every reference that resolved (`Ref.target`) its job; one job per distinct image,
    filter, options and name, shared by all the references that show it."""
    from blogroto.build.cache import OutputCache, StatIndex
    from blogroto.engine.stylize import StyleOptions

    state.cache = OutputCache(state.cache_dir, warn=state.tree_warn)
    state.stat_index = StatIndex(state.cache_dir)
    fetch_all(state, {u for p in plans for u in p.remote})
    for plan in plans:
        o = plan.options
        style = StyleOptions(strength=o.strength, keep_colors=o.keep_colors, max_size=o.max_size,
                             format=o.format, quality=o.quality)
        for ref in plan.refs:
            if ref.target is None:
                continue
            source = _read_source(state, plan, ref)
            if source is None:
                ref.target = None  # left as it is (said why)
                continue
            ref.job = _job_for(state, plan, ref, style, *source)
    if not state.check:
        state.stat_index.save()
        state.cache.ledger.save()


def _is_video(ref: Ref) -> bool:
    from blogroto.references import HTML_VIDEO

    return ref.where == "body" and ref.handle.kind == HTML_VIDEO  # wanted: planning.resolve


def _read_source(state: BuildState, plan: Plan, ref: Ref) -> tuple[Path | bytes, str, str, str, bytes] | None:
    """(source path or fetched bytes, file name, sha256, the format its bytes say, its first 16
    bytes) of a reference's image; None, with a warning or a note, when it cannot be used."""
    from blogroto.video import sniff_container

    t = ref.target
    try:
        if t.local is not None:
            path = state.site.root / t.local
            with open(path, "rb") as handle:
                head = handle.read(16)
            if _is_video(ref) and sniff_container(head) is None:
                state.note(f"{plan.display}:{ref.line}: not an MP4 or WebM video, left as it is: {ref.raw}")
                return None
            name = Path(t.local).name
            return path, name, state.stat_index.hash(path), raster_format(head) or Path(name).suffix, head
        got = state.remote.get(t.url)
        if isinstance(got, str) or got is None:
            # A failure the fetcher remembers is not retried before its time: the post need not
            # be processed again before then (manifest `recheck`).
            remembered = state.recheck.get(t.url) is not None
            text = state.warn(f"remote image left as it is: {got or 'not fetched'}", plan.doc.rel,
                              ref.line, None if remembered else plan)
            if remembered:
                plan.remote_warnings.append(text)
            return None
        body, name = got
        t.stem = Path(name).stem
        return body, name, hashlib.sha256(body).hexdigest(), raster_format(body[:16]) or Path(name).suffix, body[:16]
    except OSError as exc:
        state.warn(f"cannot read image {ref.raw}: {exc.strerror}", plan.doc.rel, ref.line, plan)
    except BlogrotoError as exc:
        state.warn(f"cannot read image {ref.raw}: {exc.message}", plan.doc.rel, ref.line, plan)
    return None


def _job_for(state: BuildState, plan: Plan, ref: Ref, style, source, name: str, sha: str, fmt_in: str,
             head: bytes) -> Job:
    """The job that stylizes `source` for `plan` (an existing one when another reference shares it)."""
    from blogroto.animation import ANIMATED_FORMATS
    from blogroto.build.cache import cache_key
    from blogroto.engine.stylize import output_format
    from blogroto.imaging.encode import EXTENSIONS
    from blogroto.video import sniff_container

    is_video, animation_settings = _is_video(ref), state.site.settings.animation
    pixel_key = style.pixel_key()
    # The stylizer keeps the format it decodes, so go by the bytes, not the name.
    fmt, job_style, options_key, animation = output_format(fmt_in, style), style, pixel_key, None
    if is_video:
        fmt, animation = sniff_container(head), animation_settings
        options_key = {**pixel_key, "video": asdict(animation), "clip_precision": CLIP_PRECISION}
    elif (fmt_in in set(ANIMATED_FORMATS.values()) and animation_settings is not None
          and frame_count_or_one(source) > 1):
        # an animation stays one, in its own format (the only ones that carry frames)
        fmt, animation = fmt_in, animation_settings
        options_key = {**pixel_key, "animation": asdict(animation), "clip_precision": CLIP_PRECISION}
    elif fmt == "png" and style.format is None and opaque_png(source):
        # a stylized photo in PNG is several times the JPEG's size, for nothing
        fmt, job_style = "jpeg", replace(style, format="jpeg")
        options_key = job_style.pixel_key()
    ext = fmt if is_video else EXTENSIONS[fmt].lstrip(".")
    t = ref.target
    ident = (sha, plan.flt.slug, json.dumps(options_key, sort_keys=True, default=str), t.stem)
    job = state.jobs.get(ident)
    if job is None:
        from blogroto.credits.xmp import xmp_for

        # The embedded XMP carries the filter's credit, which its weights fingerprint does not
        # cover: a corrected credit must give new files, so it is in the key.
        xmp = xmp_for(plan.flt, name)
        key = cache_key(image=sha, filter=plan.flt.fingerprint, options=options_key,
                        engine=blogroto.ENGINE_VERSION, xmp=hashlib.sha256(xmp).hexdigest())
        stem = STEM_RE.sub("-", t.stem).strip(".-") or "image"
        out_name = f"{stem}-{plan.flt.slug}-{key[:SHORT_HASH]}.{ext}"
        job = Job(key, ext, out_name, plan.flt, job_style, source, label=ref.raw,
                  cached=trusted_entry(state, key, ext, out_name), xmp=xmp, animation=animation, video=is_video)
        state.jobs[ident] = job
    return job


def frame_count_or_one(source) -> int:
    from blogroto.animation import frame_count

    try:
        return frame_count(source)
    except OSError:
        return 1  # unreadable now: the stylizer reports it, naming the file


def trusted_entry(state: BuildState, key: str, ext: str, name: str) -> Path | None:
    """The cache entry for `key` when it holds the bytes blogroto wrote there, else None (and
    the image is stylized again). Cheap: the hash is read only when the entry's stat differs
    from the one recorded, under --force, or when the output does not already hold this very
    file (the entry is linked anew), so a no-op build never reads it."""
    cached = state.cache.get(key, ext)
    if cached is None:
        return None
    cst = state.cache.tree.lstat(state.cache.rel_for(key, ext))
    ost = state.out_stat(f"{IMAGES_DIR}/{name}")
    linked = cst is not None and ost is not None and (ost.st_ino, ost.st_dev) == (cst.st_ino, cst.st_dev)
    if state.cache.verify(key, ext, rehash=state.opts.force or not linked):
        return cached
    rel = state.cache.rel_for(key, ext)
    if state.cache.ledger.get(rel) is None:
        state.note(f"{state.cache_dir / rel}: not recorded as written by blogroto; stylizing again")
    else:
        state.report.warnings.append(f"{state.cache_dir / rel}: the cache entry does not match the hash recorded "
                                    f"when blogroto wrote it (damaged or replaced); stylizing again")
    return None


def fetch_all(state: BuildState, urls: set[str]) -> None:
    if not urls:
        return
    from blogroto.build.remote import RemoteFetcher, RemoteImageError, RemotePolicy

    r = state.site.settings.remote
    policy = RemotePolicy(timeout=r.timeout, max_bytes=r.max_bytes, allow_private=r.allow_private,
                          enabled=r.enabled, duration=r.duration)
    fetcher = RemoteFetcher(state.cache_dir, policy)
    fetcher.store = not state.check  # --check writes nothing, not even downloads to the cache
    fetcher.on_store = state.cache.ledger.record_file  # gc deletes only downloads recorded here
    fetcher.is_genuine = lambda rel: state.cache.ledger.matches(rel, rehash=False)
    fetcher.refresh = state.opts.refresh_remote

    def fetch(url):
        try:
            return url, fetcher.fetch(url)
        except RemoteImageError as exc:
            return url, exc.reason
        except BlogrotoError as exc:
            return url, exc.message

    try:
        # Downloads are I/O bound: this is what --jobs is for.
        from concurrent.futures import (
            ThreadPoolExecutor,  # only builds that fetch pay for the import
        )

        with ThreadPoolExecutor(max_workers=max(1, state.opts.jobs)) as pool:
            for url, result in pool.map(fetch, sorted(urls)):
                state.remote[url] = result
    finally:
        state.recheck.update(fetcher.recheck_at)
        fetcher.close()


def remote_state(state: BuildState, plan: Plan) -> dict:
    """Manifest fields for a document's remote images: when the earliest is due to be fetched
    again (`recheck`, a time) and the warnings of those that could not be (`rwarn`)."""
    due = [t for u in set(plan.remote) if (t := state.recheck.get(u)) is not None]
    state = {}
    if due:
        state["recheck"] = min(due)
    if plan.remote_warnings:
        state["rwarn"] = list(plan.remote_warnings)
    return state
