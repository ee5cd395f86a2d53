"""One Segment request in plain terms, as the dataplane takes it: every object's prompt complete."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from service.runtime.prompts import Prompt


class MaskEncoding(enum.Enum):
    """How full-resolution masks travel back."""

    RLE = "rle"
    PNG = "png"
    PACKED_BITS = "packed_bits"
    POLYGON = "polygon"
    NONE = "none"


@dataclass(frozen=True)
class SegmentQuery:
    """Prompts against one cached embedding; a `previous` mask prior is already resolved into `mask_input`."""

    request_id: str
    image_key: str  # as the caller sent it; parsed by the dataplane
    prompts: tuple[Prompt, ...]
    multimask_output: bool
    encoding: MaskEncoding
    return_logits: bool
    polygon_tolerance: float = 0.0  # pixels; 0 keeps the exact boundary (MaskEncoding.POLYGON only)
