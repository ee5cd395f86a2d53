"""What a model family fixes, as plain data (no torch): input, normalisation, resize rule, the tensors the image
encoder hands to the decoder, the postprocessing and the checkpoint format."""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

# ImageNet statistics: SAM 1 applies them to 0..255 pixels, SAM 2 to 0..1 pixels (the same numbers / 255).
SAM_PIXEL_MEAN = (123.675, 116.28, 103.53)
SAM_PIXEL_STD = (58.395, 57.12, 57.375)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class ResizeRule(enum.Enum):
    """How an image reaches the encoder's square input."""

    # segment_anything's ResizeLongestSide: the longest side to S (Pillow bilinear on uint8), zero padding at the
    # bottom and right after normalising. The encoder receives the uint8 resized image, padded.
    LONGEST_SIDE_PAD = "longest_side_pad"
    # SAM2Transforms: torchvision Resize((S, S), antialias) of the float [0, 1] image; aspect ratio not kept, no
    # padding. Rounding that to uint8 breaks parity (IoU 0.987), so the encoder receives it as float32.
    SQUARE_FLOAT = "square_float"


class NormKind(enum.Enum):
    FIXED = "fixed"  # (x - mean) / std with constants
    # LiteMedSAM upstream: (x - min) / max(max - min, 1e-8), min and max over the resized image (all channels).
    MIN_MAX = "min_max"


@dataclass(frozen=True)
class Normalization:
    kind: NormKind
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)


class Postprocess(enum.Enum):
    # Sam.postprocess_masks: low-res -> S x S bilinear, crop to the resized content, -> original size bilinear.
    UPSCALE_CROP_RESIZE = "upscale_crop_resize"
    # SAM2Transforms.postprocess_masks: low-res -> original size in one bilinear step; the low-res logits a
    # caller gets back are clamped to [-32, 32] as SAM2ImagePredictor returns them.
    RESIZE_DIRECT = "resize_direct"


class CheckpointFormat(enum.Enum):
    STATE_DICT = "state_dict"  # torch.save(model.state_dict())
    MODEL_WRAPPED = "model_wrapped"  # torch.save({"model": model.state_dict()}), SAM 2's releases


@dataclass(frozen=True)
class TensorSpec:
    """One tensor the image encoder hands to the decoder, per image (no batch axis), and how it is stored."""

    name: str
    shape: tuple[int, ...]
    storage_dtype: str  # "float16" or "float32": chosen per tensor from the measured effect on masks

    @property
    def storage_bytes(self) -> int:
        return math.prod(self.shape) * (2 if self.storage_dtype == "float16" else 4)

    @property
    def triton_name(self) -> str:
        """The tensor's output name on Triton."""
        return self.name.upper()


@dataclass(frozen=True)
class Family:
    name: str
    resize: ResizeRule
    outputs: tuple[TensorSpec, ...]
    postprocess: Postprocess
    checkpoint_format: CheckpointFormat
    oracle: str  # the reference predictor the numerical contract compares with

    @property
    def storage_bytes(self) -> int:
        return sum(spec.storage_bytes for spec in self.outputs)


@dataclass(frozen=True)
class ViTParams:
    """segment_anything.build_sam._build_sam's parameters."""

    embed_dim: int
    depth: int
    num_heads: int
    global_attn_indexes: tuple[int, ...]


@dataclass(frozen=True)
class TinyViTParams:
    """variant "mobile_sam": MobileSAM's TinyViT (3x3 stride-2 stem, 1024 input, a classifier head in the weights);
    "lite_medsam": LiteMedSAM's (1x1 stride-1 stem, 256 input, no head). Both end on a 64 x 64 grid."""

    variant: str
    embed_dims: tuple[int, int, int, int]
    depths: tuple[int, int, int, int]
    num_heads: tuple[int, int, int, int]
    window_sizes: tuple[int, int, int, int] = (7, 7, 14, 7)
    mlp_ratio: float = 4.0
    mbconv_expand_ratio: float = 4.0
    local_conv_size: int = 3


@dataclass(frozen=True)
class HieraParams:
    """sam2's Hiera trunk parameters, and the packaged config (with Hydra overrides) its builder reads."""

    version: str  # "2.1" or "2.0"
    embed_dim: int
    num_heads: int
    stages: tuple[int, ...]
    global_att_blocks: tuple[int, ...]
    window_pos_embed_bkg_spatial_size: tuple[int, int]
    window_spec: tuple[int, ...]
    config: str
    overrides: tuple[str, ...] = ()


ArchParams = ViTParams | TinyViTParams | HieraParams


@dataclass(frozen=True)
class Arch:
    """One named architecture of a family, with its builder's own parameters. Names are unique across families."""

    family: Family
    name: str
    input_size: int
    normalization: Normalization
    params: ArchParams
    test_only: bool = False
