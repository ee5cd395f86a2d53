"""tritonclient failures become domain errors with the right meaning."""

from __future__ import annotations

import pytest
from tritonclient.utils import InferenceServerException

from service.errors import ServiceError, Unavailable
from service.grpc_status import status_code_of
from service.triton.client import TritonDeadlineExceeded, domain_error


@pytest.mark.parametrize(
    ("status", "expected", "grpc_code"),
    [
        ("StatusCode.UNAVAILABLE", Unavailable, "UNAVAILABLE"),
        ("StatusCode.RESOURCE_EXHAUSTED", Unavailable, "UNAVAILABLE"),
        ("StatusCode.DEADLINE_EXCEEDED", TritonDeadlineExceeded, "INTERNAL"),
        ("StatusCode.INTERNAL", ServiceError, "INTERNAL"),
    ],
)
def test_triton_statuses_map_to_domain_errors(status: str, expected: type[ServiceError], grpc_code: str) -> None:
    error = domain_error(InferenceServerException("boom", status=status), "encoding")
    assert type(error) is expected
    # TritonDeadlineExceeded is turned into the caller's DEADLINE_EXCEEDED by the Embedder, never sent as is.
    assert status_code_of(error).name == grpc_code
    assert "encoding" in str(error)
