"""Shared tools of the reliability suite: a site under guard, a CLI runner, a fake network.

Every test that builds goes through `Kit.build` (in-process CLI) or `Kit.spawn` / `run_cli`
(subprocess): both hash the *whole* source site tree (bytes, modes, mtimes, symlink targets,
the listing itself) before and after, and fail the test if anything changed. Output and cache
live outside the site, so there is no exception to carve out: blogroto must not touch one byte.

`FakeStylizer` is the real `blogroto.engine.stylize.Stylizer` with only the network swapped for a
colour inversion: decoding (bombs, CMYK, 16-bit, GIF frames, ...), resizing, encoding, metadata
and the atomic write are blogroto's own code. Tests that are about the network use the real one.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import stat
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[2]
_open = open  # the real one, even while a test makes some files unreadable to blogroto
FAKE_CLI = Path(__file__).resolve().parent / "fake_cli.py"
FILTER = "tiny"
TMP_PREFIX = ".blogroto-tmp-"


# ------------------------------------------------------------------------------- the guard


def tree_state(root: Path) -> dict[str, tuple]:
    """Everything about a tree an author would call 'my files': per entry its type, mode, size,
    mtime and sha256 (files) or target (links). atime is left out: reading is allowed."""
    root = Path(root)
    out: dict[str, tuple] = {}
    for folder, dirs, files in os.walk(root, followlinks=False):
        for name in sorted(dirs + files):
            path = os.path.join(folder, name)
            rel = os.path.relpath(path, root)
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", os.readlink(path))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir", stat.S_IMODE(st.st_mode))
            else:
                with _open(path, "rb") as handle:
                    digest = hashlib.file_digest(handle, "sha256").hexdigest()
                out[rel] = ("file", stat.S_IMODE(st.st_mode), st.st_size, st.st_mtime_ns, digest)
    return out


def assert_same_tree(before: dict, after: dict, what: str = "the source site") -> None:
    if before == after:
        return
    added = sorted(set(after) - set(before))
    removed = sorted(set(before) - set(after))
    changed = sorted(k for k in set(before) & set(after) if before[k] != after[k])
    raise AssertionError(f"{what} changed: added {added[:5]}, removed {removed[:5]}, changed {changed[:5]}")


# ------------------------------------------------------------------------------- content


def write(path: Path, data: bytes | str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("utf-8")
    path.write_bytes(data)
    return path


def photo(size=(48, 32), seed=0, mode="RGB", fmt="JPEG", **params) -> bytes:
    """A small photo-like image (smooth gradients plus noise) as file bytes."""
    from PIL import Image

    w, h = size
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    rgb = np.stack([xx / max(1, w - 1), yy / max(1, h - 1), 0.5 + 0.5 * np.sin(xx * 0.3 + yy * 0.2 + seed)], -1)
    rgb = np.clip(rgb * 200 + rng.normal(0, 10, rgb.shape), 0, 255).astype(np.uint8)
    img = Image.fromarray(rgb, "RGB")
    if mode != "RGB":
        img = img.convert(mode)
    buffer = io.BytesIO()
    img.save(buffer, fmt, **params)
    return buffer.getvalue()


def fake_filter(folder: Path, slug: str = FILTER, title: str = "Tiny Test Pattern", weights: bytes | None = None,
                meta: dict | str | None = None) -> Path:
    """A filter folder without TensorFlow: placeholder weights (FakeStylizer never runs them)."""
    target = Path(folder) / slug
    target.mkdir(parents=True, exist_ok=True)
    if weights is None:
        buffer = io.BytesIO()
        np.savez(buffer, w=np.arange(4, dtype=np.float32) + len(slug))
        weights = buffer.getvalue()
    (target / "weights.npz").write_bytes(weights)
    if meta is None:
        meta = {"format": 1, "name": slug, "display_name": slug.title(),
                "source": {"title": title, "creator": "The Test Suite", "year": 2026, "licence": "CC0-1.0"},
                "network": {"width": 4, "blocks": 1}}
    (target / "filter.yaml").write_text(meta if isinstance(meta, str) else yaml.safe_dump(meta), encoding="utf-8")
    return target


def decodes_fully(path: Path) -> bool:
    """Whether an image file decodes to its last pixel (truncated files do not)."""
    from PIL import Image, ImageFile

    assert not ImageFile.LOAD_TRUNCATED_IMAGES
    try:
        with Image.open(path) as im:
            im.load()
        return True
    except Exception:
        return False


STYLIZED_RE = re.compile(r"assets/algorotoscope/([A-Za-z0-9._-]+)")


# ------------------------------------------------------------------------------- the fake network


def make_fake_stylizer_class():
    from blogroto.engine import stylize

    real = getattr(stylize, "_RealStylizer", stylize.Stylizer)
    stylize._RealStylizer = real

    class FakeStylizer(real):
        """The real Stylizer minus TensorFlow: the 'network' inverts colours."""

        delay = float(os.environ.get("BLOGROTO_TEST_FAKE_DELAY", "0") or 0)
        calls: list[str] = []

        def __init__(self, *args, **kwargs):
            # one precision: `auto` would ask the backend for GPUs and check clips in two precisions
            super().__init__(*args, **{"precision": "float32", **kwargs})

        def stylize_array(self, rgb, flt, options, out=None, policy=None):
            from blogroto.imaging.pixels import to_uint8

            flt.fingerprint  # the real one reads the weights file; so does this
            if rgb.dtype == np.uint8:  # stylize_file hands 8-bit photos over as uint8
                rgb = rgb.astype(np.float32) / 255
            styled = stylize.blend(rgb, 1.0 - rgb, options)
            if self.delay:
                time.sleep(self.delay)
            if out is None:
                return styled
            out[...] = to_uint8(styled) if out.dtype == np.uint8 else styled
            return out

        def stylize_file(self, src, dst, flt, options=stylize.StyleOptions(), name=None, xmp=None):
            type(self).calls.append(str(name))
            return super().stylize_file(src, dst, flt, options, name=name, xmp=xmp)

    return FakeStylizer


def install_fake_stylizer():
    from blogroto.engine import stylize

    cls = make_fake_stylizer_class()
    cls.calls = []
    stylize.Stylizer = cls
    return cls


# ------------------------------------------------------------------------------- running the CLI


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err

    def lines(self, kind: str) -> list[str]:
        """The 'warning: ...' or 'error: ...' lines."""
        return [line[len(kind) + 2:] for line in self.err.splitlines() if line.startswith(kind + ": ")]


def cli(*args: str) -> Result:
    """`blogroto ARGS` in this process (exit code, stdout, stderr); no traceback may escape."""
    from blogroto.cli import main

    out, err = io.StringIO(), io.StringIO()
    code = None
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main([str(a) for a in args])
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    assert code is not None, "main() returned without exiting"
    return Result(code, out.getvalue(), err.getvalue())


def subprocess_env(**extra: str) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env.setdefault("CUDA_VISIBLE_DEVICES", "")  # CPU: same numbers in every process
    env.update(extra)
    return env


def cli_command(*args: str, fake: bool = False) -> list[str]:
    if fake:
        return [sys.executable, str(FAKE_CLI), *map(str, args)]
    return [sys.executable, "-m", "blogroto", *map(str, args)]


def run_cli(*args: str, fake: bool = False, timeout: float = 600, env: dict | None = None) -> Result:
    proc = subprocess.run(cli_command(*args, fake=fake), capture_output=True, text=True, timeout=timeout,
                          cwd=REPO, env=env or subprocess_env())
    return Result(proc.returncode, proc.stdout, proc.stderr)


# ------------------------------------------------------------------------------- a site under guard


GOOD_POST = "_posts/2024-01-01-good.md"


class Kit:
    """A small Jekyll site, its output and cache folders (outside it), and guarded builds."""

    def __init__(self, base: Path, filter_dir: Path | None = None, fake_filter_folder: bool = True):
        self.base = Path(base)
        self.root = self.base / "site"
        self.out = self.base / "out"
        self.cache = self.base / "cache"
        self.filters = self.root / "_filters"
        self.config: dict = {"title": "Reliability", "algorotoscope": {"filters": ["_filters"]}}
        if filter_dir is not None:
            self.config["algorotoscope"]["filters"] = ["_filters", str(filter_dir)]
        self.write_config()
        self.write("index.md", "---\ntitle: Home\n---\nHome.\n")
        self.write("_layouts/post.html", "<html>{{ content }}</html>\n")
        self.write("assets/img/good.jpg", photo(seed=1))
        self.write(GOOD_POST, f"---\ntitle: Good\nalgorotoscope: {FILTER}\n---\n![good](/assets/img/good.jpg)\n")
        if fake_filter_folder:
            fake_filter(self.filters, FILTER)
        self.builds = 0

    # -- writing the site (before a build; never during one)

    def write(self, rel: str, data: bytes | str) -> Path:
        return write(self.root / rel, data)

    def write_config(self, **algorotoscope) -> None:
        self.config["algorotoscope"].update(algorotoscope)
        write(self.root / "_config.yml", yaml.safe_dump(self.config, sort_keys=False))

    def post(self, name: str, body: str, front: str | None = None, filter: str = FILTER) -> str:
        """Write `_posts/2024-02-01-NAME.md` with algorotoscope front matter; returns its site path."""
        rel = f"_posts/2024-02-01-{name}.md"
        front = front if front is not None else f"title: {name}\nalgorotoscope: {filter}\n"
        self.write(rel, f"---\n{front}---\n{body}")
        return rel

    # -- building

    def args(self, *extra: str) -> list[str]:
        return ["build", str(self.root), "--out", str(self.out), "--cache", str(self.cache), *map(str, extra)]

    def build(self, *extra: str) -> Result:
        """`blogroto build` in-process (with whatever Stylizer is installed), site under guard."""
        before = tree_state(self.root)
        result = cli(*self.args(*extra))
        assert_same_tree(before, tree_state(self.root))
        assert "Traceback" not in result.err, result.err
        self.builds += 1
        return result

    def build_subprocess(self, *extra: str, fake: bool = False, timeout: float = 600, **env) -> Result:
        before = tree_state(self.root)
        result = run_cli(*self.args(*extra), fake=fake, timeout=timeout, env=subprocess_env(**env))
        assert_same_tree(before, tree_state(self.root))
        assert "Traceback" not in result.err, result.err
        self.builds += 1
        return result

    # -- looking at the output

    def output(self, rel: str) -> str:
        return (self.out / rel).read_text(encoding="utf-8")

    def stylized(self, rel: str) -> list[str]:
        """Names of the stylized images an output document references (each must exist and decode)."""
        names = sorted(set(STYLIZED_RE.findall(self.output(rel))))
        for name in names:
            path = self.out / "assets/algorotoscope" / name
            assert path.is_file(), f"{rel} references missing {name}"
            assert decodes_fully(path), f"{name} does not decode"
        return names

    def assert_good_post_built(self) -> None:
        """The rest of the site still builds: the good post got its stylized image."""
        assert len(self.stylized(GOOD_POST)) == 1
        assert (self.out / "index.md").is_file()

    def unchanged_copy(self, rel: str) -> bool:
        """Whether the output holds the author's file exactly as it is (a failed post is copied)."""
        return (self.out / rel).read_bytes() == (self.root / rel).read_bytes()


