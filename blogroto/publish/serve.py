"""The previews `blogroto serve` runs beside the watch loop: `jekyll serve` on the output when Jekyll
is installed (`JekyllPreview`, falling back when it fails), else blogroto's own rendering of the
output (`RenderedPreview`, blogroto.publish.preview), else the output's files as they are
(`StaticPreview`). Each restarts or refreshes after a build as it needs."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
from collections import deque
from collections.abc import Callable
from pathlib import Path

from blogroto.build import BuildReport
from blogroto.errors import BlogrotoError


def check_port(host: str, port: int) -> None:
    """Fail early, with one line, when the preview could not listen (before a long initial build)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise BlogrotoError(f"cannot resolve host {host!r}: {exc.strerror}") from exc
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as exc:
            raise BlogrotoError(f"cannot listen on {host}:{port}: {exc.strerror}; choose another --port") from exc


class Preview:
    """A server showing the output folder; `check` is called while idle, `stop` on exit."""

    def __init__(self, out_dir: Path, host: str, port: int, *, echo: Callable[[str], None], baseurl: str = ""):
        self.out_dir = Path(out_dir)
        self.host = host
        self.port = port
        self.echo = echo
        self.baseurl = baseurl

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}{self.baseurl}/"

    def start(self) -> None:
        raise NotImplementedError

    def check(self) -> None:
        pass

    def after_build(self, report: BuildReport) -> None:
        """Called after every build once the preview runs (Jekyll notices changes by itself)."""

    def stop(self) -> None:
        pass


def static_preview(out_dir: Path, host: str, port: int, *, echo: Callable[[str], None], baseurl: str = "",
                   reason: str = "Jekyll is not installed", dest: Path | None = None) -> Preview:
    """The Ruby-free preview for when `jekyll serve` cannot be used (`reason` says why): the
    output rendered to HTML by `blogroto.publish.preview` into `dest`, or, where that module cannot be
    imported, the output folder served as plain files."""
    try:
        import blogroto.publish.preview  # noqa: F401 - only whether it (and Markdown) can be imported
    except ImportError as exc:
        return StaticPreview(out_dir, host, port, echo=echo, baseurl=baseurl,
                             reason=f"{reason}; blogroto.publish.preview is not available ({exc})")
    preview = RenderedPreview(out_dir, host, port, echo=echo, baseurl=baseurl, reason=reason,
                              dest=dest if dest is not None else Path(tempfile.mkdtemp(prefix="blogroto-preview-")))
    preview.temporary = dest is None
    return preview


class StaticPreview(Preview):
    """The output folder served as plain files (pages show as their sources)."""

    def __init__(self, *args, reason: str = "", **kwargs):
        super().__init__(*args, **kwargs)
        self.reason = reason
        self._server = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

        class Quiet(SimpleHTTPRequestHandler):
            def log_message(self, format, *args):  # noqa: A002 - the stdlib's name
                pass  # one line per request would bury the build lines

        server = ThreadingHTTPServer((self.host, self.port), lambda *a: Quiet(*a, directory=str(self.out_dir)))
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="blogroto-preview", daemon=True)
        self._thread.start()
        self.baseurl = ""  # files are served from the output root
        why = f"{self.reason}; " if self.reason else ""
        self.echo(f"preview: {self.url} (plain file server on {self.out_dir}: {why}"
                  f"pages show as their source files)")

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=5)
            self._server = None


class RenderedPreview(Preview):
    """`blogroto.publish.preview`: the output rendered to plain HTML (no Ruby) in `dest`, re-rendered
    after every build that changed the output."""

    def __init__(self, *args, dest: Path, reason: str = "", **kwargs):
        super().__init__(*args, **kwargs)
        self.dest = Path(dest)
        self.reason = reason
        self.temporary = False  # remove dest on stop
        self._server = None
        self._shown: set[str] = set()

    def start(self) -> None:
        from blogroto.publish.preview import serve_preview

        self.dest.mkdir(parents=True, exist_ok=True)
        self._render()
        self._server = serve_preview(self.dest, self.host, self.port, block=False)
        why = f"{self.reason}; " if self.reason else ""
        self.echo(f"preview: {self.url} (blogroto's plain HTML preview, not Jekyll: {why}"
                  f"the theme's layouts and plugins are not applied)")

    def after_build(self, report: BuildReport) -> None:
        if report.written or report.removed:
            self._render()

    def _render(self) -> None:
        from blogroto.publish.preview import render_preview

        warnings: list[str] = []
        try:
            render_preview(self.out_dir, self.dest, warnings=warnings)
        except BlogrotoError as exc:
            warnings.append(str(exc))  # e.g. no output yet (broken _config.yml): serve what there is
        for message in warnings:
            if message not in self._shown:
                self.echo(f"preview: warning: {message}")
        self._shown = set(warnings)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self.temporary:
            shutil.rmtree(self.dest, ignore_errors=True)


