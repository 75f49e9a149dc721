"""`kill -9` of `blogroto train` at random steps (and while it assembles the filter folder), then
`--resume`: the final weights are bit-identical to an uninterrupted run with the same seed.

BLOGROTO_CHECKPOINT_EVERY_STEP=1 makes the run checkpoint after every step (normally every three
minutes), so a kill loses at most the step in flight. A half-assembled filter is never visible.
"""

from __future__ import annotations

import random
import signal
import subprocess
import time
import zipfile

import numpy as np
import pytest

from tests.conftest import make_photo
from tests.reliability.kit import cli_command, subprocess_env, tree_state
from tests.train_helpers import fake_vgg

STEPS = 6
SEED = 7


def train_args(tmp_path, out, *extra):
    return cli_command(
        "train", tmp_path / "art.png", "--name", "x", "--steps", STEPS, "--size", 32, "--batch", 1,
        "--style-size", 32, "--width", 4, "--blocks", 1, "--no-builtin-content", "--content", tmp_path / "content",
        "--vgg-weights", tmp_path / "fake-vgg16.npz", "--preview-every", 2, "--quiet", "--out", out, *extra)


def checkpoint_step(work) -> int:
    try:
        with np.load(work / "checkpoint.npz", allow_pickle=False) as data:
            return int(data["step"])
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):  # none yet, or caught mid-rename
        return 0


def weights(folder) -> dict:
    with np.load(folder / "weights.npz", allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


@pytest.mark.slow
def test_kill_9_then_resume_gives_the_uninterrupted_weights(tmp_path):
    for i in range(3):
        make_photo(tmp_path / "content" / f"photo{i}.png", (48, 40), seed=i)
    make_photo(tmp_path / "art.png", (40, 40), seed=9)
    fake_vgg(tmp_path / "fake-vgg16.npz")
    inputs = tree_state(tmp_path)
    env = subprocess_env(BLOGROTO_CHECKPOINT_EVERY_STEP="1")

    ref = subprocess.run(train_args(tmp_path, tmp_path / "ref"), capture_output=True, text=True, env=env, timeout=900)
    assert ref.returncode == 0, ref.stderr

    out = tmp_path / "killed"
    work, final, partial = out / ".x.training", out / "x", out / ".x.partial"
    rng = random.Random(SEED)
    # kill after a random early step, a random later one, then while the folder is being assembled
    targets = [("step", rng.randint(1, 2)), ("step", rng.randint(3, STEPS - 1)), ("assemble", None)]
    kills = []
    first = True
    for what, step in targets:
        proc = subprocess.Popen(train_args(tmp_path, out, *([] if first else ["--resume"])),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        first = False
        while proc.poll() is None:
            if what == "step" and checkpoint_step(work) >= step:
                time.sleep(rng.uniform(0, 0.2))  # somewhere inside the next step (or its checkpoint)
                break
            if what == "assemble" and partial.exists():
                time.sleep(rng.uniform(0, 0.05))
                break
            time.sleep(0.005)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills.append((what, step, checkpoint_step(work)))
        _, err = proc.communicate(timeout=300)
        assert "Traceback" not in err, err
        assert proc.returncode in (0, -signal.SIGKILL), err
        if proc.returncode != 0:
            # a killed run never leaves something that looks like a finished filter
            assert not final.exists() or (final / "filter.yaml").is_file() and (final / "weights.npz").is_file()
    assert len(kills) >= 2, kills

    # without --resume the leftover run is not silently thrown away
    if work.exists():
        again = subprocess.run(train_args(tmp_path, out), capture_output=True, text=True, env=env, timeout=900)
        assert again.returncode == 1 and "--resume" in again.stderr and "Traceback" not in again.stderr
    done = subprocess.run(train_args(tmp_path, out, "--resume"), capture_output=True, text=True, env=env, timeout=900)
    assert done.returncode == 0, done.stderr
    assert not work.exists() and not partial.exists() and not (out / ".x.old").exists()
    a, b = weights(tmp_path / "ref" / "x"), weights(final)
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=f"{key} after kills {kills}")
    now = tree_state(tmp_path)
    for path, state in inputs.items():  # the artwork, the photos and the VGG file are untouched
        assert now.get(path) == state, path
