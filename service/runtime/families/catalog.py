"""Every family and architecture the service serves, as plain data (importing this loads no torch).

Storage dtypes were chosen by measurement (DESIGN.md): float16 keeps masks at IoU >= 0.999 for SAM 1's embedding
and for SAM 2's `image_embed` and `high_res_feats_1`; SAM 2's `high_res_feats_0` (added right before the per-pixel
mask product) moves masks to IoU 0.9984 in float16 and stays in float32. bfloat16 fails everywhere.
"""

from __future__ import annotations

from typing import Final

from service.runtime.families.spec import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    SAM_PIXEL_MEAN,
    SAM_PIXEL_STD,
    Arch,
    CheckpointFormat,
    Family,
    HieraParams,
    Normalization,
    NormKind,
    Postprocess,
    ResizeRule,
    TensorSpec,
    TinyViTParams,
    ViTParams,
)

_SAM1_EMBEDDING = (TensorSpec("image_embeddings", (256, 64, 64), "float16"),)

SAM: Final = Family(
    "sam",
    ResizeRule.LONGEST_SIDE_PAD,
    _SAM1_EMBEDDING,
    Postprocess.UPSCALE_CROP_RESIZE,
    CheckpointFormat.STATE_DICT,
    "segment_anything.SamPredictor over segment_anything.Sam",
)
TINYVIT: Final = Family(
    "tinyvit",
    ResizeRule.LONGEST_SIDE_PAD,
    _SAM1_EMBEDDING,
    Postprocess.UPSCALE_CROP_RESIZE,
    CheckpointFormat.STATE_DICT,
    "segment_anything.SamPredictor over segment_anything.Sam with the TinyViT image encoder",
)
SAM2: Final = Family(
    "sam2",
    ResizeRule.SQUARE_FLOAT,
    (
        TensorSpec("image_embed", (256, 64, 64), "float16"),
        TensorSpec("high_res_feats_0", (32, 256, 256), "float32"),
        TensorSpec("high_res_feats_1", (64, 128, 128), "float16"),
    ),
    Postprocess.RESIZE_DIRECT,
    CheckpointFormat.MODEL_WRAPPED,
    "sam2.sam2_image_predictor.SAM2ImagePredictor over sam2.build_sam.build_sam2(config)",
)
FAMILIES: Final = {family.name: family for family in (SAM, TINYVIT, SAM2)}

SAM_NORMALIZATION: Final = Normalization(NormKind.FIXED, SAM_PIXEL_MEAN, SAM_PIXEL_STD)
# LiteMedSAM is served with upstream's rule, per-image min-max (mean 0 / std 255 equals it only for full-range
# images; min-max measured 0.958 mean IoU against the truth on box prompts, /255 0.955).
MIN_MAX_NORMALIZATION: Final = Normalization(NormKind.MIN_MAX)
SAM2_NORMALIZATION: Final = Normalization(NormKind.FIXED, IMAGENET_MEAN, IMAGENET_STD)


def _vit(name: str, dim: int, depth: int, heads: int, global_attention: tuple[int, ...], test: bool = False) -> Arch:
    return Arch(SAM, name, 1024, SAM_NORMALIZATION, ViTParams(dim, depth, heads, global_attention), test)


_TINYVIT_5M = {"embed_dims": (64, 128, 160, 320), "depths": (2, 2, 6, 2), "num_heads": (2, 4, 5, 10)}
# Small TinyViTs for tests: the last stage stays 320 wide (both TinyViTs keep a stride-1 merge only for widths
# 320/448/576 and reshape to a fixed 64 x 64 grid).
_TINYVIT_TEST = {"embed_dims": (16, 32, 64, 320), "depths": (1, 1, 1, 1), "num_heads": (1, 1, 2, 5)}


def _tinyvit(name: str, variant: str, test: bool = False) -> Arch:
    dims = _TINYVIT_TEST if test else _TINYVIT_5M
    params = TinyViTParams(variant, **dims)  # type: ignore[arg-type]
    if variant == "mobile_sam":
        return Arch(TINYVIT, name, 1024, SAM_NORMALIZATION, params, test)
    return Arch(TINYVIT, name, 256, MIN_MAX_NORMALIZATION, params, test)


# A Hiera small enough for tests: 8 wide, 5 blocks (global attention may not sit on the first block of a stage);
# the SAM heads stay full size, the unused video memory modules are shrunk so the checkpoint stays small.
_HIERA_TEST_OVERRIDES = (
    "++model.image_encoder.trunk.embed_dim=8",
    "++model.image_encoder.trunk.num_heads=1",
    "++model.image_encoder.trunk.stages=[1,1,2,1]",
    "++model.image_encoder.trunk.global_att_blocks=[3]",
    "++model.image_encoder.neck.backbone_channel_list=[64,32,16,8]",
    "++model.memory_attention.num_layers=1",
    "++model.memory_attention.layer.dim_feedforward=64",
)


def _hiera_archs(version: str) -> list[Arch]:
    prefix = "sam2.1" if version == "2.1" else "sam2"
    table = (
        # size, width, heads, stages, global attention blocks, pos-embed background size, window spec
        ("t", 96, 1, (1, 2, 7, 2), (5, 7, 9), (7, 7), (8, 4, 14, 7)),
        ("s", 96, 1, (1, 2, 11, 2), (7, 10, 13), (7, 7), (8, 4, 14, 7)),
        ("b+", 112, 2, (2, 3, 16, 3), (12, 16, 20), (14, 14), (8, 4, 14, 7)),
        ("l", 144, 2, (2, 6, 36, 4), (23, 33, 43), (7, 7), (8, 4, 16, 8)),
    )
    archs = [
        Arch(
            SAM2,
            f"{prefix}_hiera_{size}",
            1024,
            SAM2_NORMALIZATION,
            HieraParams(
                version, width, heads, stages, blocks, bkg, window, f"configs/{prefix}/{prefix}_hiera_{size}.yaml"
            ),
        )
        for size, width, heads, stages, blocks, bkg, window in table
    ]
    test = HieraParams(
        version,
        8,
        1,
        (1, 1, 2, 1),
        (3,),
        (7, 7),
        (8, 4, 14, 7),
        f"configs/{prefix}/{prefix}_hiera_t.yaml",
        _HIERA_TEST_OVERRIDES,
    )
    return [*archs, Arch(SAM2, f"{prefix}_hiera_test", 1024, SAM2_NORMALIZATION, test, test_only=True)]


ARCHS: Final[dict[str, Arch]] = {
    arch.name: arch
    for arch in (
        _vit("vit_h", 1280, 32, 16, (7, 15, 23, 31)),
        _vit("vit_l", 1024, 24, 16, (5, 11, 17, 23)),
        _vit("vit_b", 768, 12, 12, (2, 5, 8, 11)),
        # For tests and trials: a two-block ViT, built by the same builder as the official ones.
        _vit("tiny", 32, 2, 2, (1,), test=True),
        _tinyvit("mobile_sam", "mobile_sam"),
        _tinyvit("lite_medsam", "lite_medsam"),
        _tinyvit("tinyvit_test_mobile", "mobile_sam", test=True),
        _tinyvit("tinyvit_test_lite", "lite_medsam", test=True),
        *_hiera_archs("2.1"),
        *_hiera_archs("2.0"),
    )
}


def get_arch(name: str) -> Arch:
    """The architecture called `name`; ValueError naming the known ones otherwise."""
    try:
        return ARCHS[name]
    except KeyError:
        raise ValueError(f"unknown architecture {name!r}; known: {', '.join(ARCHS)}") from None
