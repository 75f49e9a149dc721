"""The scanner: block structure (a CommonMark approximation: block quotes, list items, fences, indented
code, headings), then inline Markdown images and reference definitions (CommonMark's bracket algorithm)
and HTML `<img>`/`<source>`/`<video>` attributes. Every search that could run to the end of the text is
bounded by the paragraph or memoised, so the scan stays (near) linear on hostile input."""

from __future__ import annotations

import bisect
import re
from dataclasses import replace

from blogroto.references.html_tags import HtmlScanner
from blogroto.references.inline import InlineScanner
from blogroto.references.liquid import NEUTRAL, find_masks, split_liquid
from blogroto.references.model import (
    MD_REFERENCE,
    Ctx,
    ImageRef,
)
from blogroto.references.syntax import (
    ATX_RE,
    FENCE_RE,
    HTML_BLOCK_RE,
    MAX_NESTING,
    NL_RE,
    NONBLANK_RE,
    NOT_THEMATIC,
    ORDERED_RE,
    SETEXT_RE,
    SPACES_RE,
    Definition,
    RefEvent,
    UseEvent,
    md_text,
    normalize_label,
)
from blogroto.references.text import (
    Finder,
)


class Scanner(InlineScanner, HtmlScanner):
    """One post body's image references: block structure here, inline Markdown and HTML in the mixins."""

    def __init__(self, body: str):
        self.body = body
        self.n = len(body)
        self.finder_body = Finder(body)
        self.masks = find_masks(body, self.finder_body)
        text = body
        if any(opaque for _, _, opaque in self.masks):
            parts, last = [], 0
            for s, e, opaque in self.masks:
                if opaque:
                    parts.append(body[last:s])
                    parts.append(re.sub(r"[^\r\n]", NEUTRAL, body[s:e]))
                    last = e
            parts.append(body[last:])
            text = "".join(parts)
        self.text = text
        self.finder = Finder(text) if text is not body else self.finder_body
        self.mask_starts = [s for s, _, _ in self.masks]
        self.mask_ends = [e for _, e, _ in self.masks]
        self.line_starts = [0]
        self.line_ends: list[int] = []
        for m in NL_RE.finditer(text):
            self.line_ends.append(m.start())
            self.line_starts.append(m.end())
        self.line_ends.append(self.n)
        self.events: list[RefEvent | UseEvent] = []
        self.defs: dict[str, Definition] = {}
        self._tag_fail: set[int] = set()
        self._dest_budget = 0

    # ---------------------------------------------------------------- block structure
    def _indent(self, p: int, le: int, col: int, limit: int = 1 << 30) -> tuple[int, int]:
        """Skip spaces/tabs from p while the column stays below `limit` (tabs stop at 4)."""
        text = self.text
        while p < le and col < limit:
            c = text[p]
            if c == " ":
                col += 1
            elif c == "\t":
                col = (col // 4 + 1) * 4
            else:
                break
            p += 1
        return p, col

    def _blank(self, p: int, le: int) -> bool:
        return NONBLANK_RE.search(self.text, p, le) is None

    def _thematic(self, q: int, le: int) -> bool:
        c = self.text[q]
        if c not in "-*_":
            return False
        # Memoised search: "- - - …" list markers on one long line must not rescan it each time.
        hit = self.finder.search(NOT_THEMATIC[c], q)
        if hit is not None and hit[0] < le:
            return False
        return self.text.count(c, q, le) >= 3

    def _list_marker(self, q: int, le: int) -> tuple[int, int | None] | None:
        text = self.text
        c = text[q]
        if c in "-+*":
            e, number = q + 1, None
        elif "0" <= c <= "9":
            m = ORDERED_RE.match(text, q, le)
            if m is None:
                return None
            e, number = m.end(), int(text[q:m.end() - 1])
        else:
            return None
        if e < le and text[e] not in " \t":
            return None
        if c in "-*" and self._thematic(q, le):
            return None
        return e, number

    def _fence_open(self, q: int, le: int) -> tuple[str, int] | None:
        m = FENCE_RE.match(self.text, q, le)
        if m is None:
            return None
        if m.group()[0] == "`" and self.text.find("`", m.end(), le) >= 0:
            return None  # a backtick fence's info string may not hold backticks
        return m.group()[0], len(m.group())

    def _fence_close(self, p: int, le: int, col: int, fence: tuple[str, int]) -> bool:
        q, qcol = self._indent(p, le, col)
        if qcol - col > 3:
            return False
        m = FENCE_RE.match(self.text, q, le)
        return (m is not None and m.group()[0] == fence[0] and len(m.group()) >= fence[1]
                and self._blank(m.end(), le))

    def _interrupts(self, p: int, le: int, col: int) -> bool:
        """Would the rest of this line start a block that ends an open paragraph?"""
        q, qcol = self._indent(p, le, col)
        if q >= le or qcol - col >= 4:
            return False
        text = self.text
        if text[q] == ">" or self._fence_open(q, le) or self._thematic(q, le):
            return True
        if ATX_RE.match(text, q, le) or HTML_BLOCK_RE.match(text, q, le):
            return True
        mk = self._list_marker(q, le)
        # Only a non-empty bullet item or one numbered 1 may interrupt a paragraph.
        return mk is not None and not self._blank(mk[0], le) and mk[1] in (None, 1)

    def _match_containers(self, containers: list, ls: int, le: int) -> tuple[int, int, int]:
        text = self.text
        p, col, matched = ls, 0, 0
        for c in containers:
            if c is None:  # block quote
                q, qcol = self._indent(p, le, col, col + 3)
                if q < le and text[q] == ">":
                    p, col = q + 1, qcol + 1
                    if p < le and text[p] in " \t":
                        col = col + 1 if text[p] == " " else (col // 4 + 1) * 4
                        p += 1
                    matched += 1
                    continue
                break
            if self._blank(p, le):  # list item: blank lines continue it
                matched += 1
                continue
            q, qcol = self._indent(p, le, col, c)
            if qcol >= c:
                p, col = q, qcol
                matched += 1
                continue
            break
        return matched, p, col

    def _line_index(self, pos: int) -> int:
        return bisect.bisect_right(self.line_starts, pos) - 1

    def scan(self) -> None:
        starts, ends = self.line_starts, self.line_ends
        nlines = len(starts)
        containers: list[int | None] = []  # None = block quote, int = list item content column
        leaf: str | None = None  # None | 'para' | 'fence' | 'icode'
        fence: tuple[str, int] = ("`", 3)
        para: list = []  # [start, end, [content start of each line]]
        li = 0
        resume: int | None = None
        while True:
            if li >= nlines:
                if leaf != "para":
                    return
                leaf = None
                jump = self._scan_paragraph(para)
                if jump is None:
                    return
                li, resume = self._line_index(jump), jump
                continue
            ls, le = starts[li], ends[li]
            if resume is not None:
                # An excluded region (comment, <pre>…) ran past its paragraph: go on after it,
                # mid-line, as paragraph text.
                p, resume = resume, None
                if p < le and not self._blank(p, le):
                    leaf, para = "para", [p, le, [p]]
                else:
                    leaf = None
                li += 1
                continue

            matched, p, col = self._match_containers(containers, ls, le)
            all_matched = matched == len(containers)

            if leaf == "fence":
                if all_matched:
                    if self._fence_close(p, le, col, fence):
                        leaf = None
                    li += 1
                    continue
                leaf = None  # the container holding the fence ended

            if leaf == "para":
                q, setext = self._paragraph_line(p, le, col, all_matched)
                if q is not None:  # continuation (lazy when not all containers matched)
                    para[1] = le
                    para[2].append(q)
                    li += 1
                    continue
                leaf = None
                jump = self._scan_paragraph(para)
                if jump is not None:
                    li, resume = self._line_index(jump), jump
                    continue
                if setext:  # the underline belongs to the heading just scanned
                    li += 1
                    continue

            # No open paragraph from here on: close what did not match, open new containers.
            if not all_matched:
                del containers[matched:]
                if leaf == "icode":
                    leaf = None
            opened = len(containers)
            p, col = self._open_containers(containers, p, le, col)
            if len(containers) > opened:
                leaf = None
            q, qcol = self._indent(p, le, col)
            if q >= le:  # blank; an indented code block runs on over blank lines
                li += 1
                continue
            leaf, opened_leaf, jump = self._start_leaf(q, qcol - col, le)
            if leaf == "fence":
                fence = opened_leaf
            elif leaf == "para":
                para = opened_leaf
            if jump is not None:
                li, resume = self._line_index(jump), jump
                continue
            li += 1

    def _paragraph_line(self, p: int, le: int, col: int, all_matched: bool) -> tuple[int | None, bool]:
        """How a line meets the open paragraph: (where its text starts, False) when it continues it;
        (None, True) when it is a setext underline that closes it as a heading; else (None, False)."""
        if self._blank(p, le) or self._interrupts(p, le, col):
            return None, False
        q, _ = self._indent(p, le, col)
        if all_matched and SETEXT_RE.match(self.text, q, le) is not None:
            return None, True
        return q, False

    def _start_leaf(self, q: int, indent: int, le: int) -> tuple[str | None, object, int | None]:
        """The leaf block that a non-blank line opens at q: (kind, its fence or paragraph, and for a
        heading whose excluded region runs past the line, where to resume)."""
        if indent >= 4:
            return "icode", None, None
        f = self._fence_open(q, le)
        if f is not None:
            return "fence", f, None
        if ATX_RE.match(self.text, q, le):
            return None, None, self._scan_paragraph([q, le, [q]])
        if self._thematic(q, le):
            return None, None, None
        return "para", [q, le, [q]], None

    def _open_containers(self, containers: list, p: int, le: int, col: int) -> tuple[int, int]:
        """Open the block quotes and list items that start at p on this line (appended to
        `containers`); returns where their content starts (position, column)."""
        text = self.text
        while len(containers) < MAX_NESTING:
            q, qcol = self._indent(p, le, col)
            if q >= le or qcol - col >= 4:
                break
            if text[q] == ">":
                containers.append(None)
                p, col = q + 1, qcol + 1
                if p < le and text[p] in " \t":
                    col = col + 1 if text[p] == " " else (col // 4 + 1) * 4
                    p += 1
                continue
            mk = self._list_marker(q, le)
            if mk is None:
                break
            m_end = mk[0]
            mcol = qcol + (m_end - q)
            if self._blank(m_end, le):
                containers.append(mcol + 1)
                p, col = le, mcol
                continue
            r, rcol = self._indent(m_end, le, mcol)
            if rcol - mcol >= 5:  # item starts with indented code: content after 1 space
                containers.append(mcol + 1)
                p, col = self._indent(m_end, le, mcol, mcol + 1)
            else:
                containers.append(rcol)
                p, col = r, rcol
        return p, col

    # ---------------------------------------------------------------- paragraphs
    def _scan_paragraph(self, para: list) -> int | None:
        """Link definitions at the paragraph's start, then its inlines. Returns the position to
        go on from when an excluded region runs past the paragraph's end, else None."""
        start, end, line_starts = para
        # Each bare destination may scan up to MAX_PAREN_DEPTH nested "(" ahead; on hostile
        # text ("[x](" a million times) that is 32 scans of every byte. A linear budget keeps
        # real documents exact and bounds the rest.
        self._dest_budget = (end - start) + 4096
        pos = start
        while pos < end and self.text[pos] == "[":
            nxt = self._definition(pos, end, line_starts)
            if nxt is None:
                break
            pos = nxt
        if pos >= end:
            return None
        return self._scan_inline(pos, end)

    def _next_line_start(self, pos: int, line_starts: list[int]) -> int | None:
        """Content start of the paragraph line after the one holding pos."""
        i = bisect.bisect_right(line_starts, pos)
        return line_starts[i] if i < len(line_starts) else None

    def _skip_spaces(self, p: int, end: int) -> int:
        return SPACES_RE.match(self.text, p, end).end()

    def _definition(self, pos: int, end: int, line_starts: list[int]) -> int | None:
        """Parse ``[label]: dest "title"`` at pos; return where the next line starts."""
        text = self.text
        lab = self._label(pos, end)
        if lab is None or lab[2] >= end or text[lab[2]] != ":":
            return None
        label = text[lab[0]:lab[1]]
        if not label.strip(" \t\r\n"):
            return None
        p = self._skip_spaces(lab[2] + 1, end)
        if p >= end or p == self.line_ends[self._line_index(p)]:
            p = self._next_line_start(p, line_starts)  # destination on the next line
            if p is None:
                return None
            p = self._skip_spaces(p, end)
        if p < end and text[p] == "<":
            de = self._angle_dest(p, end)
            if de is None:
                return None
            ds, base, after = p + 1, "md-angle", de + 1
        else:
            ds, base = p, "md-bare"
            de = self._bare_dest(p, end)
            if de is None or de == ds:
                return None
            after = de
        line_end = self.line_ends[self._line_index(after)]
        title = None
        q = self._skip_spaces(after, end)
        if q < line_end:
            # A title on the same line: it must close the line, else this is no definition.
            if q == after or text[q] not in "\"'(":
                return None
            t = self._title(q, end)
            if t is None or not self._blank(t[2], self.line_ends[self._line_index(t[2])]):
                return None
            title, nxt_from = text[t[0]:t[1]], t[2]
        else:
            nxt_from = line_end
            # Maybe a title alone on the next line.
            q2 = self._next_line_start(line_end, line_starts)
            if q2 is not None and q2 < end and text[q2] in "\"'(":
                t = self._title(q2, end)
                if t is not None and self._blank(t[2], self.line_ends[self._line_index(t[2])]):
                    title, nxt_from = text[t[0]:t[1]], t[2]
        key = normalize_label(label)
        if key not in self.defs:  # the first definition of a label wins
            title = md_text(title) if title is not None else None
            self.defs[key] = Definition(ds, de, base, title)
        nxt = self._next_line_start(nxt_from, line_starts)
        return end if nxt is None else nxt

    # ---------------------------------------------------------------- results
    def _masked(self, s: int, e: int) -> bool:
        i = bisect.bisect_right(self.mask_ends, s)  # first mask ending after s
        return i < len(self.masks) and self.mask_starts[i] < e

    def _line_of(self, pos: int) -> int:
        return bisect.bisect_right(self.line_starts, pos)

    def _make_ref(self, kind, raw_s, raw_e, base, alt, title, opt, srcset=False, element=None):
        if raw_e <= raw_s or self._masked(raw_s, raw_e):
            return None
        if isinstance(alt, tuple):
            alt = md_text(self.body[alt[0]:alt[1]])
        s, e, lq = split_liquid(self.body, raw_s, raw_e)
        if e <= s:
            return None
        ctx = Ctx(base, srcset, lq, s == raw_s, e == raw_e)
        return ImageRef(kind, self.body[raw_s:raw_e], self.body[s:e], s, e, alt, title, opt,
                        self._line_of(s), ctx, element)

    def results(self) -> list[ImageRef]:
        events = self.events
        # Events inside the description of a resolved reference image are only alt text. The
        # ranges nest like brackets, so a difference array marks them in linear time.
        cover = [0] * (len(events) + 1)
        resolved = [False] * len(events)
        for i, ev in enumerate(events):
            # A use inside {% raw %} is code being shown: it must not pull its definition in.
            if (isinstance(ev, UseEvent) and ev.label in self.defs
                    and not self._masked(ev.anchor, ev.anchor + 2)):
                resolved[i] = True
                cover[ev.nested_from] += 1
                cover[i] -= 1
        refs: list[ImageRef] = []
        uses: dict[str, list[UseEvent]] = {}
        depth = 0
        for i, ev in enumerate(events):
            depth += cover[i]
            if depth > 0:
                continue
            if isinstance(ev, UseEvent):
                if resolved[i]:
                    uses.setdefault(ev.label, []).append(ev)
                continue
            ref = self._make_ref(ev.kind, ev.raw_s, ev.raw_e, ev.base, ev.alt, ev.title,
                                 ev.opt_out, ev.srcset, ev.element)
            if ref is not None:
                refs.append(ref)
        for label, evs in uses.items():
            d = self.defs[label]
            # One rewrite serves every use, so one opted-out use protects the definition.
            ref = self._make_ref(MD_REFERENCE, d.dest_s, d.dest_e, d.base, evs[0].alt, d.title,
                                 any(u.opt_out for u in evs))
            if ref is not None:
                uses = tuple((u.anchor, u.end, md_text(self.body[u.alt[0]:u.alt[1]])) for u in evs)
                refs.append(replace(ref, uses=uses))
        refs.sort(key=lambda r: r.start)
        return refs


