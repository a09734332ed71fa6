"""The version has one source: ``voxmeter.__version__``."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import voxmeter

ROOT = Path(__file__).resolve().parent.parent


def test_the_version_comes_from_the_package_alone():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in project["project"]
    assert project["project"]["dynamic"] == ["version"]
    assert project["tool"]["hatch"]["version"]["path"] == "src/voxmeter/__init__.py"
    script = Path(sys.executable).parent / "voxmeter"  # the installed command
    printed = subprocess.run(
        [script, "--version"], capture_output=True, text=True, check=True
    ).stdout
    assert printed.strip() == f"voxmeter, version {voxmeter.__version__}"
    assert f"## [{voxmeter.__version__}]" in (ROOT / "CHANGELOG.md").read_text()
