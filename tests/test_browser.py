"""Proven for real: the sample site built by blogroto, then by real Jekyll, then shown in headless
Chromium (driven over the DevTools protocol on a pipe: no extra packages).

Missing `jekyll` or `chromium` skips these tests, unless BLOGROTO_REQUIRE_JEKYLL=1 /
BLOGROTO_REQUIRE_BROWSER=1 (CI sets both), which makes that a failure. Screenshots land in
test-artifacts/ (git-ignored) for a person to look at.
"""

from __future__ import annotations

import base64
import html.parser
import json
import os
import posixpath
import re
import select
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

import pytest

from tests.test_catalog import REPO, build_sample, built_sample  # noqa: F401 - a shared session fixture

pytestmark = pytest.mark.slow

ARTIFACTS = REPO / "test-artifacts"
BASEURL = "/blog"  # the sample site's
SITE_URL = "https://example.org"


def _tool(names: tuple[str, ...], env: str, what: str) -> str:
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    if os.environ.get(env) == "1":
        pytest.fail(f"{what} is required ({env}=1) but none of {', '.join(names)} is on PATH")
    pytest.skip(f"{what} not installed (set {env}=1 to make this a failure)")


# --------------------------------------------------------------------------------------------
# the site, built by blogroto and then by Jekyll


@pytest.fixture(scope="module")
def jekyll_site(tmp_path_factory, built_sample):  # noqa: F811
    """(blogroto build, folder served at / whose blog/ is Jekyll's _site, Jekyll's log)."""
    jekyll = _tool(("jekyll",), "BLOGROTO_REQUIRE_JEKYLL", "Jekyll")
    base = tmp_path_factory.mktemp("jekyll")
    # figure captions on, so the <figure> form is proven too; the shared cache makes every image a hit
    built = build_sample(base, figure=True, cache=built_sample.cache)
    serve_root = base / "srv"
    proc = subprocess.run([jekyll, "build", "--disable-disk-cache", "--source", str(built.out),
                           "--destination", str(serve_root / BASEURL.strip("/"))],
                          capture_output=True, text=True, timeout=300)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log
    return built, serve_root, log


