"""`blogroto train`: a complete, credited filter folder; exact resume; safe output."""

from __future__ import annotations

import os

import numpy as np
import pytest
from click.testing import CliRunner

from blogroto.engine.recipe import DEFAULT_WEIGHTS
from blogroto.engine.stylize import StyleOptions, Stylizer
from blogroto.engine.train import ContentPool, Trainer, train
from blogroto.errors import BlogrotoError
from blogroto.filters import load_filter
from tests.train_helpers import tiny_config, weights_of


def test_training_writes_a_complete_filter_that_applies(tmp_path):
    flt = train(tiny_config(tmp_path), log=lambda m: None)
    assert flt.folder == tmp_path / "out" / "tiny-trained"
    for key in ("weights", "artwork", "preview", "example_before", "example_after", "loss_plot", "contact_sheet"):
        assert flt.file(key) is not None, key
    t = flt.training
    assert t["steps"] == 6 and t["resolution"] == 32 and t["seconds"] > 0
    assert t["vgg_weights"] == "random test weights"
    assert set(t["final_losses"]) == {"total", "content", "style", "tv", "tone", "colour", "saturation", "stability"}  # logged even when off
    assert t["final_losses"]["stability"] == 0  # opt-in
    assert t["loss_weights"]["saturation"] == 0.01
    assert t["saturation_limit"] == 3.0  # quick: the term starts where tanh is flat
    assert flt.network.norm == "capped-decoder" and flt.meta["network"]["norm"] == "capped-decoder"
    assert flt.meta["precision"]["bfloat16_psnr_db"] > 20  # measured, gates bf16 under `auto`
    assert flt.source == {**dict.fromkeys(flt.source), "title": "Test Art", "creator": "Tester", "licence": "CC0-1.0"}
    assert not (tmp_path / "out" / ".tiny-trained.training").exists()  # work folder removed
    assert not (tmp_path / "out" / ".tiny-trained.partial").exists()
    out = Stylizer().stylize_array(np.full((20, 24, 3), 0.5, np.float32), load_filter(flt.folder), StyleOptions())
    assert out.shape == (20, 24, 3)


def test_same_seed_same_weights_and_interrupted_run_resumes_exactly(tmp_path):
    a = train(tiny_config(tmp_path / "a"), log=lambda m: None)
    stopped = train(tiny_config(tmp_path / "b", stop_after=3), log=lambda m: None)
    assert stopped is None  # stopped early, resumable
    work = tmp_path / "b" / "out" / ".tiny-trained.training"
    assert work.is_dir() and not (tmp_path / "b" / "out" / "tiny-trained").exists()  # never looks complete
    b = train(tiny_config(tmp_path / "b", resume=True), log=lambda m: None)
    wa, wb = weights_of(a.folder), weights_of(b.folder)
    assert wa.keys() == wb.keys()
    for key in wa:
        np.testing.assert_array_equal(wa[key], wb[key], err_msg=key)
    assert b.training["steps"] == 6


def test_unfinished_run_needs_resume_and_same_settings(tmp_path):
    train(tiny_config(tmp_path, stop_after=2), log=lambda m: None)
    with pytest.raises(BlogrotoError, match="--resume"):
        train(tiny_config(tmp_path), log=lambda m: None)
    with pytest.raises(BlogrotoError, match="different training settings"):
        train(tiny_config(tmp_path, resume=True, steps=8), log=lambda m: None)
    with pytest.raises(BlogrotoError, match="different training settings"):  # the loss weights are settings too
        train(tiny_config(tmp_path, resume=True, loss_weights={"style": 5.0}), log=lambda m: None)


def test_a_run_checkpointed_by_an_older_blogroto_says_it_cannot_resume(tmp_path):
    """Runs checkpointed with TensorFlow's format (a `ckpt/` folder, before checkpoint.npz) are
    refused in words, the work folder left as it is."""
    train(tiny_config(tmp_path, stop_after=2), log=lambda m: None)
    work = tmp_path / "out" / ".tiny-trained.training"
    (work / "checkpoint.npz").unlink()
    (work / "ckpt").mkdir()
    (work / "ckpt" / "checkpoint").write_text('model_checkpoint_path: "ckpt-2"\n')
    with pytest.raises(BlogrotoError, match="older blogroto .* delete the folder to start over"):
        train(tiny_config(tmp_path, resume=True), log=lambda m: None)
    assert (work / "ckpt").exists() and (work / "run.json").exists()


