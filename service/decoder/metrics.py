"""The decoder's own Prometheus metrics (RPC RED and Redis latency live in service.metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

_DECODE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)

PROMPTS = Counter("sam_decoder_prompts", "Prompts (objects) decoded.")
DECODE_SECONDS = Histogram(
    "sam_decoder_decode_seconds", "Time to decode one request's prompts and encode its masks.", buckets=_DECODE_BUCKETS
)
BATCH_SIZE = Histogram("sam_decoder_batch_size", "Prompts decoded together in one call.", buckets=_BATCH_BUCKETS)
LRU_REQUESTS = Counter("sam_decoder_lru_requests", "Embedding lookups in the in-process LRU.", ("result",))
LRU_BYTES = Gauge("sam_decoder_lru_bytes", "Bytes of embeddings held in the in-process LRU.")
REDIS_FETCHES = Counter("sam_decoder_redis_fetches", "Embeddings fetched from Redis after an LRU miss.", ("result",))
STREAMS_IN_FLIGHT = Gauge("sam_decoder_streams_in_flight", "Segment streams open now.")
REQUEST_ERRORS = Counter("sam_decoder_request_errors", "Requests that failed, by gRPC status code name.", ("code",))