class _Page(html.parser.HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.imgs: list[str] = []
        self.links: list[str] = []
        self.jsonld: list[str] = []
        self.text: list[str] = []
        self._script = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "img":
            self.imgs.append(a.get("src") or "")
            for candidate in (a.get("srcset") or "").split(","):
                if candidate.strip():
                    self.imgs.append(candidate.split()[0])
        elif tag == "a" and a.get("href"):
            self.links.append(a["href"])
        elif tag == "script" and a.get("type") == "application/ld+json":
            self._script = True
            self.jsonld.append("")

    def handle_endtag(self, tag):
        self._script = False

    def handle_data(self, data):
        if self._script:
            self.jsonld[-1] += data
        else:
            self.text.append(data)


def _parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


def _local_file(serve_root: Path, page_url: str, ref: str) -> Path | None:
    """The file a reference on page `page_url` points to, or None when it is not on this site."""
    if ref.startswith(SITE_URL + BASEURL + "/"):  # the site's own absolute URLs
        ref = ref[len(SITE_URL):]
    parts = urllib.parse.urlsplit(ref)
    if parts.scheme or parts.netloc or not parts.path:
        return None
    path = posixpath.normpath(posixpath.join(posixpath.dirname(page_url) + "/", urllib.parse.unquote(parts.path)))
    if ref.endswith("/"):
        path += "/"
    target = serve_root / path.lstrip("/")
    if path.endswith("/"):
        return target / "index.html"
    if not target.exists() and not posixpath.splitext(path)[1]:
        return target.with_name(target.name + ".html")  # Jekyll's extensionless URLs
    return target


POSTS = {"2024/03/02/copper-morning.html": "copper-circuit", "2024/04/10/starry-night.html": "starry-night",
         "2024/05/20/selective.html": "copper-circuit", "about.html": "copper-circuit",
         "projects/sensor-board.html": "hubble-deep-field"}
STAND_IN_TITLES = {"copper-circuit": "Copper Circuit Board", "hubble-deep-field": "Hubble Deep Field",
                   "starry-night": "The Starry Night"}  # the titles test_catalog.build_sample gives them


def test_jekyll_builds_posts_and_catalog(jekyll_site):
    built, serve_root, log = jekyll_site
    site = serve_root / BASEURL.strip("/")
    assert "Conflict" not in log and "Liquid Warning" not in log and "Error" not in log, log
    for rel, slug in POSTS.items():
        page = _parse(site / rel)
        url = f"{BASEURL}/{rel}"
        text = " ".join(page.text)
        # every image there is; the stylized ones are this filter's
        stylized = [s for s in page.imgs if "/assets/algorotoscope/" in s]
        assert stylized and all(f"-{slug}-" in s for s in stylized), (rel, page.imgs)
        for src in page.imgs:
            if "{{" in src:
                # only the sample's deliberate {% raw %} example may show Liquid as written
                assert rel.startswith("2024/04/10") and "assets/img/coffee.jpg" in src
                continue
            target = _local_file(serve_root, url, src)
            assert target is not None and target.is_file(), (rel, src)
        # the credit, visible text, and the machine-readable version of it
        assert "restyled with a neural filter learned from" in text
        assert STAND_IN_TITLES[slug] in text
        (script,) = page.jsonld
        objects = json.loads(script)
        objects = objects if isinstance(objects, list) else [objects]
        # every stylized image is described (its smaller widths and other formats are the same image)
        assert {o["contentUrl"].removeprefix(SITE_URL) for o in objects} >= {
            s for s in stylized if s.startswith("/") and not re.search(r"-\d+w-[0-9a-f]{10}\.\w+$", s)}
        for o in objects:
            assert o["@type"] == ("VideoObject" if o["contentUrl"].endswith(".mp4") else "ImageObject")
            assert o["digitalSourceType"].endswith("/compositeWithTrainedAlgorithmicMedia")
            assert (serve_root / o["contentUrl"].removeprefix(SITE_URL + "/")).is_file()
            assert o["isBasedOn"][-1]["@type"] == "CreativeWork" and o["isBasedOn"][-1]["creator"] == "The Test Suite"
    # figure form: a caption under each standalone Markdown/HTML image
    post = (site / "2024/03/02/copper-morning.html").read_text()
    assert "Morning coffee. Restyled with Copper Circuit" in post  # a Markdown image, with its title
    selective = (site / "2024/05/20/selective.html").read_text()  # a Markdown and an <img> image
    assert selective.count('<figcaption class="algorotoscope-caption">') == 2

    # the catalog: index, one page per used filter, artwork copied, every link lands on a page
    index = _parse(site / "filters/index.html")
    assert sum(1 for link in index.links if link in ("copper-circuit/", "hubble-deep-field/", "starry-night/")) >= 3
    for slug, users in (("copper-circuit", ("Copper morning", "Selective colour", "About")),
                        ("hubble-deep-field", ("Sensor board",)), ("starry-night", ("Starry night",))):
        page_url = f"{BASEURL}/filters/{slug}/"
        page = _parse(site / f"filters/{slug}/index.html")
        text = " ".join(page.text)
        assert "Rotoscope Notes" in text  # the site's own layout wraps it
        assert "The Test Suite" in text and "CC0-1.0" in text and "Not trained" in text
        for title in users:
            assert title in text
        assert "artwork.jpg" in page.imgs
        assert "example-before.jpg" in page.imgs and "example-after.jpg" in page.imgs  # before/after
        # the page names its filter in a heading of its own (the sample's layout prints no title)
        assert ('<h1 class="ac-heading">' + slug.replace("-", " ").title() + "</h1>") in \
            (site / f"filters/{slug}/index.html").read_text()
        for ref in page.imgs + page.links:
            target = _local_file(serve_root, page_url, ref)
            if target is not None:
                assert target.is_file(), (slug, ref)


# --------------------------------------------------------------------------------------------
# Chromium over the DevTools protocol (pipe transport: fd 3 in, fd 4 out, NUL-separated JSON)


LAUNCHER = ("import os, sys; r, w = int(sys.argv[1]), int(sys.argv[2]); os.dup2(r, 3); os.dup2(w, 4); "
            "os.execv(sys.argv[3], sys.argv[3:])")


class Chromium:
    def __init__(self, binary: str, profile: str):
        to_browser_r, self._w = os.pipe()
        self._r, from_browser_w = os.pipe()
        flags = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage", "--hide-scrollbars",
                 "--mute-audio", f"--user-data-dir={profile}", "--remote-debugging-pipe", "about:blank"]
        # Its chatter goes to a file: an undrained stderr pipe would fill up and freeze the browser.
        self.log = Path(profile) / "chromium.log"
        with open(self.log, "wb") as log:
            # A tiny launcher puts the pipe ends on the fds the protocol wants (3 in, 4 out). Not
            # /bin/sh: dash cannot redirect fds above 9; not preexec_fn: servers' threads are running.
            self.proc = subprocess.Popen([sys.executable, "-c", LAUNCHER, str(to_browser_r), str(from_browser_w),
                                          binary, *flags], pass_fds=(to_browser_r, from_browser_w),
                                         stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._buf = b""
        self._id = 0
        self.events: list[dict] = []

    def _read(self, deadline: float) -> list[dict]:
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("Chromium did not answer")
            ready, _, _ = select.select([self._r], [], [], left)
            if ready:
                chunk = os.read(self._r, 1 << 20)
                if not chunk:
                    raise RuntimeError(f"Chromium exited: {self.log.read_text(errors='replace')[-2000:]}")
                self._buf += chunk
        *messages, self._buf = self._buf.split(b"\0")
        return [json.loads(m) for m in messages]

    def call(self, method: str, params: dict | None = None, session: str | None = None, timeout: float = 60) -> dict:
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        data = json.dumps(msg).encode() + b"\0"
        while data:
            data = data[os.write(self._w, data):]
        deadline = time.monotonic() + timeout
        while True:
            for m in self._read(deadline):
                if m.get("id") == self._id:
                    if "error" in m:
                        raise RuntimeError(f"{method}: {m['error']}")
                    return m.get("result", {})
                self.events.append(m)

    def wait_for(self, event: str, session: str, timeout: float = 60) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            for i, m in enumerate(self.events):
                if m.get("method") == event and m.get("sessionId") == session:
                    return self.events.pop(i)
            self.events.extend(self._read(deadline))

    def open(self, url: str, width: int = 1000, height: int = 800) -> str:
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        self.call("Page.enable", session=session)
        self.call("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}, session)
        self.call("Page.navigate", {"url": url}, session)
        self.wait_for("Page.loadEventFired", session)
        return session

    def evaluate(self, session: str, expression: str):
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True},
                           session)
        if "exceptionDetails" in result:
            raise AssertionError(f"script failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    def screenshot(self, session: str, path: Path) -> Path:
        size = self.call("Page.getLayoutMetrics", session=session)["cssContentSize"]
        clip = {"x": 0, "y": 0, "width": min(size["width"], 1600), "height": min(size["height"], 5000), "scale": 1}
        data = self.call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True, "clip": clip},
                         session)["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        try:
            self.call("Browser.close", timeout=10)
        except (RuntimeError, TimeoutError, OSError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._r)
        os.close(self._w)


# Every image finished and decoded; which credit elements are actually visible; the JSON-LD.
PAGE_STATE = r"""(async () => {
  const imgs = [...document.images];
  await Promise.all(imgs.map(i => i.complete ? null : new Promise(r => { i.onload = i.onerror = r; })));
  const shown = e => { const r = e.getBoundingClientRect(), s = getComputedStyle(e);
    return r.width > 0 && r.height > 0 && s.visibility !== 'hidden' && s.display !== 'none' && +s.opacity > 0; };
  const texts = sel => [...document.querySelectorAll(sel)].filter(shown).map(e => e.innerText);
  const links = [...document.querySelectorAll('main a[href]')].map(a => a.href).filter(h => h.startsWith(location.origin));
  const status = await Promise.all(links.map(h => fetch(h).then(r => [h, r.status])));
  return {
    images: imgs.length,
    broken: imgs.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.currentSrc || i.src),
    credits: texts('.algorotoscope-credits'), captions: texts('.algorotoscope-caption'),
    cards: texts('.ac-card'), main: document.querySelector('main') ? document.querySelector('main').innerText : '',
    jsonld: [...document.querySelectorAll('script[type="application/ld+json"]')].map(s => JSON.parse(s.textContent)),
    badLinks: status.filter(([h, s]) => s !== 200),
  };
})()"""


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    binary = _tool(("chromium", "chromium-browser", "google-chrome"), "BLOGROTO_REQUIRE_BROWSER", "Chromium")
    profile = tempfile.mkdtemp(prefix="blogroto-chromium-", dir=tmp_path_factory.mktemp("profile"))
    chrome = Chromium(binary, profile)
    try:
        chrome.call("Browser.getVersion", timeout=60)
        yield chrome
    finally:
        chrome.close()


@pytest.fixture(scope="module")
def server(jekyll_site):
    from blogroto.publish.preview import serve_preview

    srv = serve_preview(jekyll_site[1], "127.0.0.1", 0, block=False)
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def _show(browser: Chromium, url: str, shot: str) -> dict:
    session = browser.open(url)
    state = browser.evaluate(session, PAGE_STATE)
    browser.screenshot(session, ARTIFACTS / shot)
    assert state["images"] > 0 and state["broken"] == [], state["broken"]
    assert state["badLinks"] == [], state["badLinks"]
    return state


def test_post_in_the_browser(browser, server):
    state = _show(browser, f"{server}{BASEURL}/2024/03/02/copper-morning.html", "browser-post.png")
    assert state["images"] >= 3  # coffee, cat, the rocket left as it was (the social card is og:image only)
    (credit,) = state["credits"]
    assert "Copper Circuit Board" in credit and "CC0-1.0" in credit and "The Test Suite" in credit
    assert state["captions"] and all("Restyled with Copper Circuit" in c for c in state["captions"])
    (ld,) = state["jsonld"]
    assert all(o["@type"] == "ImageObject" and o["isBasedOn"] for o in ld)


# The stylized animation: what Chromium's own decoder makes of the file, and where it is drawn.
ANIMATION_STATE = r"""(async () => {
  const img = [...document.images].find(i => i.src.includes('/assets/algorotoscope/coffee-drift-'));
  if (!img) return null;
  if (!img.complete) await new Promise(r => { img.onload = img.onerror = r; });
  img.scrollIntoView();
  const decoder = new ImageDecoder({data: (await fetch(img.src)).body, type: 'image/gif'});
  await decoder.completed;
  const track = decoder.tracks.selectedTrack;
  const r = img.getBoundingClientRect();
  return {src: img.src, frames: track.frameCount, animated: track.animated, width: img.naturalWidth,
          box: {x: r.x + scrollX, y: r.y + scrollY, width: r.width, height: r.height, scale: 1}};
})()"""


def test_animated_gif_plays_stylized_in_the_browser(browser, server):
    session = browser.open(f"{server}{BASEURL}/2024/04/10/starry-night.html")
    state = browser.evaluate(session, ANIMATION_STATE)
    assert state is not None, "the stylized animation is not on the page"
    assert state["animated"] and state["frames"] == 10 and state["width"] == 240, state
    shots = []
    for _ in range(6):  # the GIF shows each frame for 150 ms: pictures a frame or more apart differ
        shots.append(browser.call("Page.captureScreenshot", {"format": "png", "clip": state["box"]},
                                  session)["data"])
        time.sleep(0.35)
    assert len(set(shots)) > 1, "the animation does not play"
    (ARTIFACTS / "browser-animation.png").write_bytes(base64.b64decode(shots[0]))


VIDEO_STATE = r"""(async () => {
  const v = document.querySelector('video');
  if (!v) return null;
  v.muted = true;
  await v.play().catch(e => null);
  const t0 = v.currentTime;
  await new Promise(r => setTimeout(r, 1200));
  return {src: v.currentSrc, poster: v.poster, width: v.videoWidth, height: v.videoHeight, error: v.error && v.error.code,
          duration: v.duration, advanced: v.currentTime - t0, posterOk: await fetch(v.poster).then(r => r.status)};
})()"""


def test_video_plays_stylized_in_the_browser(browser, server):
    session = browser.open(f"{server}{BASEURL}/2024/04/10/starry-night.html")
    state = browser.evaluate(session, VIDEO_STATE)
    assert state is not None, "no video on the page"
    assert "/assets/algorotoscope/rocket-drift-starry-night-" in state["src"] and state["src"].endswith(".mp4"), state
    assert "/assets/algorotoscope/rocket-drift-poster-starry-night-" in state["poster"] and state["posterOk"] == 200
    assert state["error"] is None and (state["width"], state["height"]) == (320, 180), state
    assert abs(state["duration"] - 2.0) < 0.1 and state["advanced"] > 0.3, state  # it plays


# Lighthouse-style checks on every stylized <img>: what Chromium chose from the srcset, at 1x.
RESPONSIVE_STATE = r"""(async () => {
  const ours = [...document.images].filter(i => (i.getAttribute('src') || '').includes('/assets/algorotoscope/'));
  const out = [];
  for (const img of ours) {
    const pic = img.closest('picture');
    const r = {src: img.getAttribute('src'), width: img.getAttribute('width'), height: img.getAttribute('height'),
               loading: img.getAttribute('loading'), below: img.getBoundingClientRect().top + scrollY > innerHeight,
               webp: !!(pic && pic.querySelector('source[type="image/webp"]'))};
    img.loading = 'eager';  // load the lazy ones too, to see which candidate the browser takes
    img.scrollIntoView();
    await img.decode().catch(() => null);
    Object.assign(r, {natural: img.naturalWidth, shown: img.getBoundingClientRect().width, current: img.currentSrc});
    out.push(r);
  }
  return out;
})()"""

RESPONSIVE_PAGES = ("2024/03/02/copper-morning.html", "2024/04/10/starry-night.html", "2024/05/20/selective.html",
                    "projects/sensor-board.html", "about.html")


@pytest.mark.parametrize("viewport", [(1280, 800), (390, 800)])
def test_stylized_images_pass_lighthouse_style_checks(browser, server, viewport):
    """Every stylized <img> has width/height, lazy loading below the fold, a WebP candidate (stills:
    animations stay in their own format), and no image fetched over 1.5x its displayed width at 1x."""
    seen = 0
    for page in RESPONSIVE_PAGES:
        session = browser.open(f"{server}{BASEURL}/{page}", *viewport)
        for img in browser.evaluate(session, RESPONSIVE_STATE):
            seen += 1
            where = f"{page} at {viewport}: {img['src']}"
            assert img["width"] and img["height"], f"no width/height: {where}"
            assert not img["below"] or img["loading"] == "lazy", f"below the fold but not lazy: {where}"
            if not img["src"].endswith(".gif"):
                assert img["webp"] and img["current"].endswith(".webp"), f"no WebP candidate: {where} {img}"
            assert 0 < img["natural"] <= 1.5 * img["shown"] + 0.5, f"oversized: {where} {img}"
    assert seen >= 8


def test_catalog_in_the_browser(browser, server):
    state = _show(browser, f"{server}{BASEURL}/filters/", "browser-catalog.png")
    assert len(state["cards"]) == 3  # copper-circuit, hubble-deep-field, starry-night
    assert any("Copper Circuit Board" in c for c in state["cards"])
    state = _show(browser, f"{server}{BASEURL}/filters/copper-circuit/", "browser-catalog-filter.png")
    for text in ("Copper Circuit Board", "The Test Suite", "CC0-1.0", "Where it is used", "Copper morning", "About",
                 "What it does to a photo", "Not trained"):
        assert text in state["main"]
    assert state["main"].lstrip().startswith("Copper Circuit\n")  # its heading comes first


def test_preview_in_the_browser(browser, jekyll_site, tmp_path):
    """The Ruby-free preview of the same output: every image shows, the banner says what it is."""
    from blogroto.publish.preview import render_preview, serve_preview

    built = jekyll_site[0]
    dest = render_preview(built.out, tmp_path / "preview")
    srv = serve_preview(dest, "127.0.0.1", 0, block=False)
    try:
        base = f"http://127.0.0.1:{srv.server_address[1]}"
        state = _show(browser, f"{base}{BASEURL}/2024/03/02/copper-morning.html", "preview-post.png")
        assert "Copper Circuit Board" in state["credits"][0]
        session = browser.open(f"{base}/")  # redirects to the baseurl
        time.sleep(0.5)
        assert browser.evaluate(session, "location.pathname") == f"{BASEURL}/"
        assert "not Jekyll" in browser.evaluate(session, "document.querySelector('.blogroto-preview-banner').innerText")
        _show(browser, f"{base}{BASEURL}/filters/hubble-deep-field/", "preview-catalog-filter.png")
    finally:
        srv.shutdown()
        srv.server_close()
