"""Debian tools some tests drive (pgbouncer, podman, debootstrap), installed when missing.

CI runs as root on a fresh Debian machine, where ``apt-get install`` works;
a test skips only where the tool is absent and cannot be installed.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

_SBIN = "/usr/local/sbin:/usr/sbin:/sbin"
_updated = False


def find(command: str) -> str | None:
    """``command`` on PATH or in the sbin directories (not on a normal user's PATH)."""
    return shutil.which(command) or shutil.which(command, path=_SBIN)


def ensure(command: str, package: str) -> str:
    """The path of ``command``, apt-get installing ``package`` first when it is missing."""
    found = find(command)
    if found:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.skip(
            f"{command} is not installed and this user cannot install it"
            f" (needs root and apt-get): apt-get install {package}"
        )
    global _updated
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if not _updated:
        subprocess.run(["apt-get", "update", "-q"], env=env, check=True, capture_output=True)
        _updated = True
    subprocess.run(
        ["apt-get", "install", "-y", "-q", package], env=env, check=True, capture_output=True
    )
    found = find(command)
    assert found, f"apt-get installed {package} but {command} is still missing"
    return found
