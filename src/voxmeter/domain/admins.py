"""Admin identities: roles, passwords, API keys, portal links. Plain values and hashing only.

People log in with a name and a password, kept as a scrypt hash (slow on
purpose: a password may be guessable). Scripts use API keys shaped like the
operation tokens but with their own prefix, ``vxa_<id>_<random>``: the id
names one row, and the secret is kept as its SHA-256 (a fast hash is right
for 240 random bits). An operation token and an admin key can never be taken
for each other: each side parses only its own prefix.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime

_KEY_PREFIX = "vxa_"
_KEY_ID_HEX = 12
_KEY_SEPARATOR_AT = len(_KEY_PREFIX) + _KEY_ID_HEX

# scrypt's cost: 16 MiB of memory per hash, about 50 ms on one core.
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**14, 8, 1
_SALT_BYTES = 16
_PASSWORD_BYTES = 32
MIN_PASSWORD_LENGTH = 12


class Role(enum.StrEnum):
    """What an identity may do; each role may do everything the next one may."""

    OWNER = "owner"  # also manages admin identities
    ADMIN = "admin"  # changes operations, tokens and usage
    VIEWER = "viewer"  # reads everything, changes nothing

    def allows(self, needed: Role) -> bool:
        return _RANK[self] >= _RANK[needed]


_RANK = {Role.VIEWER: 0, Role.ADMIN: 1, Role.OWNER: 2}


class IdentityKind(enum.StrEnum):
    USER = "user"
    KEY = "key"


@dataclass(frozen=True, slots=True)
class Identity:
    id: int
    name: str
    role: Role
    kind: IdentityKind
    key_id: str | None
    created_at: datetime
    disabled_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One admin mutation: who did what to which target, when, and its before and after."""

    seq: int
    at: datetime
    actor: str
    action: str
    target: str
    before: str | None  # JSON text, None for a creation
    after: str | None  # JSON text, None for a removal


# -- passwords -------------------------------------------------------------------


def new_password() -> str:
    return secrets.token_urlsafe(18)


def password_hash(password: str) -> bytes:
    """``scrypt$N$r$p$salt$hash`` (hex), as bytes: the parameters travel with the hash."""
    salt = secrets.token_bytes(_SALT_BYTES)
    digest = _scrypt(password, salt, _SCRYPT_N, _SCRYPT_R, _SCRYPT_P)
    return f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}${salt.hex()}${digest.hex()}".encode()


def password_matches(password: str, stored: bytes) -> bool:
    """Whether ``password`` hashes to ``stored``, compared in constant time."""
    try:
        scheme, n, r, p, salt, digest = stored.decode().split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    computed = _scrypt(password, bytes.fromhex(salt), int(n), int(r), int(p))
    return hmac.compare_digest(computed, bytes.fromhex(digest))


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8", "surrogateescape"),
        salt=salt,
        n=n,
        r=r,
        p=p,
        maxmem=256 * n * r,
        dklen=_PASSWORD_BYTES,
    )


# A hash to check a password against when the name is unknown, so that a
# login's timing does not tell which names exist.
DECOY_HASH = password_hash(secrets.token_urlsafe(18))


# -- API keys --------------------------------------------------------------------


def mint_key() -> tuple[str, str]:
    """A new (key id, secret) pair; the id is public, the secret the credential."""
    id_hex = secrets.token_hex(_KEY_ID_HEX // 2)
    return f"key_{id_hex}", f"{_KEY_PREFIX}{id_hex}_{secrets.token_urlsafe(30)}"


def key_id_of(secret: str) -> str | None:
    """The key id a well-formed admin key names, or None for anything else."""
    if (
        len(secret) > _KEY_SEPARATOR_AT + 1
        and secret.startswith(_KEY_PREFIX)
        and secret[_KEY_SEPARATOR_AT] == "_"
    ):
        id_hex = secret[len(_KEY_PREFIX) : _KEY_SEPARATOR_AT]
        if all(c in "0123456789abcdef" for c in id_hex):
            return f"key_{id_hex}"
    return None


def key_hash(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("utf-8", "surrogateescape")).digest()


def key_matches(secret: str, stored: bytes) -> bool:
    return hmac.compare_digest(key_hash(secret), stored)


# -- sessions --------------------------------------------------------------------


def new_session() -> tuple[str, bytes, str]:
    """A browser session: (cookie value, its SHA-256 as stored, CSRF token)."""
    value = secrets.token_urlsafe(32)
    return value, session_hash(value), secrets.token_urlsafe(32)


def session_hash(value: str) -> bytes:
    return hashlib.sha256(value.encode("utf-8", "surrogateescape")).digest()


# -- portal links ----------------------------------------------------------------


def portal_token(secret: str, operation: str, expires: int) -> str:
    """``<operation, base64url>.<expiry, unix seconds>.<HMAC-SHA256>``."""
    name = base64.urlsafe_b64encode(operation.encode()).decode().rstrip("=")
    return f"{name}.{expires}.{_portal_mac(secret, name, expires)}"


def portal_operation(secret: str, token: str, now: int) -> str | None:
    """The operation a portal token grants, or None if forged, altered or expired."""
    try:
        name, expires_text, mac = token.split(".")
        expires = int(expires_text)
        operation = base64.urlsafe_b64decode(name + "=" * (-len(name) % 4)).decode()
    except ValueError:
        return None
    if not hmac.compare_digest(_portal_mac(secret, name, expires), mac):
        return None
    return operation if now < expires else None


def _portal_mac(secret: str, name: str, expires: int) -> str:
    message = f"portal|{name}|{expires}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
