"""Building requests and reading answers, shared by the blocking and the asyncio client."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import grpc
import numpy as np

from service._proto.sam.v1 import sam_pb2
from service.constants import LOW_RES_MASK_SIZE
from service.rpc.polygon_messages import polygons_of_message
from service.runtime.mask_formats import decode_packed_bits, decode_png, decode_rle
from service.runtime.polygons import Polygon, polygons_to_mask

DEFAULT_EMBED_TIMEOUT_SECONDS = 300.0
# The variable a client's bearer token is read from when none is given (`samsvc segment`, SamClient, AsyncSamClient).
AUTH_TOKEN_VARIABLE = "SAMSVC_AUTH_TOKEN"
# In-band codes that mean "the embedding is gone or was damaged (and removed)": embedding the image again mends both.
_REEMBED_CODES = (grpc.StatusCode.NOT_FOUND.value[0], grpc.StatusCode.DATA_LOSS.value[0])
# A stream that ends UNAVAILABLE (its decoder replica stopped, or closed an old connection, or lost Redis) is
# opened again this many times, after 0.1, 0.2, 0.4 ... s (at most 2 s), before the error reaches the caller.
DEFAULT_REOPEN_ATTEMPTS = 4


class RequestError(Exception):
    """A request answered with an in-band error (the stream lives on)."""

    def __init__(self, error: sam_pb2.Error, request_id: str = "") -> None:
        self.code = _status_code_of_number(error.code)
        self.message = error.message
        self.field = error.field
        self.request_id = request_id
        super().__init__(f"{self.code.name}: {error.message}")


@dataclass(frozen=True)
class EmbeddedImage:
    """An image the encoder has embedded; keeps its bytes so the client can embed it again if needed."""

    image_bytes: bytes
    image_key: str
    original_size: tuple[int, int]  # rows, columns
    cached: bool
    model: str


@dataclass(frozen=True, eq=False)
class CachedEmbedding:
    """A cached embedding as GetEmbedding hands it out: what a client needs to run the mask decoder itself."""

    image_key: str
    model: str
    original_size: tuple[int, int]  # rows, columns after EXIF orientation: the decoder's orig_im_size
    input_size: tuple[int, int]  # rows, columns of the content inside the model's square input frame
    tensors: dict[str, np.ndarray]  # by the family's names, in their stored dtypes (read-only)


Point = tuple[float, float, int]  # x, y, label (1 foreground, 0 background)
ImageRef = EmbeddedImage | str  # an embedded image, or a bare image_key (no re-embedding possible)


def make_prompt(
    points: Sequence[Point] = (),
    box: Sequence[float] | None = None,
    previous: bool = False,
    logits: np.ndarray | None = None,
) -> sam_pb2.Prompt:
    """One object's prompt: clicks, a box (x0, y0, x1, y1), and a mask prior (the stream's previous best mask,
    or explicit (256, 256) / (1, 256, 256) logits)."""
    prompt = sam_pb2.Prompt(points=[sam_pb2.Point(x=x, y=y, label=label) for x, y, label in points])
    if box is not None:
        x0, y0, x1, y1 = box
        prompt.box.CopyFrom(sam_pb2.Box(x0=x0, y0=y0, x1=x1, y1=y1))
    if previous:
        prompt.mask_input.previous = True
    elif logits is not None:
        prompt.mask_input.logits.CopyFrom(_logits_message(logits))
    return prompt


def _logits_message(logits: np.ndarray) -> sam_pb2.LowResLogits:
    array = np.ascontiguousarray(np.asarray(logits, dtype="<f4").reshape(-1, LOW_RES_MASK_SIZE, LOW_RES_MASK_SIZE))
    return sam_pb2.LowResLogits(
        size=sam_pb2.ImageSize(height=LOW_RES_MASK_SIZE, width=LOW_RES_MASK_SIZE),
        count=array.shape[0],
        data=array.tobytes(),
    )


def make_request(
    image: ImageRef,
    prompts: Sequence[sam_pb2.Prompt],
    *,
    multimask_output: bool = False,
    mask_format: int = sam_pb2.MASK_FORMAT_RLE,
    return_logits: bool = False,
    request_id: str = "",
    polygon_tolerance: float = 0.0,
    supersede_queued: bool = False,
) -> sam_pb2.SegmentRequest:
    """One Segment request; `polygon_tolerance` (pixels) simplifies MASK_FORMAT_POLYGON answers; `supersede_queued`
    has the stream's queued requests answered `superseded`, undecoded (for bursts: see AsyncSegmentStream.burst)."""
    return sam_pb2.SegmentRequest(
        request_id=request_id,
        image_key=_key_of(image),
        prompts=list(prompts),
        multimask_output=multimask_output,
        format=mask_format,  # type: ignore[arg-type]
        return_logits=return_logits,
        polygon_tolerance=polygon_tolerance,
        supersede_queued=supersede_queued,
    )


