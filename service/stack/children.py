"""Service child processes of `samsvc up`: `samsvc <subcommand>` with its log in a file, dying with `up`."""

from __future__ import annotations

import sys
from pathlib import Path

from service.local.child_process import ChildProcess


def service_process(
    name: str, arguments: list[str], log_path: Path, environment: dict[str, str] | None = None
) -> ChildProcess:
    """`python -m service.cli <arguments>` (not started); it gets SIGTERM if `samsvc up` dies without stopping it."""
    command = [sys.executable, "-m", "service.cli", *arguments]
    return ChildProcess(name, command, log_path, environment, die_with_parent=True)
