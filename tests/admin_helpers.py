"""Admin identities for the admin API and console tests, made through the service."""

from __future__ import annotations

from datetime import timedelta

from voxmeter.domain.admins import IdentityKind, Role
from voxmeter.services.admins import COMMAND_LINE, AdminService
from voxmeter.storage.admin import open_admin_store


async def make_admin(database_url: str, clock, name: str, role: Role, kind: IdentityKind) -> str:
    """The new identity's password or key."""
    store = await open_admin_store(database_url)
    try:
        service = AdminService(store, clock, timedelta(hours=12))
        _, secret = await service.create(COMMAND_LINE, name, role, kind)
        return secret
    finally:
        await store.close()
