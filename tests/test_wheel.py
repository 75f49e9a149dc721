"""A normal install works: the wheel carries the built-in filters and templates, and builds the
sample site from a clean environment that cannot see this checkout."""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _wheel(tmp_path: Path) -> Path:
    """The wheel CI built (BLOGROTO_WHEEL), else one built from this checkout now."""
    if os.environ.get("BLOGROTO_WHEEL"):
        return Path(os.environ["BLOGROTO_WHEEL"])
    if not (REPO / "blogroto").is_dir():
        pytest.skip("no checkout to build a wheel from, and BLOGROTO_WHEEL is not set")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path / "dist"), str(REPO)],
                   check=True, capture_output=True, timeout=600)
    return next((tmp_path / "dist").glob("blogroto-*.whl"))


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    return _wheel(tmp_path_factory.mktemp("wheel"))


def test_wheel_carries_builtin_filters_and_templates(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for builtin in (REPO / "styles").iterdir() if (REPO / "styles").is_dir() else []:
        assert f"blogroto/styles/{builtin.name}/filter.yaml" in names
        assert f"blogroto/styles/{builtin.name}/weights.npz" in names
    assert "blogroto/templates/credit.html.j2" in names
    assert "blogroto/templates/catalog/index.html.j2" in names
    assert any(n.startswith("blogroto/styles/") and n.endswith("/weights.npz") for n in names)


@pytest.mark.slow
def test_wheel_in_a_clean_environment_builds_the_sample_site(wheel, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    # Install the wheel alone; its dependencies come from this environment's site-packages, added
    # by a .pth file (whose own .pth files, an editable blogroto's among them, are not processed).
    target = Path(subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                 capture_output=True, text=True, check=True).stdout.strip())
    subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "-q", "--no-deps", str(wheel)],
                   check=True, capture_output=True, timeout=600)
    (target / "deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")

    def blogroto(*args, cwd):
        return subprocess.run([str(py), "-m", "blogroto", *args], capture_output=True, text=True,
                              cwd=cwd, timeout=1800, env={**os.environ, "PYTHONPATH": "", "PYTHONUNBUFFERED": "1"})

    where = subprocess.run([str(py), "-c", "import blogroto; print(blogroto.__file__)"], capture_output=True,
                           text=True, cwd=tmp_path, env={**os.environ, "PYTHONPATH": ""})
    assert str(target) in where.stdout, where.stdout + where.stderr  # the wheel, not this checkout

    listed = blogroto("filters", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    shipped = [p.name for p in (target / "blogroto" / "styles").iterdir() if (p / "filter.yaml").is_file()]
    assert shipped and all(name in listed.stdout for name in shipped), listed.stdout

    site_dir = tmp_path / "sample_site"
    shutil.copytree(REPO / "sample_site", site_dir, ignore=shutil.ignore_patterns("_blogroto", ".blogroto-cache"))
    built = blogroto("build", str(site_dir), cwd=tmp_path)
    assert built.returncode == 0, built.stdout + built.stderr
    assert "credit template not found" not in built.stderr and "unknown filter" not in built.stderr
    out = site_dir / "_blogroto" / "site"
    assert list((out / "assets" / "algorotoscope").glob("*-*-*.*"))
