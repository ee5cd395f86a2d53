"""The encoder's settings: command-line flags, each with its SAMSVC_* environment variable."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from service.config import add_setting
from service.runtime.checkpoint import inspect_checkpoint
from service.runtime.preprocess import ImageLimits


@dataclass(frozen=True)
class EncoderSettings:
    host: str = "0.0.0.0"
    port: int = 50051
    metrics_host: str = "0.0.0.0"
    metrics_port: int = 9101
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_password: str | None = None
    triton_url: str = "127.0.0.1:8001"
    triton_model: str = "sam_image_encoder"
    checkpoint: Path | None = None
    arch: str | None = None
    model_id: str | None = None
    embedding_ttl_seconds: int = 86400
    max_image_bytes: int = 32 << 20
    max_image_pixels: int = 50_000_000
    triton_timeout_seconds: float = 60.0
    single_flight_wait_seconds: float = 120.0
    health_check_seconds: float = 2.0
    log_level: str = "INFO"

    @property
    def image_limits(self) -> ImageLimits:
        return ImageLimits(max_bytes=self.max_image_bytes, max_pixels=self.max_image_pixels)


_DEFAULTS = EncoderSettings()


def add_encoder_settings(parser: argparse.ArgumentParser) -> None:
    """Every encoder flag (with its environment variable) on `parser`."""
    d = _DEFAULTS
    add_setting(parser, "--host", default=d.host, help="Address the gRPC server binds.")
    add_setting(parser, "--port", default=d.port, type=int, help="gRPC port.")
    add_setting(parser, "--metrics-host", default=d.metrics_host, help="Address of the Prometheus /metrics server.")
    add_setting(parser, "--metrics-port", default=d.metrics_port, type=int, help="Prometheus port (0 disables).")
    add_setting(parser, "--redis-url", default=d.redis_url, help="Redis URL; rediss:// for TLS.")
    add_setting(parser, "--redis-password", default=None, help="Redis password (overrides one in the URL).")
    add_setting(parser, "--triton-url", default=d.triton_url, help="Triton's gRPC endpoint, host:port.")
    add_setting(parser, "--triton-model", default=d.triton_model, help="Name of the encoder model on Triton.")
    add_setting(
        parser, "--checkpoint", default=None, help="SAM checkpoint, hashed for the model id if --model-id is unset."
    )
    add_setting(parser, "--arch", default=None, help="Architecture of the checkpoint (vit_h, vit_l, vit_b, tiny).")
    add_setting(parser, "--model-id", default=None, help="Model id for cache keys; must equal what Triton reports.")
    add_setting(
        parser, "--embedding-ttl-seconds", default=d.embedding_ttl_seconds, type=int,
        help="Lifetime of a cached embedding in Redis, refreshed on every hit (0: no expiry).",
    )  # fmt: skip
    add_setting(parser, "--max-image-bytes", default=d.max_image_bytes, type=int, help="Largest accepted image file.")
    add_setting(parser, "--max-image-pixels", default=d.max_image_pixels, type=int, help="Largest accepted image area.")
    add_setting(
        parser, "--triton-timeout-seconds", default=d.triton_timeout_seconds, type=float,
        help="Longest encode on Triton (shortened to the caller's deadline).",
    )  # fmt: skip
    add_setting(
        parser, "--single-flight-wait-seconds", default=d.single_flight_wait_seconds, type=float,
        help="Longest wait for another request (on any replica) that is encoding the same image.",
    )  # fmt: skip
    add_setting(
        parser, "--health-check-seconds", default=d.health_check_seconds, type=float,
        help="Interval of the Triton and Redis readiness checks behind gRPC health.",
    )  # fmt: skip
    add_setting(parser, "--log-level", default=d.log_level, help="Python logging level.")


def settings_from_args(args: argparse.Namespace) -> EncoderSettings:
    return EncoderSettings(
        host=args.host,
        port=args.port,
        metrics_host=args.metrics_host,
        metrics_port=args.metrics_port,
        redis_url=args.redis_url,
        redis_password=args.redis_password or None,
        triton_url=args.triton_url,
        triton_model=args.triton_model,
        checkpoint=Path(args.checkpoint) if args.checkpoint else None,
        arch=args.arch or None,
        model_id=args.model_id or None,
        embedding_ttl_seconds=args.embedding_ttl_seconds,
        max_image_bytes=args.max_image_bytes,
        max_image_pixels=args.max_image_pixels,
        triton_timeout_seconds=args.triton_timeout_seconds,
        single_flight_wait_seconds=args.single_flight_wait_seconds,
        health_check_seconds=args.health_check_seconds,
        log_level=args.log_level,
    )


@dataclass(frozen=True)
class ModelIdentity:
    """The id that names this service's embeddings, and the architecture a caller may name instead."""

    model_id: str
    arch: str | None


def resolve_model_identity(settings: EncoderSettings) -> ModelIdentity:
    """--model-id when given (no checkpoint needed), else the id of --checkpoint (read and hashed)."""
    if settings.model_id:
        arch = settings.arch or settings.model_id.split("-", 1)[0]
        return ModelIdentity(settings.model_id, arch)
    if settings.checkpoint is None:
        raise ValueError("the encoder needs --model-id or --checkpoint (SAMSVC_MODEL_ID / SAMSVC_CHECKPOINT)")
    info = inspect_checkpoint(settings.checkpoint, settings.arch)
    return ModelIdentity(info.model_id, info.arch.name)
