"""Settings of the client commands (`samsvc segment`): where the services are."""

from __future__ import annotations

from dataclasses import dataclass

from service.settings import LoggingSettings, setting


@dataclass(frozen=True)
class ClientSettings(LoggingSettings):
    encoder: str = setting("127.0.0.1:50051", "Encoder address host:port.")
    decoder: str = setting("127.0.0.1:50052", "Decoder address host:port.")
    timeout_seconds: float = setting(300.0, "Deadline of each call.")
