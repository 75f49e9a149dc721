"""`blogroto watch` and `blogroto serve`: rebuild what each change affects, keep the model warm.

    watcher = Watcher("site/", BuildOptions())
    watcher.run()                 # initial build, then one incremental build per burst of changes
    Watcher(..., preview=...)     # `serve`: the same loop plus a preview server on the output

One `Builder` lives for the whole session, so its `Stylizer` (and the TensorFlow networks it has
loaded) stays warm: an edit to a post whose images are cached costs a parse and a write, and a new
image costs only the network's run. TensorFlow is imported the first time an image needs
stylizing, never before.

Changes are collected by a watchdog observer thread and built by the main thread in batches: a
batch closes when no event has arrived for DEBOUNCE seconds, which folds an editor's save (temp
file, fsync, rename, backup file) and `git checkout` bursts into one build. Paths inside the output,
the cache and `_site/` are ignored, and so are editors' temporary files.
"""

from __future__ import annotations

import os
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from blogroto.build import Builder, BuildOptions, BuildReport
from blogroto.errors import BlogrotoError
from blogroto.site.config import CONFIG_NAMES, DEFAULT_CACHE
from blogroto.site.model import NEVER_COPIED

if TYPE_CHECKING:  # pragma: no cover
    from blogroto.publish.serve import Preview

DEBOUNCE = 0.15  # seconds without a new event that close a batch
MAX_BATCH_DELAY = 1.0  # a never-ending burst (a big git checkout) is still built in slices
POLL = 0.5  # how often the main loop looks at the preview process while idle

_VIM_SWAP_RE = re.compile(r"^\..*\.sw[a-px]$")  # .x.md.swp, .swo, ... (vim, nano)


def is_editor_temp(name: str) -> bool:
    """Whether a file name is an editor's (or downloader's) temporary file, never content.

    These come and go around every save; building them would copy half-written files into the
    output and print a line per keystroke-save.
    """
    if name.startswith((".#", ".blogroto-tmp-", ".goutputstream-", "~$")):
        return True  # emacs lock, our own atomic writes, gedit, office lock
    if name.endswith(("~", ".kate-swp", "___jb_tmp___", "___jb_old___", ".crdownload", ".part")):
        return True  # backups (vim, emacs), kate, JetBrains safe-write, browser downloads
    if name.startswith("#") and name.endswith("#"):
        return True  # emacs auto-save
    if _VIM_SWAP_RE.match(name):
        return True
    # vim checks that it may create files in a folder by creating and deleting "4913" (then
    # 5036, 5159, ... while that name is taken).
    return name.isdigit() and int(name) >= 4913 and (int(name) - 4913) % 123 == 0


# --------------------------------------------------------------------------------------------
# collecting changes


class ChangeQueue:
    """Changed paths, filled by the observer thread and taken in debounced batches by the main one."""

    # The events that mean content changed. Not "opened"/"closed_no_write" (reads, including our
    # own build's) and not "attrib": hard-linking a source into the output changes its link count.
    WANTED = frozenset({"created", "modified", "deleted", "moved", "closed"})

    def __init__(self, accept: Callable[[str], bool]):
        self._accept = accept
        self._cond = threading.Condition()
        self._paths: dict[str, None] = {}  # insertion-ordered set
        self._last = 0.0

    # watchdog calls dispatch(event) on its handlers
    def dispatch(self, event) -> None:
        kind = event.event_type
        if kind not in self.WANTED:
            return
        if event.is_directory and kind in ("modified", "closed"):
            return  # a file inside changed; that file's own event says which
        paths = [event.src_path]
        if kind == "moved" and event.dest_path:
            paths.append(event.dest_path)  # an atomic save: the temp name is dropped, the real one kept
        self.add(os.fsdecode(p) for p in paths if p)

    def add(self, paths: Iterable[str]) -> None:
        fresh = [p for p in paths if self._accept(p)]
        if not fresh:
            return
        with self._cond:
            for p in fresh:
                self._paths[p] = None
            self._last = time.monotonic()
            self._cond.notify_all()

    def take(self, timeout: float | None = None, debounce: float = DEBOUNCE,
             max_delay: float = MAX_BATCH_DELAY) -> list[str]:
        """Wait up to `timeout` for a change, then until `debounce` passes quietly; [] on timeout."""
        with self._cond:
            if not self._paths and not self._cond.wait_for(lambda: self._paths, timeout):
                return []
            first = time.monotonic()
            while True:
                now = time.monotonic()
                quiet_at = self._last + debounce
                if now >= quiet_at or now - first >= max_delay:
                    break
                self._cond.wait(min(quiet_at, first + max_delay) - now)
            batch = list(self._paths)
            self._paths.clear()
            return batch


# --------------------------------------------------------------------------------------------
# the loop


