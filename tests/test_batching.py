"""TurnBatcher: requests of one loop turn served together, none lost, none served twice."""

from __future__ import annotations

import asyncio

import pytest

from voxmeter.storage.batching import TurnBatcher


class Recorder:
    """A ``serve`` that doubles numbers and remembers its batches and what was abandoned."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.abandoned: list[tuple[int, int]] = []
        self.before_return: list[asyncio.Task[int]] = []  # tasks to cancel while serving

    async def serve(self, requests: list[int]) -> list[int]:
        self.batches.append(requests)
        await asyncio.sleep(0)
        loop = asyncio.get_running_loop()
        for task in self.before_return:
            loop.call_soon(task.cancel)  # lands after the result is set, before it is used
        return [2 * r for r in requests]

    async def abandon(self, request: int, result: int) -> None:
        self.abandoned.append((request, result))


async def test_requests_of_one_turn_are_served_in_one_batch_in_order():
    recorder = Recorder()
    batcher = TurnBatcher(recorder.serve, recorder.abandon)
    results = await asyncio.gather(*(batcher.submit(n) for n in range(5)))
    assert results == [0, 2, 4, 6, 8]
    assert recorder.batches == [[0, 1, 2, 3, 4]]
    assert await batcher.submit(7) == 14
    assert recorder.batches[-1] == [7]


async def test_a_request_cancelled_before_its_batch_is_not_served():
    recorder = Recorder()
    batcher = TurnBatcher(recorder.serve, recorder.abandon)
    gone = asyncio.create_task(batcher.submit(1))
    kept = asyncio.create_task(batcher.submit(2))
    await asyncio.sleep(0)  # both have asked
    gone.cancel()
    assert await kept == 4
    assert recorder.batches == [[2]]
    assert recorder.abandoned == []


async def test_a_result_its_requester_could_not_use_is_given_back():
    recorder = Recorder()
    batcher = TurnBatcher(recorder.serve, recorder.abandon)
    late = asyncio.create_task(batcher.submit(3))
    recorder.before_return.append(late)
    with pytest.raises(asyncio.CancelledError):
        await late
    assert recorder.abandoned == [(3, 6)]


async def test_a_failing_batch_fails_each_of_its_requests():
    async def broken(requests: list[int]) -> list[int]:
        raise OSError("disk I/O error")

    async def never(request: int, result: int) -> None:
        raise AssertionError("nothing was served")

    batcher = TurnBatcher(broken, never)
    outcomes = await asyncio.gather(batcher.submit(1), batcher.submit(2), return_exceptions=True)
    assert [type(o) for o in outcomes] == [OSError, OSError]


async def test_an_interrupted_batch_fails_its_requests_instead_of_leaving_them_waiting():
    async def interrupted(requests: list[int]) -> list[int]:
        raise asyncio.CancelledError

    batcher = TurnBatcher(interrupted)
    with pytest.raises(RuntimeError, match="batch interrupted"):
        await asyncio.wait_for(batcher.submit(1), timeout=5)
