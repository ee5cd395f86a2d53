"""The encoder's settings: command-line flags, each with its SAMSVC_* environment variable."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from service.config import ServiceSettings, add_service_settings, add_setting, settings_of
from service.runtime.checkpoint import inspect_checkpoint
from service.runtime.preprocess import ImageLimits


@dataclass(frozen=True)
class EncoderSettings(ServiceSettings):
    port: int = 50051
    metrics_port: int = 9101
    triton_url: str = "127.0.0.1:8001"
    triton_model: str = "sam_image_encoder"
    embedding_ttl_seconds: int = 86400
    max_image_bytes: int = 32 << 20
    max_image_pixels: int = 50_000_000
    triton_timeout_seconds: float = 60.0
    single_flight_wait_seconds: float = 120.0

    @property
    def image_limits(self) -> ImageLimits:
        return ImageLimits(max_bytes=self.max_image_bytes, max_pixels=self.max_image_pixels)


_DEFAULTS = EncoderSettings()


def add_encoder_settings(parser: argparse.ArgumentParser) -> None:
    """Every encoder flag (with its environment variable) on `parser`."""
    d = _DEFAULTS
    add_service_settings(parser, d)
    add_setting(parser, "--triton-url", default=d.triton_url, help="Triton's gRPC endpoint, host:port.")
    add_setting(parser, "--triton-model", default=d.triton_model, help="Name of the encoder model on Triton.")
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


def settings_from_args(args: argparse.Namespace) -> EncoderSettings:
    return settings_of(EncoderSettings, args)


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
