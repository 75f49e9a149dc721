"""YAML alias bombs: refused in every YAML blogroto reads, by one loader (blogroto.safeyaml).

A 'billion laughs' is a few hundred bytes whose aliases stand for 10**7 or more strings. Kept as
a shared graph it is cheap, but anything that turns it into text (a title in a credit block, a
post title on a catalog page) expands it: 47 s, 3.3 GB and a 389 MB post once. Each reader goes
through `blogroto.safeyaml.compose_checked`, which counts what the aliases would expand to
(memoised per node) before constructing anything, and refuses past a small budget.
"""

from __future__ import annotations

import time

import pytest

from blogroto.errors import BlogrotoError, ConfigError
from blogroto.safeyaml import MAX_ALIAS_EXPANSION, load_yaml
from tests.reliability.kit import FILTER, fake_filter


def bomb(levels: int, width: int = 10, key: str = "title", indent: str = "") -> str:
    """Anchors a0..a{levels-1}, each a list of `width` aliases of the one before; `key` uses the last."""
    lines = [f'{indent}a0: &a0 [{",".join(["lol"] * width)}]']
    for n in range(1, levels):
        lines.append(f"{indent}a{n}: &a{n} [{','.join([f'*a{n - 1}'] * width)}]")
    lines.append(f"{indent}{key}: *a{levels - 1}")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("text", [
    bomb(7), bomb(9, 9), bomb(4),
    "s: &s " + "x" * 100_000 + "\nl: [" + ",".join(["*s"] * 30) + "]\n",  # one long string, many times
    "a: &a [*a]\n", "&a {x: *a}\n",  # recursive: never ends when written out
])
def test_loader_refuses_alias_bombs_cheaply(text):
    started = time.process_time()
    with pytest.raises(ConfigError, match="YAML alias") as err:
        load_yaml(text, "some/file.yml")
    assert str(err.value).startswith("some/file.yml:")
    assert time.process_time() - started < 1


@pytest.mark.parametrize("text, data", [
    ("d: &d {a: 1, b: [1, 2, 3]}\nx: *d\ny: {<<: *d, c: 2}\n",
     {"d": {"a": 1, "b": [1, 2, 3]}, "x": {"a": 1, "b": [1, 2, 3]}, "y": {"a": 1, "b": [1, 2, 3], "c": 2}}),
    (bomb(3), None),  # 1 110 strings: within the budget
    ("", None), ("# only a comment\n", None),
])
def test_loader_keeps_ordinary_aliases(text, data):
    loaded = load_yaml(text, "f.yml")
    if data is not None:
        assert loaded == data
    assert MAX_ALIAS_EXPANSION >= 10_000


def test_bomb_in_front_matter_fails_the_post_only(kit):
    front = bomb(7) + f"algorotoscope: {FILTER}\n"
    rel = kit.post("laughs", "![x](/assets/img/good.jpg)\n", front=front)
    started = time.process_time()
    result = kit.build()
    assert time.process_time() - started < 10
    assert result.code == 1, result.text
    (error,) = result.lines("error")
    assert error.startswith(f"{kit.root}/{rel}:") and "YAML aliases expand" in error, error
    assert kit.unchanged_copy(rel)
    kit.assert_good_post_built()
    catalog = (kit.out / "filters/tiny/index.html").read_text()
    assert len(catalog) < 100_000 and "lol" not in catalog


def test_bomb_in_filter_yaml_source_title_refuses_the_filter(kit):
    fake_filter(kit.filters, "laughing", meta="format: 1\nname: laughing\nnetwork: {width: 4, blocks: 1}\n"
                "source:\n" + bomb(7, indent="  "))
    rel = "_posts/2024-02-01-laughing.md"
    kit.write(rel, "---\nalgorotoscope: laughing\n---\n![g](/assets/img/good.jpg)\n")
    started = time.process_time()
    result = kit.build()
    assert time.process_time() - started < 10
    assert result.code == 1, result.text
    (error,) = result.lines("error")
    assert "laughing/filter.yaml:" in error and "YAML aliases expand" in error, error
    assert kit.unchanged_copy(rel)
    kit.assert_good_post_built()
    assert all(p.stat().st_size < 1_000_000 for p in kit.out.rglob("*") if p.is_file())


def test_bomb_in_config_stops_the_build(kit):
    kit.write("_config.yml", "title: x\n" + bomb(7, key="description"))
    result = kit.build()
    assert result.code == 2, result.text
    assert result.err.startswith(f"error: {kit.root}/_config.yml:") and "YAML aliases expand" in result.err


def test_bomb_in_datasets_credits_is_refused(tmp_path, monkeypatch):
    from blogroto import datasets

    path = tmp_path / "CREDITS.yaml"
    path.write_text(bomb(7, key="entries"))
    monkeypatch.setattr(datasets, "CREDITS_FILE", path)
    with pytest.raises(BlogrotoError, match="YAML aliases expand") as err:
        datasets.credits()
    assert str(path) in str(err.value)


def test_bomb_in_preview_data_is_left_out_with_a_warning(tmp_path):
    from blogroto.publish.preview import _load_data

    (tmp_path / "_data").mkdir()
    (tmp_path / "_data/bomb.yml").write_text(bomb(7))
    (tmp_path / "_data/fine.yml").write_text("a: 1\n")
    warnings: list[str] = []
    data = _load_data(tmp_path, warnings)
    assert data == {"fine": {"a": 1}}
    (warning,) = warnings
    assert "_data/bomb.yml" in warning and "YAML aliases expand" in warning