class Watcher:
    """An initial build, then one incremental build per batch of changes, until interrupted."""

    def __init__(self, site_dir: str | Path, options: BuildOptions | None = None, *,
                 echo: Callable[[str], None] | None = None, err: Callable[[str], None] | None = None,
                 preview: Preview | None = None, debounce: float = DEBOUNCE):
        self.site_arg = Path(site_dir)
        self.root = self.site_arg.resolve()
        self.builder = Builder(site_dir, options or BuildOptions())
        self.echo = echo or (lambda line: print(line, flush=True))
        self.err = err or (lambda line: print(line, file=sys.stderr, flush=True))
        self.preview = preview
        self.debounce = debounce
        self.queue = ChangeQueue(self._accept)
        self.observer = None
        self._watches: dict[tuple[str, bool], object] = {}  # (path, recursive) -> watchdog ObservedWatch
        self._ignored: tuple[str, ...] = ()
        self._external: tuple[str, ...] = ()  # filter / template folders outside the site
        self._needs_full = False  # a build failed before saving its manifest: rescan everything
        self._shown: set[str] = set()  # problems printed by the previous build (not repeated)
        self.last_report: BuildReport | None = None
        self._preview_running = False
        self._update_locations()

    # -- which paths matter -----------------------------------------------------------------

    def _update_locations(self) -> None:
        """Folders to ignore (output, cache, _site) and to watch outside the site, from the config."""
        root = self.root
        ignored = {root / "_blogroto", root / DEFAULT_CACHE, root / "_site"}
        external: set[Path] = set()
        site = self.builder.site
        if site is None:
            try:
                site = self.builder.load_site()
            except BlogrotoError:
                site = None  # a broken _config.yml: the defaults until it is fixed
        if site is not None:
            ignored.update(site.skipped_dirs())
            s = site.settings
            from blogroto.filters import user_filters_dir

            # The user library is on every site's filter search path: a filter trained there
            # while watching is picked up like one in _filters/.
            for folder in (*s.filter_dirs, user_filters_dir()):
                if folder.is_dir() and not _within(folder, root):
                    external.add(folder)
            for tpl in (s.credit_template, s.figcaption_template):
                if tpl is not None and not _within(Path(tpl).resolve(), root):
                    external.add(Path(tpl).resolve().parent)
        self._ignored = tuple(sorted(str(p) for p in ignored))
        self._external = tuple(sorted(str(p) for p in external if p.is_dir()))

    def _accept(self, path: str) -> bool:
        """Whether a change to `path` can affect the output (called on the observer thread)."""
        for folder in self._external:
            if path == folder or path.startswith(folder + os.sep):
                return not is_editor_temp(os.path.basename(path))
        root = str(self.root)
        if not path.startswith(root + os.sep):
            return False
        for folder in self._ignored:
            if path == folder or path.startswith(folder + os.sep):
                return False
        parts = path[len(root) + 1:].split(os.sep)
        if any(p in NEVER_COPIED for p in parts):
            return False  # .git/ churns on every commit; Jekyll's caches are never copied either
        return not is_editor_temp(parts[-1])

    # -- observer ---------------------------------------------------------------------------

    def _start_observer(self) -> None:
        from watchdog.observers import Observer

        self.observer = Observer()
        self.observer.start()
        try:
            self._sync_watches()
        except OSError as exc:
            # inotify has a per-user limit on watched folders; polling has none (but costs CPU).
            from watchdog.observers.polling import PollingObserver

            self.err(f"warning: cannot watch with inotify ({exc.strerror or exc}); polling for changes instead")
            self._stop_observer()
            self._watches.clear()
            self.observer = PollingObserver(timeout=0.5)
            self.observer.start()
            self._sync_watches()

    def _schedule(self, path: str, recursive: bool) -> None:
        key = (path, recursive)
        if key not in self._watches:
            self._watches[key] = self.observer.schedule(self.queue, path, recursive=recursive)

    def _sync_watches(self) -> None:
        """Watch the site root (files only) and each top-level folder except the ignored ones.

        Watching the root recursively would put inotify watches on the output and the cache (a
        mirror of the site plus hundreds of cache folders) only to drop their events.
        """
        root = str(self.root)
        wanted = {(root, False)}
        try:
            entries = list(os.scandir(root))
        except OSError:
            entries = []
        for entry in entries:
            if entry.is_dir(follow_symlinks=False) and self._accept(entry.path):
                wanted.add((entry.path, True))
        wanted.update((folder, True) for folder in self._external)
        for key in [k for k in self._watches if k not in wanted]:
            watch = self._watches.pop(key)
            try:
                self.observer.unschedule(watch)
            except KeyError:
                pass  # its folder was deleted and watchdog dropped it already
        for path, recursive in sorted(wanted):
            try:
                self._schedule(path, recursive)
            except FileNotFoundError:
                continue  # deleted between the listing and now; its deletion event is queued

    def _stop_observer(self) -> None:
        if self.observer is not None:
            self.observer.stop()
            self.observer.join(timeout=10)
            self.observer = None

    # -- building ---------------------------------------------------------------------------

    def build(self, changed: list[str] | None, label: str) -> BuildReport | None:
        """One build; prints one line (plus new problems). Never raises a BlogrotoError."""
        full = changed is None or self._needs_full
        started = time.perf_counter()
        try:
            # Paths outside the site (an external filter folder) are skipped by the builder, which
            # still notices a changed filter by its signature: [] is a valid "check everything" list.
            report = self.builder.build(None if full else [Path(p) for p in changed])
        except BlogrotoError as exc:
            # e.g. _config.yml does not parse: nothing was saved, so the next build rescans all
            self._needs_full = True
            self.echo(f"{_now()} {label} → error: {exc}")
            self._shown = {str(exc)}
            return None
        except Exception as exc:  # noqa: BLE001 - the session outlives one failed build
            # A race with the author's file operations (or a bug): keep watching, rescan next time.
            self._needs_full = True
            self.echo(f"{_now()} {label} → error: {type(exc).__name__}: {exc}")
            return None
        self._needs_full = False
        self.last_report = report
        self.builder.options.refresh_remote = False  # --refresh-remote: the initial build only
        problems = [("error", m) for m in report.errors] + [("warning", m) for m in report.warnings]
        rels = [os.path.relpath(p, self.root) for p in changed or ()]
        # Unfixed problems come back on every build (the builder retries those documents): each
        # text is printed once, and again when the author touches its file. The summary counts
        # the ones printed now as errors/warnings and the others as "earlier" ones, so a count
        # never appears without its text having been shown.
        fresh = [(kind, msg) for kind, msg in problems if msg not in self._shown or any(r in msg for r in rels)]
        self.echo(f"{_now()} {label} → {describe(report, full, repeated=[p for p in problems if p not in fresh])} "
                  f"({time.perf_counter() - started:.2f} s)")
        for kind, msg in fresh:
            self.err(f"  {kind}: {msg}")
        self._shown = {m for _, m in problems}
        if full:
            self._update_locations()  # the config may have moved the output or the filter folders
        if self.preview is not None and self._preview_running:
            self.preview.after_build(report)
        return report

    def label(self, changed: list[str]) -> str:
        rels = []
        for p in changed:
            rel = os.path.relpath(p, self.root) if _within(Path(p), self.root) else p
            gone = not os.path.lexists(p)
            rels.append((gone, rel, rel + (" (deleted)" if gone else "")))
        # Existing files first: an atomic save's temp name is "deleted" but is not what changed.
        rels.sort()
        first = rels[0][2]
        return first if len(rels) == 1 else f"{first} (+{len(rels) - 1} more)"

    def step(self, timeout: float | None = None) -> BuildReport | None:
        """Take one batch of changes (waiting up to `timeout`) and build it."""
        changed = self.queue.take(timeout, self.debounce)
        if not changed:
            return None
        self._sync_watches()  # new top-level folders: watched before the build walks them
        config = any(os.path.dirname(p) == str(self.root) and os.path.basename(p) in CONFIG_NAMES for p in changed)
        label = self.label(changed)
        if config:
            return self.build(None, label + " (full rebuild)")
        return self.build(changed, label)

    # -- the session ------------------------------------------------------------------------

    def run(self) -> None:
        """Build, then rebuild on changes until Ctrl-C (or SIGTERM); then stop cleanly."""
        restore = _terminate_as_interrupt()
        try:
            self._start_observer()  # before the initial build: edits made during it are not lost
            self.build(None, "initial build")
            if self.preview is not None:
                self.preview.start()
                self._preview_running = True
            self.echo(f"watching {self.site_arg} for changes (Ctrl-C to stop)")
            while True:
                self.step(POLL)
                if self.preview is not None:
                    self.preview.check()
        except KeyboardInterrupt:
            pass
        finally:
            try:
                if self.preview is not None:
                    self.preview.stop()
            finally:
                self._stop_observer()
                restore()
        self.echo("stopped")


