from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EmbedPriority(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EMBED_PRIORITY_INTERACTIVE: _ClassVar[EmbedPriority]
    EMBED_PRIORITY_BULK: _ClassVar[EmbedPriority]

class MaskFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MASK_FORMAT_UNSPECIFIED: _ClassVar[MaskFormat]
    MASK_FORMAT_RLE: _ClassVar[MaskFormat]
    MASK_FORMAT_PNG: _ClassVar[MaskFormat]
    MASK_FORMAT_PACKED_BITS: _ClassVar[MaskFormat]
    MASK_FORMAT_NONE: _ClassVar[MaskFormat]
    MASK_FORMAT_POLYGON: _ClassVar[MaskFormat]
EMBED_PRIORITY_INTERACTIVE: EmbedPriority
EMBED_PRIORITY_BULK: EmbedPriority
MASK_FORMAT_UNSPECIFIED: MaskFormat
MASK_FORMAT_RLE: MaskFormat
MASK_FORMAT_PNG: MaskFormat
MASK_FORMAT_PACKED_BITS: MaskFormat
MASK_FORMAT_NONE: MaskFormat
MASK_FORMAT_POLYGON: MaskFormat

class ImageSize(_message.Message):
    __slots__ = ("height", "width")
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    height: int
    width: int
    def __init__(self, height: _Optional[int] = ..., width: _Optional[int] = ...) -> None: ...

class EmbedRequest(_message.Message):
    __slots__ = ("image", "model", "priority")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    image: bytes
    model: str
    priority: EmbedPriority
    def __init__(self, image: _Optional[bytes] = ..., model: _Optional[str] = ..., priority: _Optional[_Union[EmbedPriority, str]] = ...) -> None: ...

class EmbedResponse(_message.Message):
    __slots__ = ("image_key", "cached", "original_size", "model")
    IMAGE_KEY_FIELD_NUMBER: _ClassVar[int]
    CACHED_FIELD_NUMBER: _ClassVar[int]
    ORIGINAL_SIZE_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    image_key: str
    cached: bool
    original_size: ImageSize
    model: str
    def __init__(self, image_key: _Optional[str] = ..., cached: _Optional[bool] = ..., original_size: _Optional[_Union[ImageSize, _Mapping]] = ..., model: _Optional[str] = ...) -> None: ...

class GetEmbeddingRequest(_message.Message):
    __slots__ = ("image_key",)
    IMAGE_KEY_FIELD_NUMBER: _ClassVar[int]
    image_key: str
    def __init__(self, image_key: _Optional[str] = ...) -> None: ...

class Tensor(_message.Message):
    __slots__ = ("name", "dtype", "shape", "data")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    name: str
    dtype: str
    shape: _containers.RepeatedScalarFieldContainer[int]
    data: bytes
    def __init__(self, name: _Optional[str] = ..., dtype: _Optional[str] = ..., shape: _Optional[_Iterable[int]] = ..., data: _Optional[bytes] = ...) -> None: ...

class GetEmbeddingResponse(_message.Message):
    __slots__ = ("image_key", "model", "original_size", "input_size", "tensors")
    IMAGE_KEY_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    ORIGINAL_SIZE_FIELD_NUMBER: _ClassVar[int]
    INPUT_SIZE_FIELD_NUMBER: _ClassVar[int]
    TENSORS_FIELD_NUMBER: _ClassVar[int]
    image_key: str
    model: str
    original_size: ImageSize
    input_size: ImageSize
    tensors: _containers.RepeatedCompositeFieldContainer[Tensor]
    def __init__(self, image_key: _Optional[str] = ..., model: _Optional[str] = ..., original_size: _Optional[_Union[ImageSize, _Mapping]] = ..., input_size: _Optional[_Union[ImageSize, _Mapping]] = ..., tensors: _Optional[_Iterable[_Union[Tensor, _Mapping]]] = ...) -> None: ...

class Point(_message.Message):
    __slots__ = ("x", "y", "label")
    X_FIELD_NUMBER: _ClassVar[int]
    Y_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    x: float
    y: float
    label: int
    def __init__(self, x: _Optional[float] = ..., y: _Optional[float] = ..., label: _Optional[int] = ...) -> None: ...

class Box(_message.Message):
    __slots__ = ("x0", "y0", "x1", "y1")
    X0_FIELD_NUMBER: _ClassVar[int]
    Y0_FIELD_NUMBER: _ClassVar[int]
    X1_FIELD_NUMBER: _ClassVar[int]
    Y1_FIELD_NUMBER: _ClassVar[int]
    x0: float
    y0: float
    x1: float
    y1: float
    def __init__(self, x0: _Optional[float] = ..., y0: _Optional[float] = ..., x1: _Optional[float] = ..., y1: _Optional[float] = ...) -> None: ...

class LowResLogits(_message.Message):
    __slots__ = ("size", "count", "data")
    SIZE_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    size: ImageSize
    count: int
    data: bytes
    def __init__(self, size: _Optional[_Union[ImageSize, _Mapping]] = ..., count: _Optional[int] = ..., data: _Optional[bytes] = ...) -> None: ...

class MaskInput(_message.Message):
    __slots__ = ("logits", "previous")
    LOGITS_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_FIELD_NUMBER: _ClassVar[int]
    logits: LowResLogits
    previous: bool
    def __init__(self, logits: _Optional[_Union[LowResLogits, _Mapping]] = ..., previous: _Optional[bool] = ...) -> None: ...

class Prompt(_message.Message):
    __slots__ = ("points", "box", "mask_input")
    POINTS_FIELD_NUMBER: _ClassVar[int]
    BOX_FIELD_NUMBER: _ClassVar[int]
    MASK_INPUT_FIELD_NUMBER: _ClassVar[int]
    points: _containers.RepeatedCompositeFieldContainer[Point]
    box: Box
    mask_input: MaskInput
    def __init__(self, points: _Optional[_Iterable[_Union[Point, _Mapping]]] = ..., box: _Optional[_Union[Box, _Mapping]] = ..., mask_input: _Optional[_Union[MaskInput, _Mapping]] = ...) -> None: ...

class SegmentRequest(_message.Message):
    __slots__ = ("request_id", "image_key", "prompts", "multimask_output", "format", "return_logits", "polygon_tolerance", "supersede_queued")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    IMAGE_KEY_FIELD_NUMBER: _ClassVar[int]
    PROMPTS_FIELD_NUMBER: _ClassVar[int]
    MULTIMASK_OUTPUT_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    RETURN_LOGITS_FIELD_NUMBER: _ClassVar[int]
    POLYGON_TOLERANCE_FIELD_NUMBER: _ClassVar[int]
    SUPERSEDE_QUEUED_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    image_key: str
    prompts: _containers.RepeatedCompositeFieldContainer[Prompt]
    multimask_output: bool
    format: MaskFormat
    return_logits: bool
    polygon_tolerance: float
    supersede_queued: bool
    def __init__(self, request_id: _Optional[str] = ..., image_key: _Optional[str] = ..., prompts: _Optional[_Iterable[_Union[Prompt, _Mapping]]] = ..., multimask_output: _Optional[bool] = ..., format: _Optional[_Union[MaskFormat, str]] = ..., return_logits: _Optional[bool] = ..., polygon_tolerance: _Optional[float] = ..., supersede_queued: _Optional[bool] = ...) -> None: ...

class Rle(_message.Message):
    __slots__ = ("size", "counts")
    SIZE_FIELD_NUMBER: _ClassVar[int]
    COUNTS_FIELD_NUMBER: _ClassVar[int]
    size: ImageSize
    counts: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, size: _Optional[_Union[ImageSize, _Mapping]] = ..., counts: _Optional[_Iterable[int]] = ...) -> None: ...

