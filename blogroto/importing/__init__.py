"""`blogroto import`: turn a network trained with another tool into a blogroto filter folder.

Three sources of Johnson-style networks are read, each into its own network layout
(blogroto.engine.layouts.ARCH_SPECS), so the filter computes what the original computes:

  fast-style-transfer (lengstrom/fast-style-transfer, TensorFlow 1): a checkpoint (`.ckpt`
      index + data files, the older single-file format, or a folder with a `checkpoint` file),
      read with `tf.train.load_checkpoint` (no graph, no code). Its `src/transform.py` creates
      unnamed `tf.Variable`s, so the network's weights are `Variable`, `Variable_1`, ... in
      creation order: per conv layer the kernel, then the instance norm's shift and scale, for
      conv1 (9x9, 3->32), conv2, conv3 (3x3 stride 2), 2 per residual block (3x3, 128), two
      conv2d_transpose layers ([3, 3, out, in]) and the last 9x9 conv. Adam's slots and other
      variables in the checkpoint are left out. Arch `johnson-tf1`.
  pytorch/examples fast_neural_style: a `torch.save` state dict (`.pth`, `.model`; zip or legacy
      layout) read by blogroto.torchfile without torch and without running the pickle. Keys as
      in neural_style/transformer_net.py (conv1.conv2d.weight, in1.weight, res1.conv1.conv2d.weight,
      deconv1.conv2d.weight, ...); the InstanceNorm running_mean/running_var of old `.model`
      files are ignored, as the project's own eval does. Arch `pytorch-examples`.
  ONNX (the ONNX model zoo's fast-neural-style models, or `neural_style.py eval --export_onnx`):
      the graph is followed from its input (reflection Pad, Conv, InstanceNormalization, Relu,
      residual Add, nearest Upsample/Resize) and its initializers mapped onto the pytorch/examples
      layout, whose network it is. Needs the optional `onnx` package. Arch `pytorch-examples`.

Width and the number of residual blocks are read from the shapes (the originals hard-code 32 and
5; modified copies are accepted when the layout is the same).
"""

from __future__ import annotations

import re
from pathlib import Path

from blogroto.errors import BlogrotoError, FilterError
from blogroto.importing.folder import describe_import, write_filter
from blogroto.importing.model import FORMATS, Imported
from blogroto.importing.onnx import read_onnx
from blogroto.importing.pytorch import from_pytorch_state, read_pytorch
from blogroto.importing.tf1 import read_fast_style_transfer

__all__ = ["FORMATS", "Imported", "describe_import", "detect_format", "from_pytorch_state", "read_network", "write_filter"]


def detect_format(path: Path) -> str:
    """Which tool a file or folder comes from, by its name and first bytes."""
    if path.is_dir():
        if (path / "checkpoint").is_file() or any(path.glob("*.index")) or any(path.glob("*.ckpt")):
            return "fast-style-transfer"
        raise FilterError("no checkpoint in this folder (a fast-style-transfer folder holds a `checkpoint` file "
                          "or *.ckpt files); give the .pth, .onnx or .ckpt file itself", path)
    name = path.name.lower()
    if name.endswith(".onnx"):
        return "onnx"
    if name.endswith((".index", ".meta")) or re.search(r"\.data-\d{5}-of-\d{5}$", name):
        return "fast-style-transfer"
    if path.with_name(path.name + ".index").is_file():
        return "fast-style-transfer"
    try:
        with open(path, "rb") as handle:
            head = handle.read(16)
    except FileNotFoundError:
        raise FilterError("no such file", path) from None
    except OSError as exc:
        raise FilterError(f"cannot read: {exc.strerror or exc}", path) from exc
    if head.startswith(b"PK\x03\x04") or head[:1] == b"\x80":  # a zip archive or a pickle: torch.save
        return "pytorch"
    if name.endswith((".pth", ".pt", ".model", ".tar")):
        return "pytorch"
    if name.endswith(".ckpt"):
        return "fast-style-transfer"  # the single-file (V1) TensorFlow checkpoint format
    raise FilterError("cannot tell which tool this file comes from; name it .pth/.model (pytorch/examples), "
                      ".onnx, or .ckpt (fast-style-transfer), or give --format", path)


def read_network(path: str | Path, fmt: str = "auto") -> Imported:
    path = Path(path)
    if not path.exists() and not path.with_name(path.name + ".index").is_file():  # a checkpoint prefix names no file
        raise FilterError("no such file or folder", path)
    fmt = detect_format(path) if fmt in (None, "auto") else fmt
    if fmt == "fast-style-transfer":
        return read_fast_style_transfer(path)
    if fmt == "pytorch":
        return read_pytorch(path)
    if fmt == "onnx":
        return read_onnx(path)
    raise BlogrotoError(f"unknown format {fmt!r}; known: {', '.join(FORMATS)}")
