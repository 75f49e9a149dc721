"""One build run, stage by stage: scan -> plan -> images -> stylize -> emit -> catalog -> remove stale
-> save (`Run.execute`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from blogroto.build.figures import wrap_figures
from blogroto.build.files import kind_name, opaque_png, walk_files, walk_one
from blogroto.build.front_matter import front_matter_refs, rewrite_front_matter
from blogroto.build.manifest import (
    MANIFEST_FORMAT,
    load_manifest,
    stat_or_none,
    stat_sig,
)
from blogroto.build.output import OUTPUT_MARKER
from blogroto.build.plan import (
    FORMAT_OF_EXT,
    IMAGES_DIR,
    SCHEME_RE,
    SHORT_HASH,
    STEM_RE,
    Job,
    Plan,
    Ref,
    Target,
)
from blogroto.build.report import BuildReport

if TYPE_CHECKING:  # pragma: no cover
    from blogroto.build.api import Builder

import errno
import hashlib
import json
import os
import re
import stat as stat_mod
import time
from collections.abc import Iterable
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import blogroto
from blogroto.errors import (
    BlogrotoError,
    ConfigError,
    FilterError,
    ImageError,
    UnknownFilterError,
)
from blogroto.fsutil import (
    TMP_PREFIX,
    OwnedTree,
    TreeVanishedError,
    describe_os_error,
    is_safe_rel,
)
from blogroto.imaging.sniff import raster_format
from blogroto.site.config import (
    FRONT_MATTER_KEY,
    parse_post_options,
)
from blogroto.site.documents import read_document
from blogroto.site.model import Site, SourceFile


class Run:
    """The state of one build (kept off the Builder so builds never leak state into each other)."""

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
        # symlink, never outside the folder): blogroto.fsutil.OwnedTree.
        self.tree = OwnedTree(self.out, "output", warn=self._tree_warn)
        self.ctree = OwnedTree(self.cache_dir, "cache", warn=self._tree_warn)
        self.reclaim = reclaim  # the identity of our own output folder whose marker vanished last try
        self.manifest_path = builder._manifest_path(site)
        self.old = {} if self.opts.force or fresh else load_manifest(self.manifest_path, report.warnings.append)
        self.old_files: dict[str, dict] = self.old.get("files", {})
        self.new_files: dict[str, dict] = {}
        self.images: dict[str, list[str]] = {}  # output image name -> [cache key, ext]
        self.sources: dict[str, SourceFile] = {}
        self._out_stats: dict[str, os.stat_result | None] = {}
        self._stat_index = None
        self._cache = None
        self._jobs: dict[tuple, Job] = {}
        self._sets: dict[tuple, Any] = {}  # (job key, preset) -> responsive.ImageSet or None
        self._variant_files: dict[str, tuple[str, str, Path]] = {}  # name -> (cache key, ext, cache path)
        self._filter_sigs: dict[str, Any] = {}
        self._remote: dict[str, tuple[bytes, str] | str] = {}
        self._recheck: dict[str, float | None] = {}  # URL -> when to go to the network for it again
        self.changed = False
        self.catalog: Any = None  # blogroto.build.catalog.CatalogResult of this build

    def _tree_warn(self, message: str) -> None:
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

    # -- top level --------------------------------------------------------------------------

    def execute(self, paths) -> None:
        self._check_output_folder()
        self.glob = self._global_signature()
        same_global = self.old.get("global") == self.glob and not self.opts.force
        seen = len(self.site.warnings)
        self.sources = self._scan(paths)
        self.report.warnings.extend(self.site.warnings[seen:])  # symlinks not published, unreadable folders

        dirty_docs: list[SourceFile] = []
        for rel, sf in self.sources.items():
            prev = self.old_files.get(rel)
            if same_global and prev is not None and self._up_to_date(sf, prev):
                self.new_files[rel] = prev
                for name in prev.get("imgs", ()):
                    self.images[name] = self.old["images"][name]
                if prev.get("k") == "doc":
                    self.report.posts += 1
                # Remote images that could not be fetched: the failure is remembered until its
                # retry time (blogroto.remote), and so is the warning, reported on every build.
                self.report.warnings.extend(prev.get("rwarn", ()))
                continue
            if sf.is_link:
                continue  # never produced by the walk: symlinks are published as what they point to
            if sf.kind is None:
                self._emit_static(sf)
            else:
                dirty_docs.append(sf)

        plans = self._plan(dirty_docs)
        if plans:
            self._prepare_images(plans)
            self._stylize()
            self._respond(plans)
            for plan in plans:
                self._emit_document(plan)
        self._write_catalog()
        self._remove_stale()
        self._check_intact()
        self._save()

    def _check_intact(self) -> None:
        """The output folder and its marker are still there: nobody removed or emptied the output
        while this build ran (else its manifest would describe files that are gone)."""
        if self.check:
            return
        if not self.tree.root_intact():
            raise TreeVanishedError("the output folder was removed or replaced during the build", self.out)
        if self.tree.lstat(OUTPUT_MARKER) is None:
            raise TreeVanishedError(f"the output folder was emptied during the build (its marker {OUTPUT_MARKER} "
                                    f"vanished)", self.out)

    # -- scanning ---------------------------------------------------------------------------

    def _check_output_folder(self) -> None:
        out = self.out
        if out.exists() and not out.is_dir():
            raise ConfigError("the output path exists and is not a folder", out)
        if out.is_symlink():
            raise ConfigError("the output path is a symlink; give the folder it points to", out)
        if self.check and not out.is_dir():
            return
        ident = self.tree.pin()
        marker = self.tree.lstat(OUTPUT_MARKER)
        if marker is not None and not stat_mod.S_ISREG(marker.st_mode):
            raise ConfigError(f"the output folder's marker {OUTPUT_MARKER} is not a file; it was not written by "
                              f"blogroto", out)
        if marker is None and ident != self.reclaim:
            # Temporary files of a killed blogroto writer do not make a folder foreign.
            foreign = sorted(name for name, _st in self.tree.scan() if not name.startswith(TMP_PREFIX))
            if foreign:
                # Never take over a folder blogroto did not make: the build deletes what it did not write.
                raise ConfigError(f"the output folder is not empty and was not made by blogroto (it has no "
                                  f"{OUTPUT_MARKER} marker and holds {', '.join(foreign[:3])}"
                                  f"{', ...' if len(foreign) > 3 else ''}); choose another folder or empty it", out)
        if marker is None:
            if not self.check:
                self.tree.write_bytes(OUTPUT_MARKER, b"This folder is written by `blogroto build`; do not edit.\n")
            return
        if not self.old and not self.opts.force and not self.check and ident != self.reclaim \
                and any(n != OUTPUT_MARKER and not n.startswith(TMP_PREFIX) for n, _st in self.tree.scan()):
            # Made by blogroto, but this cache has no record of it: another cache built it (or this
            # one was lost). Say so; this build takes it over and rebuilds what it cannot vouch for.
            self.report.warnings.append(
                f"{out}: this output was built by blogroto with another cache folder (or this cache, "
                f"{self.cache_dir}, lost its record of it); taking it over. Builds of one output should share one "
                f"cache: with two, each rebuilds what the other wrote")

    def _global_signature(self) -> str:
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

    def _filter_sig(self, name: str):
        """Which folder filter `name` resolves to and the stats of its files (None: not found)."""
        if name in self._filter_sigs:
            return self._filter_sigs[name]
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
        self._filter_sigs[name] = sig
        return sig

    def _scan(self, paths) -> dict[str, SourceFile]:
        site = self.site
        if paths is None or not self.old_files:
            return {sf.rel: sf for sf in site.walk(self.opts.drafts)}
        # Incremental: trust the manifest for everything but the given paths.
        sources: dict[str, SourceFile] = {}
        for rel, entry in self.old_files.items():
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
                for sf in site.walk(self.opts.drafts):
                    if sf.rel.startswith(rel + "/"):
                        sources[sf.rel] = sf
            elif full.exists() or full.is_symlink():
                for sf in walk_one(site, rel, self.opts.drafts):
                    sources[sf.rel] = sf
        return sources

    def _out_stat(self, rel: str) -> os.stat_result | None:
        try:
            return self._out_stats[rel]
        except KeyError:
            st = self._out_stats[rel] = stat_or_none(f"{self.out_str}/{rel}")  # str, not Path: this runs per file
            return st

    def _up_to_date(self, sf: SourceFile, prev: dict) -> bool:
        """Unchanged source, unchanged inputs, outputs as we left them: nothing to do."""
        if prev.get("k") == "failed" or prev.get("retry"):
            return False  # report its errors and warnings again until the author fixes them
        recheck = prev.get("recheck")
        if recheck is not None and time.time() >= recheck:
            return False  # a remote image is due: revalidate a cached copy, retry a failed fetch
        if self.opts.refresh_remote and prev.get("remote"):
            return False
        cur = sf.sig
        if cur != prev.get("st"):
            return False
        flt = prev.get("flt")
        if flt is not None and self._filter_sig(flt) != self.old.get("filters", {}).get(flt):
            return False  # the document's filter changed (weights, metadata) or resolves elsewhere
        for dep, dsig in prev.get("deps", {}).items():
            src = self.sources.get(dep)
            if src is None or src.sig[:2] != dsig:
                return False
        for rel, osig in prev.get("out", {}).items():
            st = self._out_stat(rel)
            if st is None or stat_sig(st) != osig:
                return False
        for name in prev.get("imgs", ()):
            rel = f"{IMAGES_DIR}/{name}"
            osig = self.old.get("image_sigs", {}).get(name)
            st = self._out_stat(rel)
            if st is None or stat_sig(st) != osig:
                return False
        return True

    # -- writing helpers --------------------------------------------------------------------

    def _record(self, rel: str, sf: SourceFile, kind: str, outputs: Iterable[str], **extra) -> None:
        entry = {"st": sf.sig, "k": kind, "kind": sf.kind,
                 "out": {o: (stat_sig(st) if (st := stat_or_none(self.out / o)) else None) for o in outputs}}
        entry.update(extra)
        self.new_files[rel] = entry
        self.changed = True

    def _changed(self, out_rel: str) -> None:
        (self.report.would_change if self.check else self.report.written).append(out_rel)
        self.changed = True

    def _write_if_changed(self, out_rel: str, data: bytes) -> None:
        st = self.tree.lstat(out_rel)
        try:
            if st is not None and stat_mod.S_ISREG(st.st_mode) and st.st_size == len(data) \
                    and self.tree.read_bytes(out_rel) == data:
                return
        except (OSError, BlogrotoError):
            pass
        self._changed(out_rel)
        if not self.check:
            self.tree.write_bytes(out_rel, data)
        self._out_stats.pop(out_rel, None)

    def _link_or_copy(self, src: Path, out_rel: str, src_st: os.stat_result | None = None, *,
                      follow: bool = True) -> None:
        """Make `out_rel` a hard link to `src` (a copy where links are impossible); never written
        through: the new link replaces the old name atomically, so a source is never modified.
        `follow=False` for cache entries: a symlink there is never published."""
        src_st = src_st or os.stat(src, follow_symlinks=follow)
        cur = self.tree.lstat(out_rel)
        if cur is not None and (cur.st_ino, cur.st_dev) == (src_st.st_ino, src_st.st_dev):
            return
        if cur is not None and self._same_content(src, out_rel, src_st, cur):
            return  # an equal copy (e.g. across file systems): compare before writing
        self._changed(out_rel)
        if self.check:
            return
        try:
            self.tree.link(src, out_rel, follow=follow)
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EACCES):
                raise BlogrotoError(f"cannot link into the output: {describe_os_error(exc)}", self.out / out_rel) from exc
            flags = os.O_RDONLY | os.O_CLOEXEC | (0 if follow else os.O_NOFOLLOW)
            with os.fdopen(os.open(src, flags), "rb") as fin, self.tree.writer(out_rel) as fout:
                while chunk := fin.read(1 << 20):
                    fout.write(chunk)
                fout.flush()
                os.utime(fout.fileno(), ns=(src_st.st_atime_ns, src_st.st_mtime_ns))
        self._out_stats.pop(out_rel, None)

    def _same_content(self, src: Path, out_rel: str, sta: os.stat_result, stb: os.stat_result) -> bool:
        if not stat_mod.S_ISREG(stb.st_mode) or sta.st_size != stb.st_size:
            return False
        try:
            with open(src, "rb") as fa, self.tree.open_read(out_rel) as fb:
                while True:
                    x, y = fa.read(1 << 20), fb.read(1 << 20)
                    if x != y:
                        return False
                    if not x:
                        return True
        except (OSError, BlogrotoError):
            return False

    def _emit_static(self, sf: SourceFile, kind: str = "static", **extra) -> None:
        try:
            self._link_or_copy(sf.path, sf.rel, sf.st if sf.recorded is None else None)
        except FileNotFoundError:
            return  # vanished during the build
        self._record(sf.rel, sf, kind, [sf.rel], **extra)

    # -- planning documents -----------------------------------------------------------------

    def _plan(self, candidates: list[SourceFile]) -> list[Plan]:
        plans = []
        for sf in candidates:
            try:
                plan = self._plan_one(sf)
            except FileNotFoundError:
                continue  # deleted since the scan (or since the manifest said it was there)
            except (ConfigError, FilterError, ImageError) as exc:
                self._fail(sf, exc)
                continue
            except OSError as exc:  # unreadable (permissions, I/O error): this document only
                self._fail(sf, ConfigError(f"cannot read: {exc.strerror or exc}", sf.path))
                continue
            if plan is None:
                self._emit_static(sf)
            else:
                plans.append(plan)
        return plans

    def _fail(self, sf: SourceFile, exc: Exception) -> None:
        msg = str(exc)
        if isinstance(exc, BlogrotoError) and exc.path is not None:
            # Name the file as the author does (site/_posts/x.md), not by its absolute path.
            try:
                rel = Path(exc.path).resolve().relative_to(self.site.root).as_posix()
                msg = str(BlogrotoError(exc.message, self.b._display(rel), exc.line))
            except ValueError:
                pass
        self.report.errors.append(msg)
        self.report.failed.append(self.b._display(sf.rel))
        self.note(f"failed: {msg}")
        # The document is copied unchanged so the output still builds; it is retried next time.
        self._emit_static(sf, kind="failed")

    def _plan_one(self, sf: SourceFile) -> Plan | None:
        site = self.site
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
        display = self.b._display(sf.rel)
        key_line = doc.key_line(FRONT_MATTER_KEY) if FRONT_MATTER_KEY in doc.data else None
        own = FRONT_MATTER_KEY in doc.data and isinstance(value, dict)
        options = parse_post_options(value, site.settings, Path(display), key_line,
                                              doc.option_lines(FRONT_MATTER_KEY) if own else None)
        if options is None:
            return None
        library = self.b._library_for(site)
        try:
            flt = library.get(options.filter)
        except UnknownFilterError as exc:
            raise ConfigError(exc.message, display, key_line) from exc
        except FilterError as exc:
            raise FilterError(f"filter {options.filter!r}: {exc}", display, key_line) from exc
        liquid = doc.data.get("render_with_liquid", defaults.get("render_with_liquid", True)) is not False
        plan = Plan(doc, display, options, flt, [], {}, [], liquid)
        self._collect_refs(plan, defaults)
        return plan

    def _collect_refs(self, plan: Plan, defaults: dict) -> None:
        doc = plan.doc
        # front matter image keys (the social card among them)
        for ref in front_matter_refs(doc, self.site.settings.image_keys, defaults):
            plan.refs.append(ref)
        from blogroto import references

        for r in references.find_image_refs(doc.body):
            if r.opt_out:
                continue  # the author opted this image out (class="no-algorotoscope" etc.)
            line = doc.body_line + r.line - 1
            if r.is_dynamic:
                self.note(f"{plan.display}:{line}: skipping computed image path {r.path}")
                continue
            plan.refs.append(Ref("body", r.path, line, r))
        for ref in plan.refs:
            self._resolve(plan, ref)

    def _resolve(self, plan: Plan, ref: Ref) -> None:
        from blogroto.references import HTML_VIDEO

        raw = ref.raw.strip()
        site = self.site
        if not raw or raw.startswith(("data:", "#")):
            return
        if ref.where == "body" and ref.handle.kind == HTML_VIDEO and not self._video_wanted(plan, ref, raw):
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
                self.warn(f"refusing image reference {ref.raw!r}: it points outside the site", plan.doc.rel, ref.line, plan)
            return  # mailto:, javascript:, ... are not images we can stylize
        if re.match(r"^[A-Za-z]:[\\/]", raw) or "\\" in raw:
            self.warn(f"refusing image reference {ref.raw!r}: it points outside the site", plan.doc.rel, ref.line, plan)
            return
        if ref.where == "body":
            # the references module undoes Markdown escapes, entities and percent-encoding
            rel, reason = site.resolve_local(ref.handle.local_path or raw, plan.doc.folder_rel, decoded=True)
        else:
            rel, reason = site.resolve_local(raw, plan.doc.folder_rel)
        if rel is None:
            if reason == "outside":
                self.warn(f"refusing image reference {ref.raw!r}: it points outside the site", plan.doc.rel, ref.line, plan)
            else:
                self.warn(f"image not found: {ref.raw}", plan.doc.rel, ref.line, plan)
                self.report.missing.append(self.report.warnings[-1])  # --check fails on these
            return
        if not plan.options.wants(raw, rel, "/" + rel, rel.rsplit("/", 1)[-1]):
            return
        suffix = Path(rel).suffix.lower()
        if suffix == ".svg" or suffix == ".svgz":
            self.note(f"{plan.display}:{ref.line}: skipping vector image {ref.raw}")
            return  # vector images are left alone
        ref.target = Target(local=rel, stem=Path(rel).stem)
        src = self.sources.get(rel)
        if src is not None:
            plan.deps[rel] = src.sig[:2]
        else:
            st = os.stat(site.root / rel)
            plan.deps[rel] = [st.st_size, st.st_mtime_ns]

    # -- images -----------------------------------------------------------------------------

    def _prepare_images(self, plans: list[Plan]) -> None:
        from blogroto import references
        from blogroto.animation import ANIMATED_FORMATS
        from blogroto.cache import OutputCache, StatIndex, cache_key
        from blogroto.engine.stylize import StyleOptions, output_format
        from blogroto.imaging.encode import EXTENSIONS
        from blogroto.video import sniff_container

        animated_formats = set(ANIMATED_FORMATS.values())

        self._cache = OutputCache(self.cache_dir, warn=self._tree_warn)
        self._stat_index = StatIndex(self.cache_dir)
        self._fetch_all({u for p in plans for u in p.remote})
        for plan in plans:
            o = plan.options
            style = StyleOptions(strength=o.strength, keep_colors=o.keep_colors, max_size=o.max_size,
                                 format=o.format, quality=o.quality)
            pixel_key = style.pixel_key()
            for ref in plan.refs:
                t = ref.target
                if t is None:
                    continue
                is_video = ref.where == "body" and ref.handle.kind == references.HTML_VIDEO  # wanted: _resolve
                try:
                    if t.local is not None:
                        path = self.site.root / t.local
                        with open(path, "rb") as handle:
                            head = handle.read(16)
                        if is_video and sniff_container(head) is None:
                            self.note(f"{plan.display}:{ref.line}: not an MP4 or WebM video, left as it is: {ref.raw}")
                            ref.target = None
                            continue
                        sha = self._stat_index.hash(path)
                        source, name = path, Path(t.local).name
                        fmt_in = raster_format(head) or Path(name).suffix
                    else:
                        got = self._remote.get(t.url)
                        if isinstance(got, str) or got is None:
                            # A failure the fetcher remembers is not retried before its time: the
                            # post need not be processed again before then (manifest `recheck`).
                            remembered = self._recheck.get(t.url) is not None
                            text = self.warn(f"remote image left as it is: {got or 'not fetched'}", plan.doc.rel,
                                             ref.line, None if remembered else plan)
                            if remembered:
                                plan.remote_warnings.append(text)
                            ref.target = None
                            continue
                        body, name = got
                        sha = hashlib.sha256(body).hexdigest()
                        source = body
                        fmt_in = raster_format(body[:16]) or Path(name).suffix
                        t.stem = Path(name).stem
                except OSError as exc:
                    self.warn(f"cannot read image {ref.raw}: {exc.strerror}", plan.doc.rel, ref.line, plan)
                    ref.target = None
                    continue
                except BlogrotoError as exc:
                    self.warn(f"cannot read image {ref.raw}: {exc.message}", plan.doc.rel, ref.line, plan)
                    ref.target = None
                    continue
                # The stylizer keeps the format it decodes, so go by the bytes, not the name.
                fmt, job_style, options_key, animation = output_format(fmt_in, style), style, pixel_key, None
                if is_video:
                    fmt, animation = sniff_container(head), self.site.settings.animation
                    options_key = {**pixel_key, "video": asdict(animation)}
                elif (fmt_in in animated_formats and self.site.settings.animation is not None
                      and self._frames(source) > 1):
                    # an animation stays one, in its own format (the only ones that carry frames)
                    fmt, animation = fmt_in, self.site.settings.animation
                    options_key = {**pixel_key, "animation": asdict(animation)}
                elif fmt == "png" and style.format is None and opaque_png(source):
                    # a stylized photo in PNG is several times the JPEG's size, for nothing
                    fmt, job_style = "jpeg", replace(style, format="jpeg")
                    options_key = job_style.pixel_key()
                ext = fmt if is_video else EXTENSIONS[fmt].lstrip(".")
                ident = (sha, plan.flt.slug, json.dumps(options_key, sort_keys=True, default=str), t.stem)
                job = self._jobs.get(ident)
                if job is None:
                    from blogroto.credits.xmp import xmp_for

                    # The embedded XMP carries the filter's credit, which its weights fingerprint
                    # does not cover: a corrected credit must give new files, so it is in the key.
                    xmp = xmp_for(plan.flt, name)
                    key = cache_key(image=sha, filter=plan.flt.fingerprint, options=options_key,
                                    engine=blogroto.ENGINE_VERSION, xmp=hashlib.sha256(xmp).hexdigest())
                    stem = STEM_RE.sub("-", t.stem).strip(".-") or "image"
                    name = f"{stem}-{plan.flt.slug}-{key[:SHORT_HASH]}.{ext}"
                    job = Job(key, ext, name, plan.flt, job_style, source,
                               label=ref.raw, cached=self._trusted_entry(key, ext, name), xmp=xmp,
                               animation=animation, video=is_video)
                    self._jobs[ident] = job
                ref.job = job
        if not self.check:
            self._stat_index.save()
            self._cache.ledger.save()

    @staticmethod
    def _frames(source) -> int:
        from blogroto.animation import frame_count

        try:
            return frame_count(source)
        except OSError:
            return 1  # unreadable now: the stylizer reports it, naming the file

    def _video_wanted(self, plan: Plan, ref: Ref, raw: str) -> bool:
        """Whether a <video>/<source> reference is stylized at all; if not, says why. Remote videos
        are left as they are, never downloaded: the fetcher takes images only."""
        from blogroto import video

        if raw.lower().startswith(("http://", "https://", "//")):
            self.note(f"{plan.display}:{ref.line}: remote video left as it is: {ref.raw}")
            return False
        if self.site.settings.animation is None:
            return False
        if not video.available():
            self.warn(video.INSTALL_HINT, plan.doc.rel, ref.line, plan)  # warned: processed again next build
            return False
        return True

    def _trusted_entry(self, key: str, ext: str, name: str) -> Path | None:
        """The cache entry for `key` when it holds the bytes blogroto wrote there, else None (and
        the image is stylized again). Cheap: the hash is read only when the entry's stat differs
        from the one recorded, under --force, or when the output does not already hold this very
        file (the entry is linked anew), so a no-op build never reads it."""
        cached = self._cache.get(key, ext)
        if cached is None:
            return None
        cst = self._cache.tree.lstat(self._cache.rel_for(key, ext))
        ost = self._out_stat(f"{IMAGES_DIR}/{name}")
        linked = cst is not None and ost is not None and (ost.st_ino, ost.st_dev) == (cst.st_ino, cst.st_dev)
        if self._cache.verify(key, ext, rehash=self.opts.force or not linked):
            return cached
        rel = self._cache.rel_for(key, ext)
        if self._cache.ledger.get(rel) is None:
            self.note(f"{self.cache_dir / rel}: not recorded as written by blogroto; stylizing again")
        else:
            self.report.warnings.append(f"{self.cache_dir / rel}: the cache entry does not match the hash recorded "
                                        f"when blogroto wrote it (damaged or replaced); stylizing again")
        return None

    def _fetch_all(self, urls: set[str]) -> None:
        if not urls:
            return
        from blogroto.remote import RemoteFetcher, RemoteImageError, RemotePolicy

        r = self.site.settings.remote
        policy = RemotePolicy(timeout=r.timeout, max_bytes=r.max_bytes, allow_private=r.allow_private,
                              enabled=r.enabled, duration=r.duration)
        fetcher = RemoteFetcher(self.cache_dir, policy)
        fetcher.store = not self.check  # --check writes nothing, not even downloads to the cache
        fetcher.on_store = self._cache.ledger.record_file  # gc deletes only downloads recorded here
        fetcher.is_genuine = lambda rel: self._cache.ledger.matches(rel, rehash=False)
        fetcher.refresh = self.opts.refresh_remote

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

            with ThreadPoolExecutor(max_workers=max(1, self.opts.jobs)) as pool:
                for url, result in pool.map(fetch, sorted(urls)):
                    self._remote[url] = result
        finally:
            self._recheck.update(fetcher.recheck_at)
            fetcher.close()

    def _remote_state(self, plan: Plan) -> dict:
        """Manifest fields for a document's remote images: when the earliest is due to be fetched
        again (`recheck`, a time) and the warnings of those that could not be (`rwarn`)."""
        due = [t for u in set(plan.remote) if (t := self._recheck.get(u)) is not None]
        state = {}
        if due:
            state["recheck"] = min(due)
        if plan.remote_warnings:
            state["rwarn"] = list(plan.remote_warnings)
        return state

    def _stylize(self) -> None:
        todo = [j for j in self._jobs.values() if j.cached is None]
        self.report.cache_hits += sum(1 for j in self._jobs.values() if j.cached is not None)
        if not todo:
            return
        if self.check:
            for job in todo:
                self.report.would_change.append(f"{IMAGES_DIR}/{job.name}")
            return
        from tqdm import tqdm

        if self.b.stylizer is None:
            os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TF's start-up chatter off the terminal
            from blogroto.engine.stylize import (
                Stylizer,  # TensorFlow is imported here, and only here
            )

            self.b.stylizer = Stylizer()
        bar = tqdm(todo, desc="stylizing", unit="img", disable=not self.opts.progress, leave=False)
        for job in bar:
            bar.set_postfix_str(Path(job.label).name[:40])
            # The stylizer writes a new file at the top of the cache folder; the cache's tree moves it
            # into place (never through a symlink) and records its hash.
            tmp = self._cache.tmp_name(job.key, job.ext)
            try:
                if job.video:
                    self.b.stylizer.stylize_video_file(job.source, self.cache_dir / tmp, job.flt, job.style,
                                                       job.animation, name=job.label, progress=self.opts.progress)
                elif job.animation is not None:
                    self.b.stylizer.stylize_animation_file(job.source, self.cache_dir / tmp, job.flt, job.style,
                                                           job.animation, name=job.label, xmp=job.xmp,
                                                           progress=self.opts.progress)
                else:
                    self.b.stylizer.stylize_file(job.source, self.cache_dir / tmp, job.flt, job.style,
                                                 name=job.label, xmp=job.xmp)
                self._cache.adopt(tmp, job.key, job.ext)
            except ImageError as exc:
                job.failed = exc.message  # this image only: a warning, the reference is left as it was
                continue
            except BlogrotoError as exc:
                job.failed, job.fatal = str(exc), True  # e.g. corrupt weights: every document using it fails
                continue
            finally:
                self._cache.tree.remove(tmp)  # left only when something failed
            job.cached = self._cache.get(job.key, job.ext)
            if job.cached is None:
                job.failed = "the stylized image was not written"
                continue
            self.report.images_stylized += 1
            self.note(f"stylized {job.label} -> {job.name}")
        bar.close()
        self._cache.ledger.save()

    def _respond(self, plans: list[Plan]) -> None:
        """Responsive sets for the stylized stills of documents that want them, and social cards for
        their `image:` keys (blogroto.responsive): each file derived from the stylized one, cached."""
        from blogroto import responsive
        from blogroto.references import HTML_SRC, HTML_SRCSET, MD_INLINE, MD_REFERENCE

        settings = self.site.settings.responsive
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
                        ref.images = self._image_set(job, preset, plan.options.quality)
                    elif ref.where == "front" and ref.handle.key == "image" and ref.handle.path in ((), ("path",)):
                        if card_size:  # the social card
                            card = responsive.card_variant(key=job.key, name=job.name, size=card_size,
                                                           cache_key=self._variant_key, short_hash=SHORT_HASH)
                            ref.card = card if self._derive(job, card, crop=True) else None
                    elif ref.where == "front":  # a gallery's or a theme's image: data for the layout
                        ref.images = self._image_set(job, preset, plan.options.quality)
                except ImageError as exc:
                    self.warn(f"{exc.message}; {ref.raw} is published as one file", plan.doc.rel, ref.line, plan)
        if not self.check:
            self._cache.ledger.save()  # the derived files' hashes, so later builds trust them

    @staticmethod
    def _variant_key(**parts) -> str:
        from blogroto.cache import cache_key

        return cache_key(**parts, engine=blogroto.ENGINE_VERSION)

    def _image_set(self, job: Job, preset, quality: int):
        if (job.key, preset) in self._sets:
            return self._sets[(job.key, preset)]
        from blogroto import responsive

        size, alpha = responsive.image_size(job.cached)
        images = responsive.plan_set(key=job.key, name=job.name, fmt=FORMAT_OF_EXT.get(job.ext, job.ext),
                                     size=size, alpha=alpha, preset=preset, quality=quality,
                                     cache_key=self._variant_key, short_hash=SHORT_HASH)
        kept = []
        for fmt, variants in images.by_format:
            if not responsive.can_write(fmt):
                self.note(f"this Pillow cannot write {fmt.upper()}: no {fmt} candidates")
                continue
            if all(self._derive(job, v) for v in variants):
                kept.append((fmt, variants))
        images = responsive.ImageSet(images.width, images.height, tuple(kept), images.sizes, images.lazy)
        self._sets[(job.key, preset)] = images if kept else None
        return self._sets[(job.key, preset)]

    def _derive(self, job: Job, variant, *, crop: bool = False) -> bool:
        """Make sure the cache holds `variant` of the stylized `job` (in check mode: say it would
        change). False when it is not there to publish."""
        if variant.key == job.key:
            return True
        ext = variant.name.rsplit(".", 1)[1]
        if variant.name in self._variant_files:
            return True
        cached = self._trusted_entry(variant.key, ext, variant.name)
        if cached is None:
            if self.check:
                self.report.would_change.append(f"{IMAGES_DIR}/{variant.name}")
                return False
            from blogroto import responsive

            cached = self._cache.put(variant.key, responsive.render_variant(job.cached, variant, crop=crop,
                                                                           xmp=job.xmp), ext)
        self._variant_files[variant.name] = (variant.key, ext, cached)
        return True

    # -- documents --------------------------------------------------------------------------

    def _new_path(self, plan: Plan, ref: Ref, name: str) -> str:
        """The replacement for a reference's bare path, in the author's style."""
        new_root = f"/{IMAGES_DIR}/{name}"
        raw = ref.raw.strip()
        baseurl = self.site.baseurl
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

    def _emit_document(self, plan: Plan) -> None:
        doc = plan.doc
        sf = self.sources[doc.rel]
        used = []
        fatal = next((r for r in plan.refs if r.job is not None and r.job.fatal), None)
        if fatal is not None:
            self._fail(sf, BlogrotoError(f"cannot stylize {fatal.raw} with filter {plan.flt.slug!r}: {fatal.job.failed}",
                                         plan.display, fatal.line))
            return
        for ref in plan.refs:
            job = ref.job
            if job is None:
                continue
            if job.failed:
                self.warn(f"cannot stylize {ref.raw}: {job.failed}; left as it is", doc.rel, ref.line, plan)
                continue
            ref.new = self._new_path(plan, ref, ref.card.name if ref.card else job.name)
            used.append(job)
        if not used:
            if plan.refs:
                self.note(f"{plan.display}: no image was stylized")
            else:
                self.warn("algorotoscope is set but the document references no images", doc.rel,
                          doc.key_line(FRONT_MATTER_KEY), plan)
        try:
            text = self._render_document(plan, bool(used))
        except BlogrotoError as exc:
            self._fail(sf, exc)
            return
        if text is None:
            # Nothing stylized: the document stays as it is, but its inputs are still tracked.
            self._emit_static(sf, kind="doc", deps={k: list(v) for k, v in plan.deps.items()}, imgs=[],
                              remote=sorted(set(plan.remote)), retry=plan.warned, flt=plan.flt.slug,
                              **self._remote_state(plan))
            self.report.posts += 1
            return
        imgs, mark = [], len(self.report.would_change)
        for job in dict.fromkeys(used):
            out_rel = f"{IMAGES_DIR}/{job.name}"
            if job.cached is not None:
                self._link_or_copy(job.cached, out_rel, follow=False)
            self.images[job.name] = [job.key, job.ext]
            imgs.append(job.name)
        derived = {v.name for r in plan.refs for v in ([r.card] if r.card else []) + (r.images.files if r.images else [])}
        for name in sorted(derived - set(imgs)):
            key, ext, cached = self._variant_files[name]
            self._link_or_copy(cached, f"{IMAGES_DIR}/{name}", follow=False)
            self.images[name] = [key, ext]
            imgs.append(name)
        self._count_bytes(plan)
        self._write_if_changed(doc.rel, doc.encode(text))
        if self.check and (len(self.report.would_change) > mark or any(j.cached is None for j in used)):
            self.report.would_change_posts.append(plan.display)  # its text, or an image it shows, would change
        deps = {k: list(v) for k, v in plan.deps.items()}
        self._record(doc.rel, sf, "doc", [doc.rel], deps=deps, imgs=imgs, remote=sorted(set(plan.remote)),
                     retry=plan.warned, flt=plan.flt.slug, **self._remote_state(plan))
        self.report.posts += 1
        self.report.posts_rebuilt += 1

    def _count_bytes(self, plan: Plan) -> None:
        """Source bytes against what a browser fetches at full width, for the build summary."""
        for ref in {id(r.job): r for r in plan.refs if r.new and r.job is not None and r.where == "body"}.values():
            job = ref.job
            served = ref.images.by_format[0][1][-1] if ref.images else None
            path = self._variant_files[served.name][2] if served and served.key != job.key else job.cached
            src = stat_or_none(job.source) if isinstance(job.source, Path) else None
            out = stat_or_none(path) if path is not None else None
            if out is not None and (src is not None or isinstance(job.source, bytes)):
                self.report.bytes_in += src.st_size if src is not None else len(job.source)
                self.report.bytes_out += out.st_size

    def _render_document(self, plan: Plan, stylized: bool) -> str | None:
        """The rewritten text of a document, or None when it stays as it is."""
        if not stylized:
            return None
        from blogroto import references, responsive
        from blogroto.credits.record import credit_record
        from blogroto.credits.render import front_matter_record, place_credits

        doc = plan.doc
        renderer = self.b._renderer or self.b._credit_renderer(self.site)
        record = credit_record(plan.flt)
        records = [record]
        body_refs = [r for r in plan.refs if r.where == "body" and r.new]
        body = doc.body
        if body_refs:
            new_for = {(r.handle.start, r.handle.end): r.new for r in body_refs}
            body = references.rewrite_image_refs(body, lambda ref: new_for.get((ref.start, ref.end)))
            if self.site.settings.figure:
                body = wrap_figures(doc.body, body, renderer, record, body_refs, markdown=doc.is_markdown)
            sets = {r.job.name: r.images for r in body_refs if r.images}
            if sets:
                body = responsive.rewrite_body(body, sets, IMAGES_DIR)
        from blogroto.credits.jsonld import document_jsonld

        jsonld = document_jsonld(self.site, record, [(f"{IMAGES_DIR}/{r.job.name}", r.target.local, r.target.url)
                                                     for r in plan.refs if r.new and r.job is not None], doc.data)
        html = renderer.render_block(records, document={"path": doc.rel, "title": doc.data.get("title"),
                                                        "kind": doc.kind, "kind_name": kind_name(doc.kind)},
                                     jsonld=jsonld)
        body = place_credits(body, html, markdown=doc.is_markdown)
        front = [r for r in plan.refs if r.where == "front" and r.new]
        base = f"{self.site.baseurl}/{IMAGES_DIR}"
        layout_images = {r.new: responsive.layout_data(r.images, base) for r in front if r.images}
        yaml_text = rewrite_front_matter(doc, front, [front_matter_record(r) for r in records],
                                         layout_images)
        return doc.text[: doc.front.yaml_start] + yaml_text + doc.text[doc.front.yaml_end: doc.front.body_start] + body

    # -- finishing --------------------------------------------------------------------------

    def _write_catalog(self) -> None:
        """The filter catalog pages (blogroto.build.catalog): written once every document is known, as
        they list which documents use which filter. Cheap when nothing they show has changed."""
        from blogroto.build import catalog

        uses = {rel: (e["flt"], e["st"], e.get("kind")) for rel, e in self.new_files.items()
                if e.get("k") == "doc" and e.get("flt") and e.get("imgs")}
        previous = self.old.get("catalog") or {}
        try:
            self.catalog = catalog.write_catalog(
                self.site, uses, library=self.b._library_for(self.site), out_dir=self.out,
                previous=previous, base_signature=self.glob, filter_sig=self._filter_sig,
                out_stat=self._out_stat, write=self._write_if_changed, taken=self.new_files, warn=self.warn)
        except BlogrotoError as exc:
            # A broken catalog template or setting must not cost the rest of the build: report it
            # and keep the pages (and state) of the last good catalog, so the next build retries.
            self.report.errors.append(str(exc))
            self.catalog = catalog.CatalogResult(state=previous, files=list(previous.get("files") or ()))

    def _remove_stale(self) -> None:
        wanted = {o for e in self.new_files.values() for o in e.get("out", {})}
        wanted.update(f"{IMAGES_DIR}/{n}" for n in self.images)
        old = {o for e in self.old_files.values() for o in e.get("out", {})}
        old.update(f"{IMAGES_DIR}/{n}" for n in self.old.get("images", {}))
        old.update(rel for rel, e in self.old_files.items() if e.get("k") == "link")
        wanted.update(rel for rel, e in self.new_files.items() if e.get("k") == "link")
        wanted.update(self.catalog.files if self.catalog else ())
        old.update((self.old.get("catalog") or {}).get("files") or ())
        if not self.old and self.out.is_dir():
            # No manifest (first build, --force, lost cache): find strays by walking the output.
            old.update(walk_files(self.out))
        for rel in sorted(old - wanted):
            if rel == OUTPUT_MARKER or not is_safe_rel(rel):
                continue
            if self.tree.lstat(rel) is None:
                continue
            (self.report.would_change if self.check else self.report.removed).append(rel)
            self.changed = True
            if not self.check and self.tree.remove(rel) and "/" in rel:
                self.tree.remove_empty_dirs(rel.rsplit("/", 1)[0])

    def _save(self) -> None:
        if self.check:
            return
        image_sigs = {}
        for name in self.images:
            st = self._out_stat(f"{IMAGES_DIR}/{name}")
            image_sigs[name] = stat_sig(st) if st else None
        used = sorted({e["flt"] for e in self.new_files.values() if e.get("flt")})
        filters = {name: self._filter_sig(name) for name in used}
        data = {"format": MANIFEST_FORMAT, "global": self.glob, "out": str(self.out),
                "files": self.new_files, "images": self.images, "image_sigs": image_sigs, "filters": filters,
                "catalog": self.catalog.state if self.catalog else {}}
        if (not self.changed and image_sigs == self.old.get("image_sigs") and data["global"] == self.old.get("global")
                and filters == self.old.get("filters") and data["catalog"] == self.old.get("catalog", {})):
            return  # a no-op build writes nothing at all
        self.ctree.write_bytes(self.ctree.rel_of(self.manifest_path), json.dumps(data, separators=(",", ":")).encode())
