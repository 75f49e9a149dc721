"""Maintainer's tool: regenerate the images blogroto ships in `blogroto/data/` and its README.

    python -m tools.rebuild_data rebuild [SKIMAGE_DATA_DIR]   # needs scikit-image
    python -m tools.rebuild_data readme                       # README.md from CREDITS.yaml

Not part of the installed package: users never redraw the data.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

from blogroto.datasets import (
    ARTWORK_LONG_SIDE,
    CONTENT_LONG_SIDE,
    DATA_DIR,
    JPEG_QUALITY,
    README_FILE,
    credits,
    render_readme,
)
from blogroto.errors import BlogrotoError

# How `rebuild` makes each shipped photo: scikit-image sample file, longest side (never upscaled).
_FROM_SKIMAGE = {
    "artworks/hubble-deep-field.jpg": ("hubble_deep_field.jpg", ARTWORK_LONG_SIDE),
    "artworks/ihc.jpg": ("ihc.png", ARTWORK_LONG_SIDE),
    "content/astronaut.jpg": ("astronaut.png", CONTENT_LONG_SIDE),
    "content/chelsea.jpg": ("chelsea.png", CONTENT_LONG_SIDE),
    "content/rocket.jpg": ("rocket.jpg", CONTENT_LONG_SIDE),
    "preview.jpg": ("coffee.png", CONTENT_LONG_SIDE),
}
_COPPER = "artworks/copper-circuit.jpg"  # drawn by tools/circuit_board.py, seed 0, 1024 x 1024

def _long_side(size: tuple[int, int], limit: int) -> tuple[int, int]:
    w, h = size
    if max(w, h) <= limit:
        return w, h  # never upscale: that adds no detail, only blur
    # integer round-half-up, as blogroto.imaging.resize.resize_long_side does
    if w >= h:
        return limit, max(1, (2 * h * limit + w) // (2 * w))
    return max(1, (2 * w * limit + h) // (2 * h)), limit


def _jpeg_bytes(im) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=JPEG_QUALITY, optimize=True)
    return buf.getvalue()


def rebuild(skimage_data: Path | None = None) -> list[Path]:
    """Regenerate every shipped image and README.md; returns the files written."""
    from PIL import Image

    from blogroto.fsutil import atomic_write_bytes, atomic_write_text
    from tools.circuit_board import draw_circuit_board

    if skimage_data is None:
        try:
            import skimage.data
        except ImportError as exc:
            raise BlogrotoError("rebuilding the data needs scikit-image (pip install scikit-image)") from exc
        skimage_data = Path(skimage.data.__file__).parent
    written = []
    for rel, (src, limit) in _FROM_SKIMAGE.items():
        with Image.open(skimage_data / src) as im:
            im = im.convert("RGB")
            size = _long_side(im.size, limit)
            if size != im.size:
                im = im.resize(size, Image.LANCZOS)
            atomic_write_bytes(DATA_DIR / rel, _jpeg_bytes(im))
        written.append(DATA_DIR / rel)
    atomic_write_bytes(DATA_DIR / _COPPER, _jpeg_bytes(draw_circuit_board(ARTWORK_LONG_SIDE, seed=0)))
    written.append(DATA_DIR / _COPPER)
    atomic_write_text(README_FILE, render_readme(credits()))
    written.append(README_FILE)
    return written


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["rebuild"]:
        for path in rebuild(Path(argv[1]) if len(argv) > 1 else None):
            print(path)
        return 0
    if argv[:1] == ["readme"]:
        from blogroto.fsutil import atomic_write_text

        atomic_write_text(README_FILE, render_readme(credits()))
        print(README_FILE)
        return 0
    print("usage: python -m tools.rebuild_data rebuild [SKIMAGE_DATA_DIR] | readme", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
