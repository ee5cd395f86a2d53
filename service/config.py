"""Settings from command-line flags with environment-variable equivalents (`SAMSVC_<FLAG>`)."""

from __future__ import annotations

import argparse
import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

ENV_PREFIX = "SAMSVC_"


def env_name(flag: str) -> str:
    """The environment variable of a flag: --redis-url → SAMSVC_REDIS_URL."""
    return ENV_PREFIX + flag.lstrip("-").replace("-", "_").upper()


def add_setting(
    parser: argparse.ArgumentParser | Any, flag: str, *, default: Any = None, help: str, **kwargs: Any
) -> None:
    """Add `flag` whose default comes from its environment variable, then from `default`; help shows both."""
    variable = env_name(flag)
    value = os.environ.get(variable, default)
    kind = kwargs.get("type")
    if value is not None and kind is not None and isinstance(value, str) and variable in os.environ:
        value = kind(value)
    parser.add_argument(flag, default=value, help=f"{help} [env {variable}; default: {default}]", **kwargs)


Settings = TypeVar("Settings")


@dataclass(frozen=True)
class ServiceSettings:
    """The settings both services share; each service's settings extend these (and set its own ports)."""

    host: str = "0.0.0.0"
    port: int = 0
    metrics_host: str = "0.0.0.0"
    metrics_port: int = 0
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_password: str | None = None
    checkpoint: Path | None = None
    arch: str | None = None
    model_id: str | None = None
    health_check_seconds: float = 2.0
    log_level: str = "INFO"


def add_service_settings(parser: argparse.ArgumentParser, defaults: ServiceSettings) -> None:
    """The flags of ServiceSettings; `defaults` is the service's settings with its defaults."""
    add_setting(parser, "--host", default=defaults.host, help="Address the gRPC server binds.")
    add_setting(parser, "--port", default=defaults.port, type=int, help="gRPC port.")
    add_setting(parser, "--metrics-host", default=defaults.metrics_host, help="Address of the /metrics server.")
    add_setting(parser, "--metrics-port", default=defaults.metrics_port, type=int, help="Prometheus port; 0 disables.")
    add_setting(
        parser, "--redis-url", default=defaults.redis_url, help="Redis holding the embeddings; rediss:// for TLS."
    )
    add_setting(parser, "--redis-password", default=None, help="Redis password (overrides one in the URL).")
    add_setting(parser, "--checkpoint", default=None, help="SAM checkpoint (.pth, official format).")
    add_setting(parser, "--arch", default=None, help="Expected architecture (vit_h, vit_l, vit_b, tiny); checked.")
    add_setting(
        parser, "--model-id", default=None,
        help="Model id of the cache keys; default: architecture + hash of the checkpoint's weights.",
    )  # fmt: skip
    add_setting(
        parser, "--health-check-seconds", default=defaults.health_check_seconds, type=float,
        help="Interval of the dependency checks behind gRPC health.",
    )  # fmt: skip
    add_setting(parser, "--log-level", default=defaults.log_level, help="Python logging level.")


def settings_of(settings_class: type[Settings], args: argparse.Namespace) -> Settings:
    """A settings dataclass from parsed flags: each field from the flag of the same name; an empty string is
    None (an unset environment variable), and a `Path` field gets a Path."""
    values: dict[str, Any] = {}
    for field in dataclasses.fields(settings_class):  # type: ignore[arg-type]
        value = getattr(args, field.name)
        if value == "":
            value = None
        elif isinstance(value, str) and "Path" in str(field.type):
            value = Path(value)
        values[field.name] = value
    return settings_class(**values)


def mask_url_password(url: str) -> str:
    """The URL with any password replaced by ***, for logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def describe_settings(settings: Any, secret_fields: tuple[str, ...] = ("redis_password",)) -> str:
    """One line per field of a settings dataclass, secrets masked, for the start-up log."""
    lines = []
    for field in dataclasses.fields(settings):
        value = getattr(settings, field.name)
        if field.name in secret_fields and value:
            value = "***"
        elif isinstance(value, str) and "://" in value:
            value = mask_url_password(value)
        lines.append(f"  {field.name} = {value}")
    return "\n".join(lines)
