"""Shared fixtures. Tests stay fast: tiny networks (width 4, one residual block), tiny images."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Hermetic filter search path: the per-user filter library is an empty folder of this test session
# (inherited by the CLI subprocesses tests start), never the developer's ~/.local/share/blogroto.
os.environ["BLOGROTO_FILTERS_HOME"] = tempfile.mkdtemp(prefix="blogroto-user-filters-")
REPO = Path(__file__).resolve().parent.parent


def make_filter(folder: Path, slug: str = "tiny", width: int = 4, blocks: int = 1, seed: int = 0, title: str = "Tiny Test Pattern",
                norm: str = "instance", arch: str = "blogroto") -> Path:
    """Write a real filter folder with a small randomly initialised network (deterministic per seed).

    Random weights are fine for tests of plumbing; the shipped filters are trained."""
    import keras

    from blogroto.engine.network import TransformNet, save_weights
    from blogroto.filters import write_metadata

    target = Path(folder) / slug
    target.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(seed)
    net = TransformNet(width=width, blocks=blocks, norm=norm, arch=arch).ensure_built()
    save_weights(net, target / "weights.npz")
    rng = np.random.default_rng(seed)
    from PIL import Image

    Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(target / "artwork.jpg")
    write_metadata(target, {
        "format": 1,
        "name": slug,
        "display_name": slug.replace("-", " ").title(),
        "description": "A tiny untrained network for tests.",
        "source": {"title": title, "creator": "The Test Suite", "year": 2026, "url": "https://example.org/art",
                   "licence": "CC0-1.0", "licence_url": "https://creativecommons.org/publicdomain/zero/1.0/",
                   "credit": None},
        "network": {"width": width, "blocks": blocks, **({} if norm == "instance" else {"norm": norm}),
                    **({} if arch == "blogroto" else {"arch": arch})},
        "training": {"steps": 0, "note": "random weights, for tests"},
    })
    return target


@pytest.fixture(scope="session")
def tiny_filter_dir(tmp_path_factory) -> Path:
    """A folder holding two tiny filters, `tiny` and `tiny-two` (usable as a site's filter folder)."""
    base = tmp_path_factory.mktemp("filters")
    make_filter(base, "tiny", seed=0)
    make_filter(base, "tiny-two", seed=1, title="Second Tiny Pattern")
    return base


@pytest.fixture(scope="session")
def tiny_filter(tiny_filter_dir):
    from blogroto.filters import load_filter

    return load_filter(tiny_filter_dir / "tiny")


@pytest.fixture(scope="session")
def stylizer():
    from blogroto.engine.stylize import Stylizer

    return Stylizer()


def make_photo(path: Path, size=(24, 16), mode="RGB", seed=0, fmt=None) -> Path:
    """A small photo-like test image (smooth gradients plus noise)."""
    from PIL import Image

    w, h = size
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    rgb = np.stack([xx / max(1, w - 1), yy / max(1, h - 1), 0.5 + 0.5 * np.sin(xx * 0.7 + yy * 0.3)], -1)
    rgb = np.clip(rgb * 200 + rng.normal(0, 12, rgb.shape), 0, 255).astype(np.uint8)
    img = Image.fromarray(rgb, "RGB")
    if mode != "RGB":
        img = img.convert(mode)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, fmt)
    return path
