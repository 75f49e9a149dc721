"""The procedurally drawn copper circuit board: deterministic, right size, and really a board."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import blogroto
from tools.circuit_board import draw_circuit_board

SHIPPED = Path(blogroto.__file__).resolve().parent / "data" / "artworks" / "copper-circuit.jpg"


@pytest.fixture(scope="module")
def board() -> Image.Image:
    return draw_circuit_board(192, seed=0)


def _hsv(img: Image.Image) -> np.ndarray:
    return np.asarray(img.convert("HSV"), dtype=np.float32)


def test_same_seed_gives_identical_pixels(board):
    again = draw_circuit_board(192, seed=0)
    assert again.tobytes() == board.tobytes()


def test_other_seed_gives_another_board(board):
    other = np.asarray(draw_circuit_board(192, seed=1), dtype=np.float32)
    assert np.abs(other - np.asarray(board, dtype=np.float32)).mean() > 10


@pytest.mark.parametrize("size", [64, 101])
def test_size_and_mode(size):
    img = draw_circuit_board(size, seed=5)
    assert img.mode == "RGB"
    assert img.size == (size, size)


def test_default_size_is_1024():
    import inspect

    assert inspect.signature(draw_circuit_board).parameters["size"].default == 1024


def test_rejects_tiny_size():
    with pytest.raises(ValueError):
        draw_circuit_board(8)


def test_not_flat(board):
    arr = np.asarray(board, dtype=np.float32)
    assert arr.reshape(-1, 3).std(axis=0).min() > 15
    # texture at fine scale too: neighbouring pixels differ (a flat or blurred image would not)
    assert np.abs(np.diff(arr, axis=1)).mean() > 6


def test_copper_traces_and_teal_mask_are_both_there(board):
    hsv = _hsv(board)
    h, s, v = hsv[..., 0] * 360 / 255, hsv[..., 1] / 255, hsv[..., 2] / 255
    copper = (h >= 10) & (h <= 50) & (s > 0.4) & (v > 0.45)
    mask = (h >= 120) & (h <= 200) & (v < 0.6)
    assert copper.mean() > 0.08, f"copper covers only {copper.mean():.1%}"
    assert mask.mean() > 0.35, f"solder mask covers only {mask.mean():.1%}"
    # some near-white silkscreen and some near-black drilled holes
    assert (v > 0.8).mean() > 0.001 or ((s < 0.2) & (v > 0.7)).mean() > 0.001
    assert (v < 0.1).mean() > 0.0005


@pytest.mark.slow
def test_shipped_artwork_is_what_the_code_draws():
    # the CC0 claim rests on this file being our own drawing: regenerate and compare
    shipped = Image.open(SHIPPED)
    shipped.load()
    assert shipped.size == (1024, 1024) and shipped.mode == "RGB"
    # compare at 1/4 size: that averages away JPEG's noise but keeps every trace and pad
    small = (256, 256)
    fresh = np.asarray(draw_circuit_board(1024, seed=0).resize(small, Image.BOX), dtype=np.float32)
    ours = np.asarray(shipped.resize(small, Image.BOX), dtype=np.float32)
    assert np.abs(fresh - ours).mean() < 3.0  # another seed scores ~40
