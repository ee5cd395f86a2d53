"""Waiting for a condition with a deadline, instead of sleeping and hoping."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


def wait_until(condition: Callable[[], bool], timeout_seconds: float, what: str, interval: float = 0.05) -> None:
    """Return as soon as `condition()` holds; AssertionError naming `what` after the timeout."""
    deadline = time.monotonic() + timeout_seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout_seconds} s")
        time.sleep(interval)


async def wait_until_async(
    condition: Callable[[], Awaitable[bool]], timeout_seconds: float, what: str, interval: float = 0.02
) -> None:
    """wait_until for an async condition, without blocking the event loop."""
    deadline = time.monotonic() + timeout_seconds
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout_seconds} s")
        await asyncio.sleep(interval)
