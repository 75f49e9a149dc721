"""The scanner: block structure (a CommonMark approximation: block quotes, list items, fences, indented
code, headings), then inline Markdown images and reference definitions (CommonMark's bracket algorithm)
and HTML `<img>`/`<source>`/`<video>` attributes. Every search that could run to the end of the text is
bounded by the paragraph or memoised, so the scan stays (near) linear on hostile input."""

from __future__ import annotations

import bisect
import html
import re
from dataclasses import dataclass, replace

from blogroto.references.liquid import NEUTRAL, find_masks, split_liquid
from blogroto.references.model import (
    HTML_POSTER,
    HTML_SRC,
    HTML_SRCSET,
    HTML_VIDEO,
    MD_INLINE,
    MD_REFERENCE,
    OFF_VALUES,
    OPT_OUT_ATTR,
    OPT_OUT_CLASS,
    Ctx,
    ImageRef,
)
from blogroto.references.text import (
    ASCII_PUNCT,
    BACKSLASH_ESCAPE_RE,
    HTML_WS,
    MAX_PAREN_DEPTH,
    Finder,
)

_NL_RE = re.compile(r"\r\n|\r|\n")
_NONBLANK_RE = re.compile(r"[^ \t]")
_SPECIAL_RE = re.compile(r"[\\`<\[\]{]|!\[")
_BACKTICKS_RE = re.compile(r"`+")
_FENCE_RE = re.compile(r"`{3,}|~{3,}")
_ORDERED_RE = re.compile(r"[0-9]{1,9}[.)]")
_ATX_RE = re.compile(r"#{1,6}(?=[ \t]|$)", re.M)
_HTML_BLOCK_RE = re.compile(r"<!--|<(?:pre|script|style|textarea)(?=[ \t>\r\n]|$)", re.I | re.M)
_SETEXT_RE = re.compile(r"(?:=+|-+)[ \t]*$", re.M)
_TAG_NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9-]*")
_ATTR_NAME_RE = re.compile(r"[A-Za-z_:][A-Za-z0-9_.:-]*")
_HTML_WS_RE = re.compile(r"[ \t\n\r\f]*")
_CLOSE_TAG_RE = re.compile(r"</[A-Za-z][A-Za-z0-9-]*[ \t\n\r\f]*>")
_AUTOLINK_RE = re.compile(r"<[A-Za-z][A-Za-z0-9+.\-]{1,31}:[^\x00-\x20<>]*>")
_EMAIL_AUTOLINK_RE = re.compile(
    r"<[A-Za-z0-9.!#$%&'*+/=?^_`{|}~\-]+@[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?)*>"
)
_UNQUOTED_RUN_RE = re.compile(r"[^ \t\n\r\f>{]+")
_BARE_RUN_RE = re.compile(r"[^\x00-\x20\x7f()\\{]+")
_ANGLE_RUN_RE = re.compile(r"[^<>\\\n\r{]+")
_LABEL_RUN_RE = re.compile(r"[^\[\]\\]+")
_QUOTE_OR_LIQUID = {q: re.compile(re.escape(q) + r"|\{[{%]") for q in "\"'"}
_TITLE_STOP = {'"': re.compile(r'["\\]'), "'": re.compile(r"['\\]"), "(": re.compile(r"[()\\]")}
_IAL_RE = re.compile(r"\{:((?:[^}\"'\n]|\"[^\"\n]*\"|'[^'\n]*')*)\}")
_IAL_TOKEN_RE = re.compile(
    r"\.(?P<cls>[-\w]+)|(?P<key>[-\w:]+)=(?:\"(?P<dq>[^\"]*)\"|'(?P<sq>[^']*)'|(?P<bare>[^\s}]+))"
)
_RAW_ELEMENTS = ("pre", "code", "script", "style", "textarea")
_RAW_CLOSE_RE = {
    name: re.compile(r"</" + name + r"[ \t\n\r\f]*>", re.I) for name in _RAW_ELEMENTS
}
_MIN_PAREN_DEPTH = 3  # what CommonMark guarantees; used once a paragraph's scan budget is spent
_MAX_NESTING = 100  # block quotes/list items deeper than this are read as text
_NOT_THEMATIC = {c: re.compile(r"[^ \t" + re.escape(c) + "]") for c in "-*_"}
_SPACES_RE = re.compile(r"[ \t]*")
_MAX_LABEL = 999






