"""Administering operations and tokens, one interface for every place it is done from.

The ``voxmeter operation`` and ``voxmeter token`` commands are written once
against :class:`Administration`: :class:`LocalAdministration` runs the use
cases over the database directly, and :class:`voxmeter.client.admin.AdminClient`
asks a remote server's admin API for the same things, so the same command
gives the same output and the same refusals either way.
"""

from __future__ import annotations

from typing import Protocol

from voxmeter.domain.models import Operation, TokenScope
from voxmeter.services import Services
from voxmeter.services.admin import IssuedToken, TokenStanding


class Administration(Protocol):
    async def operations(self) -> list[Operation]: ...

    async def operation(self, name: str) -> Operation:
        """404 when there is none."""

    async def create_operation(
        self,
        name: str,
        *,
        licenses: int,
        pbx: int,
        services: frozenset[str],
        timezone: str,
        server_id: str,
    ) -> Operation: ...

    async def update_operation(
        self,
        name: str,
        *,
        licenses: int | None,
        pbx: int | None,
        services: frozenset[str] | None,
        timezone: str | None,
        server_id: str | None,
    ) -> Operation:
        """Fields given as None stay as they are."""

    async def create_token(
        self, operation: str, scope: TokenScope, description: str
    ) -> IssuedToken: ...

    async def token_standings(self, operation: str) -> list[TokenStanding]: ...

    async def revoke_token(self, token_id: str) -> None:
        """404 when no active token has that id."""


class LocalAdministration:
    """:class:`Administration` over the use cases, on a store opened here."""

    def __init__(self, services: Services) -> None:
        self._services = services

    async def operations(self) -> list[Operation]:
        return await self._services.operations.list()

    async def operation(self, name: str) -> Operation:
        return await self._services.operations.get(name)

    async def create_operation(
        self,
        name: str,
        *,
        licenses: int,
        pbx: int,
        services: frozenset[str],
        timezone: str,
        server_id: str,
    ) -> Operation:
        return await self._services.operations.create(
            name,
            licenses=licenses,
            pbx=pbx,
            services=services,
            timezone=timezone,
            server_id=server_id,
        )

    async def update_operation(
        self,
        name: str,
        *,
        licenses: int | None,
        pbx: int | None,
        services: frozenset[str] | None,
        timezone: str | None,
        server_id: str | None,
    ) -> Operation:
        return await self._services.operations.update(
            name,
            licenses=licenses,
            pbx=pbx,
            services=services,
            timezone=timezone,
            server_id=server_id,
        )

    async def create_token(
        self, operation: str, scope: TokenScope, description: str
    ) -> IssuedToken:
        found = await self._services.operations.get(operation)
        return await self._services.tokens.create(found, scope, description)

    async def token_standings(self, operation: str) -> list[TokenStanding]:
        found = await self._services.operations.get(operation)
        return await self._services.tokens.standings(found)

    async def revoke_token(self, token_id: str) -> None:
        await self._services.tokens.revoke(token_id)
