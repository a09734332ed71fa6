"""The container image: the project's Dockerfile, unchanged, built and run with podman.

No image registry is reachable where CI runs, so the base image the
Dockerfile names is made here: Debian bookworm by debootstrap (cached in
/var/cache/voxmeter-ci, or $VOXMETER_CI_CACHE, between runs), imported into
podman, with python3 and its venv module added, then tagged with that name.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import resource
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

import system_tools
import voxmeter
from conftest import free_port

pytestmark = pytest.mark.container

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("VOXMETER_CI_CACHE", "/var/cache/voxmeter-ci"))
SUITE = "bookworm"
DEBIAN = f"localhost/voxmeter-ci/debian:{SUITE}-minbase"
# One image per checkout: concurrent runs from other worktrees keep their own.
IMAGE = f"localhost/voxmeter-test:{hashlib.sha256(str(ROOT).encode()).hexdigest()[:12]}"
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


@pytest.fixture(scope="module")
def engine() -> Engine:
    """podman, and the options under which it starts a trivial container, if any do."""
    podman = system_tools.ensure("podman", "podman")
    debian_base(podman)
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


@pytest.fixture(scope="module")
def image(engine: Engine) -> str:
    """The project's image, built from its Dockerfile on the stand-in base."""
    # Without a runtime, RUN steps still work in a chroot: the filesystem is built.
    options = engine.options if not engine.why_not else ["--isolation=chroot"]
    stand_in = f"localhost/voxmeter-ci/python:{hashlib.sha256(STAND_IN.encode()).hexdigest()[:12]}"
    if run(engine.podman, "image", "exists", stand_in).returncode != 0:
        with tempfile.TemporaryDirectory() as context:
            cas = Path(context) / "ca"
            if HOST_CAS.is_dir():
                shutil.copytree(HOST_CAS, cas)
            else:
                cas.mkdir()
            (Path(context) / "Containerfile").write_text(STAND_IN)
            must(engine.podman, "build", *options, "--pull=never", "-t", stand_in, context)
    must(engine.podman, "tag", stand_in, base_image())
    started = time.monotonic()
    # Docker format: the OCI format has no HEALTHCHECK.
    must(engine.podman, "build", *options, "--pull=never", "--format", "docker", "-t", IMAGE,
         str(ROOT))  # fmt: skip
    print(f"podman build: {time.monotonic() - started:.0f} s")
    return IMAGE


def test_the_image_holds_the_wheel_in_a_venv_as_a_non_root_user(engine: Engine, image: str):
    (config,) = json.loads(must(engine.podman, "image", "inspect", image))
    assert config["Config"]["User"] == "voxmeter"
    assert config["Config"]["Entrypoint"] == ["voxmeter"]
    assert "/readyz" in " ".join(config["Healthcheck"]["Test"])  # podman keeps it here
    container = must(engine.podman, "create", image).strip()
    try:
        export = subprocess.Popen([engine.podman, "export", container], stdout=subprocess.PIPE)
        assert export.stdout is not None
        with tarfile.open(fileobj=export.stdout, mode="r|") as layers:
            names = {member.name.removeprefix("./") for member in layers}
        assert export.wait() == 0
    finally:
        run(engine.podman, "rm", container)
    site = "opt/voxmeter/lib/python3.11/site-packages/voxmeter"
    assert "opt/voxmeter/bin/voxmeter" in names
    assert {
        f"{site}/storage/migrations/env.py",
        f"{site}/storage/migrations/versions/0001_initial.py",
    } <= names
    compilers = {
        n for n in names if re.fullmatch(r"usr/(local/)?bin/(\S+-)?(gcc|cc|c\+\+|g\+\+)", n)
    }
    assert not compilers
    assert not any(n.startswith(("src/", "opt/build/", "tmp/dist/")) for n in names)


def test_the_demo_answers_a_report_call_from_the_container(engine: Engine, image: str):
    if engine.why_not:
        pytest.skip(f"podman cannot start a container on this machine: {engine.why_not}")
    podman, options = engine.podman, engine.options
    version = must(podman, "run", "--rm", *options, image, "--version").strip()
    assert version == f"voxmeter, version {voxmeter.__version__}"
    must(podman, "run", "--rm", *options, image, "db", "upgrade")  # the one-shot migration
    port = free_port()
    name = f"voxmeter-test-{os.getpid()}"
    must(podman, "run", "-d", "--name", name, *options, "-p", f"127.0.0.1:{port}:8000",
         image, "demo", "--host", "0.0.0.0", "--port", "8000")  # noqa: S104 (inside the container)  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        secret = None
        while secret is None:
            logs = run(podman, "logs", name).stdout
            found = re.search(r"^(vxm_\S+)$", logs, re.M)
            secret = found.group(1) if found else None
            assert secret or time.monotonic() < deadline, run(podman, "logs", name).stderr
            time.sleep(0.5)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            while True:
                try:
                    if http.get("/readyz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, run(podman, "logs", name).stderr
                time.sleep(0.5)
            answer = http.get(
                "/api/v2/billing.php",
                params={"api": "ivr_calls"},
                headers={"wolkvox-token": secret},
            )
        assert answer.status_code == 200
        body = answer.json()
        assert list(body) == ["code", "error", "msg", "data"]
        assert (body["code"], body["error"]) == (200, None)
        (row,) = body["data"]
        assert row["operation"] == "Demo Contact Center" and row["items"].isdigit()
        assert run(podman, "healthcheck", "run", name).returncode == 0
    finally:
        run(podman, "rm", "-f", "-t", "0", name)
