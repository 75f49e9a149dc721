"""Procedurally drawn artworks that blogroto owns outright and can ship under CC0.

A built-in filter needs a style source we may redistribute. A picture drawn by our own code has
no third-party rights in it, so `draw_circuit_board` renders one: a macro-photograph-like copper
circuit board (solder mask with a fibreglass weave, copper traces and buses routed at 0/45/90
degrees, pads, vias, IC footprints, silkscreen), lit so that it has texture at several scales,
which is what a style network learns from.

Deterministic: the same (size, seed) gives identical pixels. The layout is computed on a fixed
design canvas (2048 units), so every size shows the same board; only the rendering scales.
Numpy and Pillow only.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

DESIGN = 2048  # layout units across the visible board, whatever the output size
_OCC_SCALE = 0.5  # occupancy raster: 2 design units per pixel is fine enough for clearances
_OCC = int(DESIGN * _OCC_SCALE)
CLEAR = 10.0  # copper-to-copper clearance, design units

VIA_R, VIA_HOLE = 13.0, 6.0

# Direction k means angle k*45 degrees in image coordinates (y down): 0 east, 2 south, ...
_DIRS = np.array([(math.cos(k * math.pi / 4), math.sin(k * math.pi / 4)) for k in range(8)])
_DIRS[np.abs(_DIRS) < 1e-12] = 0.0


def _u(k: int) -> np.ndarray:
    return _DIRS[k % 8]


def _n(k: int) -> np.ndarray:
    """The normal of direction k: offsets across a bus are measured along it."""
    return _DIRS[(k + 2) % 8]


def _signed_turn(a: int, b: int) -> int:
    return (b - a + 4) % 8 - 4


# ----------------------------------------------------------------------------- shapes
# A shape is a tuple, in design units:
#   ("line", ((x, y), ...), width)       polyline with round caps and joints
#   ("disc", (x, y), radius)
#   ("rect", (x, y), a, b, k)            a along direction k, b across it


def _shape_bbox(shape, grow: float) -> tuple[float, float, float, float]:
    kind = shape[0]
    if kind == "line":
        pts = np.asarray(shape[1], float)
        r = shape[2] / 2 + grow
        return pts[:, 0].min() - r, pts[:, 1].min() - r, pts[:, 0].max() + r, pts[:, 1].max() + r
    if kind == "disc":
        (x, y), r = shape[1], shape[2] + grow
        return x - r, y - r, x + r, y + r
    corners = _rect_corners(shape, grow)
    return corners[:, 0].min(), corners[:, 1].min(), corners[:, 0].max(), corners[:, 1].max()


def _rect_corners(shape, grow: float) -> np.ndarray:
    _, c, a, b, k = shape
    ua, nb = _u(k) * (a / 2 + grow), _n(k) * (b / 2 + grow)
    c = np.asarray(c, float)
    return np.array([c + ua + nb, c + ua - nb, c - ua - nb, c - ua + nb])


def _raster(draw: ImageDraw.ImageDraw, shape, scale: float, off=(0.0, 0.0), grow: float = 0.0) -> None:
    kind = shape[0]
    ox, oy = off
    if kind == "line":
        w = (shape[2] + 2 * grow) * scale
        pts = [(x * scale - ox, y * scale - oy) for x, y in shape[1]]
        if len(pts) > 1:
            draw.line(pts, fill=255, width=max(1, round(w)), joint="curve")
        r = w / 2
        for x, y in (pts[0], pts[-1]):  # Pillow lines have flat ends; PCB traces have round ones
            draw.ellipse((x - r, y - r, x + r, y + r), fill=255)
    elif kind == "disc":
        (x, y), r = shape[1], (shape[2] + grow) * scale
        x, y = x * scale - ox, y * scale - oy
        draw.ellipse((x - r, y - r, x + r, y + r), fill=255)
    else:
        corners = _rect_corners(shape, grow) * scale - np.array(off)
        draw.polygon([tuple(p) for p in corners], fill=255)


# ----------------------------------------------------------------------------- silkscreen font
# A tiny stroke font on a 4x6 grid: silkscreen is plotted strokes, and our own glyphs keep the
# drawing independent of whichever fonts Pillow finds on a machine.
_BOX = [(0, 0), (4, 0), (4, 6), (0, 6), (0, 0)]
_GLYPHS: dict[str, list[list[tuple[float, float]]]] = {
    "0": [_BOX, [(4, 0), (0, 6)]],
    "1": [[(1, 1), (2, 0), (2, 6)], [(1, 6), (3, 6)]],
    "2": [[(0, 0), (4, 0), (4, 3), (0, 3), (0, 6), (4, 6)]],
    "3": [[(0, 0), (4, 0), (4, 6), (0, 6)], [(1, 3), (4, 3)]],
    "4": [[(0, 0), (0, 3), (4, 3)], [(3, 0), (3, 6)]],
    "5": [[(4, 0), (0, 0), (0, 3), (4, 3), (4, 6), (0, 6)]],
    "6": [[(4, 0), (0, 0), (0, 6), (4, 6), (4, 3), (0, 3)]],
    "7": [[(0, 0), (4, 0), (2, 6)]],
    "8": [_BOX, [(0, 3), (4, 3)]],
    "9": [[(4, 3), (0, 3), (0, 0), (4, 0), (4, 6), (0, 6)]],
    "A": [[(0, 6), (0, 2), (2, 0), (4, 2), (4, 6)], [(0, 3), (4, 3)]],
    "B": [[(0, 0), (3, 0), (4, 1), (4, 2), (3, 3), (4, 4), (4, 5), (3, 6), (0, 6), (0, 0)], [(0, 3), (3, 3)]],
    "C": [[(4, 0), (0, 0), (0, 6), (4, 6)]],
    "D": [[(0, 0), (3, 0), (4, 1), (4, 5), (3, 6), (0, 6), (0, 0)]],
    "E": [[(4, 0), (0, 0), (0, 6), (4, 6)], [(0, 3), (3, 3)]],
    "F": [[(4, 0), (0, 0), (0, 6)], [(0, 3), (3, 3)]],
    "G": [[(4, 0), (0, 0), (0, 6), (4, 6), (4, 3), (2, 3)]],
    "H": [[(0, 0), (0, 6)], [(4, 0), (4, 6)], [(0, 3), (4, 3)]],
    "I": [[(1, 0), (3, 0)], [(2, 0), (2, 6)], [(1, 6), (3, 6)]],
    "J": [[(1, 0), (4, 0)], [(3, 0), (3, 6), (0, 6), (0, 4)]],
    "K": [[(0, 0), (0, 6)], [(4, 0), (0, 3), (4, 6)]],
    "L": [[(0, 0), (0, 6), (4, 6)]],
    "M": [[(0, 6), (0, 0), (2, 3), (4, 0), (4, 6)]],
    "N": [[(0, 6), (0, 0), (4, 6), (4, 0)]],
    "O": [_BOX],
    "P": [[(0, 6), (0, 0), (4, 0), (4, 3), (0, 3)]],
    "Q": [_BOX, [(2, 4), (4, 7)]],
    "R": [[(0, 6), (0, 0), (3, 0), (4, 1), (4, 2), (3, 3), (0, 3)], [(2, 3), (4, 6)]],
    "S": [[(4, 0), (0, 0), (0, 3), (4, 3), (4, 6), (0, 6)]],
    "T": [[(0, 0), (4, 0)], [(2, 0), (2, 6)]],
    "U": [[(0, 0), (0, 6), (4, 6), (4, 0)]],
    "V": [[(0, 0), (2, 6), (4, 0)]],
    "W": [[(0, 0), (1, 6), (2, 3), (3, 6), (4, 0)]],
    "X": [[(0, 0), (4, 6)], [(4, 0), (0, 6)]],
    "Y": [[(0, 0), (2, 3), (4, 0)], [(2, 3), (2, 6)]],
    "+": [[(2, 1), (2, 5)], [(0, 3), (4, 3)]],
    "-": [[(0, 3), (4, 3)]],
    ".": [[(2, 6), (2, 6)]],
    " ": [],
}


def _text_shapes(text: str, x: float, y: float, height: float) -> list:
    """Stroke shapes for `text` with its top-left corner at (x, y)."""
    g = height / 6
    stroke = max(3.0, height / 6)
    shapes = []
    for i, ch in enumerate(text):
        cx = x + i * 6 * g
        for stroke_pts in _GLYPHS[ch]:
            shapes.append(("line", tuple((cx + px * g, y + py * g) for px, py in stroke_pts), stroke))
    return shapes


def _text_width(text: str, height: float) -> float:
    return (len(text) * 6 - 2) * height / 6


# ----------------------------------------------------------------------------- layout


class _Layout:
    """Places copper, holes and silkscreen on the design canvas without overlaps.

    An occupancy raster records everything placed so far, grown by half the clearance; a new
    shape fits when its own grown raster does not touch it.
    """

    LAYERS = ("copper", "gold", "holes", "silk", "opening")

    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        self.occ = Image.new("L", (_OCC, _OCC))
        self._occ_draw = ImageDraw.Draw(self.occ)
        self.layers: dict[str, list] = {name: [] for name in self.LAYERS}
        self.labels: list[tuple[str, tuple[float, float, float, float]]] = []

    # -- occupancy
    def fits(self, shapes, grow: float = CLEAR / 2) -> bool:
        boxes = np.array([_shape_bbox(s, grow) for s in shapes]) * _OCC_SCALE
        x0, y0 = math.floor(boxes[:, 0].min()) - 1, math.floor(boxes[:, 1].min()) - 1
        x1, y1 = math.ceil(boxes[:, 2].max()) + 1, math.ceil(boxes[:, 3].max()) + 1
        if x1 <= 0 or y1 <= 0 or x0 >= _OCC or y0 >= _OCC:
            return True  # wholly off the board: nothing there to collide with
        scratch = Image.new("L", (x1 - x0, y1 - y0))
        draw = ImageDraw.Draw(scratch)
        for s in shapes:
            _raster(draw, s, _OCC_SCALE, (x0, y0), grow)
        taken = np.asarray(self.occ.crop((x0, y0, x1, y1)))
        return not np.any(np.asarray(scratch) & taken)

    def add(self, shapes, layer: str, block: bool = True) -> None:
        self.layers[layer].extend(shapes)
        if block:
            for s in shapes:
                _raster(self._occ_draw, s, _OCC_SCALE, grow=CLEAR / 2)

    def free_point(self, margin: float = 120.0, tries: int = 40, radius: float = 30.0):
        for _ in range(tries):
            p = self.rng.uniform(margin, DESIGN - margin, 2)
            if self.fits([("disc", tuple(p), radius)]):
                return p
        return None

    # -- primitives
    def via(self, p, r: float = VIA_R, hole: float = VIA_HOLE, check: bool = True) -> bool:
        p = tuple(float(v) for v in p)
        if check and not self.fits([("disc", p, r)]):
            return False
        self.add([("disc", p, r)], "copper")
        self.add([("disc", p, hole)], "holes", block=False)
        return True

    def th_pad(self, p, r: float, hole: float, square: bool = False, k: int = 0) -> None:
        p = tuple(float(v) for v in p)
        pad = ("rect", p, 2 * r, 2 * r, k) if square else ("disc", p, r)
        self.add([pad], "copper")
        self.add([pad], "gold", block=False)
        self.add([pad[:2] + (r + 5,) if not square else ("rect", p, 2 * r + 10, 2 * r + 10, k)], "opening", False)
        self.add([("disc", p, hole)], "holes", block=False)

    def smd_pad(self, c, a: float, b: float, k: int) -> None:
        pad = ("rect", tuple(float(v) for v in c), a, b, k)
        self.add([pad], "copper")
        self.add([pad], "gold", block=False)
        self.add([("rect", pad[1], a + 10, b + 10, k)], "opening", block=False)

    def label(self, text: str, anchor, height: float = 28.0, tries=None) -> bool:
        """Silkscreen text near `anchor` (a bbox), on the first free side (or at a free spot of `tries`)."""
        w = _text_width(text, height)
        x0, y0, x1, y1 = anchor
        gap = 16.0
        spots = tries or [
            (x0, y0 - gap - height), (x0, y1 + gap), (x1 + gap, y0), (x0 - gap - w, y0),
            ((x0 + x1 - w) / 2, y0 - gap - height), ((x0 + x1 - w) / 2, y1 + gap),
        ]
        for x, y in spots:
            if x < 20 or y < 20 or x + w > DESIGN - 20 or y + height > DESIGN - 20:
                continue
            shapes = _text_shapes(text, x, y, height)
            if self.fits([("rect", (x + w / 2, y + height / 2), w + 8, height + 8, 0)]):
                self.add(shapes, "silk")
                return True
        return False

    # -- routing
    def _vertex(self, p, ka, kb, d: float) -> np.ndarray:
        """Where a trace at offset d turns when its bus turns from ka to kb (mitred)."""
        if ka is None or ka == kb:
            return p + d * _n(kb)
        na, nb = _n(ka), _n(kb)
        return p + d * (na + nb) / (1.0 + na @ nb)

    def _turns(self, k: int, k0: int, seg: int, prefer: int | None) -> list[int]:
        rng = self.rng
        if seg == 0:
            return [k]
        options = [k, k + 1, k - 1]
        if prefer is not None and seg == 1:
            options = [prefer, k]
        elif (k - k0) % 2:  # running diagonally: real routers soon return to 0/90 degrees
            back = [k + 1, k - 1]
            back.sort(key=lambda c: abs(_signed_turn(k0, c)))
            options = [back[0], k, back[1]] if rng.random() < 0.7 else [k, back[0], back[1]]
        else:
            turns = [k + 1, k - 1]
            if rng.random() < 0.5:
                turns.reverse()
            options = [k] + turns if rng.random() < 0.55 else turns + [k]
        # no U-turns: a bus stays within 90 degrees of where it set off, so it cannot cross itself
        return [c % 8 for c in options if abs(_signed_turn(k0, c)) <= 2]

    def route(self, start, k0: int, offsets, width: float, skip: float = 0.0, *, max_segs: int = 10,
              max_len: float = 420.0, end: str = "via", split: float = 0.18, prefer=None,
              depth: int = 0) -> float:
        """Random-walk a bus of parallel traces from `start` heading k0; returns its length."""
        rng = self.rng
        offsets = sorted(float(o) for o in offsets)
        span = max(abs(o) for o in offsets)
        # at a 45-degree joint the inner trace loses ~0.83*offset; keep every segment positive
        min_len = 50.0 + 0.9 * span
        pts = [np.asarray(start, float)]
        dirs: list[int] = []
        k = k0 % 8
        total = 0.0
        for seg in range(max_segs):
            accepted = None
            for nk in self._turns(k, k0, seg, prefer):
                lo = max(min_len, skip + 30.0) if seg == 0 else min_len
                L = rng.uniform(lo, max(lo, max_len))
                for length in (L, (L + lo) / 2, lo):
                    end_pt = pts[-1] + length * _u(nk)
                    prev = dirs[-1] if dirs else None
                    shapes = []
                    for d in offsets:
                        a = self._vertex(pts[-1], prev, nk, d)
                        if seg == 0 and skip:
                            a = a + skip * _u(nk)
                        shapes.append(("line", (tuple(a), tuple(end_pt + d * _n(nk))), width))
                    if self.fits(shapes):
                        accepted = (nk, end_pt, length)
                        break
                if accepted:
                    break
            if not accepted:
                break
            k, end_pt, length = accepted
            pts.append(end_pt)
            dirs.append(k)
            total += length
            if not (-80 < end_pt[0] < DESIGN + 80 and -80 < end_pt[1] < DESIGN + 80):
                end = "edge"
                break
            if (split and depth < 2 and len(offsets) >= 4 and seg >= 1 and seg < max_segs - 2
                    and rng.random() < split):
                self._commit_bus(pts, dirs, offsets, width, None)
                cut = int(rng.integers(2, len(offsets) - 1))
                groups = [offsets[:cut], offsets[cut:]]
                # the half on the +normal side bends toward +normal, so the halves part ways
                bends = [(k - 1) % 8, (k + 1) % 8]
                if rng.random() < 0.5:
                    bends[int(rng.integers(2))] = k
                for grp, bend in zip(groups, bends):
                    c = float(np.mean(grp))
                    total += self.route(end_pt + c * _n(k), k, [g - c for g in grp], width,
                                        skip=width + CLEAR, max_segs=max_segs - seg - 1, max_len=max_len,
                                        end=end, split=split, prefer=bend, depth=depth + 1)
                return total
        if len(pts) > 1:
            self._commit_bus(pts, dirs, offsets, width, end)
        return total

    def _commit_bus(self, pts, dirs, offsets, width, end) -> None:
        lines = []
        for d in offsets:
            poly = [self._vertex(pts[0], None, dirs[0], d)]
            for i in range(1, len(pts) - 1):
                poly.append(self._vertex(pts[i], dirs[i - 1], dirs[i], d))
            poly.append(pts[-1] + d * _n(dirs[-1]))
            lines.append(poly)
        if end == "via":
            step = 2 * VIA_R + 8
            pitch = min((b - a for a, b in zip(offsets, offsets[1:])), default=1e9)
            stagger = pitch < 2 * VIA_R + CLEAR
            for i, poly in enumerate(lines):
                u = _u(dirs[-1])
                ext = step * (i % 2) if stagger else 0.0
                for e in ((ext, 0.0) if ext else (0.0,)):
                    p = poly[-1] + e * u
                    if self.fits([("disc", tuple(p), VIA_R)]):
                        if e:
                            poly.append(p)
                        self.via(p, check=False)
                        break
        shapes = [("line", tuple(tuple(float(v) for v in p) for p in poly), width) for poly in lines]
        self.add(shapes, "copper")

    # -- components
    def _place(self, half_a: float, half_b: float, k: int, margin: float = 160.0, tries: int = 60):
        for _ in range(tries):
            c = self.rng.uniform(margin, DESIGN - margin, 2)
            if self.fits([("rect", tuple(c), 2 * half_a, 2 * half_b, k)], grow=24.0):
                return c
        return None

    @staticmethod
    def _port(points, k: int):
        """A bus start for traces leaving `points` in direction k."""
        pts = np.asarray(points, float)
        centre = pts.mean(axis=0)
        return centre, [float((p - centre) @ _n(k)) for p in pts]

    def qfp(self, n: int, k: int) -> list:
        pitch, pa, pb = 26.0, 44.0, 13.0
        half = (n - 1) * pitch / 2
        R = half + pitch + pa / 2 + 6
        c = self._place(R + pa / 2 + 30, R + pa / 2 + 30, k)
        if c is None:
            return []
        ports = []
        for side in range(4):
            ks = (k + 2 * side) % 8
            row = [c + R * _u(ks) + (-half + j * pitch) * _n(ks) for j in range(n)]
            for p in row:
                self.smd_pad(p, pa, pb, ks)
            j = 0
            while j < n:  # route a few runs of neighbouring pins, as a bus each
                run = int(self.rng.integers(2, max(3, n // 2 + 1)))
                if self.rng.random() < 0.75:
                    ports.append((row[j:j + run], ks, 12.0, pa / 2 + 6 + CLEAR + 4))
                j += run + int(self.rng.integers(0, 3))
        T = 2 * (R - pa / 2 - 26)
        self.add([("rect", tuple(c), T, T, k)], "copper")
        m = 3 if T < 200 else 4
        for i in range(m):
            for j in range(m):
                p = c + ((i - (m - 1) / 2) * _u(k) + (j - (m - 1) / 2) * _n(k)) * (T / (m + 0.6))
                self.add([("disc", tuple(p), 7.0)], "holes", block=False)
        # silkscreen: corner brackets and a pin-1 dot, as on real boards
        s = R + pa / 2 + 16
        L = 0.28 * s
        for sx, sy in ((1, 1), (1, -1), (-1, -1), (-1, 1)):
            corner = c + s * (sx * _u(k) + sy * _n(k))
            self.add([("line", (tuple(corner - sx * L * _u(k)), tuple(corner), tuple(corner - sy * L * _n(k))), 6.0)],
                     "silk")
        self.add([("disc", tuple(c + (s + 14) * (-_u(k) - _n(k))), 9.0)], "silk")
        self.labels.append((f"U{int(self.rng.integers(1, 20))}", (c[0] - s, c[1] - s, c[0] + s, c[1] + s)))
        return ports

    def soic(self, n: int, k: int) -> list:
        pitch, pa, pb = 40.0, 62.0, 22.0
        half = (n - 1) * pitch / 2
        R = 86.0 + pa / 2
        c = self._place(R + pa / 2 + 20, half + pb + 30, k)
        if c is None:
            return []
        ports = []
        for side in (0, 4):
            ks = (k + side) % 8
            row = [c + R * _u(ks) + (-half + j * pitch) * _n(ks) for j in range(n)]
            for p in row:
                self.smd_pad(p, pa, pb, ks)
            a = int(self.rng.integers(0, max(1, n // 3)))
            ports.append((row[a:], ks, 14.0, pa / 2 + 7 + CLEAR + 4))
        hb = half + pb / 2 + 16
        body = [c + 60 * _u(k) + hb * _n(k), c - 60 * _u(k) + hb * _n(k)]
        body2 = [c + 60 * _u(k) - hb * _n(k), c - 60 * _u(k) - hb * _n(k)]
        self.add([("line", tuple(map(tuple, body)), 6.0), ("line", tuple(map(tuple, body2)), 6.0)], "silk")
        self.add([("disc", tuple(c - 40 * _u(k) - (hb - 26) * _n(k)), 8.0)], "silk")
        e = R + pa / 2
        self.labels.append((f"U{int(self.rng.integers(1, 20))}", (c[0] - e, c[1] - e, c[0] + e, c[1] + e)))
        return ports

    def header(self, n: int, rows: int, k: int) -> list:
        pitch, r, hole = 54.0, 22.0, 11.0
        half = (n - 1) * pitch / 2
        c = self._place(half + r + 24, (rows - 1) * pitch / 2 + r + 24, k)
        if c is None:
            return []
        ports = []
        for row in range(rows):
            off = (row - (rows - 1) / 2) * pitch
            pts = [c + (-half + j * pitch) * _u(k) + off * _n(k) for j in range(n)]
            for j, p in enumerate(pts):
                self.th_pad(p, r, hole, square=(j == 0 and row == 0), k=k)
            side = (k + 2) % 8 if (rows == 2 and row == 1) or (rows == 1 and self.rng.random() < 0.5) else (k - 2) % 8
            ports.append((pts, side, 16.0, r + 8 + CLEAR + 4))
        hb = (rows - 1) * pitch / 2 + r + 12
        ha = half + r + 12
        box = [c + ha * _u(k) + hb * _n(k), c - ha * _u(k) + hb * _n(k), c - ha * _u(k) - hb * _n(k),
               c + ha * _u(k) - hb * _n(k), c + ha * _u(k) + hb * _n(k)]
        self.add([("line", tuple(map(tuple, box)), 6.0)], "silk")
        self.labels.append((f"J{int(self.rng.integers(1, 9))}", (c[0] - ha, c[1] - ha, c[0] + ha, c[1] + ha)))
        return ports

    def passive(self, k: int, big: bool = False) -> list:
        pa, pb, gap = (44.0, 56.0, 60.0) if big else (34.0, 40.0, 40.0)
        e = gap / 2 + pa
        c = self._place(e + 14, pb / 2 + 14, k, margin=60.0, tries=30)
        if c is None:
            return []
        ports = []
        for sgn in (1, -1):
            p = c + sgn * (gap / 2 + pa / 2) * _u(k)
            self.smd_pad(p, pa, pb, k)
            if self.rng.random() < 0.85:
                ports.append(([p], k if sgn > 0 else (k + 4) % 8, 12.0 if not big else 20.0,
                              pa / 2 + 10 + CLEAR + 4))
        for sgn in (1, -1):  # silkscreen body lines alongside the part
            q = c + sgn * (pb / 2 + 14) * _n(k)
            self.add([("line", (tuple(q - gap / 2 * _u(k)), tuple(q + gap / 2 * _u(k))), 5.0)], "silk", block=False)
        name = ("C" if self.rng.random() < 0.5 else "R") + str(int(self.rng.integers(1, 60)))
        self.labels.append((name, (c[0] - e, c[1] - e, c[0] + e, c[1] + e)))
        return ports

    def bga(self, m: int) -> None:
        pitch, r = 44.0, 11.0
        half = (m - 1) * pitch / 2
        c = self._place(half + pitch, half + pitch, 0)
        if c is None:
            return
        for i in range(m):
            for j in range(m):
                p = c + np.array([(i - (m - 1) / 2) * pitch, (j - (m - 1) / 2) * pitch])
                # dog-bone fan-out: each ball pad has a short 45-degree neck to a via between pads,
                # pointing away from the package centre as a real breakout does
                sx = 1 if i >= (m - 1) / 2 else -1
                sy = 1 if j >= (m - 1) / 2 else -1
                q = p + np.array([sx, sy]) * pitch / 2
                self.add([("line", (tuple(p), tuple(q)), 8.0), ("disc", tuple(p), r)], "copper")
                self.add([("disc", tuple(p), r)], "gold", block=False)
                self.add([("disc", tuple(q), 10.0)], "copper")
                self.add([("disc", tuple(q), 4.5)], "holes", block=False)
        s = half + pitch
        box = [(c[0] - s + 24, c[1] - s), (c[0] + s, c[1] - s), (c[0] + s, c[1] + s), (c[0] - s, c[1] + s),
               (c[0] - s, c[1] - s + 24), (c[0] - s + 24, c[1] - s)]
        self.add([("line", tuple(box), 6.0)], "silk")
        self.labels.append((f"U{int(self.rng.integers(1, 20))}", (c[0] - s, c[1] - s, c[0] + s, c[1] + s)))

    def mounting_hole(self) -> None:
        r, hole = 70.0, 44.0
        c = self._place(r + 40, r + 40, 0, margin=140.0)
        if c is None:
            return
        self.th_pad(c, r, hole)
        for i in range(8):
            a = i * math.pi / 4
            self.via(c + (r + 26) * np.array([math.cos(a), math.sin(a)]), r=9.0, hole=4.0, check=False)
        ring = [tuple(c + (r + 52) * np.array([math.cos(t), math.sin(t)])) for t in np.linspace(0, 2 * math.pi, 49)]
        self.add([("line", tuple(ring), 5.0)], "silk")

    def fiducial(self) -> None:
        c = self._place(40, 40, 0, margin=60.0, tries=20)
        if c is not None:
            self.add([("disc", tuple(c), 16.0)], "copper")
            self.add([("disc", tuple(c), 16.0)], "gold", block=False)
            self.add([("disc", tuple(c), 38.0)], "opening")


def _plan(rng: np.random.Generator) -> _Layout:
    """Place parts, fan them out, then fill the board with buses, traces and vias."""
    lay = _Layout(rng)
    ports = []
    for _ in range(2):
        ports += lay.qfp(int(rng.integers(9, 14)), int(rng.choice([0, 0, 1])))
    lay.bga(int(rng.integers(5, 8)))
    for _ in range(3):
        ports += lay.soic(int(rng.integers(4, 9)), int(rng.choice([0, 2])))
    for _ in range(2):
        ports += lay.header(int(rng.integers(5, 11)), int(rng.integers(1, 3)), int(rng.choice([0, 2])))
    for _ in range(2):
        lay.mounting_hole()
    for i in range(16):
        ports += lay.passive(int(rng.choice([0, 2, 0, 2, 1, 3])), big=i < 4)
    for _ in range(3):
        lay.fiducial()

    # the board's name goes down before routing, as a designer reserves room for it
    for text, height in (("BLOGROTO", 40.0), ("REV B", 30.0)):
        spots = [tuple(rng.uniform(60, DESIGN - 60 - _text_width(text, height), 2)) for _ in range(80)]
        lay.label(text, (0, 0, 0, 0), height=height, tries=spots)

    order = rng.permutation(len(ports))
    for i in order:
        pts, k, width, skip = ports[i]
        start, offs = lay._port(pts, k)
        lay.route(start, k, offs, width, skip, max_segs=int(rng.integers(4, 10)))

    # buses that enter from the board edges: the photo is a crop of a bigger board
    for _ in range(14):
        side = int(rng.integers(4))
        k = [0, 2, 4, 6][side]  # heading inward from the left, top, right, bottom edge
        t = rng.uniform(100, DESIGN - 100)
        start = [(-60, t), (t, -60), (DESIGN + 60, t), (t, DESIGN + 60)][side]
        n = int(rng.choice([1, 1, 2, 3, 4, 6, 8]))
        width = float(rng.choice([12.0, 12.0, 16.0, 28.0 if n == 1 else 16.0, 40.0 if n == 1 else 12.0]))
        pitch = width + 14.0 + (4.0 if width > 12 else 0.0)
        offs = [(j - (n - 1) / 2) * pitch for j in range(n)]
        lay.route(start, k, offs, width, max_segs=int(rng.integers(4, 12)), max_len=520.0)

    # short signal traces between vias fill what is left, at the scale of the pad texture
    for _ in range(90):
        p = lay.free_point(radius=VIA_R + 30)
        if p is None:
            continue
        k = int(rng.integers(8))
        width = float(rng.choice([10.0, 12.0, 12.0, 16.0]))
        lay.via(p)
        lay.route(p, k, [0.0], width, skip=VIA_R + width / 2 + CLEAR + 4, max_segs=int(rng.integers(2, 6)),
                  max_len=260.0)

    for text, box in lay.labels:
        lay.label(text, box)
    for text in ("GND", "+5V", "3V3", "SDA", "SCL", "TP7", "CLK"):
        spots = [tuple(rng.uniform(40, DESIGN - 120, 2)) for _ in range(60)]
        lay.label(text, (0, 0, 0, 0), height=26.0, tries=spots)
    for _ in range(60):  # lone vias: the finest copper texture
        p = lay.free_point(margin=30.0, radius=VIA_R + 4)
        if p is not None:
            lay.via(p)
    return lay


# ----------------------------------------------------------------------------- rendering


def _blur(a: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of a [0, 1] layer via Pillow on 8 bits.

    Pillow cannot blur float images; for masks 8 bits are plenty (the ramps span many levels)
    and it is ~50x faster than a numpy blur at these sizes.
    """
    im = Image.fromarray(np.clip(a * 255.0 + 0.5, 0, 255).astype(np.uint8))
    if sigma >= 0.3:
        im = im.filter(ImageFilter.GaussianBlur(sigma))
    return np.asarray(im, dtype=np.float32) * np.float32(1 / 255)


