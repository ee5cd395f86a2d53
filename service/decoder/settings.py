"""The decoder's settings: flags with SAMSVC_* environment variables, one typed object."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from service.config import add_setting


@dataclass(frozen=True)
class DecoderSettings:
    host: str = "0.0.0.0"
    port: int = 50052
    metrics_host: str = "0.0.0.0"
    metrics_port: int = 9102
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_password: str = ""
    checkpoint: Path | None = None
    arch: str | None = None
    model_id: str | None = None
    device: str = "cpu"
    lru_bytes: int = 512 << 20
    max_points: int = 64
    max_objects: int = 16
    decode_workers: int = 1
    health_check_seconds: float = 2.0
    log_level: str = "INFO"


def add_decoder_settings(parser: argparse.ArgumentParser) -> None:
    """Every decoder flag, each with its SAMSVC_<FLAG> environment variable."""
    defaults = DecoderSettings()
    add_setting(parser, "--host", default=defaults.host, help="address to listen on")
    add_setting(parser, "--port", default=defaults.port, type=int, help="gRPC port")
    add_setting(parser, "--metrics-host", default=defaults.metrics_host, help="address of the /metrics server")
    add_setting(parser, "--metrics-port", default=defaults.metrics_port, type=int, help="Prometheus port; 0 disables")
    add_setting(
        parser, "--redis-url", default=defaults.redis_url, help="Redis holding the embeddings (rediss:// for TLS)"
    )
    add_setting(
        parser, "--redis-password", default=defaults.redis_password, help="Redis password (overrides the URL's)"
    )
    add_setting(parser, "--checkpoint", default=None, type=Path, help="SAM checkpoint (.pth, official format)")
    add_setting(parser, "--arch", default=None, help="expected architecture (vit_h, vit_l, vit_b, tiny); checked")
    add_setting(
        parser, "--model-id", default=None, help="model id of the keys served; default: arch + hash of the checkpoint"
    )
    add_setting(parser, "--device", default=defaults.device, help="torch device for the mask decoder (cpu, cuda)")
    add_setting(parser, "--lru-bytes", default=defaults.lru_bytes, type=int, help="bytes of embeddings kept in process")
    add_setting(parser, "--max-points", default=defaults.max_points, type=int, help="points allowed per prompt")
    add_setting(parser, "--max-objects", default=defaults.max_objects, type=int, help="prompts allowed per request")
    add_setting(
        parser, "--decode-workers", default=defaults.decode_workers, type=int, help="threads that run the mask decoder"
    )
    add_setting(
        parser, "--health-check-seconds", default=defaults.health_check_seconds, type=float,
        help="interval of the Redis check behind gRPC health",
    )  # fmt: skip
    add_setting(parser, "--log-level", default=defaults.log_level, help="logging level")


def settings_from_args(args: argparse.Namespace) -> DecoderSettings:
    return DecoderSettings(
        host=args.host,
        port=args.port,
        metrics_host=args.metrics_host,
        metrics_port=args.metrics_port,
        redis_url=args.redis_url,
        redis_password=args.redis_password or "",
        checkpoint=Path(args.checkpoint) if args.checkpoint else None,
        arch=args.arch or None,
        model_id=args.model_id or None,
        device=args.device,
        lru_bytes=args.lru_bytes,
        max_points=args.max_points,
        max_objects=args.max_objects,
        decode_workers=args.decode_workers,
        health_check_seconds=args.health_check_seconds,
        log_level=args.log_level,
    )
