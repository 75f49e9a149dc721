"""How each network architecture (`network.arch` in filter.yaml) is wired and names its weights:
blogroto's own Johnson-style layout and those of the tools filters are imported from. Pure data
and arithmetic, no Keras, so a filter folder's weights can be vetted before a network is built."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from blogroto.errors import FilterError
from blogroto.filters import ARCHS, DEFAULT_ARCH

EPSILON = 1e-5


@dataclass(frozen=True)
class ArchSpec:
    """How the layers of one architecture (`network.arch` in filter.yaml) are wired.

    padding: "reflect" pads each conv's input by kernel//2 by reflection, then a VALID conv;
        "same" is TensorFlow's SAME zero padding (for a stride-2 3x3 conv on an even size: 0 before,
        1 after).
    upsample: "nearest" = nearest-neighbour x2 then a 3x3 conv (`upsample_conv`); "transpose" = a
        3x3 stride-2 transposed convolution with TF's SAME padding (`TransposeConv`).
    bias: whether the convolutions have a bias. out_norm: whether the last 9x9 conv is
        instance-normalised too. epsilon: the instance norm's variance epsilon.
    input_scale: the network sees pixel values times this (255: it works on 0..255 pixels).
    output: "tanh" = (tanh(y) + 1) / 2; "tanh150" = (150 tanh(y) + 127.5) / 255 clipped to [0, 1];
        "linear255" = y / 255 clipped to [0, 1].
    prefix: put before every weight name in weights.npz, so that weights of one layout can never be
        loaded as another's (the pytorch/examples layout has exactly the shapes of blogroto's own)."""

    padding: str
    upsample: str
    bias: bool
    out_norm: bool
    epsilon: float
    input_scale: float
    output: str
    prefix: str


ARCH_SPECS = {
    # blogroto's own (Johnson et al. with resize-convolutions, reflection padding, tanh to [0, 1])
    DEFAULT_ARCH: ArchSpec("reflect", "nearest", True, False, EPSILON, 1.0, "tanh", ""),
    # lengstrom/fast-style-transfer (src/transform.py) as its evaluate.py runs it: pixels 0..255 in,
    # convs without bias and SAME zero padding, instance norm (epsilon 1e-3) after every conv, the
    # last included, conv2d_transpose upsampling, output tanh(y) * 150 + 255/2
    "johnson-tf1": ArchSpec("same", "transpose", False, True, 1e-3, 255.0, "tanh150", "johnson-tf1/"),
    # pytorch/examples fast_neural_style (neural_style/transformer_net.py), also the ONNX model zoo's
    # fast-neural-style models: blogroto's layout, but pixels 0..255 in and out, no tanh
    "pytorch-examples": ArchSpec("reflect", "nearest", True, False, 1e-5, 255.0, "linear255", "pytorch-examples/"),
}
assert set(ARCH_SPECS) == set(ARCHS)


def arch_spec(arch: str) -> ArchSpec:
    if arch not in ARCH_SPECS:
        raise FilterError(f"unknown network arch {arch!r}; known: {', '.join(ARCHS)}")
    return ARCH_SPECS[arch]


def expected_shapes(width: int, blocks: int, arch: str = DEFAULT_ARCH) -> dict[str, tuple[int, ...]]:
    """The weight shapes of TransformNet(width, blocks, arch=arch), computed without building it."""
    spec = arch_spec(arch)
    w = width
    convs = [("c1", 9, 3, w), ("d1", 3, w, 2 * w), ("d2", 3, 2 * w, 4 * w)]
    for i in range(blocks):
        convs += [(f"r{i}a", 3, 4 * w, 4 * w), (f"r{i}b", 3, 4 * w, 4 * w)]
    convs += [("u1", 3, 4 * w, 2 * w), ("u2", 3, 2 * w, w), ("out", 9, w, 3)]
    norms = {"c1": "n1", "d1": "nd1", "d2": "nd2", "u1": "nu1", "u2": "nu2"}
    norms.update({f"r{i}{x}": f"r{i}{x}n" for i in range(blocks) for x in "ab"})
    if spec.out_norm:
        norms["out"] = "nout"
    shapes = {}
    for name, k, cin, cout in convs:
        transposed = spec.upsample == "transpose" and name in ("u1", "u2")
        shapes[f"{spec.prefix}{name}/kernel"] = (k, k, cout, cin) if transposed else (k, k, cin, cout)
        if spec.bias and not transposed:
            shapes[f"{spec.prefix}{name}/bias"] = (cout,)
        if name in norms:
            shapes[f"{spec.prefix}{norms[name]}/gamma"] = shapes[f"{spec.prefix}{norms[name]}/beta"] = (cout,)
    return shapes


def arch_of_weights(path: str | Path) -> str | None:
    """The arch a weights file's names are laid out for (from the names alone), None if unclear."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            names = [info.filename for info in archive.infolist()]
    except (OSError, zipfile.BadZipFile, ValueError):
        return None
    found = {arch for arch, spec in ARCH_SPECS.items() if spec.prefix and any(n.startswith(spec.prefix) for n in names)}
    if len(found) == 1:
        return found.pop()
    return DEFAULT_ARCH if not found and names else None
