"""The one error table: every domain error has its status, unexpected errors are INTERNAL and never leak."""

from __future__ import annotations

import grpc
import pytest

import service.errors as errors
from service.rpc.status import MAX_MESSAGE_CHARACTERS, STATUS_OF_ERROR, domain_error_of, message_of, status_code_of


def _domain_error_classes() -> list[type[errors.ServiceError]]:
    return [
        value for value in vars(errors).values() if isinstance(value, type) and issubclass(value, errors.ServiceError)
    ]


def test_every_domain_error_is_in_the_table() -> None:
    assert set(_domain_error_classes()) == set(STATUS_OF_ERROR)


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (errors.InvalidArgument("x"), grpc.StatusCode.INVALID_ARGUMENT),
        (errors.NotFound("x"), grpc.StatusCode.NOT_FOUND),
        (errors.ResourceExhausted("x"), grpc.StatusCode.RESOURCE_EXHAUSTED),
        (errors.Unavailable("x"), grpc.StatusCode.UNAVAILABLE),
        (errors.CorruptEmbedding("x"), grpc.StatusCode.DATA_LOSS),
        (errors.DeadlineExceeded("x"), grpc.StatusCode.DEADLINE_EXCEEDED),
        (errors.Unauthenticated("x"), grpc.StatusCode.UNAUTHENTICATED),
        (errors.Internal("x"), grpc.StatusCode.INTERNAL),
        (errors.ServiceError("x"), grpc.StatusCode.INTERNAL),
    ],
)
def test_statuses(error: errors.ServiceError, code: grpc.StatusCode) -> None:
    assert status_code_of(error) == code


def test_an_unexpected_error_becomes_internal_without_its_text() -> None:
    error = domain_error_of(KeyError("secret detail"))
    assert status_code_of(error) == grpc.StatusCode.INTERNAL
    assert "secret detail" not in str(error)


def test_echo_cuts_long_input() -> None:
    assert errors.echo("short") == "'short'"
    long = errors.echo("x" * 10_000)
    assert len(long) < errors.MAX_ECHOED_CHARACTERS + 30 and long.endswith("(10002 characters)")


def test_cut_keeps_short_text_and_cuts_long_text() -> None:
    assert errors.cut("short") == "short"
    assert len(errors.cut("x" * 10_000)) == errors.MAX_ECHOED_CHARACTERS


def test_status_messages_are_bounded() -> None:
    assert len(message_of(errors.InvalidArgument("y" * 20_000, "model"))) == MAX_MESSAGE_CHARACTERS
    assert message_of(errors.InvalidArgument("short", "model")) == "model: short"
