"""The container image: the project's Dockerfile, unchanged, built and run with podman.

The base image it names comes from tests/container_base.py (debootstrap, no registry).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import tarfile
import time

import httpx
import pytest

import voxmeter
from conftest import free_port
from container_base import ROOT, Engine, build_options, must, prepare, run

pytestmark = pytest.mark.container

# One image per checkout: concurrent runs from other worktrees keep their own.
IMAGE = f"localhost/voxmeter-test:{hashlib.sha256(str(ROOT).encode()).hexdigest()[:12]}"


@pytest.fixture(scope="module")
def engine() -> Engine:
    return prepare()


@pytest.fixture(scope="module")
def image(engine: Engine) -> str:
    """The project's image, built from its Dockerfile on the stand-in base."""
    started = time.monotonic()
    # Docker format: the OCI format has no HEALTHCHECK.
    must(engine.podman, "build", *build_options(engine), "--pull=never", "--format", "docker",
         "-t", IMAGE, str(ROOT))  # fmt: skip
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
