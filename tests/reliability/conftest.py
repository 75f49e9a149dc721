"""Fixtures of the reliability suite (see kit.py)."""

from __future__ import annotations

import pytest

from tests.reliability.kit import Kit, install_fake_stylizer


@pytest.fixture
def fake_stylizer(monkeypatch):
    """Swap the network for a colour inversion for this test (no TensorFlow)."""
    from blogroto.engine import stylize

    monkeypatch.setattr(stylize, "Stylizer", stylize.Stylizer)  # restored afterwards
    return install_fake_stylizer()


@pytest.fixture
def kit(tmp_path, fake_stylizer) -> Kit:
    """A guarded site with one good post, a fake filter `tiny`, output and cache outside it."""
    return Kit(tmp_path)
