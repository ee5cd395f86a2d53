"""Bearer tokens from a file: parsing, the check, reloading a rotated file, and comparing with every token."""

from __future__ import annotations

import hmac
import os
from pathlib import Path

import pytest

from service.errors import Unauthenticated
from service.security.tokens import BearerTokens, Caller, TokenFileError, parse_token_file

TOKENS = """# token  tenant
alpha-token-0123456789 radiology
beta-token-0123456789   pathology

shared-token-0123456789
"""


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_the_file_names_tokens_and_their_tenants(tmp_path: Path) -> None:
    tokens = BearerTokens(write(tmp_path / "tokens", TOKENS))
    assert tokens.authenticate("Bearer alpha-token-0123456789") == Caller("radiology")
    assert tokens.authenticate("bearer beta-token-0123456789") == Caller("pathology")
    assert tokens.authenticate("Bearer shared-token-0123456789") == Caller(None)


@pytest.mark.parametrize(
    ("authorization", "message"),
    [
        (None, "needs `authorization: Bearer <token>`"),
        ("", "needs `authorization: Bearer <token>`"),
        ("Basic YWxhZGRpbjpvcGVuc2VzYW1l", "is not `Bearer <token>`"),
        ("Bearer", "is not `Bearer <token>`"),
        ("Bearer wrong-token", "unknown bearer token"),
        ("Bearer alpha-token-012345678", "unknown bearer token"),  # a prefix of a real one
        ("Bearer radiology", "unknown bearer token"),  # a tenant is not a token
    ],
)
def test_a_missing_or_unknown_token_is_unauthenticated(tmp_path: Path, authorization: str | None, message: str) -> None:
    tokens = BearerTokens(write(tmp_path / "tokens", TOKENS))
    with pytest.raises(Unauthenticated, match=message.replace("`", ".").replace("<", ".").replace(">", ".")) as raised:
        tokens.authenticate(authorization)
    assert "alpha-token" not in str(raised.value)  # nothing of an accepted token in the message


def test_every_accepted_token_is_compared(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Constant time: the first, the last and an unknown token cost the same number of comparisons."""
    tokens = BearerTokens(write(tmp_path / "tokens", TOKENS))
    calls = 0
    real = hmac.compare_digest

    def counting(left: bytes, right: bytes) -> bool:
        nonlocal calls
        calls += 1
        return real(left, right)

    monkeypatch.setattr(hmac, "compare_digest", counting)
    for presented in ("alpha-token-0123456789", "shared-token-0123456789", "nobody"):
        calls = 0
        try:
            tokens.authenticate(f"Bearer {presented}")
        except Unauthenticated:
            pass
        assert calls == 3, presented


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("token tenant extra\n", "line 1: expected a token and an optional tenant, found 3 fields"),
        ("ok-token\nother-token bad:tenant\n", "line 2: tenant 'bad:tenant'"),
        ("x" + " t" * 2, "line 1"),
    ],
)
def test_a_malformed_line_is_named(text: str, message: str) -> None:
    with pytest.raises(TokenFileError, match=message):
        parse_token_file(text)


def test_a_missing_file_fails_at_start(tmp_path: Path) -> None:
    with pytest.raises(TokenFileError, match="cannot read the token file"):
        BearerTokens(tmp_path / "absent")


def test_a_rotated_file_is_read_again(tmp_path: Path) -> None:
    clock = Clock()
    path = write(tmp_path / "tokens", "old-token-0123456789\n")
    tokens = BearerTokens(path, recheck_seconds=1.0, clock=clock)
    assert tokens.authenticate("Bearer old-token-0123456789") == Caller(None)

    # Rotated as a Kubernetes Secret volume does it: a new file swapped in under the same name.
    write(tmp_path / "tokens.new", "new-token-0123456789 radiology\n")
    os.replace(tmp_path / "tokens.new", path)
    assert tokens.authenticate("Bearer old-token-0123456789") == Caller(None)  # not looked at again yet
    clock.now += 1.5
    assert tokens.authenticate("Bearer new-token-0123456789") == Caller("radiology")
    with pytest.raises(Unauthenticated):
        tokens.authenticate("Bearer old-token-0123456789")


def test_a_broken_or_missing_file_keeps_the_last_good_tokens(tmp_path: Path) -> None:
    clock = Clock()
    path = write(tmp_path / "tokens", "good-token-0123456789\n")
    tokens = BearerTokens(path, recheck_seconds=1.0, clock=clock)
    write(path, "good-token-0123456789 bad:tenant\nanother-token\n")
    clock.now += 2
    assert tokens.authenticate("Bearer good-token-0123456789") == Caller(None)
    with pytest.raises(Unauthenticated):
        tokens.authenticate("Bearer another-token")
    path.unlink()
    clock.now += 2
    assert tokens.authenticate("Bearer good-token-0123456789") == Caller(None)


def test_an_empty_file_accepts_nobody(tmp_path: Path) -> None:
    tokens = BearerTokens(write(tmp_path / "tokens", "# nobody yet\n"))
    with pytest.raises(Unauthenticated, match="unknown"):
        tokens.authenticate("Bearer anything")


def test_a_malformed_file_fails_at_start_naming_it(tmp_path: Path) -> None:
    path = write(tmp_path / "tokens", "ok-token\ntoken tenant extra\n")
    with pytest.raises(TokenFileError, match=f"the token file {path}, line 2"):
        BearerTokens(path)
