"""SegmentEverything messages to the plain query, and its events back to messages."""

from __future__ import annotations

import numpy as np

from service._proto.sam.v1 import sam_pb2
from service.decoder.everything import (
    DEFAULT_POINTS_PER_BATCH,
    DEFAULT_POINTS_PER_SIDE,
    EverythingDone,
    EverythingEvent,
    EverythingMask,
    EverythingProgress,
    EverythingQuery,
)
from service.errors import InvalidArgument
from service.rpc.decoder_convert import encoding_of_format, mask_message
from service.runtime.polygons import checked_tolerance

_DEFAULTS = EverythingQuery(request_id="", image_key="")


def everything_query_of_request(request: sam_pb2.SegmentEverythingRequest) -> EverythingQuery:
    """The request as a query, AMG's defaults for what it leaves unset."""
    if not request.image_key:
        raise InvalidArgument("is empty; pass the image_key that Encoder.Embed returned", "image_key")
    points = None
    if request.points:
        points = np.array([(point.x, point.y) for point in request.points], dtype=np.float64)

    def optional(name: str) -> float:
        return float(getattr(request, name)) if request.HasField(name) else float(getattr(_DEFAULTS, name))

    return EverythingQuery(
        request_id=request.request_id,
        image_key=request.image_key,
        points_per_side=request.points_per_side or DEFAULT_POINTS_PER_SIDE,
        points=points,
        points_per_batch=request.points_per_batch or DEFAULT_POINTS_PER_BATCH,
        pred_iou_thresh=optional("pred_iou_thresh"),
        stability_score_thresh=optional("stability_score_thresh"),
        stability_score_offset=optional("stability_score_offset"),
        box_nms_thresh=optional("box_nms_thresh"),
        min_mask_region_area=request.min_mask_region_area,
        encoding=encoding_of_format(request.format),
        polygon_tolerance=checked_tolerance(request.polygon_tolerance),
    )


def everything_response(request_id: str, event: EverythingEvent) -> sam_pb2.SegmentEverythingResponse:
    response = sam_pb2.SegmentEverythingResponse(request_id=request_id)
    if isinstance(event, EverythingProgress):
        response.progress.CopyFrom(
            sam_pb2.EverythingProgress(
                points_done=event.points_done, points_total=event.points_total, masks_kept=event.masks_kept
            )
        )
    elif isinstance(event, EverythingDone):
        response.done.CopyFrom(sam_pb2.EverythingDone(masks=event.masks, points=event.points))
    else:
        response.masks.CopyFrom(sam_pb2.EverythingMasks(masks=[everything_mask_message(mask) for mask in event]))
    return response


def everything_mask_message(mask: EverythingMask) -> sam_pb2.EverythingMask:
    x, y = mask.point
    return sam_pb2.EverythingMask(mask=mask_message(mask.mask), point=sam_pb2.Point(x=x, y=y, label=1))
