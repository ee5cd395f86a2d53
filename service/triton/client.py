"""The encoder model on Triton through the async gRPC tritonclient, with failures as domain errors."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import tritonclient.grpc as triton_grpc
import tritonclient.grpc.aio as triton_aio
from tritonclient.utils import InferenceServerException

from service.errors import DeadlineExceeded, Internal, ServiceError, Unavailable
from service.rpc.channel import channel_options
from service.runtime.families.spec import Arch, ResizeRule
from service.triton.model_config import BULK_PRIORITY, INTERACTIVE_PRIORITY


@dataclass(frozen=True, eq=False)
class TritonEncoding:
    """One image's tensors (by family output name, storage dtype) as Triton returned them, and the id of the model
    that made them."""

    tensors: dict[str, np.ndarray]
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
    """Runs the image encoders Triton serves (one per served model, by name) over one gRPC channel, reused."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.client = triton_aio.InferenceServerClient(url, channel_args=[*channel_options(), *_RECONNECT_OPTIONS])

    async def encode(
        self,
        model_name: str,
        arch: Arch,
        image: np.ndarray,
        input_size: tuple[int, int],
        timeout_seconds: float,
        bulk: bool = False,
    ) -> TritonEncoding:
        """The tensors of one image as service.runtime.preprocess prepared it for `arch`, whose content is
        `input_size` (rows, columns); `bulk` queues it behind every interactive image (Triton's priority levels)."""
        square = arch.family.resize is ResizeRule.SQUARE_FLOAT
        image_input = triton_grpc.InferInput("IMAGE", [1, *image.shape], "FP32" if square else "UINT8")
        image_input.set_data_from_numpy(image[np.newaxis])
        size_input = triton_grpc.InferInput("INPUT_SIZE", [1, 2], "INT32")
        size_input.set_data_from_numpy(np.array([input_size], dtype=np.int32))
        try:
            result = await self.client.infer(
                model_name,
                [image_input, size_input],
                priority=BULK_PRIORITY if bulk else INTERACTIVE_PRIORITY,
                # Triton drops the request from its queue when the caller's time is up, rather than running it.
                timeout=max(int(timeout_seconds * 1e6), 1),
                client_timeout=max(timeout_seconds, 0.001),
            )
        except InferenceServerException as error:
            raise domain_error(error, "encoding") from error
        tensors = {}
        for spec in arch.family.outputs:
            tensor = result.as_numpy(spec.triton_name)
            if tensor is None or tensor.shape != (1, *spec.shape):
                raise Internal(f"Triton model {model_name} answered without a (1, {spec.shape}) {spec.triton_name}")
            tensors[spec.name] = tensor[0]
        model_ids = result.as_numpy("MODEL_ID")
        if model_ids is None:
            raise Internal(f"Triton model {model_name} answered without MODEL_ID")
        model_id = model_ids.reshape(-1)[0]
        return TritonEncoding(tensors, model_id.decode() if isinstance(model_id, bytes) else str(model_id))

    async def is_model_ready(self, model_name: str, timeout_seconds: float = 2.0) -> bool:
        """True when Triton answers and reports the model READY."""
        try:
            return bool(await self.client.is_model_ready(model_name, client_timeout=timeout_seconds))
        except InferenceServerException:
            return False

    async def inference_count(self, model_name: str) -> int:
        """How many images (batch items) the model has inferred since Triton started."""
        try:
            statistics = await self.client.get_inference_statistics(model_name, as_json=True)
        except InferenceServerException as error:
            raise domain_error(error, "reading statistics") from error
        return sum(int(model.get("inference_count", 0)) for model in statistics.get("model_stats", []))

    async def batch_sizes(self, model_name: str) -> dict[int, int]:
        """How many times the model has run each batch size since Triton started (its statistics)."""
        try:
            statistics = await self.client.get_inference_statistics(model_name, as_json=True)
        except InferenceServerException as error:
            raise domain_error(error, "reading statistics") from error
        return batch_size_counts(statistics)

    async def close(self) -> None:
        await self.client.close()


def batch_size_counts(statistics: Mapping[str, Any]) -> dict[int, int]:
    """Executions per batch size, summed over the models of Triton's statistics (its JSON over HTTP or gRPC, where
    64-bit counts come as strings)."""
    counts: dict[int, int] = {}
    for model in statistics.get("model_stats", []):
        for batch in model.get("batch_stats", []):
            size = int(batch["batch_size"])
            counts[size] = counts.get(size, 0) + int(batch.get("compute_infer", {}).get("count", 0))
    return dict(sorted(counts.items()))
