"""`samsvc triton`: serve model_repo/ with the tritonserver binary from the nvidia-pytriton wheel (CPU)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from service.settings import LoggingSettings, add_settings, setting

# model_repo/ beside the package; the same path service.triton.launcher uses, without importing it (and pytriton).
_MODEL_REPOSITORY = Path(__file__).resolve().parents[2] / "model_repo"


@dataclass(frozen=True)
class TritonCommandSettings(LoggingSettings):
    models: tuple[str, ...] = setting(
        (),
        "A model to serve, NAME=CHECKPOINT (a .pth path or builtin:lite_medsam); repeatable; CPU configs.",
        flag="--model",
    )
    checkpoint: Path | None = setting(None, "One checkpoint to serve, as model sam_image_encoder (instead of --model).")
    arch: str | None = setting(None, "Architecture of --checkpoint (checked if given).")
    model_repository: Path = setting(
        _MODEL_REPOSITORY, "Without --model or --checkpoint: serve this Triton model repository as it is."
    )
    model_config_name: str | None = setting(
        "cpu", "With --model-repository: configs/<name>.pbtxt to use; empty for config.pbtxt (the GPU configuration)."
    )
    triton_host: str = setting("127.0.0.1", "Address Triton binds.")
    triton_grpc_port: int = setting(8001, "Triton gRPC port.")
    triton_http_port: int = setting(8000, "Triton HTTP port.")
    triton_metrics_port: int = setting(8002, "Triton's own metrics port.")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "triton",
        help="Run Triton locally (pytriton's tritonserver) serving model_repo/ on the CPU.",
        description="Start tritonserver from the nvidia-pytriton wheel with model_repo/, wait until the encoder "
        "model is READY, and run until SIGTERM/SIGINT. Production runs the same model_repo/ in NVIDIA's image.",
    )
    add_settings(parser, TritonCommandSettings)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import logging
    import signal
    import threading

    from service.logs import configure_logging
    from service.model_specs import ModelSpec, parse_model_spec
    from service.runtime.checkpoint import inspect_checkpoint
    from service.settings import settings_from_args
    from service.triton.launcher import TritonServer
    from service.triton.model_config import TritonModel

    settings = settings_from_args(TritonCommandSettings, args)
    configure_logging(settings.log_level, settings.log_format)
    log = logging.getLogger("samsvc.triton")
    specs = [parse_model_spec(text) for text in settings.models]
    if settings.checkpoint is not None:
        specs.append(ModelSpec("sam_image_encoder", str(settings.checkpoint), settings.arch))
    models = []
    for spec in specs:
        info = inspect_checkpoint(spec.checkpoint or "", spec.arch)
        models.append(TritonModel(spec.name, info.arch, str(info.path), info.model_id))
    server = TritonServer(
        models=models,
        model_repository=settings.model_repository,
        model_config_name=settings.model_config_name,
        host=settings.triton_host,
        grpc_port=settings.triton_grpc_port,
        http_port=settings.triton_http_port,
        metrics_port=settings.triton_metrics_port,
    )
    stop = threading.Event()
    for signal_number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signal_number, lambda *_: stop.set())
    server.start()
    log.info("Triton ready: gRPC %s, log %s", server.grpc_url, server.log_path)
    try:
        while not stop.wait(1.0):
            if server.exited():
                log.error("tritonserver exited:\n%s", server.log_tail())
                return 1
    finally:
        server.stop(remove_work_dir=True)
    return 0
