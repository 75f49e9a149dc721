"""Stage 2, plan: the documents that ask for a filter, their options and the image references they
show, each resolved to a site file or a remote URL (or refused, with a warning naming the line)."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

from blogroto.build.emit import emit_static, fail
from blogroto.build.front_matter import front_matter_refs
from blogroto.build.plan import SCHEME_RE, Plan, Ref, Target
from blogroto.errors import ConfigError, FilterError, ImageError, UnknownFilterError
from blogroto.site.config import FRONT_MATTER_KEY, parse_post_options
from blogroto.site.documents import read_document
from blogroto.site.model import SourceFile

if TYPE_CHECKING:  # pragma: no cover
    from blogroto.build.state import BuildState


def plan_documents(state: BuildState, candidates: list[SourceFile]) -> list[Plan]:
    plans = []
    for sf in candidates:
        try:
            plan = plan_one(state, sf)
        except FileNotFoundError:
            continue  # deleted since the scan (or since the manifest said it was there)
        except (ConfigError, FilterError, ImageError) as exc:
            fail(state, sf, exc)
            continue
        except OSError as exc:  # unreadable (permissions, I/O error): this document only
            fail(state, sf, ConfigError(f"cannot read: {exc.strerror or exc}", sf.path))
            continue
        if plan is None:
            emit_static(state, sf)
        else:
            plans.append(plan)
    return plans


def plan_one(state: BuildState, sf: SourceFile) -> Plan | None:
    site = state.site
    with open(sf.path, "rb") as handle:
        head = handle.read(6)
        if not head.startswith((b"---", b"\xef\xbb\xbf---")):
            return None  # no front matter: Jekyll copies it as a static file, so do we
        raw = head + handle.read()
    wants_defaults = site.has_defaults_for(FRONT_MATTER_KEY)
    if FRONT_MATTER_KEY.encode() not in raw and not wants_defaults:
        return None  # cheap: the key cannot be in this front matter
    doc = read_document(sf.path, sf.rel, sf.kind, raw=raw)
    if doc is None:
        return None
    defaults = site.defaults_for(sf.rel, sf.kind) if site._defaults else {}
    value = doc.data.get(FRONT_MATTER_KEY, defaults.get(FRONT_MATTER_KEY))
    display = state.b._display(sf.rel)
    key_line = doc.key_line(FRONT_MATTER_KEY) if FRONT_MATTER_KEY in doc.data else None
    own = FRONT_MATTER_KEY in doc.data and isinstance(value, dict)
    options = parse_post_options(value, site.settings, Path(display), key_line,
                                          doc.option_lines(FRONT_MATTER_KEY) if own else None)
    if options is None:
        return None
    library = state.b._library_for(site)
    try:
        flt = library.get(options.filter)
    except UnknownFilterError as exc:
        raise ConfigError(exc.message, display, key_line) from exc
    except FilterError as exc:
        raise FilterError(f"filter {options.filter!r}: {exc}", display, key_line) from exc
    liquid = doc.data.get("render_with_liquid", defaults.get("render_with_liquid", True)) is not False
    plan = Plan(doc, display, options, flt, [], {}, [], liquid)
    collect_refs(state, plan, defaults)
    return plan


def collect_refs(state: BuildState, plan: Plan, defaults: dict) -> None:
    doc = plan.doc
    # front matter image keys (the social card among them)
    for ref in front_matter_refs(doc, state.site.settings.image_keys, defaults):
        plan.refs.append(ref)
    from blogroto import references

    for r in references.find_image_refs(doc.body):
        if r.opt_out:
            continue  # the author opted this image out (class="no-algorotoscope" etc.)
        line = doc.body_line + r.line - 1
        if r.is_dynamic:
            state.note(f"{plan.display}:{line}: skipping computed image path {r.path}")
            continue
        plan.refs.append(Ref("body", r.path, line, r))
    for ref in plan.refs:
        resolve(state, plan, ref)


def resolve(state: BuildState, plan: Plan, ref: Ref) -> None:
    from blogroto.references import HTML_VIDEO

    raw = ref.raw.strip()
    site = state.site
    if not raw or raw.startswith(("data:", "#")):
        return
    if ref.where == "body" and ref.handle.kind == HTML_VIDEO and not video_wanted(state, plan, ref, raw):
        return
    if ref.where == "body" and ref.handle.kind.startswith("html"):
        import html

        raw = html.unescape(raw)  # &amp; in an attribute is a plain & in the URL
    lower = raw.lower()
    if lower.startswith("//"):
        raw = "https:" + raw
        lower = raw.lower()
    if lower.startswith(("http://", "https://")):
        if not plan.options.wants(raw, raw.rsplit("/", 1)[-1]):
            return
        if not site.settings.remote.enabled:
            return
        ref.target = Target(url=raw)
        plan.remote.append(raw)
        return
    if SCHEME_RE.match(raw) and not re.match(r"^[A-Za-z]:[\\/]", raw):
        if lower.startswith("file:"):
            state.warn(f"refusing image reference {ref.raw!r}: it points outside the site", plan.doc.rel, ref.line, plan)
        return  # mailto:, javascript:, ... are not images we can stylize
    if re.match(r"^[A-Za-z]:[\\/]", raw) or "\\" in raw:
        state.warn(f"refusing image reference {ref.raw!r}: it points outside the site", plan.doc.rel, ref.line, plan)
        return
    if ref.where == "body":
        # the references module undoes Markdown escapes, entities and percent-encoding
        rel, reason = site.resolve_local(ref.handle.local_path or raw, plan.doc.folder_rel, decoded=True)
    else:
        rel, reason = site.resolve_local(raw, plan.doc.folder_rel)
    if rel is None:
        if reason == "outside":
            state.warn(f"refusing image reference {ref.raw!r}: it points outside the site", plan.doc.rel, ref.line, plan)
        else:
            state.warn(f"image not found: {ref.raw}", plan.doc.rel, ref.line, plan)
            state.report.missing.append(state.report.warnings[-1])  # --check fails on these
        return
    if not plan.options.wants(raw, rel, "/" + rel, rel.rsplit("/", 1)[-1]):
        return
    suffix = Path(rel).suffix.lower()
    if suffix == ".svg" or suffix == ".svgz":
        state.note(f"{plan.display}:{ref.line}: skipping vector image {ref.raw}")
        return  # vector images are left alone
    ref.target = Target(local=rel, stem=Path(rel).stem)
    src = state.sources.get(rel)
    if src is not None:
        plan.deps[rel] = src.sig[:2]
    else:
        st = os.stat(site.root / rel)
        plan.deps[rel] = [st.st_size, st.st_mtime_ns]


def video_wanted(state: BuildState, plan: Plan, ref: Ref, raw: str) -> bool:
    """Whether a <video>/<source> reference is stylized at all; if not, says why. Remote videos
    are left as they are, never downloaded: the fetcher takes images only."""
    from blogroto import video

    if raw.lower().startswith(("http://", "https://", "//")):
        state.note(f"{plan.display}:{ref.line}: remote video left as it is: {ref.raw}")
        return False
    if state.site.settings.animation is None:
        return False
    if not video.available():
        state.warn(video.INSTALL_HINT, plan.doc.rel, ref.line, plan)  # warned: processed again next build
        return False
    return True