def _noise(rng: np.random.Generator, size: int, cells: int, octaves: int = 4, falloff: float = 0.55,
           aspect=(1, 1)) -> np.ndarray:
    """Fractal value noise in [0, 1]: random grids upsampled bicubically, summed over octaves."""
    out = np.zeros((size, size), np.float32)
    amp, total = 1.0, 0.0
    for o in range(octaves):
        n = cells * 2 ** o
        grid = rng.random((max(2, n // aspect[0]), max(2, n // aspect[1]))).astype(np.float32)
        out += amp * np.asarray(Image.fromarray(grid).resize((size, size), Image.BICUBIC))
        total += amp
        amp *= falloff
    out /= total
    lo, hi = np.percentile(out, [1, 99])
    return np.clip((out - lo) / max(hi - lo, 1e-6), 0, 1)


def _layer(shapes, S: int, scale: float, grow: float = 0.0) -> np.ndarray:
    im = Image.new("L", (S, S))
    draw = ImageDraw.Draw(im)
    for s in shapes:
        _raster(draw, s, scale, grow=grow)
    return np.asarray(im, dtype=np.float32) / 255.0


def _weave(rng: np.random.Generator, S: int, pitch: float) -> np.ndarray:
    """Fibreglass basket weave: bundles alternately over/under, with fibre striations."""
    yy, xx = np.mgrid[0:S, 0:S].astype(np.float32)
    wob = (_noise(rng, S, 5, octaves=2) - 0.5) * pitch * 0.6  # glass cloth is never quite straight
    x, y = (xx + wob) / pitch, (yy - wob) / pitch
    i, j = np.floor(x), np.floor(y)
    fx, fy = x - i, y - j
    horiz = ((i + j) % 2) == 0
    prof = np.where(horiz, np.sin(np.pi * fy), np.sin(np.pi * fx)) ** 0.7
    fib_h = _noise(rng, S, max(4, S // 4), octaves=1, aspect=(1, 16))
    fib_v = _noise(rng, S, max(4, S // 4), octaves=1, aspect=(16, 1))
    return prof * (0.75 + 0.25 * np.where(horiz, fib_v, fib_h))


def _rgb(*v: float) -> np.ndarray:
    return np.array(v, np.float32)


def _mix(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    return a + (b - a) * t[..., None]


def _render(lay: _Layout, size: int, rng: np.random.Generator) -> Image.Image:
    S = 2 * size  # drawn at 2x and downsampled: the cheapest way to antialias Pillow shapes
    k = S / DESIGN
    f32 = np.float32
    cu = _layer(lay.layers["copper"], S, k)
    gold = _layer(lay.layers["gold"], S, k)
    holes = _layer(lay.layers["holes"], S, k)
    silk = _layer(lay.layers["silk"], S, k)
    opening = _layer(lay.layers["opening"], S, k)
    keepout = _layer(lay.layers["copper"] + lay.layers["opening"] + lay.layers["holes"], S, k, grow=20.0)

    # copper pour (under the mask) over part of the board: large-scale light/dark structure
    region = _noise(np.random.default_rng(rng.integers(1 << 32)), S, 3, octaves=2)
    pour = ((region > 0.56) & (keepout < 0.5)).astype(f32)

    px = max(k, 0.25)  # pixels per design unit, floored so tiny renders stay sane
    weave = _weave(rng, S, 22 * px)
    broad = _noise(rng, S, 3, octaves=3)  # lighting / tint variation across the frame
    mid = _noise(rng, S, 24, octaves=3)  # copper surface waviness: glints that wander along traces
    fine = rng.standard_normal((S, S), dtype=f32)
    grain = (_blur(0.5 + fine * f32(0.15), 0.7 * px) - f32(0.5)) * f32(40.0)  # brushed/etched metal

    # height field -> normals -> lighting, so edges catch highlights and cast soft shade
    h = _blur(cu, 2.0 * px) + f32(0.45) * _blur(pour, 5 * px) + f32(0.25) * _blur(silk, 1.5 * px)
    h -= f32(1.3) * _blur(holes, 2.5 * px)
    h += cu * (mid - f32(0.5)) * f32(0.5) + f32(0.05) * weave + f32(0.002) * grain
    gy, gx = np.gradient(h * f32(6.0 / px))
    inv = f32(1.0) / np.sqrt(gx * gx + gy * gy + f32(1.0))
    lx, ly, lz = (v / math.sqrt(0.5 ** 2 + 0.6 ** 2 + 0.62 ** 2) for v in (-0.5, -0.6, 0.62))
    hn = math.sqrt(lx * lx + ly * ly + (lz + 1) ** 2)
    hx, hy, hz = lx / hn, ly / hn, (lz + 1) / hn
    diff = np.clip((-gx * lx - gy * ly + lz) * inv, 0, 1)
    nh = np.clip((-gx * hx - gy * hy + hz) * inv, 0, 1)
    spec_sharp = nh ** 60
    spec_soft = nh ** 10
    del gx, gy, inv, h

    # solder mask: deep teal-green, weave showing through, glossy
    mask = _mix(_rgb(5, 34, 36), _rgb(17, 72, 64), np.clip(0.25 + 0.55 * weave * (0.6 + 0.4 * broad), 0, 1))
    mask_pour = _mix(_rgb(18, 78, 66), _rgb(36, 112, 90), broad * f32(0.7) + f32(0.15) * weave)
    base = _mix(mask, mask_pour, pour)
    fr4 = _mix(_rgb(70, 74, 38), _rgb(104, 98, 52), weave)
    base = _mix(base, fr4, np.clip(opening - cu, 0, 1))
    base = base * (f32(0.55) + f32(0.7) * diff)[..., None]
    base += (spec_sharp * f32(150) + spec_soft * f32(10))[..., None] * _rgb(0.85, 1.0, 0.95)

    # copper: orange copper to warm gold, with tarnish patches and etched grain
    t = _noise(rng, S, 10, octaves=4)
    metal = _mix(_rgb(170, 84, 42), _rgb(240, 150, 78), np.clip(0.2 + 0.8 * t, 0, 1))
    metal = _mix(metal, _rgb(240, 194, 100), np.clip(gold * f32(0.7) + (broad - f32(0.6)) * f32(0.8), 0, 1))
    metal = _mix(metal, _rgb(112, 54, 32), np.clip((mid - f32(0.75)) * f32(3.0), 0, 0.6) * (1 - gold))
    lit = metal * (f32(0.4) + f32(0.8) * diff + f32(0.15) * (t - f32(0.5)))[..., None] + grain[..., None]
    lit += (spec_sharp * f32(255) + spec_soft * f32(55))[..., None] * _rgb(1.0, 0.9, 0.7)
    img = _mix(base, lit, cu)
    del base, lit, metal

    paint = _rgb(232, 234, 222) * (f32(0.8) + f32(0.25) * diff)[..., None] + grain[..., None] * f32(1.5)
    img = _mix(img, paint, silk * (1 - cu))

    # drilled holes: dark barrels with a sliver of plating at the rim
    barrel = _blur(holes, 1.6 * px)
    img = _mix(img, _mix(_rgb(92, 56, 34), _rgb(10, 9, 8), barrel * barrel), holes)

    # macro lens: light falls off away from the lamp (top left); a little sensor noise
    yy, xx = np.mgrid[0:S, 0:S].astype(f32) / f32(S)
    vign = f32(1.12) - f32(0.38) * np.sqrt((xx - f32(0.35)) ** 2 + (yy - f32(0.3)) ** 2)
    img = img * vign[..., None] + fine[..., None] * f32(1.8)
    out = Image.fromarray(np.clip(img + 0.5, 0, 255).astype(np.uint8), "RGB")
    return out.resize((size, size), Image.LANCZOS)


def draw_circuit_board(size: int = 1024, seed: int = 0) -> Image.Image:
    """A macro-photo-like copper circuit board, `size` x `size` RGB; same seed, same pixels."""
    if size < 16:
        raise ValueError(f"size must be at least 16 pixels, got {size}")
    # separate streams: the layout must not depend on the output size, the textures may
    layout = _plan(np.random.default_rng([seed, 1]))
    return _render(layout, int(size), np.random.default_rng([seed, 2]))