def _normalize_label(label: str) -> str:
    return " ".join(label.split()).casefold()


def _md_text(s: str) -> str:
    """Alt/title text of Markdown: backslash escapes and entities resolved."""
    if "\\" in s:
        s = BACKSLASH_ESCAPE_RE.sub(r"\1", s)
    return html.unescape(s) if "&" in s else s


@dataclass
class _RefEvent:
    kind: str
    raw_s: int
    raw_e: int
    base: str
    # Markdown alt text is kept as a (start, end) span and only made a string for refs that are
    # reported: nested images ("![![![…") would otherwise copy O(n) text per level.
    alt: str | tuple[int, int] | None
    title: str | None
    opt_out: bool
    srcset: bool = False
    element: tuple[int, int] | None = None  # the whole `![..](..){: ..}` or `<img ..>`


@dataclass
class _UseEvent:
    """``![alt][label]`` and friends: an image only if the label is defined somewhere."""

    label: str | None  # normalised; None when too long to match any definition
    alt: tuple[int, int]
    opt_out: bool
    nested_from: int  # events[nested_from:this] lie inside the alt text
    anchor: int  # where the "![" is
    end: int = 0  # after the label and any IAL


@dataclass
class _Definition:
    dest_s: int
    dest_e: int
    base: str
    title: str | None


