"""`blogroto train --teacher`: a slim student learns to reproduce a trained filter."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from blogroto.engine.stylize import StyleOptions, Stylizer
from blogroto.engine.train import ContentPool, Trainer, train
from blogroto.errors import BlogrotoError
from blogroto.filters import load_filter
from tests.conftest import make_filter, make_photo
from tests.reliability.kit import cli as kit_cli
from tests.train_helpers import tiny_config


def random_teacher(folder, slug, seed):
    """A random-weight network stands in for a trained teacher: what it does is a fixed function of
    the photo, which is all the student has to learn."""
    return load_filter(make_filter(folder, slug, width=8, blocks=2, seed=seed, title="Teacher Art"))


@pytest.fixture()
def teacher(tmp_path):
    return random_teacher(tmp_path / "teachers", "teacher-net", seed=3)


def distill_config(tmp_path, teacher, **overrides):
    settings = dict(artwork=None, teacher=teacher.folder, preset="distill", source={}, steps=30, size=32, batch=2,
                    width=4, blocks=1, lr=3e-3, progressive=0.0, preview_every=30)
    settings.update(overrides)
    return tiny_config(tmp_path, name="student", **settings)


def distance_to_teacher(student, teacher, photo) -> float:
    stylizer = Stylizer(precision="float32")
    a = stylizer.stylize_array(photo, student, StyleOptions(max_size=0))
    b = stylizer.stylize_array(photo, teacher, StyleOptions(max_size=0))
    return float(np.mean(np.abs(a - b)))


def test_each_student_comes_closest_to_its_own_teacher(tmp_path):
    """Two students, distilled from two different teachers, on a photo neither saw: each is clearly
    closer to its own teacher than the other student is (a student that ignored its teacher, or
    learned only the average colour, would not be)."""
    from PIL import Image

    held_out = np.asarray(Image.open(make_photo(tmp_path / "held-out.png", (40, 36), seed=11)), np.float32) / 255
    teachers = [random_teacher(tmp_path / "teachers", f"teacher-{seed}", seed) for seed in (3, 4)]
    students = [train(distill_config(tmp_path / t.slug, t), log=lambda m: None) for t in teachers]
    for i, teacher in enumerate(teachers):
        mine = distance_to_teacher(students[i], teacher, held_out)
        others = distance_to_teacher(students[1 - i], teacher, held_out)
        assert mine < 0.9 * others, (teacher.slug, mine, others)  # measured 0.82x and 0.76x


def test_distilled_filter_records_its_teacher_and_credits_the_same_work(tmp_path, teacher):
    flt = train(distill_config(tmp_path, teacher, steps=4), log=lambda m: None)
    t = flt.training
    assert t["preset"] == "distill" and t["crop_zoom"] == 3.0
    assert t["teacher"]["name"] == "teacher-net" and t["teacher"]["fingerprint"] == teacher.fingerprint
    assert t["teacher"]["network"] == {"width": 8, "blocks": 2}
    assert "saturation_limit" not in t  # an artwork-training setting; the student is trained on its teacher
    assert flt.network.as_dict() == {"width": 4, "blocks": 1, "norm": "capped-decoder"}
    assert set(t["final_losses"]) == {"total", "pixel", "features", "texture"}
    assert t["loss_weights"] == {"pixel": 100.0, "features": 1.0, "texture": 1e5}
    assert flt.source["title"] == "Teacher Art" and flt.source["creator"] == "The Test Suite"
    assert flt.description == "Teacher Net, reproduced by a slim network (width 4, 1 blocks) that applies faster."
    assert flt.file("artwork") is not None and flt.file("example_after") is not None


def test_distill_preset_needs_a_teacher_and_a_missing_teacher_is_named(tmp_path):
    with pytest.raises(BlogrotoError, match="needs a teacher"):
        Trainer(tiny_config(tmp_path, preset="distill"))
    with pytest.raises(BlogrotoError, match="no-such-filter"):
        Trainer(tiny_config(tmp_path, teacher="no-such-filter"))


def test_zoomed_crops_are_repeatable_and_include_upscaled_ones(tmp_path):
    photo = make_photo(tmp_path / "big.png", (120, 100), seed=2)
    pool = ContentPool([photo], 32, keep_short_side=1024)
    assert pool.images[0].shape[:2] == (100, 120)  # kept at full size for zoomed crops
    a, b = pool.batch(0, 4, 8, 32, zoom=3.0), pool.batch(0, 4, 8, 32, zoom=3.0)
    assert a.shape == (8, 32, 32, 3) and np.array_equal(a, b)
    # smooth (upscaled) crops have smaller neighbour differences than 1:1 or shrunk ones
    roughness = [float(np.mean(np.abs(np.diff(crop, axis=1)))) for crop in pool.batch(0, 5, 64, 32, zoom=3.0)]
    plain = [float(np.mean(np.abs(np.diff(crop, axis=1)))) for crop in pool.batch(0, 5, 64, 32)]
    assert min(roughness) < 0.6 * min(plain)


def test_cli_distills_without_an_artwork_argument(tmp_path, teacher):
    from blogroto.cli import cli

    cfg = tiny_config(tmp_path)
    common = ["--content", str(cfg.content_dirs[0]), "--no-builtin-content", "--steps", "2", "--size", "32",
              "--batch", "1", "--width", "4", "--blocks", "1", "--vgg-weights", str(cfg.vgg_weights),
              "--out", str(tmp_path / "styles"), "--quiet", "--preview-every", "1"]
    runner = CliRunner()
    result = runner.invoke(cli, ["train", "--teacher", str(teacher.folder), "--name", "fast", *common], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    flt = load_filter(tmp_path / "styles" / "fast")
    assert flt.training["teacher"]["name"] == "teacher-net" and flt.source["title"] == "Teacher Art"

    # the teacher can also be named: filters in --out are found first
    result = runner.invoke(cli, ["train", "--teacher", "fast", "--name", "faster", *common], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert load_filter(tmp_path / "styles" / "faster").training["teacher"]["name"] == "fast"

    result = runner.invoke(cli, ["train", "--name", "nothing", *common])
    assert result.exit_code == 2 and "ARTWORK" in result.output
    for option in ("--style-weight", "--tone-weight", "--colour-weight"):
        result = runner.invoke(cli, ["train", "--teacher", str(teacher.folder), "--name", "x", option, "1", *common])
        assert result.exit_code == 2 and "--teacher" in result.output
    result = kit_cli("train", "--teacher", "no-such-filter", "--name", "x", *common)
    assert result.code == 1 and "unknown filter 'no-such-filter'" in result.err and "Traceback" not in result.err