class PackedBits(_message.Message):
    __slots__ = ("size", "bits")
    SIZE_FIELD_NUMBER: _ClassVar[int]
    BITS_FIELD_NUMBER: _ClassVar[int]
    size: ImageSize
    bits: bytes
    def __init__(self, size: _Optional[_Union[ImageSize, _Mapping]] = ..., bits: _Optional[bytes] = ...) -> None: ...

class Ring(_message.Message):
    __slots__ = ("coordinates",)
    COORDINATES_FIELD_NUMBER: _ClassVar[int]
    coordinates: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, coordinates: _Optional[_Iterable[int]] = ...) -> None: ...

class Polygon(_message.Message):
    __slots__ = ("exterior", "holes")
    EXTERIOR_FIELD_NUMBER: _ClassVar[int]
    HOLES_FIELD_NUMBER: _ClassVar[int]
    exterior: Ring
    holes: _containers.RepeatedCompositeFieldContainer[Ring]
    def __init__(self, exterior: _Optional[_Union[Ring, _Mapping]] = ..., holes: _Optional[_Iterable[_Union[Ring, _Mapping]]] = ...) -> None: ...

class Polygons(_message.Message):
    __slots__ = ("size", "polygons")
    SIZE_FIELD_NUMBER: _ClassVar[int]
    POLYGONS_FIELD_NUMBER: _ClassVar[int]
    size: ImageSize
    polygons: _containers.RepeatedCompositeFieldContainer[Polygon]
    def __init__(self, size: _Optional[_Union[ImageSize, _Mapping]] = ..., polygons: _Optional[_Iterable[_Union[Polygon, _Mapping]]] = ...) -> None: ...

