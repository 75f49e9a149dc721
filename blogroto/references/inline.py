"""Inline Markdown for the reference scanner: images `![alt](dest "title"){: ial}`, reference-style
uses `![alt][label]`, link definitions, code spans, autolinks and Liquid, with CommonMark's bracket
algorithm; every search bounded by the paragraph (or a budget), so hostile text stays linear."""

from __future__ import annotations

import bisect

from blogroto.references.model import (
    MD_INLINE,
    OPT_OUT_CLASS,
)
from blogroto.references.syntax import (
    ANGLE_RUN_RE,
    BACKTICKS_RE,
    BARE_RUN_RE,
    IAL_RE,
    IAL_TOKEN_RE,
    LABEL_RUN_RE,
    MAX_LABEL,
    MIN_PAREN_DEPTH,
    SPECIAL_RE,
    TITLE_STOP,
    RefEvent,
    UseEvent,
    attrs_opt_out,
    md_text,
    normalize_label,
)
from blogroto.references.text import (
    ASCII_PUNCT,
    MAX_PAREN_DEPTH,
)


class InlineScanner:
    """The inline half of `Scanner` (a mixin: the state lives in Scanner.__init__)."""

    # ---------------------------------------------------------------- inline
    def _scan_inline(self, ps: int, pe: int) -> int | None:
        text = self.text
        runs: dict[int, list[int]] = {}
        for m in BACKTICKS_RE.finditer(text, ps, pe):
            runs.setdefault(m.end() - m.start(), []).append(m.start())
        self._tag_fail = set()
        brackets: list[list] = []  # [position, is_image, len(events) at push]
        floor = 0  # link openers below this stack index are inactive (links hold no links)
        pos = ps
        while True:
            m = SPECIAL_RE.search(text, pos, pe)
            if m is None:
                return None
            pos = m.start()
            c = text[pos]
            if c == "\\":
                pos += 2 if pos + 1 < pe and text[pos + 1] in ASCII_PUNCT else 1
            elif c == "`":
                e = BACKTICKS_RE.match(text, pos, pe).end()
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
                        self.events.append(RefEvent(
                            MD_INLINE, ds, de, base, (op[0] + 2, pos),
                            md_text(title) if title is not None else None, opt, element=(op[0], end)))
                    else:
                        floor = len(brackets)
                    pos = end
                    continue
                if not op[1]:
                    pos += 1
                    continue
                pos = self._reference_image(op, pos, pe)

    def _reference_image(self, op: list, close: int, pe: int) -> int:
        """Record the reference image whose "![" is at op[0] and whose "]" is at close
        (full [label], collapsed [] or shortcut; resolved at the end); returns where it ends."""
        text, after = self.text, close + 1
        lab = self._label(after, pe) if after < pe and text[after] == "[" else None
        if lab is not None and lab[1] > lab[0]:
            label_s, label_e, end = lab
        else:  # collapsed "[]" or shortcut: the description is the label
            label_s, label_e = op[0] + 2, close
            end = lab[2] if lab is not None else after
        label = None
        if label_e - label_s <= MAX_LABEL:  # a longer label cannot match a definition
            label = normalize_label(text[label_s:label_e])
        opt, end = self._ial(end, pe)
        self.events.append(UseEvent(label, (op[0] + 2, close), opt, op[2], op[0], end))
        return end

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
        pe = min(pe, p + MAX_LABEL + 2)
        while q < pe:
            m = LABEL_RUN_RE.match(text, q, pe)
            if m is not None:
                q = m.end()
                if q >= pe:
                    break
            c = text[q]
            if c == "\\":
                q += 2
            elif c == "]":
                return (p + 1, q, q + 1) if q - p - 1 <= MAX_LABEL else None
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
            m = ANGLE_RUN_RE.match(text, q, pe)
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
        limit = MAX_PAREN_DEPTH if self._dest_budget > 0 else MIN_PAREN_DEPTH
        while q < pe:
            self._dest_budget -= 1
            m = BARE_RUN_RE.match(text, q, pe)
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
        stop = TITLE_STOP[opener]
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
        m = IAL_RE.match(self.text, pos, pe)
        if m is None:
            return False, pos
        opt = False
        for t in IAL_TOKEN_RE.finditer(m.group(1)):
            if t.group("cls") is not None:
                opt = opt or t.group("cls") == OPT_OUT_CLASS
                continue
            value = next(v for v in (t.group("dq"), t.group("sq"), t.group("bare"), "")
                         if v is not None)
            opt = opt or attrs_opt_out(t.group("key").lower(), value)
        return opt, m.end()

