"""Admin sessions: expired ones stop working and are swept away."""

from __future__ import annotations

import sqlite3
from datetime import timedelta

import psycopg
import pytest

from voxmeter.contract.errors import ApiError
from voxmeter.domain.admins import IdentityKind, Role
from voxmeter.services.admins import COMMAND_LINE, AdminService
from voxmeter.storage import split_pgbouncer_flag
from voxmeter.storage.admin import open_admin_store
from voxmeter.storage.sqlite import sqlite_path


def session_rows(database_url: str) -> int:
    query = "SELECT count(*) FROM admin_sessions"
    if database_url.startswith("postgresql://"):
        with psycopg.connect(split_pgbouncer_flag(database_url)[0]) as conn:
            row = conn.execute(query).fetchone()
    else:
        with sqlite3.connect(sqlite_path(database_url)) as db:
            row = db.execute(query).fetchone()
    assert row is not None
    return int(row[0])


async def test_expired_sessions_are_refused_then_swept_at_the_next_login(
    store, database_url, clock
):
    admin_store = await open_admin_store(database_url)
    try:
        service = AdminService(admin_store, clock, timedelta(hours=12))
        _, password = await service.create(COMMAND_LINE, "Ana", Role.ADMIN, IdentityKind.USER)
        first = await service.login("Ana", password, "127.0.0.1")
        second = await service.login("Ana", password, "127.0.0.1")
        assert session_rows(database_url) == 2

        clock.advance(hours=12)
        with pytest.raises(ApiError) as refused:
            await service.by_session(first.cookie)
        assert refused.value.status == 401
        assert session_rows(database_url) == 2  # expired, still stored

        third = await service.login("Ana", password, "127.0.0.1")
        assert session_rows(database_url) == 1
        assert (await service.by_session(third.cookie)).name == "Ana"
        with pytest.raises(ApiError):
            await service.by_session(second.cookie)
    finally:
        await admin_store.close()
