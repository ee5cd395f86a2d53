"""The decoder's settings: each declared once, with its flag and SAMSVC_* environment variable."""

from __future__ import annotations

from dataclasses import dataclass

from service.settings import ServiceSettings, setting, with_default


@dataclass(frozen=True)
class DecoderSettings(ServiceSettings):
    port: int = with_default(ServiceSettings, "port", 50052)
    metrics_port: int = with_default(ServiceSettings, "metrics_port", 9102)
    device: str = setting("cpu", "Torch device of the mask decoder (cpu, cuda).")
    lru_bytes: int = setting(512 << 20, "Bytes of embeddings kept in process.")
    max_points: int = setting(64, "Points allowed per prompt.")
    max_objects: int = setting(16, "Prompts allowed per request.")
    decode_workers: int = setting(1, "Threads that run the mask decoder.")