def describe(report: BuildReport, full: bool = False, repeated: list[tuple[str, str]] = ()) -> str:
    """The summary of one build. `repeated`: (kind, text) problems shown by an earlier build and not
    printed again; they are counted apart ("1 earlier warning")."""
    from blogroto.ui import plural

    posts = report.posts if full else report.posts_rebuilt
    parts = [plural(posts, "post"), f"{report.images_stylized} stylized", f"{report.cache_hits} cached"]
    if report.removed:
        parts.append(f"{len(report.removed)} removed")
    old_errors = sum(1 for kind, _ in repeated if kind == "error")
    old_warnings = len(repeated) - old_errors
    if len(report.errors) > old_errors:
        parts.append(plural(len(report.errors) - old_errors, "error"))
    if len(report.warnings) > old_warnings:
        parts.append(plural(len(report.warnings) - old_warnings, "warning"))
    if repeated:
        earlier = [plural(n, f"earlier {kind}") for n, kind in ((old_errors, "error"), (old_warnings, "warning")) if n]
        parts.append(" and ".join(earlier) + " (shown above, not fixed yet)")
    return ", ".join(parts)


def _now() -> str:
    return time.strftime("%H:%M:%S")


def _within(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _terminate_as_interrupt() -> Callable[[], None]:
    """Make SIGTERM stop the session like Ctrl-C does (process managers, `kill`)."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def handler(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    return lambda: signal.signal(signal.SIGTERM, previous)
