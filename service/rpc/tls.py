"""TLS credentials from PEM files, for the servers (optionally asking for client certificates: mutual TLS) and the
clients (a CA to trust, optionally a client certificate)."""

from __future__ import annotations

from pathlib import Path

import grpc


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise ValueError(f"cannot read the {what} {path}: {error}") from error


def server_credentials(
    cert_file: Path, key_file: Path | None, client_ca_file: Path | None = None
) -> grpc.ServerCredentials:
    """A certificate chain and its key; with `client_ca_file`, clients must present a certificate it signed."""
    if key_file is None:
        raise ValueError("--tls-cert-file needs --tls-key-file (SAMSVC_TLS_KEY_FILE)")
    pair = (_read(key_file, "TLS key"), _read(cert_file, "TLS certificate"))
    client_ca = _read(client_ca_file, "client CA file") if client_ca_file is not None else None
    return grpc.ssl_server_credentials([pair], root_certificates=client_ca, require_client_auth=client_ca is not None)


def channel_credentials(
    ca_file: Path | None = None, cert_file: Path | None = None, key_file: Path | None = None
) -> grpc.ChannelCredentials:
    """Client TLS: trust `ca_file` (default: the system's roots), and present `cert_file` with `key_file` if given."""
    if (cert_file is None) != (key_file is None):
        raise ValueError("a client certificate needs both its certificate and its key file")
    return grpc.ssl_channel_credentials(
        root_certificates=_read(ca_file, "CA file") if ca_file is not None else None,
        private_key=_read(key_file, "client key") if key_file is not None else None,
        certificate_chain=_read(cert_file, "client certificate") if cert_file is not None else None,
    )
