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
    clip_policy,
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


@pytest.mark.parametrize(
    "precision, gpu, native, meta, expected",
    [
        ("auto", False, True, BAD, "mixed_bfloat16"),  # the record says float32: the clip's frames may say otherwise
        ("auto", False, True, {}, "mixed_bfloat16"),  # never measured: the frames measure it
        ("auto", False, True, GOOD, None),  # already bfloat16
        ("auto", False, False, BAD, None),  # emulated bf16 is slower: never
        ("auto", True, True, BAD, None),  # GPUs: float16 already
        ("float32", False, True, BAD, None),  # asked for: kept
    ],
)
def test_clip_policy(precision, gpu, native, meta, expected):
    assert clip_policy(precision, meta, gpu=gpu, native_bf16=native) == expected


class RecordingStylizer:
    """Stands in for Stylizer.stylize_array: float32 frames are the photo, trial frames the photo
    off by `error` grey levels; records the policy of each call."""

    def __init__(self, error):
        self.error, self.calls = error, []

    def stylize_array(self, photo, flt, options, out=None, policy=None):
        self.calls.append(policy)
        out[...] = photo if policy == "float32" else np.clip(photo.astype(int) + next(self.error), 0, 255)
        return out


def test_clip_precision_checks_every_so_often_and_falls_back_for_good():
    from blogroto.engine.stylize import ClipPrecision

    every = ClipPrecision.CHECK_EVERY
    # 2 grey levels (~42 dB) agree; from the second check on, 8 levels (~30 dB) do not
    errors = iter([2] * every + [8] * 10 * every)
    st = RecordingStylizer(errors)
    frames = ClipPrecision(st, None, StyleOptions(), "mixed_bfloat16")
    photo = np.full((8, 8, 3), 100, np.uint8)
    outputs = [frames(photo) for _ in range(3 * every)]
    # frame 1: both, the trial's kept (it agreed); then the trial alone until frame every + 1, checked again
    assert st.calls[:3] == ["float32", "mixed_bfloat16", "mixed_bfloat16"]
    assert st.calls[every + 1: every + 3] == ["float32", "mixed_bfloat16"]
    assert st.calls[every + 3:] == ["float32"] * (2 * every - 1)  # float32 for the rest, no more checks
    assert (outputs[0] == 102).all() and (outputs[1] == 102).all()  # no precision step at a passing check
    assert (outputs[every] == photo).all() and (outputs[-1] == photo).all()  # the failing check: float32 kept
    assert frames.policy == "float32" and [round(db) for db in frames.agreement_db] == [42, 30]
    assert frames.checked_at == [1, every + 1]
    assert frames.describe() == f"bfloat16, then float32 from frame {every + 1}: bfloat16 agreed with it to only 30.1 dB there"


def test_clip_precision_checks_again_when_the_picture_changes():
    """A cut, or the next slide of a slow GIF, is checked at once, not a second later."""
    from blogroto.engine.stylize import ClipPrecision

    st = RecordingStylizer(iter([2] * 100))
    frames = ClipPrecision(st, None, StyleOptions(), "mixed_bfloat16")
    first, second = np.full((8, 8, 3), 100, np.uint8), np.full((8, 8, 3), 180, np.uint8)
    for photo in (first, first + 5, second, second, np.full((4, 8, 3), 180, np.uint8)):
        frames(photo)
    assert frames.checked_at == [1, 3, 5]  # the first, the cut (80 levels), the new size; not a 5-level change
    assert frames.describe() == "bfloat16: agreed with float32 to 42.1 dB or better at 3 check(s)"
    assert ClipPrecision(st, None, StyleOptions(), "mixed_bfloat16").describe() == "no frames"
    failing = ClipPrecision(RecordingStylizer(iter([8] * 3)), None, StyleOptions(), "mixed_bfloat16")
    for _ in range(3):
        failing(first)
    assert failing.describe() == "float32 from frame 1: bfloat16 agreed with it to only 30.1 dB there"


def test_frames_of_a_clip_use_the_trial_only_where_it_applies(tiny_filter, monkeypatch):
    from blogroto.engine.stylize import ClipPrecision

    monkeypatch.setattr("blogroto.engine.precision.cpu_supports_bf16", lambda cpuinfo=None: True)
    monkeypatch.setattr("blogroto.engine.precision.has_gpu", lambda: False)
    assert "precision" not in tiny_filter.meta  # never measured: its clips measure it
    st = Stylizer()
    frame, _ = st._frames(tiny_filter, StyleOptions(), "clip.gif", 1, progress=False)
    assert isinstance(frame, ClipPrecision)
    photo = np.random.default_rng(0).integers(0, 256, (24, 32, 3), np.uint8)
    first, second = frame(photo), frame(photo)
    assert first.dtype == np.uint8 and first.shape == (24, 32, 3)
    exact = st.stylize_array(photo, tiny_filter, StyleOptions(), np.empty_like(photo), "float32")
    assert len(frame.agreement_db) == 1 and frame.agreement_db[0] > 25  # one check: the same picture twice
    trial = st.stylize_array(photo, tiny_filter, StyleOptions(), np.empty_like(photo), "mixed_bfloat16")
    # a passing check keeps the trial's frame, a failing one the float32 frame; then the chosen policy
    assert (first == (trial if frame.policy == "mixed_bfloat16" else exact)).all()
    assert (second == st.stylize_array(photo, tiny_filter, StyleOptions(), np.empty_like(photo), frame.policy)).all()
    with pytest.raises(ValueError, match="not a dtype policy"):
        st.stylize_array(photo, tiny_filter, StyleOptions(), policy="bfloat16")
    frame, _ = Stylizer(precision="float32")._frames(tiny_filter, StyleOptions(), "clip.gif", 1, progress=False)
    assert not isinstance(frame, ClipPrecision)
