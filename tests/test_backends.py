"""The engine on every Keras backend: a filter's weights give the same pictures on TensorFlow,
PyTorch and JAX, a filter trained on one applies on the others, and the engine's own tests pass
on each.

Keras binds one backend per process, so the other backends run in subprocesses. A backend that is
not installed skips its tests, unless BLOGROTO_REQUIRE_BACKENDS names it (CI: torch), where that
is a failure. Measured: the backends agree to ~110 dB untiled and ~140 dB tiled (float rounding)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from blogroto.engine.runtime import installed
from tests.conftest import REPO, make_filter
from tests.test_stylize import photo_array, psnr

OTHER_BACKENDS = ("torch", "jax")
MIN_AGREEMENT_DB = 40.0
# width, blocks, arch: blogroto's own layout (resize-convolutions), and the imported layouts
# (TensorFlow SAME padding with transposed convolutions; pytorch/examples' 0..255 pixels)
NETWORKS = {"own": (8, 2, "blogroto"), "johnson-tf1": (4, 1, "johnson-tf1"), "pytorch-examples": (4, 1, "pytorch-examples")}


def backend_env(name: str) -> dict:
    required = os.environ.get("BLOGROTO_REQUIRE_BACKENDS", "").replace(",", " ").split()
    if not installed(name):
        if name in required:
            pytest.fail(f"backend {name} is required here (BLOGROTO_REQUIRE_BACKENDS) but not installed")
        pytest.skip(f"backend {name} is not installed (pip install 'blogroto[{name}]')")
    return {**os.environ, "KERAS_BACKEND": name, "TF_CPP_MIN_LOG_LEVEL": "2"}


# Runs in the other backend's process: stylizes the photo whole and in tiles with each filter.
STYLIZE = """
import json, sys
import numpy as np
from blogroto.engine.runtime import backend_name
from blogroto.engine.stylize import StyleOptions, Stylizer
from blogroto.filters import load_filter
folders, photo_path, out_path = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3]
photo = np.load(photo_path)
whole, tiled = Stylizer(tile_pixels=10**9, precision="float32"), Stylizer(tile_pixels=0, tile_side=32, buffer_dtype="float32", precision="float32")
out = {}
for name, folder in folders.items():
    flt = load_filter(folder)
    out[name + "/whole"] = whole.stylize_array(photo, flt, StyleOptions())
    out[name + "/tiled"] = tiled.stylize_array(photo, flt, StyleOptions())
np.savez(out_path, **out)
print(backend_name())
"""


@pytest.fixture(scope="module")
def cross_filters(tmp_path_factory):
    base = tmp_path_factory.mktemp("backend-filters")
    folders = {name: make_filter(base, name, width=w, blocks=b, seed=5, arch=arch) for name, (w, b, arch) in NETWORKS.items()}
    # pytorch/examples' layout outputs 0..255 pixels: random weights give a black picture, which
    # would agree trivially; scale its last layer up to a real 0..255 range
    weights = folders["pytorch-examples"] / "weights.npz"
    with np.load(weights) as data:
        arrays = dict(data)
    arrays["pytorch-examples/out/kernel"] *= 400.0
    arrays["pytorch-examples/out/bias"] += 128.0
    np.savez(weights, **arrays)
    return folders


@pytest.mark.parametrize("backend", OTHER_BACKENDS)
def test_the_same_weights_paint_the_same_picture_on_every_backend(backend, cross_filters, tmp_path):
    """Weights saved under TensorFlow (weights.npz) applied under `backend`, untiled and tiled,
    for each network layout: within MIN_AGREEMENT_DB of TensorFlow's result (and TensorFlow runs
    this test's process)."""
    from blogroto.engine.runtime import backend_name
    from blogroto.engine.stylize import StyleOptions, Stylizer
    from blogroto.filters import load_filter

    env = backend_env(backend)
    assert backend_name() == os.environ.get("KERAS_BACKEND", "tensorflow")
    photo = photo_array(72, 100, seed=4)
    np.save(tmp_path / "photo.npy", photo)
    folders = {name: str(folder) for name, folder in cross_filters.items()}
    done = subprocess.run([sys.executable, "-c", STYLIZE, json.dumps(folders), str(tmp_path / "photo.npy"),
                           str(tmp_path / "out.npz")], env=env, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split()[-1] == backend
    theirs = np.load(tmp_path / "out.npz")
    whole, tiled = Stylizer(tile_pixels=10**9, precision="float32"), Stylizer(tile_pixels=0, tile_side=32, buffer_dtype="float32", precision="float32")
    for name, folder in cross_filters.items():
        flt = load_filter(folder)
        ours = {"whole": whole.stylize_array(photo, flt, StyleOptions()), "tiled": tiled.stylize_array(photo, flt, StyleOptions())}
        for mode, mine in ours.items():
            other = theirs[f"{name}/{mode}"]
            assert other.shape == mine.shape
            assert psnr(mine, other) >= MIN_AGREEMENT_DB, (name, mode, psnr(mine, other))
            assert np.std(mine) > 0.01  # a real picture, not a flat one that would agree trivially


@pytest.mark.slow
@pytest.mark.parametrize("backend", OTHER_BACKENDS)
def test_engine_tests_pass_on_other_backends(backend):
    """The network, tiled executor, stylizer and trainer tests, run on `backend` in their own pytest."""
    env = backend_env(backend)
    tests = ["tests/test_tiling.py", "tests/test_stylize.py", "tests/test_train.py"]
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W",
                           "ignore::DeprecationWarning", *tests], env=env, cwd=REPO, capture_output=True, text=True,
                          timeout=1200)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert " passed" in done.stdout and " failed" not in done.stdout


