"""Requests made in one event-loop turn, served together.

Under load a worker has many calls in progress at once. Each used to pay
for its own database transaction (SQLite) or round trip (PostgreSQL) to be
admitted; gathering the requests made during one turn of the event loop
and serving them with one transaction or one round trip makes that cost
shared, without changing what each request gets: the batch serves them in
the order they were made, as if one after the other.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

Request = TypeVar("Request")
Result = TypeVar("Result")


class TurnBatcher(Generic[Request, Result]):
    """Serves requests in batches, by one call of ``serve`` each.

    A batch holds the requests made in one loop turn. With ``one_at_a_time``
    (the default) a batch waits for the one being served, and so holds all
    the requests made meanwhile: the busier the worker, the bigger its
    batches (group commit), and its batches never contend with each other
    for the database's locks. Without it, batches that would not contend
    anyway start at once, for the shortest wait.

    ``serve`` answers a list of requests with a list of results in the same
    order. Should it raise, every request of the batch raises the same
    error. A result whose requester has gone (cancelled meanwhile) is passed
    to ``abandoned``, so that whatever it holds can be given back. Requests
    whose requesters went before their batch started are dropped, unless
    ``serve_abandoned`` (for requests that must happen anyway, like giving
    a slot back).
    """

    def __init__(
        self,
        serve: Callable[[list[Request]], Awaitable[list[Result]]],
        abandoned: Callable[[Request, Result], Awaitable[None]] | None = None,
        *,
        serve_abandoned: bool = False,
        one_at_a_time: bool = True,
    ) -> None:
        self._serve = serve
        self._abandoned = abandoned
        self._serve_abandoned = serve_abandoned
        self._one_at_a_time = one_at_a_time
        self._pending: list[tuple[Request, asyncio.Future[Result]]] = []
        self._running: set[asyncio.Task[None]] = set()  # referenced until done

    async def submit(self, request: Request) -> Result:
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[Result] = loop.create_future()
        if not self._pending:
            loop.call_soon(self._start_batch)
        self._pending.append((request, answer))
        try:
            return await answer
        except asyncio.CancelledError:
            # Cancelled after its result was set, before it could be used.
            if (
                self._abandoned is not None
                and answer.done()
                and not answer.cancelled()
                and answer.exception() is None
            ):
                await asyncio.shield(self._abandoned(request, answer.result()))
            raise

    def _start_batch(self) -> None:
        if not self._pending or (self._one_at_a_time and self._running):
            return  # the running batch starts the next one when it is done
        batch, self._pending = self._pending, []
        task = asyncio.get_running_loop().create_task(self._run(batch))
        self._running.add(task)
        task.add_done_callback(self._batch_done)

    def _batch_done(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        self._start_batch()

    async def _run(self, batch: list[tuple[Request, asyncio.Future[Result]]]) -> None:
        live = batch if self._serve_abandoned else [item for item in batch if not item[1].done()]
        if not live:
            return
        try:
            results = await self._serve([request for request, _ in live])
        except BaseException as error:
            # Nobody may wait forever: a batch cancelled (at shutdown) fails
            # its requests with an ordinary error, then goes on being cancelled.
            failure = error if isinstance(error, Exception) else RuntimeError("batch interrupted")
            for _, answer in live:
                if not answer.done():
                    answer.set_exception(failure)
            if failure is not error:
                raise
            return
        gone = []
        for (request, answer), result in zip(live, results, strict=True):
            if not answer.done():
                answer.set_result(result)
            else:
                gone.append((request, result))
        # Given back only once every waiting requester has its answer.
        if self._abandoned is not None:
            for request, result in gone:
                await self._abandoned(request, result)
