"""Precision: which dtype policy runs where, and the recorded bfloat16 check that gates `auto`."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from blogroto.cli import cli
from blogroto.engine.calibration import measure_bfloat16_psnr, record_bfloat16_psnr
from blogroto.engine.precision import (
    BF16_MIN_PSNR_DB,
    cpu_name,
    cpu_supports_bf16,
    inference_policy,
    training_policy,
)
from blogroto.engine.stylize import StyleOptions, Stylizer
from blogroto.filters import load_filter

GOOD = {"precision": {"bfloat16_psnr_db": BF16_MIN_PSNR_DB + 5}}
BAD = {"precision": {"bfloat16_psnr_db": BF16_MIN_PSNR_DB - 5}}


def test_native_bf16_is_read_from_cpu_flags():
    assert cpu_supports_bf16("flags : fpu avx2 avx512f avx512_bf16 sse")
    assert cpu_supports_bf16("flags : fpu amx_bf16 amx_tile")
    assert not cpu_supports_bf16("flags : fpu avx2 fma avx512f")


def test_cpu_name_tells_generations_of_one_model_name_apart():
    # the first processor's fields only; two processors repeat them
    zen5 = "processor\t: 0\ncpu family\t: 26\nmodel\t\t: 2\nmodel name\t: AMD EPYC\n\nprocessor\t: 1\ncpu family\t: 26\n"
    assert cpu_name(zen5) == "AMD EPYC (cpu family 26, model 2)"
    assert cpu_name("model name : Some CPU\n") == "Some CPU"
    assert cpu_name("") == ""


@pytest.mark.parametrize(
    "gpu, native, meta, expected",
    [
        (True, False, {}, "mixed_float16"),  # GPUs: float16 automatically
        (False, False, GOOD, "float32"),  # emulated bf16 is slower: never
        (False, True, GOOD, "mixed_bfloat16"),  # native and measured visually identical
        (False, True, BAD, "float32"),  # native but the filter's bf16 output differs visibly
        (False, True, {}, "float32"),  # never measured: stay exact
        (False, True, {"precision": {"bfloat16_psnr_db": "high"}}, "float32"),
    ],
)
def test_auto_inference_policy(gpu, native, meta, expected):
    assert inference_policy("auto", meta, gpu=gpu, native_bf16=native) == expected


def test_explicit_precision_wins():
    assert inference_policy("float32", GOOD, gpu=True, native_bf16=True) == "float32"
    assert inference_policy("bfloat16", BAD, gpu=False, native_bf16=False) == "mixed_bfloat16"
    assert training_policy("float16", gpu=False, native_bf16=False) == "mixed_float16"


def test_auto_training_policy():
    assert training_policy("auto", gpu=True, native_bf16=True) == "mixed_float16"
    assert training_policy("auto", gpu=False, native_bf16=True) == "mixed_bfloat16"
    assert training_policy("auto", gpu=False, native_bf16=False) == "float32"


def test_recorded_psnr_is_measured_and_gates_the_stylizer(tiny_filter_dir, tmp_path, monkeypatch):
    folder = tmp_path / "tiny"
    shutil.copytree(tiny_filter_dir / "tiny", folder)
    result = CliRunner().invoke(cli, ["filters", "--record-precision", str(folder)])
    assert result.exit_code == 0, result.output
    meta = yaml.safe_load((folder / "filter.yaml").read_text())
    psnr = meta["precision"]["bfloat16_psnr_db"]
    assert f"{folder}: bfloat16 vs float32 {psnr:.1f} dB" in result.output
    assert 25 < psnr < 80  # bf16 keeps ~8 bits of mantissa: close to float32, never identical
    flt = load_filter(folder)
    assert round(measure_bfloat16_psnr(flt), 1) == psnr  # deterministic
    assert round(record_bfloat16_psnr(folder), 1) == psnr

    # On a CPU with native bf16 the stylizer follows the record (the record itself above 40 dB or not).
    monkeypatch.setattr("blogroto.engine.precision.cpu_supports_bf16", lambda cpuinfo=None: True)
    st = Stylizer()
    assert st.policy(flt) == ("mixed_bfloat16" if psnr >= BF16_MIN_PSNR_DB else "float32")
    monkeypatch.setattr("blogroto.engine.precision.cpu_supports_bf16", lambda cpuinfo=None: False)
    assert st.policy(flt) == "float32"
    photo = np.random.default_rng(0).random((24, 32, 3), dtype=np.float32)
    assert st.stylize_array(photo, flt, StyleOptions()).shape == (24, 32, 3)


def test_malformed_precision_section_is_refused(tiny_filter_dir, tmp_path):
    from blogroto.errors import FilterError

    folder = tmp_path / "tiny"
    shutil.copytree(tiny_filter_dir / "tiny", folder)
    path = folder / "filter.yaml"
    path.write_text(path.read_text() + "precision: 46.2\n")
    with pytest.raises(FilterError, match="precision"):
        load_filter(folder)
