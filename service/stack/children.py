"""Service child processes of `samsvc up`: `samsvc <subcommand>` with its log in a file, dying with `up`."""

from __future__ import annotations

import sys
from pathlib import Path

from service.local.child_process import ChildProcess


def service_process(name: str, arguments: list[str], log_path: Path) -> ChildProcess:
    """`python -m service.cli <arguments>` (not started); it gets SIGTERM if `samsvc up` dies without stopping it."""
    return ChildProcess(name, [sys.executable, "-m", "service.cli", *arguments], log_path, die_with_parent=True)
