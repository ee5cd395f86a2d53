"""Asking a server's grpc.health.v1 service how it is: for `samsvc health`, `samsvc up` and the tests."""

from __future__ import annotations

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def health_status(address: str, service: str = "", timeout_seconds: float = 3.0) -> str:
    """The status name a server reports (SERVING, NOT_SERVING, ...), or ERROR (<code>) if the call fails."""
    with grpc.insecure_channel(address) as channel:
        try:
            response = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=timeout_seconds
            )
        except grpc.RpcError as error:
            return f"ERROR ({error.code().name})"
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(response.status))
