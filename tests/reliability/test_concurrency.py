"""Two builds of one site at once, and a build while `blogroto watch` rebuilds.

Builds sharing a cache take an exclusive flock on `CACHE/build.lock` for their whole run, so
they take turns: the second finds the first's outputs and stylizes nothing. Cache entries are
content-addressed and written atomically, so even writers without the lock could not tear one.
The network is faked (each image takes BLOGROTO_TEST_FAKE_DELAY seconds to widen the window).
"""

from __future__ import annotations

import re
import signal
import subprocess
import time

from tests.reliability.kit import (
    Kit,
    assert_consistent,
    cli,
    cli_command,
    leftovers,
    photo,
    snapshot_objects,
    snapshot_output,
    subprocess_env,
    tree_state,
)

N_IMAGES = 12
SUMMARY = re.compile(r"(\d+) posts, (\d+) images stylized, (\d+) cache hits, \d+ warnings, (\d+) errors")


def populate(kit: Kit) -> None:
    for i in range(N_IMAGES):
        kit.write(f"assets/photos/p{i}.jpg", photo((64, 48), seed=200 + i))
    for n in range(3):
        kit.post(f"photos{n}", "".join(f"![p{i}](/assets/photos/p{i}.jpg)\n\n" for i in range(n * 4, n * 4 + 4)))


def reference(kit: Kit) -> tuple[dict, dict]:
    out, cache = kit.base / "ref" / "out", kit.base / "ref" / "cache"
    result = cli("build", kit.root, "--out", out, "--cache", cache, "-q")
    assert result.code == 0, result.text
    return snapshot_output(out), snapshot_objects(cache)


def spawn(args: list, delay: float = 0.05) -> subprocess.Popen:
    return subprocess.Popen(cli_command(*args, fake=True), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=subprocess_env(BLOGROTO_TEST_FAKE_DELAY=str(delay)))


def finish(proc: subprocess.Popen, timeout: float = 600) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    assert "Traceback" not in err, err
    return proc.returncode, out, err


def stylized_count(stdout: str) -> int:
    m = SUMMARY.search(stdout)
    assert m, stdout
    assert m.group(4) == "0", stdout
    return int(m.group(2))


def test_two_builds_at_once_share_the_work_and_agree(kit):
    populate(kit)
    ref = reference(kit)
    before = tree_state(kit.root)
    procs = [spawn(kit.args()) for _ in range(2)]
    results = [finish(p) for p in procs]
    assert tree_state(kit.root) == before
    assert [r[0] for r in results] == [0, 0], results
    counts = sorted(stylized_count(r[1]) for r in results)
    assert counts == [0, N_IMAGES + 1], counts  # one did all the work, the other found it done
    assert leftovers(kit.out, kit.cache) == []
    assert_consistent(kit.out, kit.cache, ref, complete=True)


def test_two_builds_into_different_outputs_sharing_a_cache(kit):
    populate(kit)
    ref = reference(kit)
    before = tree_state(kit.root)
    other = kit.base / "out2"
    procs = [spawn(kit.args()), spawn(["build", kit.root, "--out", other, "--cache", kit.cache])]
    results = [finish(p) for p in procs]
    assert tree_state(kit.root) == before
    assert [r[0] for r in results] == [0, 0], results
    assert sum(stylized_count(r[1]) for r in results) == N_IMAGES + 1
    assert_consistent(kit.out, kit.cache, ref, complete=True)
    assert_consistent(other, kit.cache, ref, complete=True)


def test_build_while_watch_rebuilds(kit):
    populate(kit)
    watch = spawn(["watch", kit.root, "--out", kit.out, "--cache", kit.cache], delay=0.05)
    try:
        deadline = time.monotonic() + 300
        while not (kit.out / "_posts/2024-02-01-photos2.md").is_file() or "algorotoscope/" not in \
                (kit.out / "_posts/2024-02-01-photos2.md").read_text():
            assert watch.poll() is None, watch.communicate()
            assert time.monotonic() < deadline, "watch never finished its first build"
            time.sleep(0.1)
        # change the site under the watcher, and build at the same moment
        for i in range(N_IMAGES, N_IMAGES + 4):
            kit.write(f"assets/photos/p{i}.jpg", photo((64, 48), seed=200 + i))
        kit.post("photos3", "".join(f"![p{i}](/assets/photos/p{i}.jpg)\n\n" for i in range(N_IMAGES, N_IMAGES + 4)))
        before = tree_state(kit.root)
        build = spawn(kit.args())
        code, out, err = finish(build)
        assert code == 0, err
        ref = reference(kit)
        # the watcher catches up (its build waits for the lock, then finds everything done)
        target = kit.out / "_posts/2024-02-01-photos3.md"
        while "algorotoscope/" not in (target.read_text() if target.is_file() else ""):
            assert watch.poll() is None
            assert time.monotonic() < deadline
            time.sleep(0.1)
        time.sleep(1.0)
        assert tree_state(kit.root) == before
    finally:
        watch.send_signal(signal.SIGINT)
        try:
            _, werr = watch.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            watch.kill()
            _, werr = watch.communicate()
    assert "Traceback" not in werr, werr
    assert leftovers(kit.out, kit.cache) == []
    assert_consistent(kit.out, kit.cache, ref, complete=True)
