"""One logging set-up: text or JSON lines, each carrying the call's context."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest

from service.logs import bind_log_context, configure_logging, current_context, log_context


@pytest.fixture
def restore_logging() -> object:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_json_lines_carry_the_context(restore_logging: object, capfd: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", "json")
    with log_context(request_id="r-1", image_key="tiny-00:abcdef012345", stream=None):
        logging.getLogger("samsvc.test").warning("hello %s", "there")
    logging.getLogger("samsvc.test").info("outside")
    lines = [json.loads(line) for line in capfd.readouterr().err.splitlines()]
    assert lines[0]["message"] == "hello there" and lines[0]["level"] == "WARNING"
    assert (lines[0]["request_id"], lines[0]["image_key"]) == ("r-1", "tiny-00:abcdef012345")
    assert "stream" not in lines[0]
    assert "request_id" not in lines[1] and lines[1]["message"] == "outside"


def test_text_lines_show_the_context(restore_logging: object, capfd: pytest.CaptureFixture[str]) -> None:
    configure_logging("DEBUG", "text")
    with log_context(request_id="r-2", model="tiny-00"):
        logging.getLogger("samsvc.test").debug("decoded")
    line = capfd.readouterr().err.strip()
    assert line.endswith("samsvc.test: decoded [request_id=r-2 model=tiny-00]")


async def test_a_tasks_bound_context_stays_in_that_task() -> None:
    async def stream_task() -> dict[str, str]:
        bind_log_context(stream="abcd")
        await asyncio.sleep(0)
        return current_context()

    assert await asyncio.create_task(stream_task()) == {"stream": "abcd"}
    assert "stream" not in current_context()
