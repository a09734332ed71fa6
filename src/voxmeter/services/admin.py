"""Operations and their tokens: create, change, list, revoke."""

from __future__ import annotations

from dataclasses import dataclass

from voxmeter.config import Settings
from voxmeter.contract import errors
from voxmeter.domain import operations as rules
from voxmeter.domain import tokens
from voxmeter.domain.admission import Quota, Usage
from voxmeter.domain.clock import Clock
from voxmeter.domain.models import NewOperation, Operation, OperationChanges, Token, TokenScope
from voxmeter.storage.base import OperationExists, Store, UnknownOperation


def _invalid(exc: rules.OperationFieldError) -> errors.ApiError:
    return errors.ApiError(400, errors.INVALID_PARAMETERS, [{"reason": str(exc)}])


def unknown_operation(name: str) -> errors.ApiError:
    return errors.ApiError(404, errors.OPERATION_UNKNOWN.format(name=name))


class OperationService:
    def __init__(self, store: Store, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    async def create(
        self,
        name: str,
        *,
        licenses: int,
        pbx: int = 0,
        services: frozenset[str] = frozenset(),
        timezone: str = "America/Bogota",
        server_id: str = "0001",
    ) -> Operation:
        """A new operation; 400 for a field that breaks a rule, 409 for a name taken."""
        try:
            new = NewOperation(
                name=rules.check_name(name),
                licenses=rules.check_count("licenses", licenses),
                pbx=rules.check_count("pbx", pbx),
                services=rules.check_services(services),
                timezone=rules.check_timezone(timezone),
                server_id=rules.check_server_id(server_id),
            )
        except rules.OperationFieldError as exc:
            raise _invalid(exc) from None
        try:
            return await self._store.create_operation(new, self._clock())
        except OperationExists:
            raise errors.ApiError(409, errors.OPERATION_EXISTS.format(name=new.name)) from None

    async def update(
        self,
        name: str,
        *,
        licenses: int | None = None,
        pbx: int | None = None,
        services: frozenset[str] | None = None,
        timezone: str | None = None,
        server_id: str | None = None,
    ) -> Operation:
        """Change the fields given; the others stay as they are."""
        try:
            changes = OperationChanges(
                licenses=None if licenses is None else rules.check_count("licenses", licenses),
                pbx=None if pbx is None else rules.check_count("pbx", pbx),
                services=None if services is None else rules.check_services(services),
                timezone=None if timezone is None else rules.check_timezone(timezone),
                server_id=None if server_id is None else rules.check_server_id(server_id),
            )
        except rules.OperationFieldError as exc:
            raise _invalid(exc) from None
        try:
            return await self._store.update_operation(name, changes)
        except UnknownOperation:
            raise unknown_operation(name) from None

    async def get(self, name: str) -> Operation:
        """The operation named ``name``; 404 when there is none."""
        operation = await self._store.get_operation(name)
        if operation is None:
            raise unknown_operation(name)
        return operation

    async def list(self) -> list[Operation]:
        return await self._store.list_operations()


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A token just created, with its secret: the only time the secret exists in clear."""

    token: Token
    secret: str


@dataclass(frozen=True, slots=True)
class TokenStanding:
    """A token with today's use, as ``information.php?api=token_info`` reports it."""

    token: Token
    limit: int
    usage: Usage


class TokenService:
    def __init__(self, store: Store, settings: Settings, clock: Clock) -> None:
        self._store = store
        self._settings = settings
        self._clock = clock

    async def create(
        self, operation: Operation, scope: TokenScope, description: str = ""
    ) -> IssuedToken:
        token_id, secret = tokens.mint()
        token = await self._store.create_token(
            token_id, operation.id, tokens.secret_hash(secret), scope, description, self._clock()
        )
        return IssuedToken(token, secret)

    async def standings(self, operation: Operation) -> list[TokenStanding]:
        """Every token of the operation, revoked ones included, with today's use."""
        quota = Quota.for_call(operation, self._clock(), self._settings.calls_per_license)
        return [
            TokenStanding(
                token,
                quota.token_limit,
                await self._store.calls_today(token.id, operation.id, quota.day),
            )
            for token in await self._store.list_tokens(operation.id)
        ]

    async def revoke(self, token_id: str) -> None:
        """404 when no active token has that id."""
        if not await self._store.revoke_token(token_id, self._clock()):
            raise errors.ApiError(404, errors.TOKEN_UNKNOWN.format(token_id=token_id))
