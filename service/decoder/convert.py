"""Proto messages to runtime values and back: requests to prompts, predictions to answers, errors to Error.

Checks that only the wire format can get wrong (logits bytes, enum values) live here; everything about
prompt content is left to service.runtime.prompts.validate_prompts.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import numpy as np

from service._proto.sam.v1 import sam_pb2
from service.constants import LOW_RES_MASK_SIZE
from service.errors import InvalidArgument, ServiceError
from service.grpc_status import status_code_of
from service.runtime.mask_formats import encode_packed_bits, encode_png, encode_rle
from service.runtime.postprocess import mask_area, mask_bbox
from service.runtime.prompt_decoder import ObjectPrediction
from service.runtime.prompts import Prompt

_LOGITS_BYTES = 4 * LOW_RES_MASK_SIZE * LOW_RES_MASK_SIZE


class MaskEncoding(Enum):
    RLE = "rle"
    PNG = "png"
    PACKED_BITS = "packed_bits"
    NONE = "none"


_ENCODING_OF_FORMAT = {
    sam_pb2.MASK_FORMAT_UNSPECIFIED: MaskEncoding.RLE,
    sam_pb2.MASK_FORMAT_RLE: MaskEncoding.RLE,
    sam_pb2.MASK_FORMAT_PNG: MaskEncoding.PNG,
    sam_pb2.MASK_FORMAT_PACKED_BITS: MaskEncoding.PACKED_BITS,
    sam_pb2.MASK_FORMAT_NONE: MaskEncoding.NONE,
}


@dataclass(frozen=True)
class SegmentQuery:
    """One SegmentRequest in runtime terms. Prompts asking for the previous mask carry none yet."""

    request_id: str
    image_key: str
    prompts: tuple[Prompt, ...]
    reuse_previous: tuple[int, ...]  # indexes of prompts whose mask_input is the session's previous best mask
    multimask_output: bool
    encoding: MaskEncoding
    return_logits: bool


def query_of_request(request: sam_pb2.SegmentRequest) -> SegmentQuery:
    """InvalidArgument naming the field when the request cannot even be read as prompts."""
    if not request.image_key:
        raise InvalidArgument("is empty; pass the image_key that Encoder.Embed returned", "image_key")
    encoding = _ENCODING_OF_FORMAT.get(request.format)
    if encoding is None:
        raise InvalidArgument(f"is {request.format}, not a known MaskFormat", "format")
    prompts = []
    reuse_previous = []
    for index, prompt in enumerate(request.prompts):
        field = f"prompts[{index}]"
        mask_input = None
        if prompt.HasField("mask_input"):
            source = prompt.mask_input.WhichOneof("source")
            if source == "logits":
                mask_input = logits_of_message(prompt.mask_input.logits, f"{field}.mask_input.logits")
            elif source == "previous" and prompt.mask_input.previous:
                reuse_previous.append(index)
        prompts.append(_prompt_of_message(prompt, mask_input))
    return SegmentQuery(
        request_id=request.request_id,
        image_key=request.image_key,
        prompts=tuple(prompts),
        reuse_previous=tuple(reuse_previous),
        multimask_output=request.multimask_output,
        encoding=encoding,
        return_logits=request.return_logits,
    )


def _prompt_of_message(prompt: sam_pb2.Prompt, mask_input: np.ndarray | None) -> Prompt:
    point_coords = point_labels = box = None
    if prompt.points:
        # float64 as the reference's transform computes; float32 wire values convert exactly.
        point_coords = np.array([(point.x, point.y) for point in prompt.points], dtype=np.float64)
        point_labels = np.array([point.label for point in prompt.points], dtype=np.int64)
    if prompt.HasField("box"):
        box = np.array([prompt.box.x0, prompt.box.y0, prompt.box.x1, prompt.box.y1], dtype=np.float64)
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


def object_masks_message(
    prediction: ObjectPrediction, encoding: MaskEncoding, return_logits: bool
) -> sam_pb2.ObjectMasks:
    """One object's answer: every mask with its scores, area, bbox and encoded pixels."""
    object_masks = sam_pb2.ObjectMasks()
    for index in range(prediction.scores.shape[0]):
        mask = prediction.masks[index]
        x, y, width, height = mask_bbox(mask)
        message = object_masks.masks.add(
            score=float(prediction.scores[index]),
            stability_score=float(prediction.stability_scores[index]),
            area=mask_area(mask),
            bbox=sam_pb2.BoundingBox(x=x, y=y, width=width, height=height),
        )
        size = sam_pb2.ImageSize(height=mask.shape[0], width=mask.shape[1])
        if encoding is MaskEncoding.RLE:
            message.rle.size.CopyFrom(size)
            message.rle.counts.extend(encode_rle(mask))
        elif encoding is MaskEncoding.PNG:
            message.png = encode_png(mask)
        elif encoding is MaskEncoding.PACKED_BITS:
            message.packed_bits.size.CopyFrom(size)
            message.packed_bits.bits = encode_packed_bits(mask)
    if return_logits:
        object_masks.low_res_logits.CopyFrom(logits_message(prediction.low_res_logits))
    return object_masks


def error_message(error: ServiceError) -> sam_pb2.Error:
    """The in-band Error of a request-content failure."""
    return sam_pb2.Error(code=status_code_of(error).value[0], message=str(error), field=error.field)
