"""Settings from command-line flags with environment-variable equivalents (`SAMSVC_<FLAG>`)."""

from __future__ import annotations

import argparse
import dataclasses
import os
from typing import Any
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
