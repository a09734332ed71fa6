"""What can go wrong when calling a wolkvox (or voxmeter) server.

The platform answers every over-limit call with 403 and tells them apart by
``msg``, so the class of an :class:`APIError` is chosen by status *and*
message. Every API error carries the envelope it came with.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from voxmeter.contract import errors as platform


class VoxmeterError(Exception):
    """Base class of every error this client raises."""


class ConfigurationError(VoxmeterError, ValueError):
    """The client was set up wrongly (no server, an empty token, a bad server id)."""


class UnexpectedAnswerError(VoxmeterError):
    """The server answered 200 with a body that does not have the documented shape."""


class APIConnectionError(VoxmeterError):
    """The server could not be reached, or the connection broke."""


class APITimeoutError(APIConnectionError):
    """No answer in time."""


class APIError(VoxmeterError):
    """The server answered with a refusal (an envelope whose code is not 200)."""

    retryable = False

    def __init__(self, status: int, envelope: dict[str, Any], headers: dict[str, str]) -> None:
        self.status = status
        self.envelope = envelope
        self.headers = headers
        self.msg = str(envelope.get("msg", ""))
        super().__init__(f"{status} {self.msg}".strip())

    @property
    def retry_after(self) -> float | None:
        value = self.headers.get("retry-after", "")
        try:
            return max(0.0, float(value))
        except ValueError:
            return None


class BadRequestError(APIError):
    """400: the request itself is wrong."""


class UnknownApiError(BadRequestError):
    """400 THE API YOU WANT TO CONSULT DOES NOT EXIST."""


class MissingParameterError(BadRequestError):
    """400 SOME PARAMETERS ARE REQUIRED."""


class AuthenticationError(APIError):
    """401 PLEASE ENTER THE WOLKVOX-TOKEN: no token was sent."""


class PermissionDeniedError(APIError):
    """403 that is none of the more specific cases below."""


class InvalidTokenError(PermissionDeniedError):
    """403 PLEASE VALIDATE TOKEN: unknown, revoked or mistyped token. Never retried."""


class QuotaExceededError(PermissionDeniedError):
    """403 TOKEN LIMIT EXCEEDED: the day's calls are used up. Never retried."""

    @property
    def resets_at(self) -> datetime | None:
        """When the quota resets, if the server said (``X-RateLimit-Reset``)."""
        value = self.headers.get("x-ratelimit-reset", "")
        return datetime.fromtimestamp(int(value), UTC) if value.isdigit() else None


class SimultaneousRequestsError(PermissionDeniedError):
    """403 EXCEEDS THE LIMIT OF SIMULTANEOUS REQUESTS PER TOKEN: retried after a pause."""

    retryable = True


class MaintenanceError(PermissionDeniedError):
    """The platform is in maintenance (it answers 403 or 503 then). Retried."""

    retryable = True


class RateLimitError(APIError):
    """429 from a proxy in front of the server. Retried."""

    retryable = True


class TimeLimitError(APIError):
    """504: the call ran past the server's time limit. Retried."""

    retryable = True


class ServerError(APIError):
    """5xx. Retried."""

    retryable = True


# The message names the limit, whatever it is set to: match what comes before it.
_SIMULTANEOUS = platform.SIMULTANEOUS_REQUESTS.partition(" ({limit})")[0]

_BY_MESSAGE: dict[str, type[APIError]] = {
    platform.API_DOES_NOT_EXIST: UnknownApiError,
    platform.PARAMETERS_REQUIRED: MissingParameterError,
    platform.ENTER_TOKEN: AuthenticationError,
    platform.VALIDATE_TOKEN: InvalidTokenError,
    platform.TOKEN_LIMIT_EXCEEDED: QuotaExceededError,
}


def error_for(status: int, envelope: dict[str, Any], headers: dict[str, str]) -> APIError:
    """The most specific error for a refusal."""
    msg = str(envelope.get("msg", "")).upper()
    cls: type[APIError]
    if msg in _BY_MESSAGE:
        cls = _BY_MESSAGE[msg]
    elif msg.startswith(_SIMULTANEOUS):
        cls = SimultaneousRequestsError
    elif "MAINTENANCE" in msg or status == 503:
        cls = MaintenanceError
    elif status == 400:
        cls = BadRequestError
    elif status == 401:
        cls = AuthenticationError
    elif status == 403:
        cls = PermissionDeniedError
    elif status == 429:
        cls = RateLimitError
    elif status == 504:
        cls = TimeLimitError
    elif status >= 500:
        cls = ServerError
    else:
        cls = APIError
    return cls(status, envelope, headers)