def test_a_damaged_checkpoint_is_refused_in_words(tmp_path):
    train(tiny_config(tmp_path, stop_after=2), log=lambda m: None)
    (tmp_path / "out" / ".tiny-trained.training" / "checkpoint.npz").write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(BlogrotoError, match="checkpoint is unreadable"):
        train(tiny_config(tmp_path, resume=True), log=lambda m: None)


@pytest.mark.parametrize("record, text, match", [
    ("run.json", "{not json", "run.json: unreadable"),
    ("run.json", "[1, 2]", "run.json: not a run record"),
    ("history.json", '{"step": ["x"], "seconds": []}', "loss history is damaged"),
])
def test_a_damaged_run_record_is_refused_in_words(tmp_path, record, text, match):
    train(tiny_config(tmp_path, stop_after=2), log=lambda m: None)
    work = tmp_path / "out" / ".tiny-trained.training"
    (work / record).write_text(text)
    with pytest.raises(BlogrotoError, match=match):
        train(tiny_config(tmp_path, resume=True), log=lambda m: None)
    assert (work / "checkpoint.npz").exists()  # left for the author to delete


def test_retraining_replaces_the_filter_in_one_step(tmp_path):
    first = train(tiny_config(tmp_path), log=lambda m: None)
    second = train(tiny_config(tmp_path, seed=1), log=lambda m: None)
    assert first.folder == second.folder
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["tiny-trained"]


def test_bad_inputs_are_clear(tmp_path):
    with pytest.raises(BlogrotoError, match="lower-case"):
        Trainer(tiny_config(tmp_path, name="Bad Name"))
    with pytest.raises(BlogrotoError, match="artwork not found"):
        train(tiny_config(tmp_path, artwork=tmp_path / "nope.jpg"), log=lambda m: None)
    with pytest.raises(BlogrotoError, match="preset"):
        tiny_config(tmp_path, preset="turbo").resolved()
    with pytest.raises(BlogrotoError, match="content folder not found"):
        ContentPool.find([tmp_path / "missing"])


def test_content_pool_batches_depend_only_on_seed_and_step(tmp_path):
    cfg = tiny_config(tmp_path)
    pool = ContentPool(ContentPool.find(cfg.content_dirs), 32)
    assert np.array_equal(pool.batch(0, 5, 2, 32), pool.batch(0, 5, 2, 32))
    assert not np.array_equal(pool.batch(0, 5, 2, 32), pool.batch(0, 6, 2, 32))
    assert pool.batch(0, 1, 3, 32).shape == (3, 32, 32, 3)
    # with references (the colour term), each crop carries the same crop of its reference
    plain = pool.batch(0, 5, 2, 32)
    pool.references = [255 - img for img in pool.images]
    both = pool.batch(0, 5, 2, 32)
    assert both.shape == (2, 32, 32, 6) and np.array_equal(both[..., :3], plain)
    assert np.allclose(both[..., 3:], 1 - both[..., :3], atol=1.5 / 255)  # cropped, flipped, resized alike
    # with the stability term, three channels of noise come last, the same for the same step
    noisy = pool.batch(0, 5, 2, 32, noise=0.1)
    assert noisy.shape == (2, 32, 32, 9) and np.array_equal(noisy[..., :6], both)
    assert np.array_equal(noisy, pool.batch(0, 5, 2, 32, noise=0.1)) and abs(noisy[..., 6:].std() - 0.1) < 0.01


