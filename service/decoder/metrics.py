"""The decoder's own Prometheus metrics (RPC RED and Redis latency live in service.metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

# A decode lands at 60-114 ms per prompt on a CPU (README's measured figures) and at milliseconds on a GPU: buckets
# every 10-25 ms from 20 to 200 ms, so p50 and p99 are read inside a bucket narrower than the change they show.
_DECODE_BUCKETS = (
    *(0.001, 0.0025, 0.005, 0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.07, 0.08, 0.09, 0.1, 0.125, 0.15),
    *(0.175, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75, 1, 2.5, 5, 10),
)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)

PROMPTS = Counter("sam_decoder_prompts", "Prompts (objects) decoded.")
DECODE_SECONDS = Histogram(
    "sam_decoder_decode_seconds", "Time to decode one request's prompts and encode its masks.", buckets=_DECODE_BUCKETS
)
BATCH_SIZE = Histogram("sam_decoder_batch_size", "Prompts decoded together in one call.", buckets=_BATCH_BUCKETS)
LRU_REQUESTS = Counter("sam_decoder_lru_requests", "Embedding lookups in the in-process LRU.", ("result",))
LRU_BYTES = Gauge("sam_decoder_lru_bytes", "Bytes of embeddings held in the in-process LRU.")
REDIS_FETCHES = Counter(
    "sam_decoder_redis_fetches",
    "Embeddings fetched from Redis after an LRU miss, by result (found, not_found, damaged: removed from Redis).",
    ("result",),
)
STREAMS_IN_FLIGHT = Gauge("sam_decoder_streams_in_flight", "Segment streams open now.")
REQUEST_ERRORS = Counter("sam_decoder_request_errors", "Requests that failed, by gRPC status code name.", ("code",))

# Every label value a counter can take exists from the start at 0, so a panel or an alert reads 0, not "No data",
# until the first event. The decoder's status codes: in band INVALID_ARGUMENT, NOT_FOUND, RESOURCE_EXHAUSTED, DATA_LOSS
# (a damaged value); the stream-ending ones UNAVAILABLE (Redis), INTERNAL (DESIGN.md's status contract).
REQUEST_ERROR_CODES = ("INVALID_ARGUMENT", "NOT_FOUND", "RESOURCE_EXHAUSTED", "UNAVAILABLE", "DATA_LOSS", "INTERNAL")
for _code in REQUEST_ERROR_CODES:
    REQUEST_ERRORS.labels(_code)
for _result in ("hit", "miss"):
    LRU_REQUESTS.labels(_result)
for _result in ("found", "not_found", "damaged"):
    REDIS_FETCHES.labels(_result)
