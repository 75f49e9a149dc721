"""Wrapping stylized images in figures with the credit as caption (`figure: true`)."""

from __future__ import annotations

from typing import Any

from blogroto.build.plan import Ref


def wrap_figures(old_body: str, body: str, renderer, record: dict, refs: list[Ref], *, markdown: bool) -> str:
    """Wrap stylized images that stand alone on their line in <figure> with a credit caption.

    The references module reports path spans, not element spans; the rewritten body parses back
    to the same references in the same order, so the old and new lists are zipped to find where
    each stylized path now is, and the element is its whole line (`![..](..)` or `<img ..>`).
    Images sharing a line with other content are left unwrapped: a block <figure> inside a
    paragraph would break it.
    """
    from blogroto import references

    old = references.find_image_refs(old_body)
    new = references.find_image_refs(body)
    if len(old) != len(new):
        return body
    wanted = {(r.handle.start, r.handle.end): r for r in refs}
    lines: dict[int, tuple[int, Any, Any]] = {}  # line start -> (line end, new ref, our ref)
    per_line: dict[int, int] = {}
    for o, n in zip(old, new):
        start = body.rfind("\n", 0, n.start) + 1
        per_line[start] = per_line.get(start, 0) + 1
        ours = wanted.get((o.start, o.end))
        if ours is not None and n.kind in (references.MD_INLINE, references.HTML_SRC):
            end = body.find("\n", n.end)
            lines[start] = (len(body) if end < 0 else end, n, ours)
    out, last = [], 0
    for start in sorted(lines):
        end, n, ours = lines[start]
        line = body[start:end].rstrip("\r")
        is_md = n.kind == references.MD_INLINE
        if per_line[start] != 1 and not (not is_md and per_line[start] > 1 and line.count("<img") == 1):
            continue  # more than one image on the line (srcset candidates of one <img> are fine)
        if is_md and not (markdown and line.startswith("![") and line.rstrip().endswith((")", "}"))):
            continue
        if not is_md and not (line.startswith("<img") and line.rstrip().endswith(">") and line.count("<") == 1):
            continue
        alt = n.alt
        title = n.title
        fig = renderer.wrap_figure(line.rstrip(), record, alt=alt, title=title)
        before = "" if start == 0 or body[:start].endswith(("\n\n", "\r\n\r\n")) else "\n"
        after = "" if body[end:].startswith(("\n\n", "\r\n\r\n")) or end >= len(body) else "\n"
        out.append(body[last:start])
        out.append(before + fig + after)
        last = start + len(line)
    out.append(body[last:])
    return "".join(out)