class BoundingBox(_message.Message):
    __slots__ = ("x", "y", "width", "height")
    X_FIELD_NUMBER: _ClassVar[int]
    Y_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    x: int
    y: int
    width: int
    height: int
    def __init__(self, x: _Optional[int] = ..., y: _Optional[int] = ..., width: _Optional[int] = ..., height: _Optional[int] = ...) -> None: ...

class Mask(_message.Message):
    __slots__ = ("score", "stability_score", "area", "bbox", "rle", "png", "packed_bits", "polygons")
    SCORE_FIELD_NUMBER: _ClassVar[int]
    STABILITY_SCORE_FIELD_NUMBER: _ClassVar[int]
    AREA_FIELD_NUMBER: _ClassVar[int]
    BBOX_FIELD_NUMBER: _ClassVar[int]
    RLE_FIELD_NUMBER: _ClassVar[int]
    PNG_FIELD_NUMBER: _ClassVar[int]
    PACKED_BITS_FIELD_NUMBER: _ClassVar[int]
    POLYGONS_FIELD_NUMBER: _ClassVar[int]
    score: float
    stability_score: float
    area: int
    bbox: BoundingBox
    rle: Rle
    png: bytes
    packed_bits: PackedBits
    polygons: Polygons
    def __init__(self, score: _Optional[float] = ..., stability_score: _Optional[float] = ..., area: _Optional[int] = ..., bbox: _Optional[_Union[BoundingBox, _Mapping]] = ..., rle: _Optional[_Union[Rle, _Mapping]] = ..., png: _Optional[bytes] = ..., packed_bits: _Optional[_Union[PackedBits, _Mapping]] = ..., polygons: _Optional[_Union[Polygons, _Mapping]] = ...) -> None: ...

class ObjectMasks(_message.Message):
    __slots__ = ("masks", "low_res_logits")
    MASKS_FIELD_NUMBER: _ClassVar[int]
    LOW_RES_LOGITS_FIELD_NUMBER: _ClassVar[int]
    masks: _containers.RepeatedCompositeFieldContainer[Mask]
    low_res_logits: LowResLogits
    def __init__(self, masks: _Optional[_Iterable[_Union[Mask, _Mapping]]] = ..., low_res_logits: _Optional[_Union[LowResLogits, _Mapping]] = ...) -> None: ...

class Error(_message.Message):
    __slots__ = ("code", "message", "field")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    FIELD_FIELD_NUMBER: _ClassVar[int]
    code: int
    message: str
    field: str
    def __init__(self, code: _Optional[int] = ..., message: _Optional[str] = ..., field: _Optional[str] = ...) -> None: ...

class SegmentResponse(_message.Message):
    __slots__ = ("request_id", "objects", "error", "image_key", "superseded")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    OBJECTS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    IMAGE_KEY_FIELD_NUMBER: _ClassVar[int]
    SUPERSEDED_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    objects: _containers.RepeatedCompositeFieldContainer[ObjectMasks]
    error: Error
    image_key: str
    superseded: bool
    def __init__(self, request_id: _Optional[str] = ..., objects: _Optional[_Iterable[_Union[ObjectMasks, _Mapping]]] = ..., error: _Optional[_Union[Error, _Mapping]] = ..., image_key: _Optional[str] = ..., superseded: _Optional[bool] = ...) -> None: ...

