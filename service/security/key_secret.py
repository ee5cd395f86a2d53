"""The server secret of image keys (service.cache.keys.image_key_of), read from a file once at start-up."""

from __future__ import annotations

from pathlib import Path
from typing import Final

# 128 bits: enough that nobody guesses it; `head -c 32 /dev/urandom | base64` makes a good one.
MIN_SECRET_BYTES: Final = 16


def read_key_secret(path: Path) -> bytes:
    """The file's bytes without surrounding whitespace; ValueError when unreadable or shorter than 16 bytes."""
    try:
        secret = path.read_bytes().strip()
    except OSError as error:
        raise ValueError(f"cannot read the key secret file {path}: {error}") from error
    if len(secret) < MIN_SECRET_BYTES:
        raise ValueError(f"the key secret in {path} is {len(secret)} bytes; it needs at least {MIN_SECRET_BYTES}")
    return secret
