"""Contact sheets: pictures in a grid, each with a title and a caption under it (training previews
by step, a photo through every filter)."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont, ImageOps


def font(size: int):
    for candidate in ("DejaVuSans.ttf", "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"):
        try:
            return ImageFont.truetype(candidate, size)
        except OSError:
            pass
    try:
        return ImageFont.load_default(size=size)  # Pillow >= 10.1 with FreeType
    except TypeError:  # pragma: no cover - older Pillow
        return ImageFont.load_default()


def wrap(draw, text: str, face, width: int, max_lines: int) -> list[str]:
    """`text` in lines no wider than `width`, at most `max_lines` (the last one ends in an ellipsis)."""
    words, lines, line = text.split(), [], ""
    for word in words:
        trial = f"{line} {word}".strip()
        if draw.textlength(trial, font=face) <= width or not line:
            line = trial
        else:
            lines.append(line)
            line = word
    if line:
        lines.append(line)
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        while lines[-1] and draw.textlength(lines[-1] + "…", font=face) > width:
            lines[-1] = lines[-1][:-1]
        lines[-1] += "…"
    return lines


def grid(tiles: list[tuple[Image.Image | None, str, str]], *, cell_w: int, cell_h: int, columns: int,
         header: str | None = None, caption_lines: int = 3, missing: str = "could not make this picture") -> Image.Image:
    """`tiles` (picture or None, title, caption) in rows of `columns` cells of cell_w x cell_h, each
    picture fitted into its cell, its title and caption under it; `header` on top."""
    n = len(tiles)
    rows = -(-n // columns)
    pad, name_size, credit_size = max(8, cell_w // 24), max(12, cell_w // 18), max(10, cell_w // 26)
    name_font, credit_font = font(name_size), font(credit_size)
    label_h = name_size + caption_lines * (credit_size + 4) + pad
    header_h = name_size + 2 * pad if header else pad
    sheet = Image.new("RGB", (pad + columns * (cell_w + pad), header_h + rows * (cell_h + label_h + pad)), "white")
    draw = ImageDraw.Draw(sheet)
    if header:
        draw.text((pad, pad), header, fill=(20, 20, 20), font=name_font)
    for i, (img, name, caption) in enumerate(tiles):
        x = pad + (i % columns) * (cell_w + pad)
        y = header_h + (i // columns) * (cell_h + label_h + pad)
        if img is None:
            draw.rectangle([x, y, x + cell_w - 1, y + cell_h - 1], fill=(230, 230, 230))
            draw.text((x + pad, y + cell_h // 2), missing, fill=(150, 0, 0), font=credit_font)
        else:
            fitted = ImageOps.contain(img, (cell_w, cell_h))
            sheet.paste(fitted, (x + (cell_w - fitted.width) // 2, y + (cell_h - fitted.height) // 2))
        ty = y + cell_h + 4
        draw.text((x, ty), name, fill=(20, 20, 20), font=name_font)
        ty += name_size + 4
        for line in wrap(draw, caption, credit_font, cell_w, caption_lines) if caption else []:
            draw.text((x, ty), line, fill=(90, 90, 90), font=credit_font)
            ty += credit_size + 4
    return sheet


def save(sheet: Image.Image, dest: str | Path, fmt: str = "PNG", **options) -> Path:
    """`sheet` written atomically (PNG, or JPEG with options such as quality)."""
    from blogroto.fsutil import atomic_write_bytes

    buffer = io.BytesIO()
    sheet.save(buffer, fmt, **options)
    atomic_write_bytes(dest, buffer.getvalue())
    return Path(dest)