def make_everything_request(
    image: ImageRef,
    *,
    points_per_side: int = 0,
    points: Sequence[tuple[float, float]] = (),
    points_per_batch: int = 0,
    pred_iou_thresh: float | None = None,
    stability_score_thresh: float | None = None,
    stability_score_offset: float | None = None,
    box_nms_thresh: float | None = None,
    min_mask_region_area: int = 0,
    mask_format: int = sam_pb2.MASK_FORMAT_RLE,
    polygon_tolerance: float = 0.0,
    request_id: str = "",
) -> sam_pb2.SegmentEverythingRequest:
    """A SegmentEverything request: SamAutomaticMaskGenerator's parameters; None or 0 leaves AMG's default."""
    request = sam_pb2.SegmentEverythingRequest(
        request_id=request_id,
        image_key=_key_of(image),
        points_per_side=points_per_side,
        points=[sam_pb2.Point(x=x, y=y, label=1) for x, y in points],
        points_per_batch=points_per_batch,
        min_mask_region_area=min_mask_region_area,
        format=mask_format,  # type: ignore[arg-type]
        polygon_tolerance=polygon_tolerance,
    )
    thresholds = {
        "pred_iou_thresh": pred_iou_thresh,
        "stability_score_thresh": stability_score_thresh,
        "stability_score_offset": stability_score_offset,
        "box_nms_thresh": box_nms_thresh,
    }
    for name, value in thresholds.items():
        if value is not None:
            setattr(request, name, value)
    return request


def everything_masks_of(responses: Sequence[sam_pb2.SegmentEverythingResponse]) -> list[sam_pb2.EverythingMask]:
    """Every mask of a SegmentEverything call's responses, in order."""
    return [mask for response in responses if response.HasField("masks") for mask in response.masks.masks]


def mask_of(mask: sam_pb2.Mask) -> np.ndarray:
    """The full-resolution (H, W) boolean mask, whichever encoding it came in."""
    encoding = mask.WhichOneof("encoding")
    if encoding == "rle":
        return decode_rle(list(mask.rle.counts), (mask.rle.size.height, mask.rle.size.width))
    if encoding == "png":
        return decode_png(mask.png)
    if encoding == "packed_bits":
        return decode_packed_bits(mask.packed_bits.bits, (mask.packed_bits.size.height, mask.packed_bits.size.width))
    if encoding == "polygons":
        return polygons_to_mask(*polygons_of_message(mask.polygons))
    raise ValueError("the mask carries no pixels (MASK_FORMAT_NONE)")


def polygons_of(mask: sam_pb2.Mask) -> tuple[Polygon, ...]:
    """The polygons of a mask asked with MASK_FORMAT_POLYGON: each an outer ring and its holes, (N, 2) x, y pixel
    corners (see service.runtime.polygons for orientation and the closing rule)."""
    if mask.WhichOneof("encoding") != "polygons":
        raise ValueError("the mask carries no polygons (ask with MASK_FORMAT_POLYGON)")
    return polygons_of_message(mask.polygons)[0]


def logits_of(object_masks: sam_pb2.ObjectMasks) -> np.ndarray:
    """(C, 256, 256) float32 low-res logits of an answer asked with return_logits."""
    logits = object_masks.low_res_logits
    if not logits.count:
        raise ValueError("the answer carries no logits (ask with return_logits=True)")
    return np.frombuffer(logits.data, dtype="<f4").reshape(logits.count, logits.size.height, logits.size.width)


def best_logits_of(object_masks: sam_pb2.ObjectMasks) -> np.ndarray:
    """(256, 256) logits of the highest-scoring mask: what to send back as an explicit prior."""
    best = int(np.argmax([mask.score for mask in object_masks.masks]))
    return logits_of(object_masks)[best]


