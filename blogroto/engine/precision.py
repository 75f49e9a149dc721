"""Which numeric precision a network runs in, and the per-filter check that allows bfloat16.

Reduced precision is only worth it where the hardware computes it natively: float16 on GPUs,
bfloat16 on CPUs with AVX-512 BF16 or AMX (elsewhere the backends emulate bf16 and get slower).
For training that is the whole rule. For applying a filter, bfloat16 must also leave the
filter's output visually identical: each filter records the PSNR of its bfloat16 output against
float32 (`precision.bfloat16_psnr_db` in filter.yaml, measured when it is trained, or with
`calibration.record_bfloat16_psnr`), and `auto` uses bf16 on a CPU only when that is at least
`BF16_MIN_PSNR_DB`. Measured figures: benchmarks/results/precision.md. That record is the
worst over the calibration photos; animations and videos, whose many frames repay a check, measure
the agreement on their own frames instead (`clip_policy`, used by engine/stylize.py).

Importing this module does not import the backend.
"""

from __future__ import annotations

import functools
from pathlib import Path

BF16_MIN_PSNR_DB = 40.0  # below ~40 dB differences start to show as banding in flat areas
PRECISIONS = ("auto", "float32", "bfloat16", "float16")
POLICIES = {"float32": "float32", "bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}


def precision_name(policy: str) -> str:
    """The precision a Keras dtype policy computes in, as users name it: mixed_bfloat16 -> bfloat16."""
    return {v: k for k, v in POLICIES.items()}[policy]


def psnr_db(a, b) -> float:
    """PSNR (dB) between two images in [0, 1]: how the bfloat16 check compares outputs."""
    import numpy as np  # imported here: this module stays light

    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return float("inf") if mse == 0 else float(10.0 * np.log10(1.0 / mse))


@functools.cache
def _cpuinfo() -> str:
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""


def cpu_name(cpuinfo: str | None = None) -> str:
    """The CPU's model name with its family and model numbers: cloud CPUs often report only
    "AMD EPYC", and two machines reporting just that trained `quick` 2x apart (docs/training.md)."""
    fields: dict[str, str] = {}
    for line in (_cpuinfo() if cpuinfo is None else cpuinfo).splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    name = fields.get("model name", "")
    numbers = [f"{k} {fields[k]}" for k in ("cpu family", "model") if fields.get(k)]
    return f"{name} ({', '.join(numbers)})" if name and numbers else name


def cpu_supports_bf16(cpuinfo: str | None = None) -> bool:
    """Whether the CPU computes bfloat16 natively (AVX-512 BF16 or AMX)."""
    flags = set((_cpuinfo() if cpuinfo is None else cpuinfo).split())
    return "avx512_bf16" in flags or "amx_bf16" in flags


@functools.cache
def has_gpu() -> bool:
    from blogroto.engine.runtime import gpu_names

    return bool(gpu_names())


def _policy(precision: str, bf16_ok: bool, gpu: bool | None, native_bf16: bool | None) -> str:
    if precision != "auto":
        return POLICIES[precision]
    if has_gpu() if gpu is None else gpu:
        return "mixed_float16"
    native = cpu_supports_bf16() if native_bf16 is None else native_bf16
    return "mixed_bfloat16" if native and bf16_ok else "float32"


def training_policy(precision: str, gpu: bool | None = None, native_bf16: bool | None = None) -> str:
    """Keras dtype policy for training: fp16 on GPUs, bf16 on CPUs with native bf16, else float32."""
    return _policy(precision, True, gpu, native_bf16)


def recorded_bfloat16_psnr(meta: dict) -> float | None:
    value = (meta.get("precision") or {}).get("bfloat16_psnr_db")
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def inference_policy(precision: str, meta: dict, gpu: bool | None = None, native_bf16: bool | None = None) -> str:
    """Keras dtype policy for applying the filter whose filter.yaml is `meta` (module doc)."""
    psnr = recorded_bfloat16_psnr(meta)
    return _policy(precision, psnr is not None and psnr >= BF16_MIN_PSNR_DB, gpu, native_bf16)


def clip_policy(precision: str, meta: dict, gpu: bool | None = None, native_bf16: bool | None = None) -> str | None:
    """The policy worth trying for the frames of an animation or video when `inference_policy`
    gives float32 only because the filter's recorded bfloat16 agreement (its worst calibration
    photo, often a flat bright backdrop) is under the gate or unknown: bfloat16 on a CPU that
    computes it natively, kept while it agrees with float32 on the clip's own frames (checked by
    the caller). None: nothing to try (a precision was asked for, a GPU, no native bfloat16, or
    bfloat16 already allowed)."""
    if precision != "auto" or inference_policy(precision, meta, gpu, native_bf16) != "float32":
        return None
    native = cpu_supports_bf16() if native_bf16 is None else native_bf16
    return "mixed_bfloat16" if native else None
