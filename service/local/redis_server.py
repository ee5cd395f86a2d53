"""A `redis-server` child process on a loopback port, configured as the stack expects (LRU eviction), optionally with
a password (`requirepass`, from a config file only its owner reads: never on a command line) and TLS."""

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


@dataclass(frozen=True)
class RedisTls:
    """PEM files for a TLS-only Redis: its certificate and key, and the CA its clients' certificates would need
    (clients are not asked for one: `tls-auth-clients no`; the password authenticates them)."""

    cert_file: Path
    key_file: Path
    ca_file: Path


@dataclass
class RedisServer:
    """Start with start(), stop with stop(); `url` is where clients connect (with the password, for tests and tools
    on this machine), `url_without_password` what may be shown or put on a command line."""

    host: str = "127.0.0.1"
    port: int = 0
    maxmemory: str = "1gb"
    password: str | None = None
    tls: RedisTls | None = None
    extra_arguments: tuple[str, ...] = ()  # more redis-server options (a cluster node's)
    child: ChildProcess | None = None
    data_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="samsvc-redis-")))

    @property
    def url(self) -> str:
        credentials = f":{self.password}@" if self.password else ""
        return f"{self._scheme}://{credentials}{self.host}:{self.port}/0"

    @property
    def url_without_password(self) -> str:
        return f"{self._scheme}://{self.host}:{self.port}/0"

    @property
    def _scheme(self) -> str:
        return "rediss" if self.tls else "redis"

    def start(self, timeout_seconds: float = 10.0) -> RedisServer:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RedisNotInstalled(INSTALL_HINT)
        self.port = self.port or free_port(self.host)
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        config = self.data_dir / "redis.conf"
        config.touch(mode=0o600)
        config.write_text(f"requirepass {self.password}\n" if self.password else "")
        listen = ["--port", str(self.port)]
        if self.tls is not None:
            listen = [
                "--port", "0",
                "--tls-port", str(self.port),
                "--tls-cert-file", str(self.tls.cert_file),
                "--tls-key-file", str(self.tls.key_file),
                "--tls-ca-cert-file", str(self.tls.ca_file),
                "--tls-auth-clients", "no",
            ]  # fmt: skip
        command = [
            binary,
            str(config),
            "--bind", self.host,
            "--protected-mode", "yes",
            *listen,
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
        """Stop the process; start() may be called again and reuses the same port and password."""
        if self.child is not None:
            self.child.stop(timeout_seconds=10)
        self.child = None
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
