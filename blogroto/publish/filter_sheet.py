"""`blogroto catalog sheet`: one photo through every filter on one picture, each labelled with the
filter's name and the credit of the artwork it learned from."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from blogroto.errors import BlogrotoError

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image

    from blogroto.filters import Filter


def contact_sheet(photo: str | Path, filters: list[Filter], *, cell: int = 320, columns: int | None = None,
                  stylizer=None, on_error: Callable[[Filter, Exception], None] | None = None) -> Image.Image:
    """`photo` as it is, then through every filter (a filter that fails leaves a grey cell)."""
    from PIL import Image

    from blogroto.imaging import contact_sheet as sheets
    from blogroto.imaging.decode import load_image
    from blogroto.imaging.pixels import to_uint8
    from blogroto.imaging.resize import resize_long_side

    if not filters:
        raise BlogrotoError("no filters to show")
    original = Image.fromarray(to_uint8(resize_long_side(load_image(photo), cell).rgb), "RGB")
    if stylizer is None:
        from blogroto.engine.stylize import (
            Stylizer,  # TensorFlow is imported here, only for the sheet
        )

        stylizer = Stylizer()
    from blogroto.engine.stylize import StyleOptions

    opts = StyleOptions(max_size=cell)
    tiles: list[tuple[Image.Image | None, str, str]] = [(original, "Original photo", Path(photo).name)]
    for flt in filters:
        try:
            styled = stylizer.stylize_image(original, flt, opts).convert("RGB")
        except Exception as exc:  # one broken filter must not cost the whole sheet
            if on_error is not None:
                on_error(flt, exc)
            styled = None
        tiles.append((styled, flt.display_name, flt.credit_line()))
    # every result has the photo's shape: no square gaps
    return sheets.grid(tiles, cell_w=cell, cell_h=original.height, columns=columns or min(4, len(tiles)),
                       header=f"blogroto filters on {Path(photo).name}", missing="could not apply this filter")


def write_contact_sheet(dest: str | Path, photo: str | Path, filters: list[Filter], **kwargs) -> Path:
    """`contact_sheet(...)` saved as a PNG (atomically)."""
    from blogroto.imaging.contact_sheet import save

    return save(contact_sheet(photo, filters, **kwargs), dest, "PNG", optimize=True)
