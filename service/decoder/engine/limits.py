"""The cost bounds of one Segment request, checked before any work: mask pixels, and the answer's bytes where they
are known up front (packed bits and logits have fixed sizes; RLE and PNG sizes depend on the masks, so the engine
checks those as it encodes: service.decoder.engine.work.record_masks)."""

from __future__ import annotations

from dataclasses import dataclass

from service.constants import LOW_RES_MASK_SIZE
from service.decoder.mask_encoding import MASK_OVERHEAD_BYTES, packed_bits_bytes
from service.decoder.query import MaskEncoding
from service.errors import ResourceExhausted

# Bytes of the low-res logits an answer carries per mask when asked for them.
_LOGITS_BYTES_PER_MASK = 4 * LOW_RES_MASK_SIZE * LOW_RES_MASK_SIZE


@dataclass(frozen=True)
class CostLimits:
    max_mask_pixels: int  # objects x masks x image pixels, per request
    max_answer_bytes: int  # a response's bytes, under the gRPC message limit


def fixed_answer_bytes(
    objects: int, masks_per_object: int, size: tuple[int, int], encoding: MaskEncoding, return_logits: bool
) -> int:
    """The answer's bytes known before any work: every mask's fields, packed bits' pixels and the logits."""
    masks = objects * masks_per_object
    total = masks * MASK_OVERHEAD_BYTES
    if encoding is MaskEncoding.PACKED_BITS:
        total += masks * packed_bits_bytes(size)
    if return_logits:
        total += masks * _LOGITS_BYTES_PER_MASK
    return total


def cost_refusal(
    objects: int,
    masks_per_object: int,
    size: tuple[int, int],
    encoding: MaskEncoding,
    return_logits: bool,
    limits: CostLimits,
) -> tuple[str, ResourceExhausted] | None:
    """The bound a request passes before any work (mask_pixels or answer_bytes) and the ResourceExhausted that
    names it with the figures; None when it is within both."""
    rows, columns = size
    mask_pixels = objects * masks_per_object * rows * columns
    if mask_pixels > limits.max_mask_pixels:
        return "mask_pixels", ResourceExhausted(
            f"asks for {objects} objects x {masks_per_object} masks of {columns}x{rows} pixels = {mask_pixels} mask "
            f"pixels, over the limit of {limits.max_mask_pixels} per request (--max-mask-pixels); send fewer objects "
            "per request or ask for one mask each",
            "prompts",
        )
    answer_bytes = fixed_answer_bytes(objects, masks_per_object, size, encoding, return_logits)
    if answer_bytes > limits.max_answer_bytes:
        return "answer_bytes", ResourceExhausted(
            f"the answer would take at least {answer_bytes} bytes ({objects} objects x {masks_per_object} masks of "
            f"{columns}x{rows} pixels as {encoding.value}{' with logits' if return_logits else ''}), over the "
            f"message limit of {limits.max_answer_bytes} bytes; send fewer objects per request, ask for one mask "
            "each, or use MASK_FORMAT_RLE",
            "prompts",
        )
    return None
