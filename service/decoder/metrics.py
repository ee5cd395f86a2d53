"""The decoder's own Prometheus metrics (RPC RED and Redis latency live in service.metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

# Per-request latency resolves 1 ms to 10 s, finest where interactive answers land (5-200 ms on a GPU or a CPU).
_REQUEST_BUCKETS = (
    *(0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05, 0.06, 0.07, 0.08, 0.09, 0.1),
    *(0.125, 0.15, 0.175, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75, 1, 1.5, 2.5, 5, 10),
)
_PIECE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.2, 0.35, 0.5, 1, 2.5, 5)
_WAIT_BUCKETS = (0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.35, 0.5, 1, 2.5, 5, 10)
_BATCH_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 32, 64)
PIECE_KINDS = ("decode", "masks")

PROMPTS = Counter("sam_decoder_prompts", "Prompts (objects) decoded.")
REQUEST_SECONDS = Histogram(
    "sam_decoder_request_seconds",
    "Time from a Segment request's arrival in the decode engine to its answer (queueing and work; not the stream's "
    "lifetime).",
    buckets=_REQUEST_BUCKETS,
)
BATCH_SIZE = Histogram(
    "sam_decoder_batch_size",
    "Prompts decoded together in one mask decoder call (across requests).",
    buckets=_BATCH_BUCKETS,
)
QUEUE_DEPTH = Gauge("sam_decoder_queue_depth", "Work pieces waiting for a decode worker.")
QUEUE_WAIT_SECONDS = Histogram(
    "sam_decoder_queue_wait_seconds", "Time a work piece waited for a decode worker.", buckets=_WAIT_BUCKETS
)
PIECE_SECONDS = Histogram(
    "sam_decoder_piece_seconds",
    "Worker time of one work piece, by kind (decode: the mask decoder for a batch; masks: upscaling and encoding).",
    ("kind",),
    buckets=_PIECE_BUCKETS,
)
PIECES_CANCELLED = Counter(
    "sam_decoder_pieces_cancelled",
    "Queued work pieces dropped before running: their stream was cancelled or its deadline passed, or their "
    "request failed.",
)
REQUESTS_REFUSED = Counter(
    "sam_decoder_requests_refused",
    "Requests answered RESOURCE_EXHAUSTED by a cost bound, by bound (mask_pixels, answer_bytes; "
    "everything_mask_pixels: a SegmentEverything call).",
    ("bound",),
)
EVERYTHING_POINTS = Counter("sam_decoder_everything_points", "Points of SegmentEverything grids decoded.")
EVERYTHING_CALLS = Counter(
    "sam_decoder_everything_calls",
    "SegmentEverything calls, by outcome (done, refused, cancelled, failed).",
    ("outcome",),
)
REQUESTS_SUPERSEDED = Counter(
    "sam_decoder_requests_superseded",
    "Segment requests answered `superseded`, undecoded: a later request on their stream had supersede_queued.",
)
LRU_REQUESTS = Counter("sam_decoder_lru_requests", "Embedding lookups in the in-process LRU.", ("result",))
LRU_BYTES = Gauge("sam_decoder_lru_bytes", "Bytes of embeddings held in the in-process LRU.")
IMAGE_SIDE_REQUESTS = Counter(
    "sam_decoder_image_side_requests",
    "Lookups of an image's side of the onnx decoder graph (computed once per image key, then kept), by result.",
    ("result",),
)
IMAGE_SIDE_BYTES = Gauge("sam_decoder_image_side_bytes", "Bytes of image sides of the onnx decoder graph kept.")
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
    IMAGE_SIDE_REQUESTS.labels(_result)
for _result in ("found", "not_found", "damaged"):
    REDIS_FETCHES.labels(_result)
for _kind in PIECE_KINDS:
    PIECE_SECONDS.labels(_kind)
for _outcome in ("done", "refused", "cancelled", "failed"):
    EVERYTHING_CALLS.labels(_outcome)
for _bound in ("mask_pixels", "answer_bytes", "everything_mask_pixels"):
    REQUESTS_REFUSED.labels(_bound)