class JekyllPreview(Preview):
    """`jekyll serve` on the output folder (Jekyll regenerates when blogroto rewrites it).

    Jekyll's own destination is a temporary folder, so neither the output nor the site gets a
    `_site/`; `--disable-disk-cache` keeps `.jekyll-cache/` out of the output.
    """

    def __init__(self, *args, jekyll: str, drafts: bool = False, fallback: Callable[[str], Preview] | None = None,
                 **kwargs):
        super().__init__(*args, **kwargs)
        self.jekyll = jekyll
        self.drafts = drafts
        self.fallback = fallback
        self.proc: subprocess.Popen | None = None
        self._dest: str | None = None
        self._lines: deque[str] = deque(maxlen=30)
        self._reader: threading.Thread | None = None
        self._replacement: Preview | None = None

    def start(self) -> None:
        self._dest = tempfile.mkdtemp(prefix="blogroto-serve-")
        cmd = [self.jekyll, "serve", "--source", str(self.out_dir), "--destination", self._dest,
               "--host", self.host, "--port", str(self.port), "--disable-disk-cache"]
        if self.drafts:
            cmd.append("--drafts")
        # A session of its own: the terminal's Ctrl-C reaches only us, and we stop Jekyll in order.
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, errors="replace", start_new_session=True)
        self._reader = threading.Thread(target=self._read, name="blogroto-jekyll", daemon=True)
        self._reader.start()
        self.echo(f"preview: starting jekyll serve on {self.out_dir} ...")

    def _read(self) -> None:
        for line in self.proc.stdout:
            line = line.rstrip()
            if not line:
                continue
            self._lines.append(line)
            text = line.strip()
            if text.startswith("Server address:"):
                url = text.split(":", 1)[1].strip()
                self.echo(f"preview: {url if url.endswith('/') else url + '/'} (jekyll serve)")
            elif ("error" in text.lower() or "exception" in text.lower()) and not text.startswith("Regenerating"):
                self.echo(f"jekyll: {text}")

    def check(self) -> None:
        if self._replacement is not None:
            self._replacement.check()
            return
        if self.proc is None or self.proc.poll() is None:
            return
        code = self.proc.returncode
        if self._reader is not None:
            self._reader.join(timeout=2)
        last = next((x.strip() for x in reversed(self._lines) if x.strip()), "no output")
        self.echo(f"preview: jekyll serve exited with code {code}: {last}")
        self._cleanup()
        if self.fallback is not None:
            self._replacement = self.fallback("jekyll serve failed")
            self._replacement.start()

    def after_build(self, report: BuildReport) -> None:
        if self._replacement is not None:
            self._replacement.after_build(report)

    def stop(self) -> None:
        if self._replacement is not None:
            self._replacement.stop()
        proc = self.proc
        if proc is not None and proc.poll() is None:
            # Jekyll shuts its server down on INT; TERM, then KILL, only if it hangs.
            for sig, wait in ((signal.SIGINT, 5), (signal.SIGTERM, 3), (signal.SIGKILL, 3)):
                try:
                    os.killpg(proc.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    proc.wait(wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        self._cleanup()

    def _cleanup(self) -> None:
        if self.proc is not None and self.proc.stdout is not None:
            if self._reader is not None:
                self._reader.join(timeout=2)
            self.proc.stdout.close()
        if self._dest is not None:
            shutil.rmtree(self._dest, ignore_errors=True)
            self._dest = None
