"""``voxmeter operation``/``token`` with ``--url``: the same commands through the admin API.

Each command is run once on the database and once through a real server's
admin API, both on the same database, so their outputs and exit statuses
can be compared as they are.
"""

from __future__ import annotations

import pytest
from click.testing import CliRunner, Result

from admin_helpers import make_admin
from voxmeter.cli import main
from voxmeter.domain.admins import IdentityKind, Role

# Where the remote runs' database would be, were it ever opened: nowhere.
NO_DATABASE = "sqlite:////nonexistent/voxmeter.db"


@pytest.fixture
async def keys(database_url, clock):
    return {
        role: await make_admin(database_url, clock, f"{role.value}-key", role, IdentityKind.KEY)
        for role in (Role.ADMIN, Role.VIEWER)
    }


@pytest.fixture
def cli(server, database_url, keys):
    runner = CliRunner()

    def local(*args: str) -> Result:
        env = {"VOXMETER_DATABASE_URL": database_url, "VOXMETER_ADMIN_KEY": None}
        return runner.invoke(main, list(args), env=env, catch_exceptions=False)

    def remote(*args: str, key: str | None = keys[Role.ADMIN]) -> Result:
        env = {"VOXMETER_DATABASE_URL": NO_DATABASE, "VOXMETER_ADMIN_KEY": key}
        return runner.invoke(
            main, [*args, "--url", server.base_url], env=env, catch_exceptions=False
        )

    return local, remote


def same(local: Result, remote: Result) -> Result:
    assert (remote.exit_code, remote.stdout, remote.stderr) == (
        local.exit_code,
        local.stdout,
        local.stderr,
    )
    return remote


def test_remote_commands_answer_as_the_local_ones(cli):
    local, remote = cli
    created = remote(
        "operation", "create", "Acme BPO", "--licenses", "40", "--pbx", "2",
        "--service", "rsync", "--timezone", "America/Lima", "--server-id", "0024",
    )  # fmt: skip
    assert created.exit_code == 0, created.output
    assert "created operation 'Acme BPO'" in created.stderr
    assert created.stdout == same(local("operation", "show", "Acme BPO"),
                                  remote("operation", "show", "Acme BPO")).stdout  # fmt: skip

    updated = remote("operation", "update", "Acme BPO", "--licenses", "45", "--no-services")
    assert updated.exit_code == 0, updated.output
    shown = same(local("operation", "show", "Acme BPO"), remote("operation", "show", "Acme BPO"))
    assert "licenses    45" in shown.stdout
    assert "services    -" in shown.stdout
    same(local("operation", "list"), remote("operation", "list"))

    issued = remote("token", "create", "Acme BPO", "--description", "billing")
    assert issued.exit_code == 0, issued.output
    secret = issued.stdout.strip()
    token_id = issued.stderr.split()[3]
    listed = same(local("token", "list", "Acme BPO"), remote("token", "list", "Acme BPO"))
    assert token_id in listed.stdout and "active" in listed.stdout
    assert "45000" in listed.stdout and secret not in listed.stdout

    revoked = remote("token", "revoke", token_id)
    assert (revoked.exit_code, revoked.stderr) == (0, f"revoked {token_id}\n")
    listed = same(local("token", "list", "Acme BPO"), remote("token", "list", "Acme BPO"))
    assert "revoked" in listed.stdout


@pytest.mark.parametrize(
    "args",
    [
        ["operation", "show", "Nobody"],
        ["operation", "update", "Nobody", "--licenses", "3"],
        ["operation", "create", "Bad", "--licenses", "1", "--timezone", "Mars/Base"],
        ["operation", "create", "Bad", "--licenses", "-1"],
        ["token", "create", "Nobody"],
        ["token", "list", "Nobody"],
        ["token", "revoke", "tok_nothing"],
    ],
)
def test_remote_refusals_are_the_local_ones(cli, args):
    local, remote = cli
    refused = same(local(*args), remote(*args))
    assert refused.exit_code in (1, 2) and refused.stderr.startswith("Error: ")
    assert "Bad" not in same(local("operation", "list"), remote("operation", "list")).stdout


def test_remote_needs_a_key_with_the_role_and_never_shows_it(cli, keys, server):
    _, remote = cli
    missing = remote("operation", "list", key=None)
    assert missing.exit_code == 2
    assert "--admin-key or VOXMETER_ADMIN_KEY" in missing.stderr

    wrong = remote("operation", "list", key="vxa_not-a-real-key")
    assert wrong.exit_code == 1 and "AN ADMIN KEY OR SESSION IS REQUIRED" in wrong.stderr
    assert "vxa_not-a-real-key" not in wrong.output

    viewer = keys[Role.VIEWER]
    refused = remote("operation", "create", "Viewer Op", "--licenses", "1", key=viewer)
    assert refused.exit_code == 1 and "ADMIN" in refused.stderr
    assert viewer not in refused.output
    assert "Viewer Op" not in remote("operation", "list", key=viewer).stdout


def test_remote_changes_are_audited_under_the_key(cli, keys, server):
    _, remote = cli
    assert remote("operation", "create", "Audited", "--licenses", "1").exit_code == 0
    with server.client() as http:
        entries = http.get(
            "/admin/api/v1/audit", headers={"Authorization": f"Bearer {keys[Role.VIEWER]}"}
        ).json()["data"]
    assert (entries[0]["actor"], entries[0]["action"], entries[0]["target"]) == (
        "admin-key",
        "operation.create",
        "Audited",
    )


def test_an_unreachable_server_is_a_clear_error(keys):
    result = CliRunner().invoke(
        main,
        ["operation", "list", "--url", "http://127.0.0.1:9"],
        env={"VOXMETER_ADMIN_KEY": keys[Role.ADMIN], "VOXMETER_DATABASE_URL": NO_DATABASE},
    )
    assert result.exit_code == 1
    assert "cannot reach http://127.0.0.1:9" in result.stderr
    assert keys[Role.ADMIN] not in result.output
