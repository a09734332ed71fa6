"""The base image the Dockerfile names, made locally: no image registry is reachable in CI.

Debian bookworm by debootstrap (cached in /var/cache/voxmeter-ci, or
$VOXMETER_CI_CACHE, between runs), imported into podman, with python3 and
its venv module added, then tagged with the Dockerfile's BASE_IMAGE. Used by
tests/test_container.py, and run as a script by .ci/run to have it ready
before the tests start.
"""

from __future__ import annotations

import hashlib
import os
import re
import resource
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import system_tools

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("VOXMETER_CI_CACHE", "/var/cache/voxmeter-ci"))
SUITE = "bookworm"
DEBIAN = f"localhost/voxmeter-ci/debian:{SUITE}-minbase"
# The stand-in for the Dockerfile's base. The sandbox CI runs in intercepts
# TLS with its own CA, so the host's extra CAs go in and pip is told to use
# the system bundle; elsewhere the directory is empty and that changes nothing.
STAND_IN = f"""\
FROM {DEBIAN}
COPY ca/ /usr/local/share/ca-certificates/
RUN apt-get update -q \\
    && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \\
        python3 python3-venv ca-certificates \\
    && rm -rf /var/lib/apt/lists/*
ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt
"""
HOST_CAS = Path("/usr/local/share/ca-certificates")


def base_image() -> str:
    """The Dockerfile's default base image."""
    match = re.search(r"^ARG BASE_IMAGE=(\S+)$", (ROOT / "Dockerfile").read_text(), re.M)
    assert match, "the Dockerfile names its base in ARG BASE_IMAGE=…"
    return match.group(1)


def debian_mirror() -> str:
    """The Debian mirror this machine's apt uses for the suite."""
    sources = Path("/etc/apt/sources.list.d")
    for path in sorted(sources.glob("*.sources")):
        for stanza in path.read_text().split("\n\n"):
            fields = dict(re.findall(r"^(\w[\w-]*):\s*(.*)$", stanza, re.M))
            if (
                "deb" in fields.get("Types", "").split()
                and SUITE in fields.get("Suites", "").split()
            ):
                return fields["URIs"].split()[0]
    for path in [Path("/etc/apt/sources.list"), *sorted(sources.glob("*.list"))]:
        if path.exists():
            found = re.search(rf"^deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+{SUITE}\s", path.read_text(), re.M)
            if found:
                return found.group(1)
    return "http://deb.debian.org/debian"


def run(*command: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)


def must(*command: str, timeout: float = 900) -> str:
    result = run(*command, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(command)}:\n{result.stdout[-3000:]}{result.stderr}"
    return result.stdout


def debian_base(podman: str) -> None:
    """Debian minbase as a local image; debootstrap runs only when the cache is empty."""
    if run(podman, "image", "exists", DEBIAN).returncode == 0:
        return
    tarball = CACHE / f"debian-{SUITE}-minbase.tar"
    if not tarball.exists():
        debootstrap = system_tools.ensure("debootstrap", "debootstrap")
        CACHE.mkdir(parents=True, exist_ok=True)
        rootfs = Path(tempfile.mkdtemp(prefix="rootfs-", dir=CACHE))
        try:
            must(debootstrap, "--variant=minbase", SUITE, str(rootfs), debian_mirror())
            # What a slim image leaves out: downloaded packages and package lists.
            for leftover in ("var/cache/apt/archives", "var/lib/apt/lists"):
                for path in (rootfs / leftover).glob("*"):
                    if path.is_file():
                        path.unlink()
            partial = tarball.with_suffix(f".tar.{os.getpid()}")
            must("tar", "-C", str(rootfs), "-cf", str(partial), ".")
            partial.replace(tarball)  # whole or not at all, for the next run
        finally:
            shutil.rmtree(rootfs)
    must(podman, "import", str(tarball), DEBIAN)


@dataclass
class Engine:
    podman: str
    options: list[str]  # for podman run and podman build
    why_not: str  # why no container can start here; empty when one can


def _engine_options(limits: list[str]) -> Iterator[list[str]]:
    yield []
    yield limits
    yield ["--runtime", system_tools.ensure("runc", "runc"), *limits]  # installed only if needed


def probe(podman: str) -> Engine:
    """The options under which podman starts a trivial container, if any do."""
    # Sandboxes may refuse to raise rlimits past the current hard limits, which
    # podman's defaults (nofile 1048576, nproc 4194304) do; and crun refuses a
    # cgroup v1 + v2 hybrid, which runc accepts.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    limits = ["--ulimit", f"nofile={soft}:{hard}", "--ulimit", "nproc=4096:4096"]
    failures = []
    for options in _engine_options(limits):
        result = run(podman, "run", "--rm", *options, DEBIAN, "true", timeout=120)
        if result.returncode == 0:
            return Engine(podman, options, "")
        failures.append(f"[podman run {' '.join(options)} … true] {result.stderr.strip()}")
    return Engine(podman, [], " / ".join(failures))


def build_options(engine: Engine) -> list[str]:
    # Without a runtime, RUN steps still work in a chroot: the filesystem is built.
    return engine.options if not engine.why_not else ["--isolation=chroot"]


def prepare() -> Engine:
    """podman, the Dockerfile's base image (the stand-in, made when missing), and how to run."""
    podman = system_tools.ensure("podman", "podman")
    debian_base(podman)
    engine = probe(podman)
    stand_in = f"localhost/voxmeter-ci/python:{hashlib.sha256(STAND_IN.encode()).hexdigest()[:12]}"
    if run(podman, "image", "exists", stand_in).returncode != 0:
        with tempfile.TemporaryDirectory() as context:
            cas = Path(context) / "ca"
            if HOST_CAS.is_dir():
                shutil.copytree(HOST_CAS, cas)
            else:
                cas.mkdir()
            (Path(context) / "Containerfile").write_text(STAND_IN)
            must(podman, "build", *build_options(engine), "--pull=never", "-t", stand_in, context)
    must(podman, "tag", stand_in, base_image())
    return engine


if __name__ == "__main__":
    # .ci/run prepares the base while other work goes on; the test then finds it.
    started = time.monotonic()
    prepared = prepare()
    how = prepared.why_not or f"podman options {prepared.options}"
    print(f"container base {base_image()} ready in {time.monotonic() - started:.0f} s; {how}")
