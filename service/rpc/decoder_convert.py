"""Segment messages to plain queries and results back to messages.

Checks that only the wire format can get wrong (logits bytes, enum values, a `previous` the stream cannot
give) live here; everything about prompt content is left to service.runtime.prompts.validate_prompts.
"""

from __future__ import annotations

import numpy as np

from service._proto.sam.v1 import sam_pb2
from service.constants import LOW_RES_MASK_SIZE
from service.decoder.mask_encoding import EncodedMask, ObjectResult
from service.decoder.query import MaskEncoding, SegmentQuery
from service.decoder.segment import SegmentResult
from service.decoder.session import StreamSession
from service.errors import InvalidArgument, ServiceError, cut
from service.rpc.polygon_messages import polygons_message
from service.rpc.status import message_of, status_code_of
from service.runtime.polygons import checked_tolerance
from service.runtime.prompts import Prompt, prompt_field

_LOGITS_BYTES = 4 * LOW_RES_MASK_SIZE * LOW_RES_MASK_SIZE

_ENCODING_OF_FORMAT = {
    sam_pb2.MASK_FORMAT_UNSPECIFIED: MaskEncoding.RLE,
    sam_pb2.MASK_FORMAT_RLE: MaskEncoding.RLE,
    sam_pb2.MASK_FORMAT_PNG: MaskEncoding.PNG,
    sam_pb2.MASK_FORMAT_PACKED_BITS: MaskEncoding.PACKED_BITS,
    sam_pb2.MASK_FORMAT_NONE: MaskEncoding.NONE,
    sam_pb2.MASK_FORMAT_POLYGON: MaskEncoding.POLYGON,
}


def query_of_request(request: sam_pb2.SegmentRequest, session: StreamSession) -> SegmentQuery:
    """The request as a query, each prompt complete (a `previous` prior taken from `session`); InvalidArgument
    naming the field when the request cannot even be read as prompts."""
    if not request.image_key:
        raise InvalidArgument("is empty; pass the image_key that Encoder.Embed returned", "image_key")
    encoding = encoding_of_format(request.format)
    prompts = tuple(
        prompt_of_message(prompt, index, request.image_key, session) for index, prompt in enumerate(request.prompts)
    )
    return SegmentQuery(
        request_id=request.request_id,
        image_key=request.image_key,
        prompts=prompts,
        multimask_output=request.multimask_output,
        encoding=encoding,
        return_logits=request.return_logits,
        polygon_tolerance=checked_tolerance(request.polygon_tolerance),
    )


def encoding_of_format(mask_format: int) -> MaskEncoding:
    encoding = _ENCODING_OF_FORMAT.get(mask_format)  # type: ignore[call-overload]
    if encoding is None:
        raise InvalidArgument(f"is {mask_format}, not a known MaskFormat", "format")
    return encoding


def prompt_of_message(prompt: sam_pb2.Prompt, index: int, image_key: str, session: StreamSession) -> Prompt:
    """One object's prompt in original-image pixels, with its mask prior resolved."""
    point_coords = point_labels = box = mask_input = None
    if prompt.points:
        # float64 as the reference's transform computes; float32 wire values convert exactly.
        point_coords = np.array([(point.x, point.y) for point in prompt.points], dtype=np.float64)
        point_labels = np.array([point.label for point in prompt.points], dtype=np.int64)
    if prompt.HasField("box"):
        box = np.array([prompt.box.x0, prompt.box.y0, prompt.box.x1, prompt.box.y1], dtype=np.float64)
    if prompt.HasField("mask_input"):
        source = prompt.mask_input.WhichOneof("source")
        if source == "logits":
            mask_input = logits_of_message(prompt.mask_input.logits, prompt_field(index, "mask_input", "logits"))
        elif source == "previous" and prompt.mask_input.previous:
            mask_input = session.previous_mask(image_key, index, prompt_field(index, "mask_input", "previous"))
    return Prompt(point_coords=point_coords, point_labels=point_labels, box=box, mask_input=mask_input)