def test_cli_trains_and_credits(tmp_path):
    from blogroto.cli import cli

    cfg = tiny_config(tmp_path)
    result = CliRunner().invoke(cli, [
        "train", str(cfg.artwork), "--name", "cli-made", "--title", "Sunflowers", "--creator", "A. Painter",
        "--year", "1888", "--licence", "public domain", "--content", str(cfg.content_dirs[0]), "--no-builtin-content",
        "--steps", "2", "--size", "32", "--batch", "1", "--style-size", "32", "--width", "4", "--blocks", "1",
        "--vgg-weights", str(cfg.vgg_weights), "--out", str(tmp_path / "styles"), "--quiet", "--preview-every", "1",
        "--tone-weight", "20", "--colour-weight", "30", "--stability-weight", "0.5",
    ], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    flt = load_filter(tmp_path / "styles" / "cli-made")
    assert flt.source["title"] == "Sunflowers" and flt.source["year"] == 1888 and flt.source["creator"] == "A. Painter"
    assert flt.training["loss_weights"]["tone"] == 20  # the recipe, recorded
    assert flt.training["loss_weights"]["style"] == DEFAULT_WEIGHTS["style"]
    assert flt.training["loss_weights"]["colour"] == 30 and flt.training["final_losses"]["colour"] > 0
    assert flt.training["loss_weights"]["stability"] == 0.5 and flt.training["final_losses"]["stability"] > 0


def test_centered_and_capped_norms_keep_each_channels_contrast():
    """Full instance norm gives every channel unit variance over the image; centering (the trunk and
    decoder of `centered-decoder` networks) removes the mean only, so a channel can stay nearly
    flat instead of spending its variance on a spike (the white/black blob); capping (recipe 3,
    `capped-decoder`) does the same for quiet channels but scales a loud one back to unit variance,
    so training cannot blow the activations up."""
    from blogroto.engine.network import InstanceNorm, TransformNet
    from blogroto.engine.runtime import to_numpy

    rng = np.random.default_rng(0)
    x = (rng.standard_normal((1, 16, 16, 3)) * [0.03, 0.8, 300.0] + 5.0).astype(np.float32)
    full, centered, capped = InstanceNorm(), InstanceNorm(mode="centre"), InstanceNorm(mode="cap")
    yf, yc, yk = (to_numpy(norm(x)[0]) for norm in (full, centered, capped))
    for y in (yf, yc, yk):
        assert np.allclose(y.mean(axis=(1, 2)), 0, atol=1e-3)
    std = x.std(axis=(1, 2))[0]
    assert np.allclose(yf.std(axis=(1, 2)), 1, atol=0.05)  # the flat channel blown up 30x
    assert np.allclose(yc.std(axis=(1, 2)), std, rtol=1e-3)  # the loud channel left at 300
    assert np.allclose(yk.std(axis=(1, 2))[0], [std[0], std[1], 1.0], rtol=1e-3)
    for norm, mode in (("centered-decoder", "centre"), ("capped-decoder", "cap"), ("instance", "normalise")):
        net = TransformNet(width=4, blocks=1, norm=norm).ensure_built()
        modes = {layer.name: layer.mode for layer in net._flatten_layers() if isinstance(layer, InstanceNorm)}
        assert modes["n1"] == modes["nd1"] == modes["nd2"] == "normalise"  # the encoder ignores photo contrast
        assert {v for k, v in modes.items() if k not in ("n1", "nd1", "nd2")} == {mode}
    with pytest.raises(BlogrotoError, match="norm"):
        TransformNet(width=4, blocks=1, norm="batch")


def test_training_for_a_site_learns_from_its_own_photos(tmp_path):
    """`train --site SITE` (or run inside a site) adds the photos the site publishes to the content
    set; icons, the filters' artworks, symbolic links and the artwork itself are left out."""
    import os

    from blogroto.cli import cli
    from tests.conftest import make_photo

    cfg = tiny_config(tmp_path)
    site = tmp_path / "site"
    (site / "_posts").mkdir(parents=True)
    (site / "_config.yml").write_text("title: t\n")
    make_photo(site / "assets" / "img" / "harbour.png", (160, 130), seed=1)
    make_photo(site / "assets" / "img" / "icon.png", (32, 32), seed=2)
    make_photo(site / "_filters" / "old" / "artwork.png", (160, 160), seed=3)
    make_photo(site / "assets" / "art.png", (140, 140), seed=4)
    os.symlink(cfg.content_dirs[0] / "photo0.png", site / "assets" / "linked.png")
    args = ["train", str(site / "assets" / "art.png"), "--name", "for-site", "--site", str(site), "--no-builtin-content",
            "--steps", "2", "--size", "32", "--batch", "1", "--style-size", "32", "--width", "4", "--blocks", "1",
            "--vgg-weights", str(cfg.vgg_weights), "--preview-every", "1"]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "training on the site's own 1 photo too" in result.output
    flt = load_filter(site / "_filters" / "for-site")
    assert flt.training["content_set"] == ["harbour.png"]
    result = CliRunner().invoke(cli, [*args, "--no-site-photos", "--content", str(cfg.content_dirs[0])], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "harbour.png" not in load_filter(site / "_filters" / "for-site").training["content_set"]


@pytest.mark.skipif(os.environ.get("KERAS_BACKEND", "tensorflow") != "tensorflow",
                    reason="takes its gradients with tf.GradientTape")
def test_saturation_loss_pulls_back_what_tanh_cannot():
    """Recipe 3's saturation term: where the last layer's output sits deep in tanh's flat tail (a
    solid black patch), the image losses pass no gradient back; the saturation term does."""
    import tensorflow as tf

    from blogroto.engine.losses import saturation_loss
    from blogroto.engine.network import TransformNet

    net = TransformNet(width=4, blocks=1, norm="capped-decoder").ensure_built()
    out = next(layer for layer in net._flatten_layers() if layer.name == "out")
    out.bias.assign(tf.fill(out.bias.shape, -50.0))  # every pixel crushed to black
    x = tf.constant(np.random.default_rng(0).random((1, 16, 16, 3)).astype(np.float32))
    with tf.GradientTape(persistent=True) as tape:
        logits = net.run(x, logits=True)[0]
        image_loss = tf.reduce_mean(tf.square(net.to_image(logits) - 0.5))  # wants mid-grey
        saturation = saturation_loss(logits)
    assert float(image_loss) > 0.2 and float(saturation) > 40**2
    assert float(tf.reduce_max(tf.abs(tape.gradient(image_loss, out.bias)))) < 1e-12
    assert float(tf.reduce_min(tape.gradient(saturation, out.bias))) < -10  # pushes the output back up
    assert float(saturation_loss(tf.constant([[-2.9, 0.0, 2.9]]))) == 0.0  # the usable range is free


def test_standard_preset_holds_back_dark_patches_and_says_so(tmp_path):
    """`standard` trains long enough (5,500 steps) to grow black patches at pre-tanh -2 to -9, which
    the quick setting (from 3, weight 0.01) lets through: it starts the term at 2 with weight 1, and
    the filter's record says so. The network and steps here are tiny; the preset's settings are not."""
    import tensorflow as tf

    from blogroto.engine.losses import saturation_loss

    config = tiny_config(tmp_path, preset="standard", steps=2, width=4, blocks=1, lr=None)
    p = config.resolved()
    assert p["steps"] == 2 and p["saturation_limit"] == 2.0 and p["lr"] == 1e-3
    assert Trainer(config).loss_weights["saturation"] == 1.0
    t = train(config, log=lambda m: None).training
    assert t["preset"] == "standard" and t["saturation_limit"] == 2.0 and t["loss_weights"]["saturation"] == 1.0
    assert float(saturation_loss(tf.constant([[-2.5]]), 2.0)) == 0.25  # a dark patch the quick setting leaves free


def test_given_loss_weights_override_the_defaults_and_the_preset_one_by_one(tmp_path):
    # --style-weight on `standard` keeps standard's saturation weight; naming one weights only that one
    standard = Trainer(tiny_config(tmp_path, preset="standard", loss_weights={"style": 20.0})).loss_weights
    assert standard == {**DEFAULT_WEIGHTS, "style": 20.0, "saturation": 1.0}
    assert Trainer(tiny_config(tmp_path, preset="standard", loss_weights={"saturation": 0.5})).loss_weights["saturation"] == 0.5
    assert Trainer(tiny_config(tmp_path, loss_weights={"tone": 3.0})).loss_weights == {**DEFAULT_WEIGHTS, "tone": 3.0}
    from blogroto.cli import cli

    cfg = tiny_config(tmp_path)
    result = CliRunner().invoke(cli, [
        "train", str(cfg.artwork), "--name", "standard-made", "--preset", "standard", "--style-weight", "20",
        "--content", str(cfg.content_dirs[0]), "--no-builtin-content", "--steps", "2", "--size", "32", "--batch", "1",
        "--style-size", "32", "--width", "4", "--blocks", "1", "--vgg-weights", str(cfg.vgg_weights),
        "--out", str(tmp_path / "styles"), "--quiet", "--preview-every", "1",
    ], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert load_filter(tmp_path / "styles" / "standard-made").training["loss_weights"] == standard


def test_device_record_reads_as_a_sentence(monkeypatch):
    # cpu_name ends in its own parentheses: the record must not stack a second pair after them
    from blogroto.build.training_record import describe_training
    from blogroto.engine import train as train_module

    monkeypatch.setattr(train_module, "gpu_names", lambda: [])
    monkeypatch.setattr(train_module, "cpu_name", lambda: "AMD EPYC (cpu family 26, model 2)")
    monkeypatch.setattr(train_module.os, "cpu_count", lambda: 2)
    device = train_module.describe_device()
    assert device == "CPU: AMD EPYC (cpu family 26, model 2), 2 cores"
    assert describe_training({"steps": 10, "seconds": 60, "device": device}).endswith(
        "on a CPU (AMD EPYC (cpu family 26, model 2), 2 cores).")
