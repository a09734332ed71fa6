"""Clients of the wolkvox API v2 contract, for voxmeter and wolkvox servers alike."""

from voxmeter.client.aio import AsyncClient
from voxmeter.client.errors import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    InvalidTokenError,
    MaintenanceError,
    MissingParameterError,
    PermissionDeniedError,
    QuotaExceededError,
    RateLimitError,
    ServerError,
    SimultaneousRequestsError,
    TimeLimitError,
    UnknownApiError,
    VoxmeterError,
)
from voxmeter.client.models import Envelope, Services, TokenInfo, Usage
from voxmeter.client.sync import Client

__all__ = [
    "APIConnectionError",
    "APIError",
    "APITimeoutError",
    "AsyncClient",
    "AuthenticationError",
    "BadRequestError",
    "Client",
    "Envelope",
    "InvalidTokenError",
    "MaintenanceError",
    "MissingParameterError",
    "PermissionDeniedError",
    "QuotaExceededError",
    "RateLimitError",
    "ServerError",
    "Services",
    "SimultaneousRequestsError",
    "TimeLimitError",
    "TokenInfo",
    "UnknownApiError",
    "Usage",
    "VoxmeterError",
]