class SegmentEverythingRequest(_message.Message):
    __slots__ = ("request_id", "image_key", "points_per_side", "points", "points_per_batch", "pred_iou_thresh", "stability_score_thresh", "stability_score_offset", "box_nms_thresh", "min_mask_region_area", "format", "polygon_tolerance")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    IMAGE_KEY_FIELD_NUMBER: _ClassVar[int]
    POINTS_PER_SIDE_FIELD_NUMBER: _ClassVar[int]
    POINTS_FIELD_NUMBER: _ClassVar[int]
    POINTS_PER_BATCH_FIELD_NUMBER: _ClassVar[int]
    PRED_IOU_THRESH_FIELD_NUMBER: _ClassVar[int]
    STABILITY_SCORE_THRESH_FIELD_NUMBER: _ClassVar[int]
    STABILITY_SCORE_OFFSET_FIELD_NUMBER: _ClassVar[int]
    BOX_NMS_THRESH_FIELD_NUMBER: _ClassVar[int]
    MIN_MASK_REGION_AREA_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    POLYGON_TOLERANCE_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    image_key: str
    points_per_side: int
    points: _containers.RepeatedCompositeFieldContainer[Point]
    points_per_batch: int
    pred_iou_thresh: float
    stability_score_thresh: float
    stability_score_offset: float
    box_nms_thresh: float
    min_mask_region_area: int
    format: MaskFormat
    polygon_tolerance: float
    def __init__(self, request_id: _Optional[str] = ..., image_key: _Optional[str] = ..., points_per_side: _Optional[int] = ..., points: _Optional[_Iterable[_Union[Point, _Mapping]]] = ..., points_per_batch: _Optional[int] = ..., pred_iou_thresh: _Optional[float] = ..., stability_score_thresh: _Optional[float] = ..., stability_score_offset: _Optional[float] = ..., box_nms_thresh: _Optional[float] = ..., min_mask_region_area: _Optional[int] = ..., format: _Optional[_Union[MaskFormat, str]] = ..., polygon_tolerance: _Optional[float] = ...) -> None: ...

class EverythingProgress(_message.Message):
    __slots__ = ("points_done", "points_total", "masks_kept")
    POINTS_DONE_FIELD_NUMBER: _ClassVar[int]
    POINTS_TOTAL_FIELD_NUMBER: _ClassVar[int]
    MASKS_KEPT_FIELD_NUMBER: _ClassVar[int]
    points_done: int
    points_total: int
    masks_kept: int
    def __init__(self, points_done: _Optional[int] = ..., points_total: _Optional[int] = ..., masks_kept: _Optional[int] = ...) -> None: ...

class EverythingMask(_message.Message):
    __slots__ = ("mask", "point")
    MASK_FIELD_NUMBER: _ClassVar[int]
    POINT_FIELD_NUMBER: _ClassVar[int]
    mask: Mask
    point: Point
    def __init__(self, mask: _Optional[_Union[Mask, _Mapping]] = ..., point: _Optional[_Union[Point, _Mapping]] = ...) -> None: ...

class EverythingDone(_message.Message):
    __slots__ = ("masks", "points")
    MASKS_FIELD_NUMBER: _ClassVar[int]
    POINTS_FIELD_NUMBER: _ClassVar[int]
    masks: int
    points: int
    def __init__(self, masks: _Optional[int] = ..., points: _Optional[int] = ...) -> None: ...

class SegmentEverythingResponse(_message.Message):
    __slots__ = ("request_id", "progress", "masks", "done")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    MASKS_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    progress: EverythingProgress
    masks: EverythingMasks
    done: EverythingDone
    def __init__(self, request_id: _Optional[str] = ..., progress: _Optional[_Union[EverythingProgress, _Mapping]] = ..., masks: _Optional[_Union[EverythingMasks, _Mapping]] = ..., done: _Optional[_Union[EverythingDone, _Mapping]] = ...) -> None: ...

class EverythingMasks(_message.Message):
    __slots__ = ("masks",)
    MASKS_FIELD_NUMBER: _ClassVar[int]
    masks: _containers.RepeatedCompositeFieldContainer[EverythingMask]
    def __init__(self, masks: _Optional[_Iterable[_Union[EverythingMask, _Mapping]]] = ...) -> None: ...
