"""Text helpers the scanner and the rewrite share: CommonMark's character classes, percent-encoding,
and a memoised finder that keeps searches linear on hostile input."""

from __future__ import annotations

import re

ASCII_PUNCT = frozenset("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")
HTML_WS = " \t\n\r\f"
C0_AND_SPACE = "".join(map(chr, range(0x21)))
BACKSLASH_ESCAPE_RE = re.compile(r"\\([!-/:-@\[-`{-~])")
MAX_PAREN_DEPTH = 32  # as cmark: deeper nesting is not a destination (and bounds the scan)


class Finder:
    """``str.find``/``re.search`` with a memo per needle.

    The scanner asks "where is the next ``-->``" from ever later positions; when the needle is
    absent (an unclosed comment repeated 100 000 times) a plain find would rescan the tail every
    time. The memo answers any later query from the last result, so the total cost is linear.
    """

    def __init__(self, text: str):
        self.text = text
        self._memo: dict[object, tuple[int, int, int]] = {}

    def find(self, needle: str, pos: int) -> int:
        hit = self._memo.get(needle)
        if hit is not None and hit[0] <= pos and (hit[1] < 0 or hit[1] >= pos):
            return hit[1]
        res = self.text.find(needle, pos)
        self._memo[needle] = (pos, res, res + len(needle))
        return res

    def search(self, regex: re.Pattern, pos: int) -> tuple[int, int] | None:
        hit = self._memo.get(regex)
        if hit is not None and hit[0] <= pos and (hit[1] < 0 or hit[1] >= pos):
            return None if hit[1] < 0 else (hit[1], hit[2])
        m = regex.search(self.text, pos)
        self._memo[regex] = (pos, m.start(), m.end()) if m else (pos, -1, -1)
        return (m.start(), m.end()) if m else None


def pct(ch: str) -> str:
    return "".join("%%%02X" % b for b in ch.encode("utf-8"))
