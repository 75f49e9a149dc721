"""The architecture's rules (pyproject.toml, [tool.importlinter]) hold for the package under test:
only engine/runtime imports TensorFlow and Keras; no two modules or packages import each other in a
circle; and the layers hold (commands over publish over build over credits, imaging and the engine
over the site over references: nothing imports a layer above it). docs/ARCHITECTURE.md explains
the layout."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_are_kept():
    lint = Path(sys.executable).with_name("lint-imports")
    proc = subprocess.run([str(lint), "--config", str(ROOT / "pyproject.toml")], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 broken" in proc.stdout and "3 kept" in proc.stdout, proc.stdout


def test_every_subpackage_ships_in_the_wheel():
    """pyproject.toml lists the packages explicitly (two of them live outside blogroto/): a new
    folder of modules missing from that list would be left out of the wheel."""
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "blogroto").rglob("__init__.py")}
    assert found <= listed, f"add to [tool.setuptools] packages: {sorted(found - listed)}"