def embedded_image_of(image_bytes: bytes, response: sam_pb2.EmbedResponse) -> EmbeddedImage:
    return EmbeddedImage(
        image_bytes=image_bytes,
        image_key=response.image_key,
        original_size=(response.original_size.height, response.original_size.width),
        cached=response.cached,
        model=response.model,
    )


def cached_embedding_of(response: sam_pb2.GetEmbeddingResponse) -> CachedEmbedding:
    """The response's tensors as arrays (float16 or float32, shaped as stored)."""
    tensors = {
        tensor.name: np.frombuffer(tensor.data, dtype=np.dtype(tensor.dtype).newbyteorder("<")).reshape(
            tuple(tensor.shape)
        )
        for tensor in response.tensors
    }
    return CachedEmbedding(
        image_key=response.image_key,
        model=response.model,
        original_size=(response.original_size.height, response.original_size.width),
        input_size=(response.input_size.height, response.input_size.width),
        tensors=tensors,
    )


def wants_reembedding(image: ImageRef, response: sam_pb2.SegmentResponse) -> bool:
    """True when the key is unknown, expired or its value damaged, and we hold the image to embed again."""
    return isinstance(image, EmbeddedImage) and response.HasField("error") and response.error.code in _REEMBED_CODES


def should_reopen(error: grpc.RpcError) -> bool:
    """True for a stream that ended UNAVAILABLE: the replica or its connection went away; another can answer."""
    # The blocking stub raises a grpc.Call, grpc.aio an AioRpcError: both have code().
    code = getattr(error, "code", None)
    return callable(code) and code() == grpc.StatusCode.UNAVAILABLE


def reopen_delay_seconds(attempt: int) -> float:
    """The wait before re-opening attempt `attempt` (0, 1, ...): 0.1 s doubling, at most 2 s."""
    return float(min(2.0, 0.1 * 2**attempt))


class SessionMirror:
    """The client's copy of what a decoder's stream session holds, so that a new stream (on another replica after
    UNAVAILABLE) can be given it back: the best mask's low-res logits of each object of the last answer without
    error, kept when that answer carried logits (`return_logits=True`).

    Follows the server's rule (service.decoder.session): answers with an in-band error change nothing, and a
    prior belongs to the image key it was answered for.
    """

    def __init__(self) -> None:
        self.image_key: str | None = None
        self.best_logits: list[np.ndarray] | None = None  # None: the last answer carried no logits

    def remember(self, request: sam_pb2.SegmentRequest, response: sam_pb2.SegmentResponse) -> None:
        if response.HasField("error"):
            return
        self.image_key = request.image_key
        objects = list(response.objects)
        has_logits = bool(objects) and all(answer.low_res_logits.count for answer in objects)
        self.best_logits = [best_logits_of(answer) for answer in objects] if has_logits else None

    def rebuilt(self, request: sam_pb2.SegmentRequest) -> sam_pb2.SegmentRequest:
        """`request` for a new stream: each `previous: true` prior replaced by the explicit logits held for that
        object. Where none are held it stays as it is, and the new stream answers it in-band INVALID_ARGUMENT."""
        if self.best_logits is None or self.image_key != request.image_key:
            return request
        copy = sam_pb2.SegmentRequest()
        copy.CopyFrom(request)
        for index, prompt in enumerate(copy.prompts):
            if prompt.mask_input.previous and index < len(self.best_logits):
                prompt.mask_input.logits.CopyFrom(_logits_message(self.best_logits[index]))
        return copy


def checked(response: sam_pb2.SegmentResponse, raise_on_error: bool) -> sam_pb2.SegmentResponse:
    if raise_on_error and response.HasField("error"):
        raise RequestError(response.error, response.request_id)
    return response


def call_metadata(token: str | None) -> tuple[tuple[str, str], ...]:
    """The metadata every call carries: `authorization: Bearer <token>` when there is a token (else none).

    `token` None reads SAMSVC_AUTH_TOKEN; "" means none even when that is set."""
    if token is None:
        token = os.environ.get(AUTH_TOKEN_VARIABLE, "")
    return (("authorization", f"Bearer {token}"),) if token else ()


def _key_of(image: ImageRef) -> str:
    return image.image_key if isinstance(image, EmbeddedImage) else image


def _status_code_of_number(number: int) -> grpc.StatusCode:
    return next((code for code in grpc.StatusCode if code.value[0] == number), grpc.StatusCode.UNKNOWN)
