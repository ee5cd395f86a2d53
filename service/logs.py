"""One logging set-up for every command: text for people or one JSON object a line for machines, each line
carrying what is known of the call it belongs to (request id, stream, image key, model)."""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

# Fields a log line may carry about its call, in the order text lines show them.
CONTEXT_FIELDS: Final = ("stream", "request_id", "image_key", "model")

_CONTEXT: contextvars.ContextVar[dict[str, str]] = contextvars.ContextVar("samsvc_log_context", default={})  # noqa: B039 - never mutated


@contextmanager
def log_context(**fields: str | None) -> Iterator[None]:
    """Within the block (and tasks started in it), log lines carry these fields; None and "" are left out."""
    current = _CONTEXT.get()
    token = _CONTEXT.set({**current, **{name: value for name, value in fields.items() if value}})
    try:
        yield
    finally:
        _CONTEXT.reset(token)


def bind_log_context(**fields: str | None) -> None:
    """From now on in this task (an RPC's own task), log lines carry these fields: for async generators, which
    must not yield inside a `log_context` block (they may be closed from another context)."""
    _CONTEXT.set({**_CONTEXT.get(), **{name: value for name, value in fields.items() if value}})


def current_context() -> dict[str, str]:
    return dict(_CONTEXT.get())


class _ContextFilter(logging.Filter):
    """Copies the call's context onto each record, so both formatters (and any other handler) can use it."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.samsvc_context = _CONTEXT.get()
        return True


class TextFormatter(logging.Formatter):
    """`time LEVEL logger: message [request_id=… image_key=…]`."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        context: dict[str, str] = getattr(record, "samsvc_context", {})
        shown = " ".join(f"{name}={context[name]}" for name in CONTEXT_FIELDS if name in context)
        if not shown:
            return line
        first, newline, rest = line.partition("\n")
        return f"{first} [{shown}]{newline}{rest}"


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, the call's context and any exception."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(getattr(record, "samsvc_context", {}))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(level: str = "INFO", log_format: str = "text") -> None:
    """Replace the root logger's handlers with one on stderr in `log_format` ("text" or "json")."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    handler.addFilter(_ContextFilter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level.upper())
