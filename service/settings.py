"""Settings declared once: each is a dataclass field with its default and help, from which come its flag
(`--redis-url`), its environment variable (`SAMSVC_REDIS_URL`), its type and its line in `--help`.

The environment is read when the arguments are turned into settings, not when the parser is built; a flag
wins over its variable, the variable over the default. An empty variable counts as unset.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit, urlunsplit

ENV_PREFIX = "SAMSVC_"
_METADATA_KEY = "samsvc_setting"

Settings = TypeVar("Settings")


class SettingsError(ValueError):
    """A setting's value cannot be read as its type (named with the flag or variable it came from)."""


@dataclass(frozen=True)
class SettingSpec:
    """What the command line and the environment need to know of one setting besides its type and default."""

    help: str
    secret: bool = False
    flag: str | None = None  # the flag when it is not the field's name (a repeatable --model for `models`)


def setting(default: Any, help: str, *, secret: bool = False, flag: str | None = None) -> Any:
    """A settings field: its default, its help line, whether its value is a secret (masked in logs) and, when it is
    not the field's own name, its flag."""
    return dataclasses.field(default=default, metadata={_METADATA_KEY: SettingSpec(help, secret, flag)})


def with_default(settings_class: type, name: str, default: Any) -> Any:
    """The field `name` of `settings_class` with another default (a service's own port), keeping its help."""
    (base,) = (field for field in dataclasses.fields(settings_class) if field.name == name)
    return dataclasses.field(default=default, metadata=base.metadata)


def flag_of(name: str) -> str:
    """The flag of a field: redis_url → --redis-url."""
    return "--" + name.replace("_", "-")


def env_name(name_or_flag: str) -> str:
    """The environment variable of a field or flag: redis_url or --redis-url → SAMSVC_REDIS_URL."""
    return ENV_PREFIX + name_or_flag.lstrip("-").replace("-", "_").upper()


def add_settings(parser: argparse.ArgumentParser | argparse._ArgumentGroup, settings_class: type) -> None:
    """One flag per field of `settings_class`; unset flags stay None so settings_from_args can tell them apart."""
    hints = typing.get_type_hints(settings_class)
    for field in dataclasses.fields(settings_class):
        spec = field.metadata.get(_METADATA_KEY)
        if spec is None:
            continue
        kind = _Kind.of(hints[field.name])
        shown_default = "none" if field.default in (None, ()) else field.default
        options: dict[str, Any] = {
            "dest": field.name,
            "default": None,
            "help": f"{spec.help} [env {env_name(field.name)}; default: {shown_default}]".replace("%", "%%"),
        }
        if kind.choices:
            options["choices"] = kind.choices
            options["metavar"] = "{" + ",".join(kind.choices) + "}"
        if kind.repeated:
            options.update(action="append", type=kind.parse_one, metavar=field.name.upper().rstrip("S"))
        elif kind.base is bool:
            options.update(action=argparse.BooleanOptionalAction)
        else:
            options.setdefault("metavar", field.name.upper())
            options.update(type=kind.parse_one)
        parser.add_argument(spec.flag or flag_of(field.name), **options)


def settings_from_args(
    settings_class: type[Settings], args: argparse.Namespace, environ: Mapping[str, str] | None = None
) -> Settings:
    """The settings from parsed flags, then the environment (`os.environ` unless given), then the defaults."""
    environ = os.environ if environ is None else environ
    hints = typing.get_type_hints(settings_class)
    values: dict[str, Any] = {}
    for field in dataclasses.fields(settings_class):  # type: ignore[arg-type]
        if _METADATA_KEY not in field.metadata:
            continue
        kind = _Kind.of(hints[field.name])
        given = getattr(args, field.name, None)
        if given is not None:
            values[field.name] = kind.finish(given)
            continue
        variable = env_name(field.name)
        text = environ.get(variable, "")
        if text != "":
            values[field.name] = kind.parse_env(text, variable)
    return settings_class(**values)


def parse_settings(
    settings_class: type[Settings], argv: list[str], environ: Mapping[str, str] | None = None
) -> Settings:
    """Settings from a command line of only these settings' flags (for tests and embedding)."""
    parser = argparse.ArgumentParser()
    add_settings(parser, settings_class)
    return settings_from_args(settings_class, parser.parse_args(argv), environ)


def describe_settings(settings: Any) -> str:
    """One line per setting, secrets and URL passwords masked, for the start-up log."""
    lines = []
    for field in dataclasses.fields(settings):
        value = getattr(settings, field.name)
        spec = field.metadata.get(_METADATA_KEY)
        if spec is not None and spec.secret and value:
            value = "***"
        elif isinstance(value, str) and "://" in value:
            value = mask_url_password(value)
        lines.append(f"  {field.name} = {value}")
    return "\n".join(lines)


def describe_exposure(settings: ServiceSettings) -> str:
    """How a service is reached, in a few words for its start-up log line."""
    parts = [
        ("mutual TLS" if settings.tls_client_ca_file else "TLS") if settings.tls_cert_file else "plaintext",
        "bearer tokens" if settings.auth_tokens_file else "NO TOKENS ASKED",
    ]
    if settings.health_port:
        parts.append(f"health also on plaintext port {settings.health_port}")
    if settings.reflection:
        parts.append("reflection on")
    return ", ".join(parts)


