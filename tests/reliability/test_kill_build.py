"""`kill -9` at random moments of a real build (TensorFlow, the tiny network), then build again.

After every kill: no file a reader can see is torn (each output file and cache entry equals its
twin from a clean build, every image decodes, every stylized image a post names is there), the
temp files of killed writers are hidden from Jekyll, the site is untouched. The build after the
last kill completes and equals a clean build.

The kill moments are seeded and tied to the build's progress (N cache entries written, first
output image linked, or plain time), so they land in the stylizing and writing phases on fast
and slow machines alike.
"""

from __future__ import annotations

import random
import signal
import subprocess
import time

import pytest

from tests.reliability.kit import (
    Kit,
    assert_consistent,
    cli_command,
    photo,
    snapshot_objects,
    snapshot_output,
    subprocess_env,
    tree_state,
)

N_IMAGES = 16
SEED = 20261125


def populate(kit: Kit) -> None:
    for i in range(N_IMAGES):
        kit.write(f"assets/photos/p{i:02d}.jpg", photo((400, 300), seed=300 + i))
    for n in range(N_IMAGES // 4):
        kit.post(f"photos{n}", "".join(f"![p{i}](/assets/photos/p{i:02d}.jpg)\n\n" for i in range(n * 4, n * 4 + 4)))


def count(folder) -> int:
    return sum(1 for p in folder.rglob("*.*") if not p.name.startswith(".")) if folder.is_dir() else 0


@pytest.mark.slow
def test_kill_9_during_builds_never_tears_anything(tmp_path, tiny_filter_dir):
    kit = Kit(tmp_path, filter_dir=tiny_filter_dir, fake_filter_folder=False)
    populate(kit)
    env = subprocess_env()
    site_state = tree_state(kit.root)

    # the clean build everything is compared with
    ref_out, ref_cache = tmp_path / "ref/out", tmp_path / "ref/cache"
    proc = subprocess.run(cli_command("build", kit.root, "--out", ref_out, "--cache", ref_cache, "-q"),
                          capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stderr
    ref = snapshot_output(ref_out), snapshot_objects(ref_cache)
    assert len(ref[1]) == N_IMAGES + 1

    rng = random.Random(SEED)
    objects = kit.cache / "objects"
    images = kit.out / "assets/algorotoscope"
    # (what to wait for, extra random sleep): progress-tied kills, then a purely timed one
    plans = [
        ("objects", lambda base: base + rng.randint(1, N_IMAGES // 3)),
        ("objects", lambda base: base + rng.randint(1, N_IMAGES // 3)),
        ("images", lambda base: base + rng.randint(1, 4)),
        ("time", lambda base: rng.uniform(0.0, 3.0)),
        ("objects", lambda base: base + rng.randint(1, 3)),
    ]
    killed = 0
    for what, target_of in plans:
        folder = objects if what == "objects" else images
        target = target_of(count(folder) if what != "time" else 0)
        build = subprocess.Popen(cli_command(*kit.args("-q")), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True, env=env)
        started = time.monotonic()
        while build.poll() is None:
            if what == "time" and time.monotonic() - started >= target:
                break
            if what != "time" and count(folder) >= target:
                time.sleep(rng.uniform(0, 0.03))
                break
            time.sleep(0.002)
        if build.poll() is None:
            build.send_signal(signal.SIGKILL)
            killed += 1
        out, err = build.communicate(timeout=120)
        assert "Traceback" not in err, err
        assert build.returncode in (0, -signal.SIGKILL), (build.returncode, err)
        assert tree_state(kit.root) == site_state
        assert_consistent(kit.out, kit.cache, ref)
    assert killed >= 3, "the build was too quick to kill; raise N_IMAGES"

    final = subprocess.run(cli_command(*kit.args("-q")), capture_output=True, text=True, env=env, timeout=900)
    assert final.returncode == 0, final.stderr
    assert tree_state(kit.root) == site_state
    assert_consistent(kit.out, kit.cache, ref, complete=True)
    again = subprocess.run(cli_command(*kit.args()), capture_output=True, text=True, env=env, timeout=900)
    assert again.returncode == 0 and "0 images stylized" in again.stdout, again.stdout
