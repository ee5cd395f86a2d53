"""Family `sam2`: SAM 2 / 2.1 Hiera (t, s, b+, l) along SAM2ImagePredictor's path.

What SAM2ImagePredictor does (sam2 1.1.0), and so how the two roles split it:
  set_image:  x = Normalize(ImageNet)(Resize((1024, 1024), antialias)(ToTensor(rgb)))
              fpn = image_encoder(x)["backbone_fpn"]            # Hiera trunk + FpnNeck, scalp=1: 3 levels
              fpn[0] = sam_mask_decoder.conv_s0(fpn[0])         # 256 -> 32 channels at 256 x 256
              fpn[1] = sam_mask_decoder.conv_s1(fpn[1])         # 256 -> 64 channels at 128 x 128
              image_embed = fpn[2] + no_mem_embed               # directly_add_no_mem_embed in every config
  _predict:   sam_prompt_encoder(points=box corners (labels 2, 3) + clicks, boxes=None, masks=mask_input)
              sam_mask_decoder(image_embed, dense_pe, sparse, dense, multimask, repeat_image=B > 1,
                               high_res_features=[fpn[0], fpn[1]])
              masks = interpolate(low_res, original size, bilinear); low_res returned clamped to +-32
The encoder role holds image_encoder.*, sam_mask_decoder.conv_s0/conv_s1.* and no_mem_embed; the decoder role
sam_prompt_encoder.* and sam_mask_decoder.* less conv_s0/conv_s1. The video modules are read by neither.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from sam2.modeling.backbones.hieradet import Hiera
from sam2.modeling.backbones.image_encoder import FpnNeck, ImageEncoder
from sam2.modeling.position_encoding import PositionEmbeddingSine
from sam2.modeling.sam.mask_decoder import MaskDecoder
from sam2.modeling.sam.prompt_encoder import PromptEncoder
from sam2.modeling.sam.transformer import TwoWayTransformer
from torch import nn

from service.runtime.families.catalog import ARCHS
from service.runtime.families.spec import Arch, HieraParams

HIDDEN = 256
# The encoder-side parts of the mask decoder: they run at encode time (SAM2Base.forward_image).
ENCODER_SIDE_DECODER_PARTS = ("conv_s0.", "conv_s1.")


def build_image_encoder(params: HieraParams) -> ImageEncoder:
    trunk = Hiera(
        embed_dim=params.embed_dim,
        num_heads=params.num_heads,
        stages=params.stages,
        global_att_blocks=params.global_att_blocks,
        window_pos_embed_bkg_spatial_size=params.window_pos_embed_bkg_spatial_size,
        window_spec=params.window_spec,
    )
    width = params.embed_dim
    neck = FpnNeck(
        position_encoding=PositionEmbeddingSine(num_pos_feats=HIDDEN, normalize=True, scale=None, temperature=10000),
        d_model=HIDDEN,
        backbone_channel_list=[8 * width, 4 * width, 2 * width, width],
        fpn_top_down_levels=[2, 3],
        fpn_interp_model="nearest",
    )
    return ImageEncoder(trunk=trunk, neck=neck, scalp=1)


def build_prompt_encoder() -> PromptEncoder:
    return PromptEncoder(
        embed_dim=HIDDEN, image_embedding_size=(64, 64), input_image_size=(1024, 1024), mask_in_chans=16
    )


def build_decoder_side_mask_decoder() -> MaskDecoder:
    """SAM2Base's MaskDecoder with every config's flags and build_sam2's postprocessing flags (dynamic multimask
    via stability), without conv_s0 / conv_s1."""
    decoder = MaskDecoder(
        num_multimask_outputs=3,
        transformer=TwoWayTransformer(depth=2, embedding_dim=HIDDEN, mlp_dim=2048, num_heads=8),
        transformer_dim=HIDDEN,
        iou_head_depth=3,
        iou_head_hidden_dim=256,
        use_high_res_features=True,
        iou_prediction_use_sigmoid=True,
        pred_obj_scores=True,
        pred_obj_scores_mlp=True,
        use_multimask_token_for_obj_ptr=True,
        dynamic_multimask_via_stability=True,
        dynamic_multimask_stability_delta=0.05,
        dynamic_multimask_stability_thresh=0.98,
    )
    del decoder.conv_s0, decoder.conv_s1
    return decoder


class Sam2ImageEncoder(nn.Module):
    """Normalised (B, 3, 1024, 1024) -> the three tensors SAM2ImagePredictor.set_image keeps."""

    def __init__(self, params: HieraParams) -> None:
        super().__init__()
        self.image_encoder = build_image_encoder(params)
        self.conv_s0 = nn.Conv2d(HIDDEN, HIDDEN // 8, kernel_size=1, stride=1)
        self.conv_s1 = nn.Conv2d(HIDDEN, HIDDEN // 4, kernel_size=1, stride=1)
        self.no_mem_embed = nn.Parameter(torch.zeros(1, 1, HIDDEN))

    def forward(self, pixels: torch.Tensor) -> dict[str, torch.Tensor]:
        fpn = self.image_encoder(pixels)["backbone_fpn"]
        return {
            "image_embed": fpn[2] + self.no_mem_embed.view(1, HIDDEN, 1, 1),
            "high_res_feats_0": self.conv_s0(fpn[0]),
            "high_res_feats_1": self.conv_s1(fpn[1]),
        }


def image_encoder_weights(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The encoder role's share of a SAM 2 state dict, named for Sam2ImageEncoder."""
    weights = {key: value for key, value in state_dict.items() if key.startswith("image_encoder.")}
    for part in ("conv_s0", "conv_s1"):
        for leaf in ("weight", "bias"):
            weights[f"{part}.{leaf}"] = state_dict[f"sam_mask_decoder.{part}.{leaf}"]
    weights["no_mem_embed"] = state_dict["no_mem_embed"]
    return weights


def recognise(state_dict: Mapping[str, torch.Tensor]) -> Arch | None:
    """The sam2 arch of a SAM 2 model state dict (the "model" entry of an official checkpoint); None if not one."""
    stem = state_dict.get("image_encoder.trunk.patch_embed.proj.weight")
    if stem is None:
        return None
    width = int(stem.shape[0])
    depth = len({key.split(".")[3] for key in state_dict if key.startswith("image_encoder.trunk.blocks.")})
    background = tuple(int(side) for side in state_dict["image_encoder.trunk.pos_embed"].shape[-2:])
    version = "2.1" if "no_obj_embed_spatial" in state_dict else "2.0"
    for arch in ARCHS.values():
        params = arch.params
        if isinstance(params, HieraParams) and (
            params.version,
            params.embed_dim,
            sum(params.stages),
            params.window_pos_embed_bkg_spatial_size,
        ) == (version, width, depth, background):
            return arch
    raise ValueError(f"a SAM {version} Hiera of width {width}, depth {depth}, background {background} is unknown")


def build_reference_model(arch: Arch, checkpoint: str | None) -> nn.Module:
    """The whole SAM2Base from the package's own Hydra builder and packaged config (with the arch's overrides), on
    the CPU in eval mode: what SAM2ImagePredictor runs, and how seeded test checkpoints are made."""
    from sam2.build_sam import build_sam2

    params = arch.params
    assert isinstance(params, HieraParams)
    model: nn.Module = build_sam2(
        config_file=params.config,
        ckpt_path=checkpoint,
        device="cpu",
        mode="eval",
        hydra_overrides_extra=list(params.overrides),
    )
    return model
