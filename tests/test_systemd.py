"""The systemd units of deploy/systemd pass ``systemd-analyze`` and are hardened."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNITS = Path(__file__).resolve().parent.parent / "deploy" / "systemd"

pytestmark = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None,
    reason="systemd-analyze is not installed (systemd's own tools are needed to check units)",
)


def installed_copy(unit: str, directory: Path) -> Path:
    """The unit as installed here: verify checks that ExecStart's program exists, so
    /opt/voxmeter becomes the environment running these tests (voxmeter is in it)."""
    text = (UNITS / unit).read_text()
    text = text.replace("/etc/voxmeter/voxmeter.env", str(UNITS / "voxmeter.env"))
    copy = directory / unit
    copy.write_text(text.replace("/opt/voxmeter/", f"{sys.prefix}/"))
    return copy


@pytest.mark.parametrize("unit", ["voxmeter.service", "voxmeter-db-upgrade.service"])
def test_unit_verifies_and_is_hardened(unit: str, tmp_path: Path):
    copy = installed_copy(unit, tmp_path)
    verify = subprocess.run(
        ["systemd-analyze", "verify", str(copy)], capture_output=True, text=True, check=False
    )
    assert (verify.returncode, verify.stdout + verify.stderr) == (0, "")
    # Exposure 0.0 (locked down) to 10.0 (unprotected); the threshold is in tenths.
    security = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", "--threshold=20", str(copy)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert security.returncode == 0, security.stdout[-3000:] + security.stderr