def logits_of_message(logits: sam_pb2.LowResLogits, field: str) -> np.ndarray:
    """(1, 256, 256) float32 from an explicit mask prior: exactly one 256 x 256 mask."""
    size = (logits.size.height, logits.size.width)
    if size != (LOW_RES_MASK_SIZE, LOW_RES_MASK_SIZE):
        raise InvalidArgument(
            f"is {size[0]}x{size[1]}; must be {LOW_RES_MASK_SIZE}x{LOW_RES_MASK_SIZE}", f"{field}.size"
        )
    if logits.count != 1:
        raise InvalidArgument(f"is {logits.count}; a mask prior is exactly 1 mask", f"{field}.count")
    if len(logits.data) != _LOGITS_BYTES:
        raise InvalidArgument(
            f"has {len(logits.data)} bytes; 1 x {LOW_RES_MASK_SIZE} x {LOW_RES_MASK_SIZE} float32 is {_LOGITS_BYTES}",
            f"{field}.data",
        )
    array = np.frombuffer(logits.data, dtype="<f4").astype(np.float32)
    return array.reshape(1, LOW_RES_MASK_SIZE, LOW_RES_MASK_SIZE)


def logits_message(low_res_logits: np.ndarray) -> sam_pb2.LowResLogits:
    """(C, 256, 256) float logits as a LowResLogits message."""
    array = np.ascontiguousarray(low_res_logits, dtype="<f4")
    return sam_pb2.LowResLogits(
        size=sam_pb2.ImageSize(height=array.shape[-2], width=array.shape[-1]),
        count=array.shape[0],
        data=array.tobytes(),
    )


def mask_message(mask: EncodedMask) -> sam_pb2.Mask:
    x, y, width, height = mask.bbox
    message = sam_pb2.Mask(
        score=mask.score,
        stability_score=mask.stability_score,
        area=mask.area,
        bbox=sam_pb2.BoundingBox(x=x, y=y, width=width, height=height),
    )
    size = sam_pb2.ImageSize(height=mask.size[0], width=mask.size[1])
    if mask.rle_counts is not None:
        message.rle.size.CopyFrom(size)
        message.rle.counts.extend(mask.rle_counts.tolist())  # a list: extend() takes it 1.8x faster than an array
    elif mask.png is not None:
        message.png = mask.png
    elif mask.packed_bits is not None:
        message.packed_bits.size.CopyFrom(size)
        message.packed_bits.bits = mask.packed_bits
    elif mask.polygons is not None:
        message.polygons.CopyFrom(polygons_message(mask.polygons, mask.size))
    return message


def object_masks_message(result: ObjectResult) -> sam_pb2.ObjectMasks:
    """One object's answer: every mask with its scores, area, bbox and encoded pixels (and logits if asked)."""
    object_masks = sam_pb2.ObjectMasks(masks=[mask_message(mask) for mask in result.masks])
    if result.low_res_logits is not None:
        object_masks.low_res_logits.CopyFrom(logits_message(result.low_res_logits))
    return object_masks


def response_of_result(result: SegmentResult) -> sam_pb2.SegmentResponse:
    return sam_pb2.SegmentResponse(
        request_id=result.request_id,
        image_key=result.image_key,
        objects=[object_masks_message(result_object) for result_object in result.objects],
    )


def error_response(request: sam_pb2.SegmentRequest, error: ServiceError) -> sam_pb2.SegmentResponse:
    """The answer to a request whose own content is at fault: the in-band Error, the stream lives on. The key is
    echoed cut, as any input quoted back (a key this service made is far shorter than the cut)."""
    return sam_pb2.SegmentResponse(
        request_id=request.request_id,
        image_key=cut(request.image_key),
        error=sam_pb2.Error(code=status_code_of(error).value[0], message=message_of(error), field=error.field),
    )


def superseded_response(request: sam_pb2.SegmentRequest) -> sam_pb2.SegmentResponse:
    """The answer to a request a later one superseded before it started: no masks."""
    return sam_pb2.SegmentResponse(request_id=request.request_id, image_key=cut(request.image_key), superseded=True)
