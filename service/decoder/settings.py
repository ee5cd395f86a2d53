"""The decoder's settings: flags with SAMSVC_* environment variables, one typed object."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from service.config import ServiceSettings, add_service_settings, add_setting, settings_of


@dataclass(frozen=True)
class DecoderSettings(ServiceSettings):
    port: int = 50052
    metrics_port: int = 9102
    device: str = "cpu"
    lru_bytes: int = 512 << 20
    max_points: int = 64
    max_objects: int = 16
    decode_workers: int = 1


def add_decoder_settings(parser: argparse.ArgumentParser) -> None:
    """Every decoder flag, each with its SAMSVC_<FLAG> environment variable."""
    defaults = DecoderSettings()
    add_service_settings(parser, defaults)
    add_setting(parser, "--device", default=defaults.device, help="Torch device of the mask decoder (cpu, cuda).")
    add_setting(
        parser, "--lru-bytes", default=defaults.lru_bytes, type=int, help="Bytes of embeddings kept in process."
    )
    add_setting(parser, "--max-points", default=defaults.max_points, type=int, help="Points allowed per prompt.")
    add_setting(parser, "--max-objects", default=defaults.max_objects, type=int, help="Prompts allowed per request.")
    add_setting(
        parser, "--decode-workers", default=defaults.decode_workers, type=int, help="Threads that run the mask decoder."
    )


def settings_from_args(args: argparse.Namespace) -> DecoderSettings:
    return settings_of(DecoderSettings, args)
