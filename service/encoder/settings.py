"""The encoder's settings: each declared once, with its flag and SAMSVC_* environment variable."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from service.image_info import ImageLimits
from service.settings import ServiceSettings, setting, with_default


@dataclass(frozen=True)
class EncoderSettings(ServiceSettings):
    port: int = with_default(ServiceSettings, "port", 50051)
    metrics_port: int = with_default(ServiceSettings, "metrics_port", 9101)
    triton_url: str = setting("127.0.0.1:8001", "Triton's gRPC endpoint, host:port.")
    triton_model: str = setting("sam_image_encoder", "Name of the encoder model on Triton.")
    embedding_ttl_seconds: int = setting(
        86400, "Lifetime of a cached embedding in Redis, refreshed on every hit (0: no expiry)."
    )
    max_image_bytes: int = setting(32 << 20, "Largest accepted image file.")
    max_image_pixels: int = setting(50_000_000, "Largest accepted image area, checked before decoding.")
    triton_timeout_seconds: float = setting(60.0, "Longest encode on Triton (shortened to the caller's deadline).")
    single_flight_wait_seconds: float = setting(
        120.0, "Longest wait for another request (on any replica) that is encoding the same image."
    )
    key_secret_file: Path | None = setting(
        None,
        "A server secret (at least 16 bytes): image keys become an HMAC-SHA256 of the model id, the tenant and the "
        "image bytes, which nobody can compute from the image alone. None: the plain SHA-256 of the bytes.",
    )

    @property
    def image_limits(self) -> ImageLimits:
        return ImageLimits(max_bytes=self.max_image_bytes, max_pixels=self.max_image_pixels)