def mask_url_password(url: str) -> str:
    """The URL with any password replaced by ***, for logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


# An explicitly empty flag value of an optional setting ("--model-config-name ''"): None, and it wins.
_EMPTY = object()
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError(f"{text!r} is not a boolean (true/false, 1/0, yes/no)")


@dataclass(frozen=True)
class _Kind:
    """How to read one setting from text: its base type, optional-ness, repetition and allowed values."""

    base: type
    optional: bool
    repeated: bool
    choices: tuple[str, ...] | None

    @classmethod
    def of(cls, hint: Any) -> _Kind:
        optional = False
        arguments = typing.get_args(hint)
        if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
            optional = type(None) in arguments
            (hint,) = (argument for argument in arguments if argument is not type(None))
            arguments = typing.get_args(hint)
        repeated = typing.get_origin(hint) is tuple
        if repeated:
            hint = arguments[0]
            arguments = typing.get_args(hint)
        choices = None
        if typing.get_origin(hint) is Literal:
            choices = tuple(str(argument) for argument in arguments)
            hint = str
        return cls(hint, optional, repeated, choices)

    @property
    def parse_one(self) -> Callable[[str], Any]:
        convert: Callable[[str], Any] = _parse_bool if self.base is bool else self.base
        if not self.optional:
            return convert

        def parse_optional(text: str) -> Any:
            return _EMPTY if text == "" else convert(text)

        return parse_optional

    def finish(self, value: Any) -> Any:
        """A parsed flag value as the field holds it: "" is None for optional fields, lists are tuples."""
        if self.repeated:
            return tuple(value)
        return None if value is _EMPTY else value

    def parse_env(self, text: str, variable: str) -> Any:
        try:
            if self.repeated:
                return tuple(self.parse_one(item.strip()) for item in text.split(",") if item.strip())
            value = self.finish(self.parse_one(text))
        except ValueError as error:
            raise SettingsError(f"{variable}={text!r}: {error}") from None
        if self.choices and value not in self.choices:
            raise SettingsError(f"{variable}={text!r}: must be one of {', '.join(self.choices)}")
        return value


LogFormat = Literal["text", "json"]


@dataclass(frozen=True)
class LoggingSettings:
    """Every command's logging."""

    log_level: str = setting("INFO", "Python logging level.")
    log_format: LogFormat = setting("text", "Log lines as text for people or JSON objects for machines.")


@dataclass(frozen=True)
class ServiceSettings(LoggingSettings):
    """The settings both services share; each service's settings extend these (and set its own ports)."""

    # Loopback unless told otherwise: a bare `samsvc encoder` is reachable from this machine only (the image sets
    # 0.0.0.0, Kubernetes' network policies and the token file guard the pod).
    host: str = setting("127.0.0.1", "Address the gRPC server binds (0.0.0.0: every interface).")
    port: int = setting(0, "gRPC port.")
    metrics_host: str = setting("127.0.0.1", "Address of the Prometheus /metrics server (0.0.0.0: every interface).")
    metrics_port: int = setting(0, "Prometheus port; 0 disables.")
    health_port: int = setting(
        0,
        "A second, plaintext port serving grpc.health.v1 only, for probes that cannot speak TLS or send a token "
        "(kubelet's); 0: none (health is also served on the gRPC port, without a token).",
    )
    auth_tokens_file: Path | None = setting(
        None,
        "Accepted bearer tokens, one a line, each optionally followed by a tenant name; re-read when it changes. "
        "Calls without `authorization: Bearer <token>` are UNAUTHENTICATED (health excepted). None: no tokens asked.",
    )
    tls_cert_file: Path | None = setting(None, "Server certificate chain (PEM): serve gRPC over TLS.")
    tls_key_file: Path | None = setting(None, "Private key (PEM) of --tls-cert-file.")
    tls_client_ca_file: Path | None = setting(
        None, "CA certificates (PEM) of client certificates: with it, clients must present one (mutual TLS)."
    )
    reflection: bool = setting(False, "Serve gRPC server reflection (behind the token like every other call).")
    redis_url: str = setting(
        "redis://127.0.0.1:6379/0",
        "Redis holding the embeddings; rediss:// for TLS; redis+cluster://host:port,host:port (rediss+cluster:// "
        "with TLS) for a Redis Cluster, listing one or more seed nodes.",
    )
    redis_password: str | None = setting(None, "Redis password (overrides one in the URL).", secret=True)
    redis_tls_ca_file: Path | None = setting(
        None, "CA certificates (PEM) that Redis's certificate must chain to (rediss://); default: the system's."
    )
    models: tuple[str, ...] = setting(
        (),
        "A model to serve, NAME=CHECKPOINT (a .pth path in its official format, or builtin:lite_medsam); "
        "repeatable (the variable takes a comma-separated list), the first is the default.",
        flag="--model",
    )
    checkpoint: Path | None = setting(None, "The one model to serve, by its checkpoint (instead of --model).")
    arch: str | None = setting(None, "Expected architecture of --checkpoint (vit_h, lite_medsam, ...); checked.")
    model_id: str | None = setting(
        None, "Model id of --checkpoint's keys; default: family + architecture + hash of its weights."
    )
    health_check_seconds: float = setting(2.0, "Interval of the dependency checks behind gRPC health.")
    max_connection_age_seconds: float = setting(
        0.0,
        "Close each client connection after about this long (GOAWAY, +-10% jitter), so clients reconnect and "
        "long streams spread over new replicas; 0: never.",
    )
    max_connection_age_grace_seconds: float = setting(
        60.0, "After the maximum connection age, time left to calls in flight before the connection is closed."
    )
