"""`samsvc triton`: serve model_repo/ with the tritonserver binary from the nvidia-pytriton wheel (CPU)."""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from pathlib import Path
from typing import Any

from service.config import add_setting
from service.triton.launcher import DEFAULT_MODEL_REPOSITORY


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "triton",
        help="Run Triton locally (pytriton's tritonserver) serving model_repo/ on the CPU.",
        description="Start tritonserver from the nvidia-pytriton wheel with model_repo/, wait until the encoder "
        "model is READY, and run until SIGTERM/SIGINT. Production runs the same model_repo/ in NVIDIA's image.",
    )
    add_setting(parser, "--checkpoint", default=None, help="SAM checkpoint the model loads (required).")
    add_setting(parser, "--arch", default=None, help="Architecture of the checkpoint (checked if given).")
    add_setting(parser, "--model-id", default=None, help="Model id to report instead of hashing the checkpoint.")
    add_setting(parser, "--model-repository", default=str(DEFAULT_MODEL_REPOSITORY), help="Triton model repository.")
    add_setting(
        parser, "--model-config-name", default="cpu",
        help="configs/<name>.pbtxt to use; empty for config.pbtxt (the GPU configuration).",
    )  # fmt: skip
    add_setting(parser, "--triton-host", default="127.0.0.1", help="Address Triton binds.")
    add_setting(parser, "--triton-grpc-port", default=8001, type=int, help="Triton gRPC port.")
    add_setting(parser, "--triton-http-port", default=8000, type=int, help="Triton HTTP port.")
    add_setting(parser, "--triton-metrics-port", default=8002, type=int, help="Triton's own metrics port.")
    add_setting(parser, "--log-level", default="INFO", help="Python logging level.")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from service.triton.launcher import TritonServer

    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log = logging.getLogger("samsvc.triton")
    if not args.checkpoint:
        log.error("--checkpoint (SAMSVC_CHECKPOINT) is required")
        return 2
    server = TritonServer(
        checkpoint=Path(args.checkpoint),
        arch=args.arch,
        model_id=args.model_id,
        model_repository=Path(args.model_repository),
        model_config_name=args.model_config_name or None,
        host=args.triton_host,
        grpc_port=args.triton_grpc_port,
        http_port=args.triton_http_port,
        metrics_port=args.triton_metrics_port,
    )
    stop = threading.Event()
    for signal_number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signal_number, lambda *_: stop.set())
    server.start()
    log.info("Triton ready: gRPC %s, log %s", server.grpc_url, server.log_path)
    try:
        while not stop.wait(1.0):
            if server.process is None or server.process.poll() is not None:
                log.error("tritonserver exited:\n%s", server.log_tail())
                return 1
    finally:
        server.stop(remove_work_dir=True)
    return 0
