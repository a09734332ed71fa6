"""Tokens and the credentials they present, in PostgreSQL."""

from __future__ import annotations

from datetime import datetime

from voxmeter.domain.models import Credential, Token, TokenScope
from voxmeter.storage.ports import TokenStore
from voxmeter.storage.postgres.connection import SPELLING, PostgresPart
from voxmeter.storage.rows import TOKEN_COLUMNS


class PostgresTokens(PostgresPart, TokenStore):
    async def create_token(
        self,
        token_id: str,
        operation_id: int,
        secret_hash: bytes,
        scope: TokenScope,
        description: str,
        now: datetime,
    ) -> Token:
        await self._one(
            "INSERT INTO tokens (id, operation_id, secret_hash, scope, description, created_at)"
            " VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
            (token_id, operation_id, secret_hash, scope.value, description, now),
        )
        return await self._stored_token(token_id)

    async def find_credential(self, token_id: str) -> Credential | None:
        row = await self._one(
            f"SELECT {SPELLING.credential_columns} FROM tokens t"
            " JOIN operations o ON o.id = t.operation_id"
            " WHERE t.id = %s AND t.revoked_at IS NULL",
            (token_id,),
        )
        return None if row is None else SPELLING.credential(row)

    async def list_tokens(self, operation_id: int) -> list[Token]:
        rows = await self._all(
            f"SELECT {TOKEN_COLUMNS} FROM tokens t WHERE t.operation_id = %s"
            " ORDER BY t.created_at, t.id",
            (operation_id,),
        )
        return [SPELLING.token(row) for row in rows]

    async def get_token(self, token_id: str) -> Token | None:
        row = await self._one(f"SELECT {TOKEN_COLUMNS} FROM tokens t WHERE t.id = %s", (token_id,))
        return None if row is None else SPELLING.token(row)

    async def revoke_token(self, token_id: str, now: datetime) -> bool:
        row = await self._one(
            "UPDATE tokens SET revoked_at = %s WHERE id = %s AND revoked_at IS NULL RETURNING id",
            (now, token_id),
        )
        return row is not None
