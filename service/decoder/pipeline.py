"""A stream's requests read ahead of its answers, so that a request which supersedes the queued ones can cut them
short: transport-free (any async iterator of requests)."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Generic, TypeVar

Request = TypeVar("Request")

# Requests read ahead of the one being answered, per stream: a client that sends more waits (gRPC flow control).
READ_AHEAD = 64


class PipelinedRequests(Generic[Request]):
    """Yields (request, superseded) in arrival order; `superseded` is True when a request that arrived after it
    says `supersedes(later)`. Reading stops while READ_AHEAD requests wait; a reading error is raised after the
    requests read before it."""

    def __init__(self, source: AsyncIterator[Request], supersedes: Callable[[Request], bool]) -> None:
        self._source = source
        self._supersedes = supersedes
        self._queued: deque[Request] = deque()
        self._changed = asyncio.Condition()
        self._ended = False
        self._error: BaseException | None = None
        self._reader: asyncio.Task[None] | None = None

    async def _read(self) -> None:
        try:
            async for request in self._source:
                async with self._changed:
                    await self._changed.wait_for(lambda: len(self._queued) < READ_AHEAD)
                    self._queued.append(request)
                    self._changed.notify_all()
        except Exception as error:  # noqa: BLE001 - handed to the consumer, in order
            self._error = error
        finally:
            async with self._changed:
                self._ended = True
                self._changed.notify_all()

    def __aiter__(self) -> AsyncIterator[tuple[Request, bool]]:
        return self._requests()

    async def _requests(self) -> AsyncIterator[tuple[Request, bool]]:
        self._reader = asyncio.create_task(self._read())
        try:
            while True:
                async with self._changed:
                    await self._changed.wait_for(lambda: bool(self._queued) or self._ended)
                    if not self._queued:
                        break
                    request = self._queued.popleft()
                    superseded = any(self._supersedes(later) for later in self._queued)
                    self._changed.notify_all()
                yield request, superseded
            if self._error is not None:
                raise self._error
        finally:
            # Not awaited: a read on a call being torn down ends with the call, and the teardown waits for this
            # handler; awaiting the reader here could wait for ever.
            self._reader.cancel()
