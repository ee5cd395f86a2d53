"""A Python client for both services: embed an image, stream prompts, re-embed automatically when the embedding
is gone or damaged (an in-band NOT_FOUND or DATA_LOSS).

Two flavours over the same request building: `SamClient` (blocking, for the CLI and scripts) and
`AsyncSamClient` (grpc.aio, for asyncio code and the tests). A Segment stream is a session: open one per
interactive user, send a request, read its answer; `previous` refers to that stream's last answer.

    with SamClient(encoder_target="host:50051", decoder_target="host:50052") as client:
        image = client.embed(open("photo.jpg", "rb").read())
        with client.open_stream() as stream:
            answer = stream.segment(image, [make_prompt(points=[(120, 80, 1)])], multimask_output=True)
            best = mask_of(max(answer.objects[0].masks, key=lambda mask: mask.score))
"""

from service.client.aio import AsyncSamClient, AsyncSegmentStream
from service.client.messages import (
    DEFAULT_EMBED_TIMEOUT_SECONDS,
    DEFAULT_REOPEN_ATTEMPTS,
    CachedEmbedding,
    EmbeddedImage,
    ImageRef,
    Point,
    RequestError,
    SessionMirror,
    best_logits_of,
    cached_embedding_of,
    checked,
    embedded_image_of,
    everything_masks_of,
    logits_of,
    make_everything_request,
    make_prompt,
    make_request,
    mask_of,
    polygons_of,
    wants_reembedding,
)
from service.client.sync import SamClient, SegmentStream

__all__ = [
    "DEFAULT_EMBED_TIMEOUT_SECONDS",
    "DEFAULT_REOPEN_ATTEMPTS",
    "AsyncSamClient",
    "AsyncSegmentStream",
    "CachedEmbedding",
    "EmbeddedImage",
    "ImageRef",
    "Point",
    "RequestError",
    "SamClient",
    "SessionMirror",
    "SegmentStream",
    "best_logits_of",
    "cached_embedding_of",
    "checked",
    "embedded_image_of",
    "everything_masks_of",
    "logits_of",
    "make_everything_request",
    "make_prompt",
    "make_request",
    "mask_of",
    "polygons_of",
    "wants_reembedding",
]
