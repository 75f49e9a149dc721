"""What an import produces (`Imported`: weights in a blogroto network layout) and the checks every
reader shares."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from blogroto.errors import FilterError

FORMATS = ("fast-style-transfer", "pytorch", "onnx")
MAX_BYTES = 1 << 30
EVALUATE_LIMIT = 16  # elements of any tensor the constant evaluator computes (upsampling scales, shapes)
# what the original network is, in words (filter.yaml's training.original, the catalog)
ORIGINALS = {
    "fast-style-transfer": "lengstrom/fast-style-transfer (TensorFlow 1, src/transform.py)",
    "pytorch": "pytorch/examples fast_neural_style (neural_style/transformer_net.py)",
    "onnx": "pytorch/examples fast_neural_style exported to ONNX",
}


@dataclass
class Imported:
    """A network read from another tool, as blogroto weights (names of TransformNet, the arch's
    prefix included)."""

    arch: str
    width: int
    blocks: int
    weights: dict[str, np.ndarray]
    format: str  # FORMATS
    container: str  # the file format in words, e.g. "torch.save state dict (zip archive)"
    files: list[Path] = field(default_factory=list)  # the files read, for the sha256

    @property
    def parameters(self) -> int:
        return int(sum(v.size for v in self.weights.values()))


def blocks_in_words(n: int) -> str:
    return f"{n} residual block{'' if n == 1 else 's'}"


def check_size(width: int, blocks: int, where: Path) -> None:
    """What a filter.yaml may record (blogroto.filters)."""
    if not (1 <= width <= 256 and 1 <= blocks <= 256):
        raise FilterError(f"a network of width {width} with {blocks} residual blocks; blogroto reads widths and "
                          "block counts from 1 to 256", where)


def check_finite(weights: dict[str, np.ndarray], where: Path) -> None:
    for key, value in weights.items():
        if not np.all(np.isfinite(value)):
            raise FilterError(f"weight {key} contains NaN or infinite values", where)