class Scanner:
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
        for m in _NL_RE.finditer(text):
            self.line_ends.append(m.start())
            self.line_starts.append(m.end())
        self.line_ends.append(self.n)
        self.events: list[_RefEvent | _UseEvent] = []
        self.defs: dict[str, _Definition] = {}
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
        return _NONBLANK_RE.search(self.text, p, le) is None

    def _thematic(self, q: int, le: int) -> bool:
        c = self.text[q]
        if c not in "-*_":
            return False
        # Memoised search: "- - - …" list markers on one long line must not rescan it each time.
        hit = self.finder.search(_NOT_THEMATIC[c], q)
        if hit is not None and hit[0] < le:
            return False
        return self.text.count(c, q, le) >= 3

    def _list_marker(self, q: int, le: int) -> tuple[int, int | None] | None:
        text = self.text
        c = text[q]
        if c in "-+*":
            e, number = q + 1, None
        elif "0" <= c <= "9":
            m = _ORDERED_RE.match(text, q, le)
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
        m = _FENCE_RE.match(self.text, q, le)
        if m is None:
            return None
        if m.group()[0] == "`" and self.text.find("`", m.end(), le) >= 0:
            return None  # a backtick fence's info string may not hold backticks
        return m.group()[0], len(m.group())

    def _fence_close(self, p: int, le: int, col: int, fence: tuple[str, int]) -> bool:
        q, qcol = self._indent(p, le, col)
        if qcol - col > 3:
            return False
        m = _FENCE_RE.match(self.text, q, le)
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
        if _ATX_RE.match(text, q, le) or _HTML_BLOCK_RE.match(text, q, le):
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
        text = self.text
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
                blank = self._blank(p, le)
                if not blank and not self._interrupts(p, le, col):
                    q, _ = self._indent(p, le, col)
                    setext = all_matched and _SETEXT_RE.match(text, q, le) is not None
                    if not setext:  # continuation (lazy when not all containers matched)
                        para[1] = le
                        para[2].append(q)
                        li += 1
                        continue
                else:
                    setext = False
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
            while len(containers) < _MAX_NESTING:
                q, qcol = self._indent(p, le, col)
                if q >= le or qcol - col >= 4:
                    break
                if text[q] == ">":
                    containers.append(None)
                    leaf = None
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
                leaf = None
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
            q, qcol = self._indent(p, le, col)
            if q >= le:  # blank; an indented code block runs on over blank lines
                li += 1
                continue
            if qcol - col >= 4:
                leaf = "icode"
                li += 1
                continue
            leaf = None
            f = self._fence_open(q, le)
            if f is not None:
                leaf, fence = "fence", f
                li += 1
                continue
            if _ATX_RE.match(text, q, le):
                jump = self._scan_paragraph([q, le, [q]])
                if jump is not None:
                    li, resume = self._line_index(jump), jump
                    continue
                li += 1
                continue
            if self._thematic(q, le):
                li += 1
                continue
            leaf, para = "para", [q, le, [q]]
            li += 1

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
        return _SPACES_RE.match(self.text, p, end).end()

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
        key = _normalize_label(label)
        if key not in self.defs:  # the first definition of a label wins
            title = _md_text(title) if title is not None else None
            self.defs[key] = _Definition(ds, de, base, title)
        nxt = self._next_line_start(nxt_from, line_starts)
        return end if nxt is None else nxt

    # ---------------------------------------------------------------- inline
    def _scan_inline(self, ps: int, pe: int) -> int | None:
        text = self.text
        runs: dict[int, list[int]] = {}
        for m in _BACKTICKS_RE.finditer(text, ps, pe):
            runs.setdefault(m.end() - m.start(), []).append(m.start())
        self._tag_fail = set()
        brackets: list[list] = []  # [position, is_image, len(events) at push]
        floor = 0  # link openers below this stack index are inactive (links hold no links)
        pos = ps
        while True:
            m = _SPECIAL_RE.search(text, pos, pe)
            if m is None:
                return None
            pos = m.start()
            c = text[pos]
            if c == "\\":
                pos += 2 if pos + 1 < pe and text[pos + 1] in ASCII_PUNCT else 1
            elif c == "`":
                e = _BACKTICKS_RE.match(text, pos, pe).end()
                k = e - pos
                lst = runs.get(k)
                i = bisect.bisect_left(lst, e) if lst else 0
                pos = lst[i] + k if lst and i < len(lst) else e
            elif c == "{":
                pos = self._liquid_end(pos, pe) or pos + 1
            elif c == "<":
                r = self._html(pos, pe)
                if r is None:
                    pos += 1
                elif r > pe:
                    return r
                else:
                    pos = r
            elif c == "!":
                brackets.append([pos, True, len(self.events)])
                pos += 2
            elif c == "[":
                brackets.append([pos, False, len(self.events)])
                pos += 1
            else:  # ']'
                if not brackets:
                    pos += 1
                    continue
                op = brackets.pop()
                inactive = not op[1] and len(brackets) < floor
                floor = min(floor, len(brackets))
                if inactive:  # CommonMark: ']' is literal and the opener is dropped
                    pos += 1
                    continue
                after = pos + 1
                dest = None
                if after < pe and text[after] == "(":
                    dest = self._inline_dest(after, pe)
                if dest is not None:
                    ds, de, base, title, end = dest
                    if op[1]:
                        del self.events[op[2]:]  # images in a description are only alt text
                        opt, end = self._ial(end, pe)
                        self.events.append(_RefEvent(
                            MD_INLINE, ds, de, base, (op[0] + 2, pos),
                            _md_text(title) if title is not None else None, opt, element=(op[0], end)))
                    else:
                        floor = len(brackets)
                    pos = end
                    continue
                if not op[1]:
                    pos += 1
                    continue
                # Reference image: full [label], collapsed [] or shortcut; resolved at the end.
                lab = self._label(after, pe) if after < pe and text[after] == "[" else None
                if lab is not None and lab[1] > lab[0]:
                    label_s, label_e, end = lab
                else:  # collapsed "[]" or shortcut: the description is the label
                    label_s, label_e = op[0] + 2, pos
                    end = lab[2] if lab is not None else after
                label = None
                if label_e - label_s <= _MAX_LABEL:  # a longer label cannot match a definition
                    label = _normalize_label(text[label_s:label_e])
                opt, end = self._ial(end, pe)
                self.events.append(_UseEvent(label, (op[0] + 2, pos), opt, op[2], op[0], end))
                pos = end

    def _liquid_end(self, pos: int, pe: int) -> int | None:
        """End of the Liquid ``{{ … }}``/``{% … %}`` at pos (within pe), or None."""
        text = self.text
        if pos + 1 >= pe or text[pos] != "{" or text[pos + 1] not in "{%":
            return None
        closer = "}}" if text[pos + 1] == "{" else "%}"
        r = self.finder.find(closer, pos + 2)
        return r + 2 if 0 <= r and r + 2 <= pe else None

    def _label(self, p: int, pe: int) -> tuple[int, int, int] | None:
        """``[label]`` at p: (inner start, inner end, end). No unescaped brackets inside."""
        text = self.text
        q = p + 1
        pe = min(pe, p + _MAX_LABEL + 2)
        while q < pe:
            m = _LABEL_RUN_RE.match(text, q, pe)
            if m is not None:
                q = m.end()
                if q >= pe:
                    break
            c = text[q]
            if c == "\\":
                q += 2
            elif c == "]":
                return (p + 1, q, q + 1) if q - p - 1 <= _MAX_LABEL else None
            else:
                return None
        return None

    def _skip_ws_one_newline(self, p: int, pe: int) -> int:
        text = self.text
        p = self._skip_spaces(p, pe)
        if p < pe and text[p] in "\r\n":
            p += 2 if text.startswith("\r\n", p) else 1
            p = self._skip_spaces(p, pe)
        return p

    def _angle_dest(self, p: int, pe: int) -> int | None:
        """Index of the '>' closing the ``<…>`` destination at p, or None."""
        text = self.text
        q = p + 1
        while q < pe:
            m = _ANGLE_RUN_RE.match(text, q, pe)
            if m is not None:
                q = m.end()
                if q >= pe:
                    return None
            c = text[q]
            if c == ">":
                return q
            if c == "\\":
                q += 2 if q + 1 < pe and text[q + 1] in ASCII_PUNCT else 1
            elif c == "{":
                q = self._liquid_end(q, pe) or q + 1
            else:  # '<' or a line ending
                return None
        return None

    def _bare_dest(self, p: int, pe: int) -> int | None:
        """End of a bare destination at p (may be empty), or None if its parens do not balance."""
        text = self.text
        depth, q = 0, p
        limit = MAX_PAREN_DEPTH if self._dest_budget > 0 else _MIN_PAREN_DEPTH
        while q < pe:
            self._dest_budget -= 1
            m = _BARE_RUN_RE.match(text, q, pe)
            if m is not None:
                q = m.end()
                if q >= pe:
                    break
            c = text[q]
            if c == "\\":
                q += 2 if q + 1 < pe and text[q + 1] in ASCII_PUNCT else 1
            elif c == "(":
                depth += 1
                if depth > limit:
                    return None
                q += 1
            elif c == ")":
                if depth == 0:
                    break
                depth -= 1
                q += 1
            elif c == "{":
                q = self._liquid_end(q, pe) or q + 1
            else:  # whitespace or control character
                break
        return q if depth == 0 else None

    def _title(self, q: int, pe: int) -> tuple[int, int, int] | None:
        """Title at q ("…", '…' or (…)): (inner start, inner end, end)."""
        text = self.text
        opener = text[q]
        closer = ")" if opener == "(" else opener
        stop = _TITLE_STOP[opener]
        p = q + 1
        while True:
            m = stop.search(text, p, pe)
            if m is None:
                return None
            p = m.start()
            c = text[p]
            if c == "\\":
                p += 2
            elif c == closer:
                return q + 1, p, p + 1
            else:  # an unescaped '(' inside a (…) title
                return None

    def _inline_dest(self, after: int, pe: int):
        """``(dest "title")`` at after: (dest start, dest end, base, title, end) or None."""
        text = self.text
        p = self._skip_ws_one_newline(after + 1, pe)
        if p >= pe:
            return None
        if text[p] == "<":
            r = self._angle_dest(p, pe)
            if r is None:
                return None
            ds, de, base, p = p + 1, r, "md-angle", r + 1
        else:
            de = self._bare_dest(p, pe)
            if de is None:
                return None
            ds, base, p = p, "md-bare", de
        q = self._skip_ws_one_newline(p, pe)
        title = None
        if q > p and q < pe and text[q] in "\"'(":
            t = self._title(q, pe)
            if t is None:
                return None
            title = text[t[0]:t[1]]
            q = self._skip_ws_one_newline(t[2], pe)
        if q < pe and text[q] == ")":
            return ds, de, base, title, q + 1
        return None

    def _ial(self, pos: int, pe: int) -> tuple[bool, int]:
        """A kramdown span IAL right after an image: (opts out?, end)."""
        if not self.text.startswith("{:", pos):
            return False, pos
        m = _IAL_RE.match(self.text, pos, pe)
        if m is None:
            return False, pos
        opt = False
        for t in _IAL_TOKEN_RE.finditer(m.group(1)):
            if t.group("cls") is not None:
                opt = opt or t.group("cls") == OPT_OUT_CLASS
                continue
            value = next(v for v in (t.group("dq"), t.group("sq"), t.group("bare"), "")
                         if v is not None)
            opt = opt or _attrs_opt_out(t.group("key").lower(), value)
        return opt, m.end()

    # ---------------------------------------------------------------- HTML
    def _html(self, pos: int, pe: int) -> int | None:
        """End of the HTML construct at pos ('<'), or None if it is none. An excluded region
        (comment, <pre>, <code>, …) may end past pe, or at the end of the text if unclosed."""
        text, finder = self.text, self.finder
        nxt = text[pos + 1] if pos + 1 < pe else ""
        if nxt == "!":
            if text.startswith("<!--", pos):
                if text.startswith(">", pos + 4):
                    return pos + 5
                if text.startswith("->", pos + 4):
                    return pos + 6
                r = finder.find("-->", pos + 4)
                return self.n if r < 0 else r + 3
            if text.startswith("<![CDATA[", pos):
                r = finder.find("]]>", pos + 9)
                return r + 3 if 0 <= r and r + 3 <= pe else None
            if pos + 2 < pe and text[pos + 2].isascii() and text[pos + 2].isalpha():
                r = finder.find(">", pos + 2)
                return r + 1 if 0 <= r < pe else None
            return None
        if nxt == "?":
            r = finder.find("?>", pos + 2)
            return r + 2 if 0 <= r and r + 2 <= pe else None
        if nxt == "/":
            m = _CLOSE_TAG_RE.match(text, pos, pe)
            return m.end() if m else None
        if not (nxt.isascii() and nxt.isalpha()):
            return None
        m = _AUTOLINK_RE.match(text, pos, pe) or _EMAIL_AUTOLINK_RE.match(text, pos, pe)
        if m is not None:
            return m.end()
        tag = self._open_tag(pos, pe)
        if tag is None:
            return None
        name, attrs, end = tag
        if name in _RAW_CLOSE_RE:
            hit = finder.search(_RAW_CLOSE_RE[name], end)
            return self.n if hit is None else hit[1]
        if name in ("img", "source", "video"):
            self._html_image(name, attrs, text, (pos, end))
        return end

    def _open_tag(self, pos: int, pe: int):
        """(lower-case name, [(name, value start, value end, quote)], end) or None.

        Liquid ``{{ … }}``/``{% … %}`` is atomic anywhere in a tag: Jekyll renders it before the
        Markdown parser sees the tag, so ``src="{{ "/a.jpg" | relative_url }}"`` is one value.
        """
        text = self.text
        m = _TAG_NAME_RE.match(text, pos + 1, pe)
        p = m.end()
        if p >= pe or text[p] not in " \t\n\r\f/>":
            return None
        name = m.group().lower()
        attrs: list[tuple[str, int, int, str | None]] = []
        visited: list[int] = []
        fail = self._tag_fail
        while True:
            # The scan from an attribute boundary does not depend on where the tag began: if it
            # failed once from here, it fails again. Remembering that keeps retries linear.
            if p in fail:
                break
            visited.append(p)
            p = _HTML_WS_RE.match(text, p, pe).end()
            if p >= pe:
                break
            c = text[p]
            if c == ">":
                return name, attrs, p + 1
            if c == "/":
                if text.startswith("/>", p) and p + 2 <= pe:
                    return name, attrs, p + 2
                p += 1
                continue
            if c == "{":
                r = self._liquid_end(p, pe)
                if r is None:
                    break
                p = r
                continue
            am = _ATTR_NAME_RE.match(text, p, pe)
            if am is None:
                break
            aname = am.group().lower()
            p = am.end()
            q = _HTML_WS_RE.match(text, p, pe).end()
            if q < pe and text[q] == "=":
                q = _HTML_WS_RE.match(text, q + 1, pe).end()
                if q >= pe:
                    break
                quote = text[q]
                if quote in "\"'":
                    close = self._quoted_end(q + 1, pe, quote)
                    if close is None:
                        break
                    attrs.append((aname, q + 1, close, quote))
                    p = close + 1
                else:
                    e = self._unquoted_end(q, pe)
                    if e == q:
                        break
                    attrs.append((aname, q, e, ""))
                    p = e
            else:
                attrs.append((aname, p, p, None))
        fail.update(visited)
        return None

    def _quoted_end(self, p: int, pe: int, quote: str) -> int | None:
        text, stop = self.text, _QUOTE_OR_LIQUID[quote]
        while True:
            m = stop.search(text, p, pe)
            if m is None:
                return None
            if text[m.start()] == quote:
                return m.start()
            p = self._liquid_end(m.start(), pe) or m.start() + 1

    def _unquoted_end(self, p: int, pe: int) -> int:
        text = self.text
        while p < pe:
            m = _UNQUOTED_RUN_RE.match(text, p, pe)
            if m is not None:
                p = m.end()
                if p >= pe:
                    break
            if text[p] != "{":
                break
            p = self._liquid_end(p, pe) or p + 1
        return p

    def _html_image(self, name: str, attrs: list, text: str, element: tuple[int, int]) -> None:
        first: dict[str, tuple] = {}
        for a in attrs:  # as browsers do, the first of a repeated attribute wins
            first.setdefault(a[0], a)

        def value(key: str) -> str | None:
            a = first.get(key)
            return None if a is None or a[3] is None else html.unescape(self.body[a[1]:a[2]])

        opt = any(_attrs_opt_out(k, value(k) or "") for k in ("class", OPT_OUT_ATTR) if k in first)
        alt, title = value("alt"), value("title")
        # <source src> only means something in <video>/<audio> (<picture> sources use srcset);
        # audio is told apart by its bytes, in the build.
        kinds = {"img": (("src", HTML_SRC),), "video": (("poster", HTML_POSTER), ("src", HTML_VIDEO)),
                 "source": (("src", HTML_VIDEO),)}[name]
        for key, kind in kinds:
            src = first.get(key)
            if src is None or src[3] is None:
                continue
            s, e = src[1], src[2]
            while s < e and text[s] in HTML_WS:  # browsers strip these around a URL
                s += 1
            while e > s and text[e - 1] in HTML_WS:
                e -= 1
            self.events.append(_RefEvent(kind, s, e, html_base(src[3]), alt, title, opt,
                                         element=element if kind == HTML_SRC else None))
        srcset = first.get("srcset")
        if srcset is not None and srcset[3] is not None:
            for s, e in self._srcset_urls(srcset[1], srcset[2]):
                self.events.append(_RefEvent(
                    HTML_SRCSET, s, e, html_base(srcset[3]), alt, title, opt, srcset=True))

    def _srcset_urls(self, p: int, end: int) -> list[tuple[int, int]]:
        """URL spans of a srcset value, per the HTML spec's parsing (descriptors skipped)."""
        text = self.text
        out = []
        while True:
            while p < end and (text[p] in HTML_WS or text[p] == ","):
                p += 1
            if p >= end:
                return out
            s = p
            while p < end and text[p] not in HTML_WS:
                p = self._liquid_end(p, end) or p + 1
            e = p
            if text[e - 1] == ",":
                while e > s and text[e - 1] == ",":
                    e -= 1
            else:
                depth = 0  # descriptors run to the next comma outside parentheses
                while p < end:
                    c = text[p]
                    if c == "(":
                        depth += 1
                    elif c == ")":
                        depth = max(0, depth - 1)
                    elif c == "," and depth == 0:
                        break
                    p += 1
            if e > s:
                out.append((s, e))

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
            alt = _md_text(self.body[alt[0]:alt[1]])
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
            if (isinstance(ev, _UseEvent) and ev.label in self.defs
                    and not self._masked(ev.anchor, ev.anchor + 2)):
                resolved[i] = True
                cover[ev.nested_from] += 1
                cover[i] -= 1
        refs: list[ImageRef] = []
        uses: dict[str, list[_UseEvent]] = {}
        depth = 0
        for i, ev in enumerate(events):
            depth += cover[i]
            if depth > 0:
                continue
            if isinstance(ev, _UseEvent):
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
                uses = tuple((u.anchor, u.end, _md_text(self.body[u.alt[0]:u.alt[1]])) for u in evs)
                refs.append(replace(ref, uses=uses))
        refs.sort(key=lambda r: r.start)
        return refs


def html_base(quote: str) -> str:
    return {'"': "html-dq", "'": "html-sq"}.get(quote, "html-uq")


def _attrs_opt_out(key: str, value: str) -> bool:
    if key == "class":
        return OPT_OUT_CLASS in value.split()
    if key == OPT_OUT_ATTR:
        return value.strip().lower() in OFF_VALUES
    return False
