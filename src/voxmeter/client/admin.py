"""A remote server's admin API as an :class:`~voxmeter.services.administration.Administration`.

``voxmeter operation … --url`` and ``voxmeter token … --url`` use it, so a
person administers a server with an admin key instead of database
credentials. Refusals come back as the :class:`~voxmeter.contract.errors.ApiError`
the server answered (same status, message and details as a local refusal);
the key travels only in the ``Authorization`` header.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import quote

import httpx

from voxmeter.contract.errors import ApiError
from voxmeter.domain.admission import Usage
from voxmeter.domain.models import Operation, Token, TokenScope
from voxmeter.services.admin import IssuedToken, TokenStanding

PREFIX = "/admin/api/v1"


class AdminUnreachable(Exception):
    """No envelope came back: the server could not be reached or answered something else."""


def _moment(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def _operation(view: dict[str, Any]) -> Operation:
    return Operation(
        id=view["id"],
        name=view["name"],
        server_id=view["server_id"],
        timezone=view["timezone"],
        licenses=view["licenses"],
        pbx=view["pbx"],
        services=frozenset(view["services"]),
        created_at=datetime.fromisoformat(view["created_at"]),
    )


def _path(name: str) -> str:
    return quote(name, safe="")


class AdminClient:
    def __init__(self, url: str, admin_key: str, timeout: float = 30.0) -> None:
        self._http = httpx.AsyncClient(
            base_url=url.rstrip("/") + PREFIX,
            headers={"Authorization": f"Bearer {admin_key}"},
            timeout=timeout,
        )

    async def close(self) -> None:
        await self._http.aclose()

    async def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> list[Any]:
        try:
            response = await self._http.request(method, path, json=body)
        except httpx.HTTPError as exc:
            raise AdminUnreachable(f"cannot reach {self._http.base_url}: {exc}") from None
        try:
            envelope = response.json()
            data, msg = envelope["data"], envelope["msg"]
        except (ValueError, KeyError, TypeError):
            raise AdminUnreachable(
                f"{self._http.base_url} answered {response.status_code} without an envelope;"
                " is it a voxmeter server?"
            ) from None
        if response.status_code != 200:
            raise ApiError(response.status_code, msg, data)
        result: list[Any] = data
        return result

    async def operations(self) -> list[Operation]:
        return [_operation(view) for view in await self._call("GET", "/operations")]

    async def operation(self, name: str) -> Operation:
        return _operation((await self._call("GET", f"/operations/{_path(name)}"))[0])

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
        body = {"name": name, "licenses": licenses, "pbx": pbx, "services": sorted(services),
                "timezone": timezone, "server_id": server_id}  # fmt: skip
        return _operation((await self._call("POST", "/operations", body))[0])

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
        body = {"licenses": licenses, "pbx": pbx, "timezone": timezone, "server_id": server_id,
                "services": None if services is None else sorted(services)}  # fmt: skip
        changes = {field: value for field, value in body.items() if value is not None}
        return _operation((await self._call("PATCH", f"/operations/{_path(name)}", changes))[0])

    async def create_token(
        self, operation: str, scope: TokenScope, description: str
    ) -> IssuedToken:
        found = await self.operation(operation)
        body = {"scope": scope.value, "description": description}
        view = (await self._call("POST", f"/operations/{_path(operation)}/tokens", body))[0]
        token = Token(
            id=view["id"],
            operation_id=found.id,
            scope=TokenScope(view["scope"]),
            description=view["description"],
            created_at=datetime.fromisoformat(view["created_at"]),
            last_used_at=None,
            revoked_at=None,
        )
        return IssuedToken(token, view["secret"])

    async def token_standings(self, operation: str) -> list[TokenStanding]:
        found = await self.operation(operation)
        views = await self._call("GET", f"/operations/{_path(operation)}/tokens")
        return [
            TokenStanding(
                Token(
                    id=view["id"],
                    operation_id=found.id,
                    scope=TokenScope(view["scope"]),
                    description=view["description"],
                    created_at=datetime.fromisoformat(view["created_at"]),
                    last_used_at=_moment(view["last_used_at"]),
                    revoked_at=_moment(view["revoked_at"]),
                ),
                view["limit"],
                Usage(view["used_today"], view["operation_used_today"]),
            )
            for view in views
        ]

    async def revoke_token(self, token_id: str) -> None:
        await self._call("DELETE", f"/tokens/{_path(token_id)}")
