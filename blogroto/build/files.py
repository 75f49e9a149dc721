"""Small questions about files: which one Jekyll would publish for a path, what a folder holds,
whether a PNG is opaque, how a kind of file is called in messages."""

from __future__ import annotations

import os
import stat as stat_mod
from pathlib import Path

from blogroto.site.model import NEVER_COPIED, Site, SourceFile


def walk_one(site: Site, rel: str, drafts: bool):
    path = site.root / rel
    st = os.stat(path, follow_symlinks=False)
    if any(Path(d) in path.parents or Path(d) == path for d in site.skipped_dirs()):
        return
    if any(part in NEVER_COPIED for part in rel.split("/")):
        return
    if stat_mod.S_ISLNK(st.st_mode):
        # As Site.walk: published as what it points to when that is inside the site.
        real = site.link_target(path)
        if real is None:
            site.warnings.append(f"{path}: not published: a symlink to {os.readlink(path)}, which is outside the "
                                 f"site, missing or a loop (Jekyll skips it too)")
            return
        st = os.stat(real)
        if stat_mod.S_ISDIR(st.st_mode):
            yield from (sf for sf in site.walk(drafts) if sf.rel.startswith(rel + "/"))
            return
    if stat_mod.S_ISREG(st.st_mode):
        yield SourceFile(rel, path, st, site=site, drafts=drafts)


def walk_files(root: Path) -> set[str]:
    out = set()
    for folder, dirs, files in os.walk(root):
        for name in files + [d for d in dirs if os.path.islink(os.path.join(folder, d))]:
            out.add(Path(os.path.join(folder, name)).relative_to(root).as_posix())
    return out


def opaque_png(source: Path | bytes) -> bool:
    """Whether a PNG has no transparency (colour type without alpha, no tRNS before the pixels),
    read from its chunk headers; False when that cannot be told."""
    if isinstance(source, Path):
        try:
            with open(source, "rb") as fh:
                head = fh.read(1 << 18)
        except OSError:
            return False
    else:
        head = source[: 1 << 18]
    if not head.startswith(b"\x89PNG\r\n\x1a\n") or len(head) < 33 or head[12:16] != b"IHDR" or head[25] in (4, 6):
        return False
    pos = 8
    while pos + 8 <= len(head):
        length, kind = int.from_bytes(head[pos:pos + 4], "big"), head[pos + 4:pos + 8]
        if kind == b"tRNS":
            return False
        if kind == b"IDAT":
            return True
        pos += 12 + length
    return False


def kind_name(kind: str) -> str:
    return {"posts": "post", "drafts": "post", "pages": "page"}.get(kind, "page")
