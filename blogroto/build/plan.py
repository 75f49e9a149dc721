"""The build's plan of one document: its image references (`Ref`), what each becomes (`Target`), the stylize
jobs (`Job`), and the naming rules of the files blogroto writes."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from blogroto.site.config import (
    PostOptions,
)
from blogroto.site.documents import Document

IMAGES_DIR = "assets/algorotoscope"
SHORT_HASH = 10
FORMAT_OF_EXT = {"jpg": "jpeg", "jpeg": "jpeg", "png": "png", "webp": "webp"}
STEM_RE = re.compile(r"[^A-Za-z0-9._-]+")
IMAGE_NAME_RE = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,250}")
STYLIZED_NAME_RE = re.compile(r"[A-Za-z0-9._-]+-([0-9a-f]{%d})\.([a-z0-9]{1,10})" % SHORT_HASH)
HEX_RE = re.compile(r"[0-9a-f]{8,128}")
EXT_RE = re.compile(r"[a-z0-9]{1,10}")
SCHEME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


@dataclass
class Target:
    """Where an image reference points: a site file or a remote URL."""

    local: str | None = None  # site-relative path
    url: str | None = None
    stem: str = "image"


@dataclass(eq=False)
class Job:
    """One stylized output image (shared by every reference to the same source, filter, options)."""

    key: str
    ext: str
    name: str
    flt: Any
    style: Any  # stylize.StyleOptions
    source: Path | bytes
    label: str
    cached: Path | None = None
    failed: str | None = None
    fatal: bool = False  # the filter itself is broken (not just this image): the document fails
    xmp: bytes | None = None  # credit metadata embedded in the file (blogroto.credits.xmp.xmp_for)
    animation: Any = None  # site.AnimationSettings when the source is animated (blogroto.animation)
    video: bool = False  # an MP4/WebM stylized by blogroto.video (with `animation`'s settings)


@dataclass
class Ref:
    where: str  # "body" | "front"
    raw: str  # the path as written (bare, Liquid stripped by the references module)
    line: int | None
    handle: Any  # references-module object, or front-matter locator
    target: Target | None = None
    job: Job | None = None
    new: str | None = None
    images: Any = None  # responsive.ImageSet: the body reference becomes srcset/<picture>
    card: Any = None  # responsive.Variant: the social card the `image:` key points at instead


@dataclass
class Plan:
    doc: Document
    display: str
    options: PostOptions
    flt: Any
    refs: list[Ref]
    deps: dict[str, list[int]]
    remote: list[str]
    liquid: bool
    warned: bool = False
    remote_warnings: list[str] = field(default_factory=list)  # remembered/unreachable remote images
