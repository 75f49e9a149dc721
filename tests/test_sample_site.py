"""The README's first command: build the shipped sample site with the built-in (trained) filters."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

REPO = Path(__file__).resolve().parent.parent


def tree_digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and "_blogroto" not in p.parts and ".blogroto-cache" not in p.parts}


@pytest.mark.slow
def test_sample_site_builds_with_builtin_filters(tmp_path):
    site = REPO / "sample_site"
    before = tree_digest(site)
    out, cache = tmp_path / "_out", tmp_path / "cache"
    cmd = [sys.executable, "-m", "blogroto", "build", str(site), "--out", str(out), "--cache", str(cache)]
    result = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"}, timeout=1800)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 warnings, 0 errors" in result.stdout
    # TensorFlow's start-up noise never reaches the author's terminal
    assert "cuInit" not in result.stderr and "absl" not in result.stderr
    stylized = sorted((out / "assets" / "algorotoscope").glob("*"))
    filters_used = {p.stem.rsplit("-", 1)[0].split("-", 1)[1] for p in stylized}
    for slug in ("copper-circuit", "hubble-deep-field", "starry-night"):  # every filter the sample uses
        assert any(slug in f for f in filters_used), (slug, filters_used)
    for image in stylized:
        if image.suffix == ".mp4":  # the starry-night post's video, stylized whole
            import av

            with av.open(str(image)) as video:
                assert sum(1 for _ in video.decode(video=0)) == 24
            continue
        with Image.open(image) as img:
            img.load()  # complete, decodable
            if image.suffix == ".gif":
                assert img.n_frames == 10  # the animation stays one
    post = next((out / "_posts").glob("*copper-morning.md")).read_text()
    assert "assets/algorotoscope/coffee-copper-circuit-" in post
    assert tree_digest(site) == before  # the author's files are untouched
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and "0 images stylized" in again.stdout