def where(rel_display: str, line: int | None) -> str:
    return f"{rel_display}:{line}:" if line is not None else f"{rel_display}:"


def files_under(root: Path) -> dict[str, bytes]:
    """Regular files under root (links followed only to read), path -> bytes."""
    out = {}
    for folder, _dirs, files in os.walk(root):
        for name in files:
            path = Path(folder) / name
            if path.is_file():
                out[path.relative_to(root).as_posix()] = path.read_bytes()
    return out


# ------------------------------------------------------------------------------- consistency


def is_tmp(rel: str) -> bool:
    return rel.rsplit("/", 1)[-1].startswith(TMP_PREFIX)


def snapshot_output(out: Path) -> dict[str, bytes | tuple]:
    """The output tree as a reader sees it: file bytes, link targets; writers' temp files left out."""
    snap: dict[str, bytes | tuple] = {}
    if not Path(out).is_dir():
        return snap
    for folder, dirs, files in os.walk(out):
        for name in files + [d for d in dirs if os.path.islink(os.path.join(folder, d))]:
            path = os.path.join(folder, name)
            rel = os.path.relpath(path, out).replace(os.sep, "/")
            if is_tmp(rel):
                continue
            snap[rel] = ("link", os.readlink(path)) if os.path.islink(path) else Path(path).read_bytes()
    return snap


