"""A plain-text progress bar for long client commands (`samsvc embed`): redrawn in place on a terminal, a line now
and then otherwise (a log file or a CI job), and always a last line when done."""

from __future__ import annotations

import time
from typing import TextIO

_BAR_WIDTH = 30


class ProgressBar:
    """Counts finished items out of `total` (and how many were cached or failed) and shows the rate and what is left."""

    def __init__(
        self,
        total: int,
        stream: TextIO,
        in_place: bool | None = None,
        redraw_seconds: float = 0.1,
        line_seconds: float = 5.0,
    ) -> None:
        self.total = total
        self.stream = stream
        self.in_place = stream.isatty() if in_place is None else in_place
        self.interval = redraw_seconds if self.in_place else line_seconds
        self.done = self.cached = self.failed = 0
        self.started = time.monotonic()
        self._shown_at = float("-inf")

    def advance(self, cached: bool = False, failed: bool = False) -> None:
        self.done += 1
        self.cached += cached
        self.failed += failed
        now = time.monotonic()
        if now - self._shown_at >= self.interval:
            self._shown_at = now
            self._show(self.line())

    def finish(self) -> None:
        self._show(self.line())
        if self.in_place:
            self.stream.write("\n")
            self.stream.flush()

    def line(self) -> str:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        filled = _BAR_WIDTH * self.done // max(self.total, 1)
        rate = self.done / elapsed
        left = f"{(self.total - self.done) / rate:.0f} s left" if self.done and self.done < self.total else ""
        parts = [
            f"[{'#' * filled}{'.' * (_BAR_WIDTH - filled)}] {self.done}/{self.total}",
            f"{self.cached} cached",
            f"{self.failed} failed",
            f"{rate:.1f} images/s",
            left,
        ]
        return "  ".join(part for part in parts if part)

    def _show(self, line: str) -> None:
        self.stream.write(f"\r{line}\x1b[K" if self.in_place else f"{line}\n")
        self.stream.flush()
