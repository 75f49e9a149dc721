"""What a training run is asked for: the presets, the loss weights and `TrainConfig`.

Plain data, no TensorFlow: the command line lists presets and checks options without loading the
engine; `blogroto.engine.train` runs a config.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from blogroto.errors import BlogrotoError

# Presets, sized for the machines they are meant for (see docs/training.md and benchmarks/).
PRESETS: dict[str, dict] = {
    # the slim network (applies ~3.4x faster in float32): ~10-15 minutes on a 2-core CPU with native bf16
    "quick": dict(width=16, blocks=3, steps=2000, size=192, batch=2, style_size=1024, lr=2e-3, progressive=0.5, zoom=1.0, norm="capped-decoder"),
    # the full network on quick's crops: 24 minutes on the family-26 EPYC; minutes on a GPU. lr 1e-3:
    # at quick's 2e-3 the full network painted solid black patches (0.31 % of pixels, up to 1 %). At
    # 5,500 steps (2,500 bought palette, not texture) patches grew again, pre-tanh -2 to -9: the
    # saturation term starts at 2 and weighs 1 here, so a 0.2 % patch costs what it should (docs/training.md)
    "standard": dict(width=32, blocks=5, steps=5500, size=192, batch=2, style_size=1024, lr=1e-3, progressive=0.5, zoom=1.0, norm="capped-decoder",
                     saturation_limit=2.0, weights={"saturation": 1.0}),
    # for a GPU
    "best": dict(width=32, blocks=5, steps=40000, size=256, batch=8, style_size=1024, lr=1e-3, progressive=0.1, zoom=1.0, norm="capped-decoder"),
    # a slim network that reproduces a teacher filter (needs `teacher`); style_size is the teacher's.
    # zoom 3: crops are also taken small and upscaled, so the student sees photos at the larger
    # scale a 1600 px blog image has, where the teacher's strokes are relatively smaller.
    "distill": dict(width=16, blocks=3, steps=3000, size=256, batch=4, style_size=None, lr=2e-3, progressive=0.3, zoom=3.0, norm="capped-decoder"),
}
# style_size 1024 in every preset: the network paints strokes of a fixed size in pixels, so the
# artwork is taken at the size of the pictures it will paint (a blog's 1024-1600 px), not at twice
# the crop; at 384 the strokes came out 2-3x finer than the artwork's (docs/training.md). Per artwork,
# larger can be closer still (broad-stroked paintings at 1448-2048: docs/training.md, "Brush size").
# saturation: see saturation_loss; colour: see losses.colour_loss (recipe 4); style 60 (recipe 5, was
# 20): recipe 4 kept more of the photo than the peer, and that room buys the artwork's strokes
DEFAULT_WEIGHTS = {"content": 1.0, "style": 60.0, "tv": 0.05, "saturation": 0.01, "colour": 30.0}
# where the saturation term starts (losses.saturation_loss), unless a preset says otherwise (standard)
SATURATION_LIMIT = 3.0
DISTILL_WEIGHTS = {"pixel": 100.0, "features": 1.0, "texture": 1e5}  # texture: the artwork training's style weight
STYLE_LOSSES = ("total", "content", "style", "tv", "tone", "colour", "saturation", "stability")
# stability (opt-in, --stability-weight): the output's change under this much Gaussian noise in the
# photo, relative to the noise (losses.stability_loss)
STABILITY_NOISE = 2.0 / 255
DISTILL_LOSSES = ("total", "pixel", "features", "texture")
# BLOGROTO_CHECKPOINT_EVERY_STEP=1: checkpoint after every step (tests that kill -9 a run mid-way).
CHECKPOINT_MINUTES = 0.0 if os.environ.get("BLOGROTO_CHECKPOINT_EVERY_STEP") == "1" else 3.0


@dataclass
class TrainConfig:
    artwork: Path | None  # None with a teacher: the teacher's copy of its artwork
    name: str
    out_dir: Path
    source: dict = field(default_factory=dict)  # title, creator, year, url, licence, licence_url, credit, description
    display_name: str | None = None
    description: str | None = None
    content_dirs: list[Path] = field(default_factory=list)
    builtin_content: bool = True
    preset: str = "quick"
    steps: int | None = None
    size: int | None = None
    batch: int | None = None
    style_size: int | None = None
    width: int | None = None
    blocks: int | None = None
    lr: float | None = None
    progressive: float | None = None
    zoom: float | None = None
    norm: str | None = None  # blogroto.engine.network.NORMS
    # overrides, per loss, of DEFAULT_WEIGHTS and the preset's own (or of DISTILL_WEIGHTS with a teacher)
    loss_weights: dict | None = None
    teacher: Path | str | None = None  # a filter (folder or name) to distill instead of learning the artwork
    # The site's filter folders, searched for the teacher after out_dir (then the user library and
    # the built-ins: blogroto.filters.search_path).
    site_filter_dirs: list[Path] = field(default_factory=list)
    seed: int = 0
    resume: bool = False
    vgg_weights: Path | None = None
    precision: str = "auto"  # auto | float32 | bfloat16 | float16
    checkpoint_minutes: float = CHECKPOINT_MINUTES
    preview_every: int | None = None
    preview_photo: Path | None = None
    progress: bool = True
    stop_after: int | None = None  # stop (checkpointed, resumable) after this many steps: used by tests

    def resolved(self) -> dict:
        if self.preset not in PRESETS:
            raise BlogrotoError(f"unknown preset {self.preset!r}; choose one of {', '.join(PRESETS)}")
        p = dict(PRESETS[self.preset])
        for key in ("steps", "size", "batch", "style_size", "width", "blocks", "lr", "progressive", "zoom", "norm"):
            if getattr(self, key) is not None:
                p[key] = getattr(self, key)
        p["size"] = max(16, int(p["size"]) // 4 * 4)
        p.setdefault("saturation_limit", SATURATION_LIMIT)
        if self.preview_every is None:
            p["preview_every"] = max(1, p["steps"] // 12)
        else:
            p["preview_every"] = self.preview_every
        return p
