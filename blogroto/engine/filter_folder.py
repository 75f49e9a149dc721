"""A filter folder's files besides the weights and filter.yaml, made the same way for trained and
imported filters: the artwork, the before/after example and preview, the loss plot and the
training contact sheet; and the swap that makes a finished folder visible at once."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from blogroto.filters import DEFAULT_FILES
from blogroto.imaging.resize import resize_array

# The pictures every filter folder carries, made the same way for trained and imported filters.
EXAMPLE_SIDE = 768  # the before/after example's long side; the preview is the after picture at half that


def save_artwork(folder: Path, artwork: Path) -> None:
    from blogroto.imaging.decode import load_image
    from blogroto.imaging.resize import resize_long_side

    save_jpeg(folder / DEFAULT_FILES["artwork"], resize_long_side(load_image(artwork), 1024).rgb)


def save_examples(folder: Path, before: np.ndarray, after: np.ndarray) -> dict[str, str]:
    """The before/after example and the preview (the after picture at half size)."""
    save_jpeg(folder / DEFAULT_FILES["example_before"], before)
    save_jpeg(folder / DEFAULT_FILES["example_after"], after)
    save_jpeg(folder / DEFAULT_FILES["preview"], resize_array(after, EXAMPLE_SIDE // 2))
    return {key: DEFAULT_FILES[key] for key in ("preview", "example_before", "example_after")}


def swap_into_place(partial: Path, final: Path) -> None:
    """Replace `final` by the finished folder `partial`: it appears in one rename."""
    old = final.parent / f".{final.name}.old"
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        os.replace(final, old)
    os.replace(partial, final)
    shutil.rmtree(old, ignore_errors=True)


def load_filter_as(folder: Path, slug: str):
    """Validate a filter folder whose directory name is not (yet) its slug."""
    from blogroto.filters import Filter, _validate_meta, read_metadata

    meta = read_metadata(folder / "filter.yaml")
    _validate_meta(meta, folder / "filter.yaml", slug)
    return Filter(slug=slug, folder=folder, meta=meta)


def save_jpeg(path: Path, rgb: np.ndarray, quality: int = 88) -> None:
    from blogroto.fsutil import atomic_write_bytes
    from blogroto.imaging.encode import encode_image

    atomic_write_bytes(path, encode_image(np.clip(rgb, 0, 1), None, "jpeg", quality))


def loss_plot(history: dict, path: Path, name: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    minutes = np.asarray(history["seconds"]) / 60.0
    values = np.asarray(history["total"])
    ax.plot(minutes, values, color="#bbbbbb", linewidth=0.6, label="loss per step")
    if len(values) >= 10:
        k = max(5, len(values) // 50)
        smooth = np.convolve(values, np.ones(k) / k, mode="valid")
        ax.plot(minutes[k - 1 :], smooth, color="#b5651d", linewidth=2, label=f"mean of {k} steps")
    ax.set_yscale("log")
    ax.set_xlabel("minutes")
    ax.set_ylabel("total loss")
    ax.set_title(f"Training {name}")
    ax.legend()
    fig.tight_layout()
    import io

    from blogroto.fsutil import atomic_write_bytes

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())


def contact_sheet(previews: list[Path], path: Path, columns: int = 4, cell: int = 256) -> None:
    """The training previews in a grid, each labelled with its step."""
    from blogroto.imaging import contact_sheet as sheets

    if not previews:
        return
    if len(previews) > 12:  # keep an even spread, always including the last
        idx = np.linspace(0, len(previews) - 1, 12).round().astype(int)
        previews = [previews[i] for i in idx]
    tiles = [(Image.open(p).convert("RGB"), f"step {int(p.stem.split('-')[1])}", "") for p in previews]
    cell_h = max(1, round(cell * tiles[0][0].height / tiles[0][0].width))
    sheet = sheets.grid(tiles, cell_w=cell, cell_h=cell_h, columns=columns, caption_lines=0)
    sheets.save(sheet, path, "JPEG", quality=85)
