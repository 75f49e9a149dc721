"""Which site a command runs for, and the one filter search path every command uses (issue 11)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from blogroto.errors import ConfigError
from blogroto.filters import (
    ORIGIN_BUILTIN,
    ORIGIN_SITE,
    ORIGIN_USER,
    FilterLibrary,
    user_filters_dir,
)
from blogroto.locate import find_site_root, site_for_command
from tests.conftest import REPO, make_filter
from tests.test_build import jpeg, write


def run(*args, cwd, **env):
    environ = dict(os.environ, PYTHONPATH=str(REPO), NO_COLOR="1", **env)
    return subprocess.run([sys.executable, "-m", "blogroto", *args], capture_output=True, text=True, cwd=cwd,
                          env=environ, timeout=300)


@pytest.fixture
def user_lib(tmp_path, monkeypatch):
    home = tmp_path / "user-filters"
    monkeypatch.setenv("BLOGROTO_FILTERS_HOME", str(home))
    return home


@pytest.fixture(scope="module")
def art_filters(tmp_path_factory):
    """Real (tiny) filter folders to copy into a site, the user library or --out."""
    base = tmp_path_factory.mktemp("art")
    make_filter(base, "my-style", seed=3, title="My Own Art")
    make_filter(base, "shared", seed=4, title="Built Elsewhere")
    return base


def copy_filter(src: Path, dest_parent: Path) -> Path:
    import shutil

    dest_parent.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copytree(src, dest_parent / src.name))


# -- the site a command runs for -------------------------------------------------------------


def test_build_refuses_a_folder_without_config_and_writes_nothing(tmp_path):
    folder = tmp_path / "photos"
    write(folder / "holiday.md", "---\nalgorotoscope: copper-circuit\n---\n")
    res = run("build", cwd=folder)
    assert res.returncode == 2, res.stderr
    assert f"no _config.yml in {folder}: is this a Jekyll site?" in res.stderr
    assert "--no-config" in res.stderr and "Traceback" not in res.stderr
    assert sorted(p.name for p in folder.iterdir()) == ["holiday.md"]  # no _blogroto/, no cache
    for command in ("gc", "watch", "serve", "preview"):
        res = run(command, str(folder), cwd=tmp_path)
        assert res.returncode == 2 and "no _config.yml" in res.stderr, (command, res.stderr)
    assert sorted(p.name for p in folder.iterdir()) == ["holiday.md"]
    # --json still answers with one JSON object
    res = run("build", "--json", cwd=folder)
    assert res.returncode == 2 and '"ok": false' in res.stdout and "no _config.yml" in res.stdout


def test_no_config_flag_builds_the_folder_anyway(tmp_path):
    folder = tmp_path / "plain"
    write(folder / "index.md", "hello\n")
    res = run("build", "--no-config", cwd=folder)
    assert res.returncode == 0, res.stderr
    assert (folder / "_blogroto/site/index.md").read_text() == "hello\n"


def test_inside_a_site_the_site_is_built_not_the_content_folder(tmp_path):
    site = tmp_path / "blog"
    write(site / "_config.yml", "title: Blog\n")
    write(site / "_posts/2024-01-01-a.md", "---\ntitle: a\n---\nhi\n")
    posts = site / "_posts"
    res = run("build", cwd=posts)
    assert res.returncode == 0, res.stderr
    assert f"{posts} is inside the site {site}; building that site" in res.stderr
    assert sorted(p.name for p in posts.iterdir()) == ["2024-01-01-a.md"]  # no _posts/_blogroto/, no cache
    assert (site / "_blogroto/site/_posts/2024-01-01-a.md").exists()
    # the same with SITE named, and with --no-config: never a build of the content folder itself
    res = run("build", "_posts", "--no-config", cwd=site)
    assert res.returncode == 0 and sorted(p.name for p in posts.iterdir()) == ["2024-01-01-a.md"], res.stderr


def test_site_for_command_unit(tmp_path):
    write(tmp_path / "s/_config.yaml", "")
    (tmp_path / "s/deep/er").mkdir(parents=True)
    assert find_site_root(tmp_path / "s/deep/er") == tmp_path / "s"
    assert site_for_command(tmp_path / "s") == tmp_path / "s"
    notes = []
    assert site_for_command(tmp_path / "s/deep", note=notes.append) == tmp_path / "s" and notes
    (tmp_path / "bare").mkdir()
    with pytest.raises(ConfigError, match="pass --no-config"):
        site_for_command(tmp_path / "bare")
    assert site_for_command(tmp_path / "bare", no_config=True) == tmp_path / "bare"


# -- one filter search path --------------------------------------------------------------------


def test_search_path_order_and_origins(tmp_path, user_lib, art_filters):
    site_dir = tmp_path / "site/_filters"
    copy_filter(art_filters / "shared", site_dir)
    copy_filter(art_filters / "shared", user_lib)
    copy_filter(art_filters / "my-style", user_lib)
    lib = FilterLibrary(site_dirs=[site_dir])
    assert [o for _, o in lib.entries] == [ORIGIN_SITE, ORIGIN_USER, ORIGIN_BUILTIN]
    assert user_filters_dir() == user_lib.resolve()
    assert lib.origin("shared") == ORIGIN_SITE and lib.get("shared").folder == site_dir / "shared"
    assert lib.origin("my-style") == ORIGIN_USER
    assert lib.origin("copper-circuit") == ORIGIN_BUILTIN
    assert lib.origin("nope") is None


def test_user_library_defaults_to_the_platform_data_folder(monkeypatch):
    import platformdirs

    monkeypatch.delenv("BLOGROTO_FILTERS_HOME")
    assert user_filters_dir() == Path(platformdirs.user_data_dir("blogroto", appauthor=False)) / "filters"


def test_filters_and_apply_find_user_and_site_filters(tmp_path, user_lib, art_filters):
    copy_filter(art_filters / "my-style", user_lib)
    site = tmp_path / "blog"
    write(site / "_config.yml", "title: Blog\n")
    copy_filter(art_filters / "shared", site / "_filters")
    (site / "_posts").mkdir()
    env = {"BLOGROTO_FILTERS_HOME": str(user_lib)}

    listing = run("filters", cwd=site / "_posts", **env)
    assert listing.returncode == 0, listing.stderr
    lines = {line.split()[0]: line.split()[1] for line in listing.stdout.splitlines()}
    assert lines["shared"] == "site" and lines["my-style"] == "user" and lines["copper-circuit"] == "built-in"
    outside = run("filters", cwd=tmp_path, **env)
    assert "shared" not in outside.stdout and "my-style" in outside.stdout

    write(tmp_path / "photo.jpg", jpeg(2, size=(24, 16)))
    for name in ("my-style", "shared"):
        res = run("apply", str(tmp_path / "photo.jpg"), "-f", name, "-o", str(tmp_path / f"{name}.jpg"),
                  cwd=site / "_posts", **env)
        assert res.returncode == 0, res.stderr
        assert (tmp_path / f"{name}.jpg").is_file()


def test_build_finds_filters_in_the_user_library(tmp_path, user_lib, art_filters):
    from blogroto.build import Builder

    copy_filter(art_filters / "my-style", user_lib)
    site = tmp_path / "blog"
    write(site / "_config.yml", "title: Blog\n")
    write(site / "a.jpg", jpeg(3, size=(24, 16)))
    write(site / "_posts/2024-01-01-a.md", "---\nalgorotoscope: my-style\n---\n![a](/a.jpg)\n")
    report = Builder(site).build()
    assert report.errors == [] and report.images_stylized == 1


def test_train_destination_and_last_line(tmp_path, user_lib, monkeypatch):
    from blogroto.commands.train import destination, how_to_use

    monkeypatch.chdir(tmp_path)
    where = destination(None, None)
    assert where.kind == "user" and where.out_dir == user_lib.resolve()
    make_filter(user_lib, "my-style")
    line = how_to_use("my-style", where.out_dir / "my-style", where)
    assert "blogroto apply -f my-style PHOTO" in line and "algorotoscope: my-style" in line

    site = tmp_path / "blog"
    write(site / "_config.yml", "title: Blog\n")
    (site / "_posts").mkdir()
    by_option = destination(site, None)
    monkeypatch.chdir(site / "_posts")
    for where in (by_option, destination(None, None)):
        assert where.kind == "site" and where.out_dir == site / "_filters"
        make_filter(site / "_filters", "x")
        assert how_to_use("x", site / "_filters/x", where).startswith("use it: put `algorotoscope: x`")
    where = destination(None, tmp_path / "elsewhere")
    assert where.kind == "--out"
    assert f"blogroto apply -f {tmp_path / 'elsewhere/x'} PHOTO" in how_to_use("x", tmp_path / "elsewhere/x", where)
    (tmp_path / "elsewhere").mkdir()
    with pytest.raises(ConfigError, match="no _config.yml"):
        destination(tmp_path / "elsewhere", None)


def test_cli_train_writes_into_the_site_and_says_how_to_use_it(tmp_path, user_lib):
    from click.testing import CliRunner

    from blogroto.cli import cli
    from tests.train_helpers import tiny_config

    cfg = tiny_config(tmp_path)
    site = tmp_path / "blog"
    write(site / "_config.yml", "title: Blog\n")
    common = ["--content", str(cfg.content_dirs[0]), "--no-builtin-content", "--steps", "2", "--size", "32",
              "--batch", "1", "--style-size", "32", "--width", "4", "--blocks", "1",
              "--vgg-weights", str(cfg.vgg_weights), "--preview-every", "1"]
    result = CliRunner().invoke(cli, ["train", str(cfg.artwork), "--name", "my-style", "--site", str(site), *common],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert (site / "_filters/my-style/filter.yaml").is_file()
    assert result.output.strip().splitlines()[-1].startswith("use it: put `algorotoscope: my-style`")
    # distilling: the teacher is found by name in the site's _filters/, the student written beside it
    i = common.index("--style-size")
    distill = common[:i] + common[i + 2:]  # --style-size has no effect with --teacher
    result = CliRunner().invoke(cli, ["train", "--teacher", "my-style", "--name", "my-fast", "--site", str(site),
                                      *distill], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert (site / "_filters/my-fast/filter.yaml").is_file()
