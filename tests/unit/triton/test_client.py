"""tritonclient failures become domain errors with the right meaning and status."""

from __future__ import annotations

import pytest
from tritonclient.utils import InferenceServerException

from service.errors import DeadlineExceeded, Internal, ServiceError, Unavailable
from service.rpc.status import status_code_of
from service.triton.client import domain_error


@pytest.mark.parametrize(
    ("status", "expected", "grpc_code"),
    [
        ("StatusCode.UNAVAILABLE", Unavailable, "UNAVAILABLE"),
        ("StatusCode.RESOURCE_EXHAUSTED", Unavailable, "UNAVAILABLE"),
        ("StatusCode.DEADLINE_EXCEEDED", DeadlineExceeded, "DEADLINE_EXCEEDED"),
        ("StatusCode.INTERNAL", Internal, "INTERNAL"),
    ],
)
def test_triton_statuses_map_to_domain_errors(status: str, expected: type[ServiceError], grpc_code: str) -> None:
    error = domain_error(InferenceServerException("boom", status=status), "encoding")
    assert type(error) is expected
    assert status_code_of(error).name == grpc_code
    assert "encoding" in str(error)
