"""The encoder model on Triton through the async gRPC tritonclient, with failures as domain errors."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tritonclient.grpc as triton_grpc
import tritonclient.grpc.aio as triton_aio
from tritonclient.utils import InferenceServerException

from service.constants import EMBEDDING_SHAPE, IMAGE_INPUT_SIZE
from service.errors import DeadlineExceeded, Internal, ServiceError, Unavailable
from service.rpc.channel import channel_options


@dataclass(frozen=True, eq=False)
class TritonEmbedding:
    """One image's embedding as Triton returned it, with the id of the model that made it."""

    embedding: np.ndarray  # (256, 64, 64) float16
    model_id: str


# gRPC backs off up to 2 minutes between reconnects by default; a restarted Triton should be used at once.
_RECONNECT_OPTIONS = [("grpc.initial_reconnect_backoff_ms", 250), ("grpc.max_reconnect_backoff_ms", 2000)]

# Triton's status names that mean "cannot serve now; retry later" (down, restarting, or its queue is full).
_UNREACHABLE = {"StatusCode.UNAVAILABLE", "StatusCode.CANCELLED", "StatusCode.RESOURCE_EXHAUSTED"}


def domain_error(error: InferenceServerException, action: str) -> ServiceError:
    """The domain error for a tritonclient failure: never a bare exception the servicer cannot map."""
    status = error.status() or ""
    if status == "StatusCode.DEADLINE_EXCEEDED":
        return DeadlineExceeded(f"deadline exceeded while {action}")
    if status in _UNREACHABLE:
        return Unavailable(f"Triton cannot be reached ({action}): {error.message()}")
    # Anything else is Triton or the model failing: the service's fault, reported as INTERNAL.
    return Internal(f"Triton failed ({action}): {error}")


class TritonEncoderClient:
    """Embeds padded 1024² images with the `sam_image_encoder` model; one gRPC channel, reused."""

    def __init__(self, url: str, model_name: str) -> None:
        self.url = url
        self.model_name = model_name
        self.client = triton_aio.InferenceServerClient(url, channel_args=[*channel_options(), *_RECONNECT_OPTIONS])

    async def encode(self, image: np.ndarray, input_size: tuple[int, int], timeout_seconds: float) -> TritonEmbedding:
        """The embedding of one padded (1024, 1024, 3) uint8 image whose content is `input_size` (rows, columns)."""
        if image.shape != (IMAGE_INPUT_SIZE, IMAGE_INPUT_SIZE, 3) or image.dtype != np.uint8:
            raise ValueError(f"image must be ({IMAGE_INPUT_SIZE}, {IMAGE_INPUT_SIZE}, 3) uint8, got {image.shape}")
        image_input = triton_grpc.InferInput("IMAGE", [1, *image.shape], "UINT8")
        image_input.set_data_from_numpy(image[np.newaxis])
        size_input = triton_grpc.InferInput("INPUT_SIZE", [1, 2], "INT32")
        size_input.set_data_from_numpy(np.array([input_size], dtype=np.int32))
        try:
            result = await self.client.infer(
                self.model_name, [image_input, size_input], client_timeout=max(timeout_seconds, 0.001)
            )
        except InferenceServerException as error:
            raise domain_error(error, "encoding") from error
        embedding = result.as_numpy("EMBEDDING")
        model_ids = result.as_numpy("MODEL_ID")
        if embedding is None or model_ids is None or embedding.shape != (1, *EMBEDDING_SHAPE):
            raise Internal(f"Triton model {self.model_name} answered without a (1, 256, 64, 64) EMBEDDING")
        model_id = model_ids.reshape(-1)[0]
        return TritonEmbedding(
            embedding=embedding[0].astype(np.float16, copy=False),
            model_id=model_id.decode() if isinstance(model_id, bytes) else str(model_id),
        )

    async def is_model_ready(self, timeout_seconds: float = 2.0) -> bool:
        """True when Triton answers and reports the model READY."""
        try:
            return bool(await self.client.is_model_ready(self.model_name, client_timeout=timeout_seconds))
        except InferenceServerException:
            return False

    async def inference_count(self) -> int:
        """How many images (batch items) the model has inferred since Triton started."""
        try:
            statistics = await self.client.get_inference_statistics(self.model_name, as_json=True)
        except InferenceServerException as error:
            raise domain_error(error, "reading statistics") from error
        return sum(int(model.get("inference_count", 0)) for model in statistics.get("model_stats", []))

    async def close(self) -> None:
        await self.client.close()
