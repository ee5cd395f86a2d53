"""Prometheus metrics shared by both services: RED per RPC (go-grpc-prometheus names) and Redis latency.

The RPC metrics are recorded by service.rpc.interceptors."""

from __future__ import annotations

from prometheus_client import Counter, Histogram, start_http_server

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
_RPC_LABELS = ("grpc_service", "grpc_method", "grpc_type")

RPC_STARTED = Counter("grpc_server_started_total", "RPCs started on the server.", _RPC_LABELS)
RPC_HANDLED = Counter("grpc_server_handled_total", "RPCs completed, by status code.", (*_RPC_LABELS, "grpc_code"))
RPC_SECONDS = Histogram(
    "grpc_server_handling_seconds", "Time from an RPC's start to its end.", _RPC_LABELS, buckets=_LATENCY_BUCKETS
)
RPC_MESSAGES_RECEIVED = Counter("grpc_server_msg_received_total", "Stream messages received.", _RPC_LABELS)
RPC_MESSAGES_SENT = Counter("grpc_server_msg_sent_total", "Stream messages sent.", _RPC_LABELS)
# A stream's grpc_server_handling_seconds is its whole lifetime (an interactive session: minutes); what a user waits
# for is each answer. Our streams answer every request once, in order, so request i's latency runs from the moment
# the servicer takes it off the stream to response i (the Redis fetch, the wait for a decode worker, the decode).
# Buckets as the decode's, with room for the rest.
_STREAM_RESPONSE_BUCKETS = (
    *(0.005, 0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.07, 0.08, 0.09, 0.1, 0.125, 0.15, 0.175),
    *(0.2, 0.25, 0.3, 0.4, 0.5, 0.75, 1, 2.5, 5, 10, 30),
)
RPC_STREAM_RESPONSE_SECONDS = Histogram(
    "grpc_server_stream_response_seconds",
    "Time from the servicer taking a stream request to the response answering it (streams answering in order).",
    _RPC_LABELS,
    buckets=_STREAM_RESPONSE_BUCKETS,
)

REDIS_SECONDS = Histogram(
    "sam_redis_seconds", "Latency of Redis commands, by operation.", ("operation",), buckets=_LATENCY_BUCKETS
)
REDIS_ERRORS = Counter("sam_redis_errors_total", "Redis commands that failed to reach Redis.", ("operation",))

# The `operation` of every EmbeddingStore._timed() call, created at 0 so a panel or an alert reads 0 before the
# first error, not "No data" (tests/deploy/test_metric_hygiene.py keeps this list complete).
REDIS_OPERATIONS = ("get", "set", "delete", "get_header", "lock", "unlock", "ping")
for _operation in REDIS_OPERATIONS:
    REDIS_ERRORS.labels(_operation)
    REDIS_SECONDS.labels(_operation)


def start_metrics_server(port: int, host: str = "127.0.0.1") -> None:
    """Serve /metrics on `port` (0 disables it)."""
    if port:
        start_http_server(port, addr=host)