def run_cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "blogroto", *args], env=env or os.environ, cwd=REPO,
                          capture_output=True, text=True, timeout=300)


def test_version_names_the_backend_and_device():
    done = run_cli("--version")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("blogroto, version ")
    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    assert lines[1].startswith(f"engine: {backend} ") and lines[1].endswith(("on CPU", ")")), lines


@pytest.mark.parametrize("backend", OTHER_BACKENDS)
def test_backend_option_picks_the_backend(backend):
    env = backend_env(backend)
    env.pop("KERAS_BACKEND")
    done = run_cli("--backend", backend, "--version", env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[1].startswith(f"engine: {backend} ")


def test_auto_picks_the_fastest_installed_backend(monkeypatch):
    """auto (the default): TensorFlow where installed (fastest on a CPU, benchmarks/results/backends.md),
    else PyTorch, else JAX: a GPU machine with PyTorch and no TensorFlow just works."""
    from blogroto.engine import runtime

    for have, expected in [({"tensorflow", "torch", "jax"}, "tensorflow"), ({"torch", "jax"}, "torch"), ({"jax"}, "jax")]:
        monkeypatch.setattr(runtime, "installed", lambda name, have=have: name in have)
        assert runtime.auto_backend() == expected


def test_unknown_or_missing_backends_are_refused_in_words(monkeypatch):
    from blogroto.engine import runtime
    from blogroto.errors import BlogrotoError

    done = run_cli("--backend", "theano", "--version")
    assert done.returncode == 2 and "'theano' is not one of" in done.stderr
    done = run_cli("--version", env={**os.environ, "KERAS_BACKEND": "theano"})
    assert done.returncode == 1 and "KERAS_BACKEND: unknown backend 'theano'" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    monkeypatch.setattr(runtime, "installed", lambda name: False)
    with pytest.raises(BlogrotoError, match=r"backend jax is not installed: pip install 'blogroto\[jax\]'"):
        runtime.select_backend("jax")


TRAIN = """
import json, sys
from pathlib import Path
from blogroto.engine.train import train
from tests.train_helpers import tiny_config
flt = train(tiny_config(Path(sys.argv[1]), steps=8, width=8, blocks=1, precision=sys.argv[2]))
print(json.dumps({"folder": str(flt.folder), "backend": flt.training["backend"], "precision": flt.training["precision"],
                  "losses": flt.training["final_losses"]}))
"""


@pytest.mark.parametrize("backend,precision", [("torch", "float32"), ("torch", "float16"), ("jax", "float32"),
                                               ("jax", "float16")])
def test_a_filter_trained_on_another_backend_applies_on_tensorflow(backend, precision, tmp_path):
    """`blogroto train` on `backend` (its own gradient step, blogroto.engine.steps; float16 with
    Keras' loss scaling, as on a GPU) writes a filter that TensorFlow applies: the same picture as
    on the backend that trained it, within 40 dB, and its training record names the backend."""
    env = backend_env(backend)
    done = subprocess.run([sys.executable, "-c", TRAIN, str(tmp_path), precision], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    record = json.loads(done.stdout.strip().splitlines()[-1])
    assert record["backend"].startswith(backend + " ") and record["precision"] == ("float32" if precision == "float32"
                                                                                  else "mixed_float16")
    assert all(np.isfinite(v) and v >= 0 for v in record["losses"].values()) and record["losses"]["total"] > 0, record
    folder = {"trained": record["folder"]}
    np.save(tmp_path / "photo.npy", photo_array(60, 84, seed=2))
    done = subprocess.run([sys.executable, "-c", STYLIZE, json.dumps(folder), str(tmp_path / "photo.npy"),
                           str(tmp_path / "out.npz")], env=env, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    from blogroto.engine.stylize import StyleOptions, Stylizer
    from blogroto.filters import load_filter

    theirs = np.load(tmp_path / "out.npz")["trained/whole"]
    ours = Stylizer(precision="float32").stylize_array(np.load(tmp_path / "photo.npy"), load_filter(record["folder"]),
                                                       StyleOptions())
    assert psnr(ours, theirs) >= MIN_AGREEMENT_DB and np.std(ours) > 0.01
