"""The one retry policy of the clients and the uploader.

What may pass later is retried (network errors, 5xx, 429, a busy token,
maintenance) with exponential backoff and jitter, or after ``Retry-After``
when the server sends it; everything else is raised at once.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
)

from voxmeter.client.errors import APIConnectionError, APIError, VoxmeterError

# Told of each retry before its pause: the error, the retry's number (from 1)
# and the pause in seconds.
OnRetry = Callable[[VoxmeterError, int, float], None]


def is_retryable(error: BaseException) -> bool:
    """Refusals that may pass later, timeouts and broken connections; never a bad request."""
    if isinstance(error, APIError):
        return error.retryable
    return isinstance(error, APIConnectionError)


def quiet(error: VoxmeterError, retry: int, pause: float) -> None:
    """No one to tell."""


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 3
    backoff: float = 0.5
    max_backoff: float = 30.0

    def pause(self, retry: int, error: BaseException | None) -> float:
        """Seconds before retry ``retry`` (from 1): Retry-After, else backoff with jitter."""
        if isinstance(error, APIError) and error.retry_after is not None:
            return min(error.retry_after, self.max_backoff)
        ceiling = min(self.max_backoff, self.backoff * 2 ** (retry - 1))
        return random.uniform(ceiling / 2, ceiling)

    def _wait(self, state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        return self.pause(state.attempt_number, error)

    def _announcer(self, on_retry: OnRetry) -> Callable[[RetryCallState], None]:
        def announce(state: RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome else None
            pause = state.upcoming_sleep
            if isinstance(error, VoxmeterError):
                on_retry(error, state.attempt_number, pause)

        return announce

    def retrying(self, sleep: Callable[[float], None], on_retry: OnRetry = quiet) -> Retrying:
        return Retrying(
            stop=stop_after_attempt(self.max_retries + 1),
            wait=self._wait,
            retry=retry_if_exception(is_retryable),
            before_sleep=self._announcer(on_retry),
            sleep=sleep,
            reraise=True,
        )

    def async_retrying(
        self, sleep: Callable[[float], Awaitable[None]], on_retry: OnRetry = quiet
    ) -> AsyncRetrying:
        return AsyncRetrying(
            stop=stop_after_attempt(self.max_retries + 1),
            wait=self._wait,
            retry=retry_if_exception(is_retryable),
            before_sleep=self._announcer(on_retry),
            sleep=sleep,
            reraise=True,
        )
