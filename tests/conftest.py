"""Fixtures shared by every test: the seeded tiny checkpoint and a real redis-server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from service.local.redis_server import RedisServer
from service.runtime.checkpoint import CheckpointInfo, inspect_checkpoint, make_test_checkpoint

TINY_SEED = 1234


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> CheckpointInfo:
    """A tiny-architecture SAM checkpoint with seeded random weights, in the official format."""
    path = make_test_checkpoint("tiny", TINY_SEED, tmp_path_factory.mktemp("checkpoints") / "sam_tiny.pth")
    return inspect_checkpoint(path)


@pytest.fixture(scope="session")
def tiny_checkpoint_path(tiny_checkpoint: CheckpointInfo) -> Path:
    return tiny_checkpoint.path


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A real redis-server on a free loopback port for the whole session."""
    with RedisServer() as server:
        yield server
