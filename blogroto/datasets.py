"""The data blogroto ships: style artworks, a small training content set, the preview photo.

Everything under `blogroto/data/` is credited in `data/CREDITS.yaml` (one entry per file, with
the same keys a filter's `source:` uses, so an entry can be copied into `filter.yaml` as is);
`data/README.md` is the same information as a table and is generated from it.

Only redistributable images are shipped: public domain, CC0, CC BY (its attribution in the
credit), or our own drawing (tools/circuit_board.py). The preview photo is deliberately *not* in the content set, so
training previews show how a filter does on a photo it never trained on.

Maintainers regenerate the files with `python -m tools.rebuild_data rebuild` from the repository
(needs scikit-image, which blogroto itself does not depend on); the credits are edited by hand.
"""

from __future__ import annotations

from pathlib import Path

from blogroto.errors import BlogrotoError

DATA_DIR = Path(__file__).resolve().parent / "data"
ARTWORK_DIR = DATA_DIR / "artworks"
CONTENT_DIR = DATA_DIR / "content"
PREVIEW_PHOTO = DATA_DIR / "preview.jpg"
CREDITS_FILE = DATA_DIR / "CREDITS.yaml"
README_FILE = DATA_DIR / "README.md"

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
CREDIT_KEYS = ("file", "title", "creator", "year", "url", "licence", "licence_url", "credit", "obtained_from")
# files in DATA_DIR that describe the data rather than being data
META_FILES = ("CREDITS.yaml", "README.md")

CONTENT_LONG_SIDE = 512
ARTWORK_LONG_SIDE = 1024
JPEG_QUALITY = 88



def _images_in(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def content_images() -> list[Path]:
    """The built-in training photos, sorted by name (stable order = reproducible training)."""
    return _images_in(CONTENT_DIR)


def artworks() -> list[Path]:
    return _images_in(ARTWORK_DIR)


def artwork(name: str) -> Path:
    """A built-in style artwork by name: 'copper-circuit', 'hubble_deep_field', 'ihc.jpg', ..."""
    # accept the file name, the stem, and scikit-image's underscore spelling
    wanted = Path(name).stem.lower().replace("_", "-").replace(" ", "-")
    for path in artworks():
        if path.stem.lower() == wanted:
            return path
    names = ", ".join(p.stem for p in artworks()) or "none"
    raise BlogrotoError(f"no built-in artwork called {name!r} (available: {names})", ARTWORK_DIR)


def preview_photo() -> Path:
    """The fixed photo that training previews and filter previews are rendered on."""
    if not PREVIEW_PHOTO.is_file():
        raise BlogrotoError("the built-in preview photo is missing from the installation", PREVIEW_PHOTO)
    return PREVIEW_PHOTO


def credits() -> list[dict]:
    """Every entry of data/CREDITS.yaml, missing keys filled with None."""
    from blogroto.safeyaml import load_yaml_file

    entries = load_yaml_file(CREDITS_FILE)  # ConfigError (a BlogrotoError) naming the file
    if not isinstance(entries, list) or not all(isinstance(e, dict) and e.get("file") for e in entries):
        raise BlogrotoError("expected a list of entries, each with a 'file'", CREDITS_FILE)
    return [{key: e.get(key) for key in CREDIT_KEYS} | e for e in entries]


def credit_for(path: str | Path) -> dict | None:
    """The credit entry of a shipped file (absolute, or relative to DATA_DIR); None if not ours."""
    p = Path(path)
    if p.is_absolute():
        try:
            rel = p.resolve().relative_to(DATA_DIR)
        except ValueError:
            return None
    else:
        rel = p
    key = rel.as_posix()
    return next((e for e in credits() if e["file"] == key), None)


def shipped_files() -> list[str]:
    """Every data file (relative posix paths) that needs a credit entry."""
    return sorted(
        p.relative_to(DATA_DIR).as_posix()
        for p in DATA_DIR.rglob("*")
        if p.is_file() and p.name not in META_FILES and not p.name.startswith(".")
    )


# ----------------------------------------------------------------------------- README


def render_readme(entries: list[dict]) -> str:
    """data/README.md: the credits as a table people can read on GitHub."""

    def cell(value) -> str:
        return "" if value is None else str(value).replace("|", "\\|").replace("\n", " ")

    def link(text, url) -> str:
        return f"[{cell(text)}]({url})" if url else cell(text)

    lines = [
        "# Built-in data",
        "",
        "Images shipped with blogroto: style artworks for the built-in filters (`artworks/`), a small",
        "training content set (`content/`) and the fixed preview photo (`preview.jpg`). All are public",
        "domain, CC0, CC BY (credited as the licence asks) or drawn by blogroto itself. This table is generated from `CREDITS.yaml`",
        "(`python -m tools.rebuild_data readme`); edit that file, not this one.",
        "",
        "| file | title | creator | year | licence | source | obtained from |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for e in entries:
        lines.append(
            "| " + " | ".join([
                f"`{cell(e['file'])}`", cell(e["title"]), cell(e["creator"]), cell(e["year"]),
                link(e["licence"], e["licence_url"]), link("link", e["url"]) if e["url"] else "",
                cell(e["obtained_from"]),
            ]) + " |"
        )
    lines += ["", "## Credit lines", ""]
    lines += [f"- `{e['file']}`: {cell(e['credit'])}" for e in entries]
    return "\n".join(lines) + "\n"
