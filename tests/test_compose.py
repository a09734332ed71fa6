"""compose.yaml: PostgreSQL, a one-shot migration, replicas, and a balancer probing /readyz."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

import system_tools

ROOT = Path(__file__).resolve().parent.parent


def test_the_migration_runs_once_before_the_replicas_behind_a_probing_balancer():
    services = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]
    migrate, replicas, balancer = services["migrate"], services["voxmeter"], services["lb"]
    assert migrate["command"] == ["db", "upgrade"]
    assert migrate["restart"] == "no"
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert replicas["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert replicas["deploy"]["replicas"] > 1
    assert replicas["command"][0] == "serve"
    for service in (migrate, replicas):
        assert service["environment"]["VOXMETER_DATABASE_URL"].startswith("postgresql://")
        assert "@postgres:5432/" in service["environment"]["VOXMETER_DATABASE_URL"]
    (mount,) = balancer["volumes"]
    config = ROOT / mount.split(":")[0]
    assert "option httpchk GET /readyz" in config.read_text()
    haproxy = system_tools.ensure("haproxy", "haproxy")
    check = subprocess.run(
        [haproxy, "-c", "-f", str(config)], capture_output=True, text=True, check=False
    )
    assert check.returncode == 0, check.stdout + check.stderr