def snapshot_objects(cache: Path) -> dict[str, bytes]:
    """The cache's content-addressed entries (objects/ab/<key>.<ext>), temp files left out."""
    objects = Path(cache) / "objects"
    return {p.name: p.read_bytes() for p in sorted(objects.rglob("*")) if p.is_file() and not is_tmp(p.name)} \
        if objects.is_dir() else {}


def leftovers(*roots: Path) -> list[str]:
    return [str(p) for root in roots if Path(root).is_dir() for p in Path(root).rglob(TMP_PREFIX + "*")]


def _last_line(data) -> bytes:
    return data.rstrip().rsplit(b"\n", 1)[-1] if isinstance(data, bytes) else b""


def assert_consistent(out: Path, cache: Path, *versions: tuple[dict, dict], complete: bool = False,
                      source: Path | None = None, degraded: tuple[str, ...] = ()) -> None:
    """What a reader (Jekyll, a browser, the next build) can see is never torn.

    `versions`: (output snapshot, cache objects) of complete builds this state may lie between.
    Every output file equals its twin in one of them (no truncated or half-written file), every
    cache entry equals that version's entry and decodes, every stylized image a document names is
    there, and temp files of killed writers are hidden from Jekyll. `complete`: the output equals
    the last version. `source`: the site (a failed document is copied from it unchanged).
    `degraded`: output folders of pages listing what built (the catalog, after documents failed).
    """
    from blogroto.site.model import Site

    snap = snapshot_output(out)
    if source is not None:  # a document that failed is copied unchanged: the author's own file is fine too
        versions = (*versions, (snapshot_output(source), {}))
    for rel, data in snap.items():
        if rel.startswith(degraded) and not any(v[0].get(rel) == data for v in versions):
            # a page derived from which documents built (the catalog) differs after a degraded
            # build, but is whole: it ends the way the complete build's page ends
            assert any(_last_line(v[0].get(rel, b"")) == _last_line(data) for v in versions), f"{rel} is torn"
            continue
        assert any(v[0].get(rel) == data for v in versions), f"output {rel} matches no complete build (torn?)"
        if rel.endswith((".md", ".html")) and isinstance(data, bytes):
            for name in set(STYLIZED_RE.findall(data.decode("utf-8", "replace"))):
                assert f"assets/algorotoscope/{name}" in snap, f"{rel} shows {name}, which is not in the output"
    objects = snapshot_objects(cache)
    for name, data in objects.items():
        assert any(v[1].get(name) == data for v in versions), f"cache entry {name} matches no complete build"
    for path in (Path(cache) / "objects").rglob("*.*") if (Path(cache) / "objects").is_dir() else ():
        if not is_tmp(path.name):
            assert decodes_fully(path), path
    stray = leftovers(out)
    if stray and (Path(out) / "_config.yml").is_file():
        site = Site(out, output=Path(out).parent / "_never", cache=Path(out).parent / "_never-cache")
        for path in stray:
            rel = os.path.relpath(path, out).replace(os.sep, "/")
            assert site.hidden_from_jekyll(rel), f"Jekyll would publish the temp file {rel}"
    import json

    for path in [Path(cache) / "stat-index.json", *Path(cache).glob("builds/*.json")]:
        if path.exists():
            json.loads(path.read_bytes())  # complete JSON, never torn
    if complete:  # the output is exactly the last version's; the cache holds its entries (and older ones)
        last_out, last_objects = versions[-2 if source is not None else -1]
        assert set(snap) == set(last_out), (sorted(set(snap) ^ set(last_out))[:10])
        assert snap == last_out
        assert set(objects) >= set(last_objects)
