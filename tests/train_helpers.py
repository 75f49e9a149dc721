"""Helpers for training tests: tiny configurations that run in seconds."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tests.conftest import make_photo


def fake_vgg(path: Path) -> Path:
    """A VGG16-shaped weights file with small random values. Passed explicitly (never found
    silently): it exercises the training plumbing, not the quality of the losses."""
    if path.exists():
        return path
    from blogroto.engine import vgg

    rng = np.random.default_rng(0)
    kernels, biases, cin = [], [], 3
    for cout in vgg.VGG16_CHANNELS:
        kernels.append((rng.standard_normal((3, 3, cin, cout)) * np.sqrt(2 / (9 * cin))).astype(np.float32))
        biases.append(np.zeros(cout, np.float32))
        cin = cout
    vgg.save_cached(vgg.VGGWeights(kernels, biases, "torch", "random test weights"), path)
    return path


def tiny_config(tmp: Path, name: str = "tiny-trained", **overrides):
    from blogroto.engine.recipe import TrainConfig

    content = tmp / "content"
    for i in range(3):
        make_photo(content / f"photo{i}.png", (48, 40), seed=i)
    artwork = make_photo(tmp / "art.png", (40, 40), seed=9)
    preview = make_photo(tmp / "preview.png", (36, 28), seed=7)
    settings = dict(
        artwork=artwork, name=name, out_dir=tmp / "out", source={"title": "Test Art", "creator": "Tester", "licence": "CC0-1.0"},
        content_dirs=[content], builtin_content=False, preset="quick", steps=6, size=32, batch=1, style_size=32,
        width=4, blocks=1, progressive=0.5, preview_every=2, preview_photo=preview, progress=False,
        vgg_weights=fake_vgg(tmp.parent / "fake-vgg16.npz"), checkpoint_minutes=0.0,
    )
    settings.update(overrides)
    return TrainConfig(**settings)


def weights_of(folder: Path) -> dict:
    with np.load(folder / "weights.npz", allow_pickle=False) as data:
        return {k: data[k] for k in data.files}
