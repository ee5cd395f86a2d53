"""A `redis-server` child process on a loopback port, configured as the stack expects (LRU eviction)."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from service.local.child_process import ChildProcess
from service.local.ports import free_port, wait_for_port

INSTALL_HINT = (
    "redis-server was not found on PATH. Install it (Debian/Ubuntu: `sudo apt-get install redis-server`; "
    "macOS: `brew install redis`) or pass --redis-url for an existing Redis."
)


class RedisNotInstalled(RuntimeError):
    pass


@dataclass
class RedisServer:
    """Start with start(), stop with stop(); `url` is where clients connect."""

    host: str = "127.0.0.1"
    port: int = 0
    maxmemory: str = "1gb"
    extra_arguments: tuple[str, ...] = ()  # more redis-server options (a cluster node's)
    child: ChildProcess | None = None
    data_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="samsvc-redis-")))

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def start(self, timeout_seconds: float = 10.0) -> RedisServer:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RedisNotInstalled(INSTALL_HINT)
        self.port = self.port or free_port(self.host)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        command = [
            binary,
            "--bind", self.host,
            "--port", str(self.port),
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.data_dir),
            "--maxmemory", self.maxmemory,
            "--maxmemory-policy", "allkeys-lru",
            *self.extra_arguments,
        ]  # fmt: skip
        self.child = ChildProcess("redis-server", command, log_path=self.data_dir / "redis.log").start()
        if not wait_for_port(self.host, self.port, timeout_seconds):
            self.stop()
            raise RuntimeError(f"redis-server did not listen on {self.host}:{self.port} within {timeout_seconds} s")
        return self

    def exited(self) -> bool:
        return self.child is None or self.child.exited()

    def stop(self) -> None:
        """Stop the process; start() may be called again and reuses the same port."""
        if self.child is not None:
            self.child.stop(timeout_seconds=10)
        self.child = None
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
