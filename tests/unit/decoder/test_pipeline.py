"""Requests read ahead of the answers: order kept, the queued ones superseded by a later request, read-ahead
bounded, and a reading error raised after the requests before it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from service.decoder import pipeline
from service.decoder.pipeline import PipelinedRequests


async def arriving(items: list[tuple[int, bool]], gap: float = 0.0, error: Exception | None = None
                   ) -> AsyncIterator[tuple[int, bool]]:  # fmt: skip
    for item in items:
        await asyncio.sleep(gap)
        yield item
    if error is not None:
        raise error


async def answers(requests: PipelinedRequests[tuple[int, bool]], work_seconds: float) -> list[tuple[int, bool]]:
    answered = []
    async for (number, _), superseded in requests:
        if not superseded:
            await asyncio.sleep(work_seconds)  # a decode
        answered.append((number, superseded))
    return answered


def test_a_burst_behind_a_running_request_costs_one_more_decode() -> None:
    burst = [(number, True) for number in range(10)]
    got = asyncio.run(answers(PipelinedRequests(arriving(burst, gap=0.001), lambda item: item[1]), 0.1))
    assert [number for number, _ in got] == list(range(10))
    assert [number for number, superseded in got if not superseded] == [0, 9]


def test_requests_that_do_not_supersede_are_all_answered() -> None:
    plain = [(number, number == 5) for number in range(8)]
    got = asyncio.run(answers(PipelinedRequests(arriving(plain), lambda item: item[1]), 0.01))
    assert [number for number, _ in got] == list(range(8))
    superseded = {number for number, flag in got if flag}
    assert 5 not in superseded and 7 not in superseded and superseded <= {1, 2, 3, 4}


def test_reading_ahead_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pipeline, "READ_AHEAD", 3)

    async def run() -> int:
        requests = PipelinedRequests(arriving([(number, False) for number in range(20)]), lambda item: item[1])
        iterator = requests.__aiter__()
        await anext(iterator)
        await asyncio.sleep(0.05)
        queued = len(requests._queued)
        await iterator.aclose()
        return queued

    assert asyncio.run(run()) == 3


def test_a_reading_error_comes_after_the_requests_before_it() -> None:
    async def run() -> list[int]:
        seen = []
        source = arriving([(1, False), (2, False)], error=ConnectionError("stream broke"))
        with pytest.raises(ConnectionError):
            async for (number, _), _ in PipelinedRequests(source, lambda item: item[1]):
                seen.append(number)
        return seen

    assert asyncio.run(run()) == [1, 2]
