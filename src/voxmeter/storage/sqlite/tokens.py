"""Tokens and the credentials they present, in SQLite."""

from __future__ import annotations

from datetime import datetime

from voxmeter.domain.clock import utc_micros
from voxmeter.domain.models import Credential, Token, TokenScope
from voxmeter.storage.ports import TokenStore
from voxmeter.storage.rows import TOKEN_COLUMNS
from voxmeter.storage.sqlite.connection import SPELLING, SQLitePart


class SQLiteTokens(SQLitePart, TokenStore):
    async def create_token(
        self,
        token_id: str,
        operation_id: int,
        secret_hash: bytes,
        scope: TokenScope,
        description: str,
        now: datetime,
    ) -> Token:
        with self._write() as db:
            db.execute(
                "INSERT INTO tokens (id, operation_id, secret_hash, scope, description, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (token_id, operation_id, secret_hash, scope.value, description, utc_micros(now)),
            )
        return await self._stored_token(token_id)

    async def find_credential(self, token_id: str) -> Credential | None:
        row = self._db.execute(
            f"SELECT {SPELLING.credential_columns} FROM tokens t"
            " JOIN operations o ON o.id = t.operation_id"
            " WHERE t.id = ? AND t.revoked_at IS NULL",
            (token_id,),
        ).fetchone()
        return None if row is None else SPELLING.credential(row)

    async def list_tokens(self, operation_id: int) -> list[Token]:
        rows = self._db.execute(
            f"SELECT {TOKEN_COLUMNS} FROM tokens t WHERE t.operation_id = ?"
            " ORDER BY t.created_at, t.id",
            (operation_id,),
        ).fetchall()
        return [SPELLING.token(row) for row in rows]

    async def get_token(self, token_id: str) -> Token | None:
        row = self._db.execute(
            f"SELECT {TOKEN_COLUMNS} FROM tokens t WHERE t.id = ?", (token_id,)
        ).fetchone()
        return None if row is None else SPELLING.token(row)

    async def revoke_token(self, token_id: str, now: datetime) -> bool:
        with self._write() as db:
            cursor = db.execute(
                "UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                (utc_micros(now), token_id),
            )
            return cursor.rowcount == 1
