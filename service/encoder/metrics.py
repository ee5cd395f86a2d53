"""The encoder's own Prometheus metrics (RED per RPC and Redis latency are in service.metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

_SECONDS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)

CACHE_REQUESTS = Counter(
    "sam_encoder_cache_requests_total", "Embed lookups in Redis, by result (hit or miss).", ("result",)
)
TRITON_SECONDS = Histogram(
    "sam_encoder_triton_seconds", "Round trip of one encode on Triton.", buckets=_SECONDS_BUCKETS
)
TRITON_ERRORS = Counter("sam_encoder_triton_errors_total", "Encodes on Triton that failed or timed out.")
EMBEDDING_BYTES_STORED = Counter(
    "sam_encoder_embedding_bytes_stored_total", "Bytes of encoded embeddings written to Redis."
)
SINGLE_FLIGHT_WAITS = Counter(
    "sam_encoder_single_flight_waits_total",
    "Embeds that found another request encoding the same image, by outcome "
    "(value: it arrived; timeout: the bounded wait ran out; took_over: the holder went away and this one encoded; "
    "failed: the holder failed, and this one answered the same failure without encoding again).",
    ("outcome",),
)
SINGLE_FLIGHT_WAIT_SECONDS = Histogram(
    "sam_encoder_single_flight_wait_seconds",
    "Time spent waiting for another request's encode.",
    buckets=_SECONDS_BUCKETS,
)
GET_EMBEDDING_REQUESTS = Counter(
    "sam_encoder_get_embedding_requests_total",
    "GetEmbedding reads, by result (found; not_found: unknown, expired, another tenant's or another model's key; "
    "damaged: the value was damaged and removed).",
    ("result",),
)
PREPROCESS_SECONDS = Histogram(
    "sam_encoder_preprocess_seconds", "Decoding, resizing and padding one image.", buckets=_SECONDS_BUCKETS
)

# Every label value exists from the start at 0, so panels and alerts read 0 until the first event, not "No data".
# The outcomes are single_flight.Outcome's values for a call that waited (LED, the call that encodes, never waits).
SINGLE_FLIGHT_OUTCOMES = ("value", "timeout", "took_over", "failed")
for _result in ("hit", "miss"):
    CACHE_REQUESTS.labels(_result)
for _outcome in SINGLE_FLIGHT_OUTCOMES:
    SINGLE_FLIGHT_WAITS.labels(_outcome)
for _result in ("found", "not_found", "damaged"):
    GET_EMBEDDING_REQUESTS.labels(_result)
