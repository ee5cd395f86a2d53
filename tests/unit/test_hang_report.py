"""The test suite's hang watchdog names the await a stuck event loop waits in."""

from __future__ import annotations

import asyncio

import pytest

from tests.support.hang_report import HangReport


def test_a_phase_past_its_limit_reports_threads_and_the_stuck_task(capfd: pytest.CaptureFixture[str]) -> None:
    report = HangReport(limit_seconds=0.2, poll_seconds=0.05)

    async def waits_for_a_stop_that_never_comes() -> None:
        await asyncio.to_thread(report.written.wait, 10)

    async def main() -> None:
        report.start("teardown of a fixture")
        await asyncio.create_task(waits_for_a_stop_that_never_comes())
        report.end()

    asyncio.run(main())
    assert report.written.is_set()
    err = capfd.readouterr().err
    assert "+++ teardown of a fixture has run" in err
    assert "Current thread" in err or "Thread 0x" in err
    assert "waits_for_a_stop_that_never_comes" in err and "+++ end of the report +++" in err
