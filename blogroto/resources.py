"""Where the built-in filters and templates are, installed or in a checkout.

A wheel carries them inside the package (`blogroto/styles`, `blogroto/templates`: pyproject maps
the repository's top-level folders there); a source checkout or an editable install keeps them at
the repository's top level, beside the package.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path


def builtin_dir(name: str) -> Path:
    """The folder of built-in `name` ("styles" or "templates"): packaged first, else the checkout's."""
    packaged = Path(str(importlib.resources.files("blogroto"))) / name
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent / name
