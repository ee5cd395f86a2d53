"""Bearer tokens from a file, re-read when it changes (a rotated Kubernetes Secret), compared in constant time.

The file holds one accepted token a line, optionally followed by whitespace and a tenant name; blank lines and lines
starting with `#` are ignored:

    # token                             tenant (optional)
    3q2+7w-4f1c0a8b9d2e6f5a7c3b1d0e9f   radiology
    8f7e6d5c4b3a29180716253443526170


A caller with a tenant's token reads and writes that tenant's embeddings only (service.cache.keys); a token without
one, the shared ones. Tokens are kept as their SHA-256 only, and a presented token is compared with every accepted
one, so neither the time an answer takes nor a crash dump tells them.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from service.cache.keys import check_tenant
from service.errors import Unauthenticated

log = logging.getLogger(__name__)

BEARER_SCHEME = "bearer"


@dataclass(frozen=True)
class Caller:
    """Who is calling, as far as the service needs to know: the tenant whose embeddings it may use (None: the
    shared ones)."""

    tenant: str | None = None


ANONYMOUS = Caller()


class TokenFileError(ValueError):
    """The token file cannot be read or a line of it is malformed (named with its line number)."""


@dataclass(frozen=True)
class _Accepted:
    digest: bytes
    caller: Caller


def parse_token_file(text: str) -> tuple[_Accepted, ...]:
    """The accepted tokens of a token file's text; TokenFileError naming the line at fault."""
    accepted = []
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        if len(fields) > 2:
            raise TokenFileError(f"line {number}: expected a token and an optional tenant, found {len(fields)} fields")
        tenant = fields[1] if len(fields) == 2 else None
        if tenant is not None:
            try:
                check_tenant(tenant)
            except ValueError as error:
                raise TokenFileError(f"line {number}: {error}") from None
        accepted.append(_Accepted(_digest(fields[0]), Caller(tenant)))
    return tuple(accepted)


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class BearerTokens:
    """The tokens of `path`, looked at again at most every `recheck_seconds` and re-read when the file changed.

    A file that disappears or stops parsing keeps the last good tokens (logged): a Secret being rotated must not
    lock every caller out, nor let every caller in.
    """

    def __init__(self, path: Path, recheck_seconds: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.path = path
        self.recheck_seconds = recheck_seconds
        self._clock = clock
        try:
            self._signature = self._file_signature()
        except OSError as error:
            raise TokenFileError(f"cannot read the token file {path}: {error}") from error
        try:
            self._accepted = parse_token_file(self._read())
        except TokenFileError as error:
            raise TokenFileError(f"the token file {path}, {error}") from None
        if not self._accepted:
            log.warning("the token file %s accepts no token: every call but health is refused", path)
        self._checked_at = clock()

    def authenticate(self, authorization: str | None) -> Caller:
        """The caller an `authorization` metadata value names; Unauthenticated without a known bearer token."""
        self._reload_if_changed()
        if not authorization:
            raise Unauthenticated("this call needs `authorization: Bearer <token>` metadata")
        scheme, _, token = authorization.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != BEARER_SCHEME or not token:
            raise Unauthenticated("the authorization metadata is not `Bearer <token>`")
        presented = _digest(token)
        found: Caller | None = None
        for accepted in self._accepted:  # all of them, whichever matches: constant time
            if hmac.compare_digest(presented, accepted.digest):
                found = accepted.caller
        if found is None:
            raise Unauthenticated("unknown bearer token")
        return found

    def _reload_if_changed(self) -> None:
        now = self._clock()
        if now - self._checked_at < self.recheck_seconds:
            return
        self._checked_at = now
        try:
            signature = self._file_signature()
            if signature == self._signature:
                return
            accepted = parse_token_file(self._read())
        except (OSError, TokenFileError) as error:
            log.warning("token file %s not reloaded, keeping the last good tokens: %s", self.path, error)
            return
        self._signature, self._accepted = signature, accepted
        log.info("token file %s reloaded: %d token(s)", self.path, len(accepted))

    def _file_signature(self) -> tuple[int, int, int, int]:
        # Through the symlink: a Kubernetes Secret volume swaps a `..data` link, which gives the file a new inode.
        stat = os.stat(self.path)
        return (stat.st_dev, stat.st_ino, stat.st_mtime_ns, stat.st_size)

    def _read(self) -> str:
        try:
            return self.path.read_text()
        except (OSError, UnicodeDecodeError) as error:
            raise TokenFileError(f"cannot read {self.path}: {error}") from error
