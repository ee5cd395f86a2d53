"""The Embed logic as plain async code: cache lookup, single flight, preprocessing, Triton, store.

Nothing here knows gRPC; service.rpc.encoder_servicer translates messages, and the domain errors raised here
are mapped to status codes by service.rpc.status.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

import numpy as np

from service.cache.codec import encode_embedding, parse_header
from service.cache.keys import ImageKey, image_key_of
from service.cache.single_flight import Outcome, SingleFlight
from service.cache.store import EmbeddingStore
from service.encoder.metrics import (
    CACHE_REQUESTS,
    EMBEDDING_BYTES_STORED,
    PREPROCESS_SECONDS,
    TRITON_ERRORS,
    TRITON_SECONDS,
)
from service.errors import (
    CorruptEmbedding,
    DeadlineExceeded,
    InvalidArgument,
    ResourceExhausted,
    ServiceError,
    Unavailable,
)
from service.image_info import ImageInfo, ImageLimits
from service.logs import log_context
from service.model_identity import ModelIdentity, select_model
from service.runtime.families.catalog import get_arch
from service.runtime.families.spec import Arch
from service.runtime.image_file import decode_image
from service.runtime.preprocess import prepare_encoder_input
from service.triton.client import TritonEncoderClient

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EmbedResult:
    image_key: ImageKey
    cached: bool  # True when the image encoder did not run for this call
    original_size: tuple[int, int]  # rows, columns after EXIF orientation
    model_id: str


class Embedder:
    """Embeds images once, with any of the served models: answers from Redis when it can, otherwise encodes on
    Triton (the model's `name` is its Triton model) and stores."""

    def __init__(
        self,
        store: EmbeddingStore,
        triton: TritonEncoderClient,
        models: list[ModelIdentity],
        limits: ImageLimits,
        triton_timeout_seconds: float,
        single_flight_wait_seconds: float,
        key_secret: bytes | None = None,
    ) -> None:
        if not models:
            raise ValueError("an Embedder needs at least one model")
        self.store = store
        self.triton = triton
        self.models = models
        self.limits = limits
        self.triton_timeout_seconds = triton_timeout_seconds
        self.single_flight_wait_seconds = single_flight_wait_seconds
        # With a secret, keys are HMACs nobody computes from the image alone (service.cache.keys).
        self.key_secret = key_secret
        # The lock must outlive one encode (bounded by the Triton timeout) plus preprocessing and the store.
        self.single_flight = SingleFlight(
            store, lock_ttl_seconds=triton_timeout_seconds + 30.0, is_shared=is_failure_of_the_image
        )

    async def embed(
        self,
        image_bytes: bytes,
        requested_model: str = "",
        deadline: float | None = None,
        tenant: str | None = None,
        bulk: bool = False,
    ) -> EmbedResult:
        """The key of `image_bytes`' embedding by the requested model (empty: the default) for `tenant` (the
        caller's, from its token; None: shared), computing it if no replica has; `deadline` is time.monotonic().
        Each tenant has its own keys, so its own embeddings. A `bulk` encode waits on Triton behind every
        interactive one."""
        model = select_model(self.models, requested_model)
        check_image_size(image_bytes, self.limits)
        image_key = image_key_of(model.model_id, image_bytes, tenant, self.key_secret)
        with log_context(image_key=image_key.short, model=model.model_id):
            return await self._embed(model, image_key, image_bytes, deadline, bulk)

    async def _embed(
        self, model: ModelIdentity, image_key: ImageKey, image_bytes: bytes, deadline: float | None, bulk: bool
    ) -> EmbedResult:
        info = await self.lookup(image_key)
        CACHE_REQUESTS.labels("hit" if info else "miss").inc()
        if info is not None:
            return self._result(image_key, info, cached=True)

        flight = await self.single_flight.run(
            image_key.lock_key,
            compute=lambda: self._encode_and_store(model, image_key, image_bytes, deadline, bulk),
            ready=lambda: self.lookup(image_key),
            wait_seconds=min(self.single_flight_wait_seconds, _remaining(deadline, self.single_flight_wait_seconds)),
        )
        if flight.value is not None:
            # VALUE: another request (on any replica) encoded it; this call did not run the encoder.
            return self._result(image_key, flight.value, cached=flight.outcome is Outcome.VALUE)
        if deadline is not None and time.monotonic() >= deadline:
            raise DeadlineExceeded("deadline exceeded waiting for another request encoding the same image")
        raise Unavailable(
            f"another request has been encoding the same image for over {self.single_flight_wait_seconds:g} s"
        )

    async def lookup(self, image_key: ImageKey) -> ImageInfo | None:
        """The image's sizes from its cached embedding's header (refreshing its TTL), or None on a miss.

        Reads the header, not the megabytes of tensors (service.cache.codec.parse_header). A damaged, incomplete,
        foreign or old-codec value counts as a miss, so the next encode overwrites it.
        """
        found = await self.store.read_header(str(image_key))
        if found.header is None:
            return None
        try:
            header = parse_header(found.header)
            if header.model_id != image_key.model_id:
                raise CorruptEmbedding(f"was made by model {header.model_id!r}, not {image_key.model_id!r}")
            if found.field_count != 1 + header.chunk_count:
                raise CorruptEmbedding(f"has {found.field_count - 1} of its {header.chunk_count} payload chunks")
        except CorruptEmbedding as error:
            log.warning("cached value under %s is unusable (%s); re-encoding", image_key.short, error)
            return None
        return header.info

    async def _encode_and_store(
        self, model: ModelIdentity, image_key: ImageKey, image_bytes: bytes, deadline: float | None, bulk: bool
    ) -> ImageInfo:
        arch = get_arch(model.arch)
        started = time.perf_counter()
        # Decoding and resizing take tens of milliseconds of CPU: off the event loop.
        prepared, info = await asyncio.to_thread(preprocess, image_bytes, self.limits, arch)
        PREPROCESS_SECONDS.observe(time.perf_counter() - started)

        # Triton gets the smaller of the caller's remaining time and the setting; which one it was decides the
        # answer when it runs out: the caller's deadline passed, or Triton is too slow (the caller may retry).
        timeout = _remaining(deadline, self.triton_timeout_seconds)
        if timeout <= 0:
            raise DeadlineExceeded("deadline exceeded before the image reached Triton")
        callers_deadline_binds = timeout < self.triton_timeout_seconds
        started = time.perf_counter()
        try:
            answer = await self.triton.encode(model.name, arch, prepared, info.input_size, timeout, bulk=bulk)
        except DeadlineExceeded as error:
            TRITON_ERRORS.inc()
            if callers_deadline_binds:
                raise
            raise Unavailable(f"Triton did not answer within {self.triton_timeout_seconds:g} s") from error
        except ServiceError:
            TRITON_ERRORS.inc()
            raise
        finally:
            TRITON_SECONDS.observe(time.perf_counter() - started)
        if answer.model_id != model.model_id:
            # Storing it would put another model's embedding under this model's key: refuse.
            TRITON_ERRORS.inc()
            raise Unavailable(
                f"Triton's model {model.name!r} is {answer.model_id!r} but this encoder is configured for "
                f"{model.model_id!r}; refusing to store its embedding"
            )
        value = encode_embedding(answer.tensors, arch.family.outputs, info, model.model_id)
        await self.store.put(str(image_key), value)
        EMBEDDING_BYTES_STORED.inc(value.total_bytes)
        return info

    def _result(self, image_key: ImageKey, info: ImageInfo, cached: bool) -> EmbedResult:
        return EmbedResult(image_key, cached, info.original_size, image_key.model_id)


def is_failure_of_the_image(error: ServiceError) -> bool:
    """Whether the calls waiting on a failed encode of the same image raise its error too, rather than encoding again:
    every failure but the failed caller's own deadline (theirs may be longer)."""
    return not isinstance(error, DeadlineExceeded)


def check_image_size(image_bytes: bytes, limits: ImageLimits) -> None:
    """The cheap checks, before hashing and before Redis: empty or over the byte limit."""
    if not image_bytes:
        raise InvalidArgument("is empty", "image")
    if len(image_bytes) > limits.max_bytes:
        raise ResourceExhausted(f"is {len(image_bytes)} bytes, over the limit of {limits.max_bytes}", "image")


def preprocess(image_bytes: bytes, limits: ImageLimits, arch: Arch) -> tuple[np.ndarray, ImageInfo]:
    """Image bytes → `arch`'s encoder input and its sizes (domain errors for bad images)."""
    return prepare_encoder_input(decode_image(image_bytes, limits, field="image"), arch)


def _remaining(deadline: float | None, cap: float) -> float:
    return cap if deadline is None else min(cap, deadline - time.monotonic())
