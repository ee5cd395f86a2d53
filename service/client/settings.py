"""Settings of the client commands (`samsvc segment`): where the services are and how to reach them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from service.settings import LoggingSettings, setting


@dataclass(frozen=True)
class ClientSettings(LoggingSettings):
    encoder: str = setting("127.0.0.1:50051", "Encoder address host:port.")
    decoder: str = setting("127.0.0.1:50052", "Decoder address host:port.")
    timeout_seconds: float = setting(300.0, "Deadline of each call.")
    auth_token: str | None = setting(None, "Bearer token sent with every call (the services' token file).", secret=True)
    tls: bool = setting(False, "Connect over TLS, trusting the system's CAs (implied by --tls-ca-file).")
    tls_ca_file: Path | None = setting(None, "CA certificates (PEM) the services' certificates must chain to.")
    tls_cert_file: Path | None = setting(None, "Client certificate (PEM), for services that ask for one (mutual TLS).")
    tls_key_file: Path | None = setting(None, "Private key (PEM) of --tls-cert-file.")

    @property
    def uses_tls(self) -> bool:
        return self.tls or self.tls_ca_file is not None or self.tls_cert_file is not None
