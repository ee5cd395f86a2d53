"""SAM 1's prompt encoder and mask decoder (SAM ViT, MobileSAM, LiteMedSAM) as TWO batched graphs for ONNX export.

The mask decoder's first attention layer starts with three image-sized projections that do not depend on the
prompt's points or box: the first token-to-image attention's keys and values, and the first image-to-token
attention's queries, all read from src = embedding + dense prompt embedding (no_mask_embed unless the prompt has a
mask input). The image side computes them (and src) once per embedding; the prompt side runs the rest for each
prompt. Split this way a prompt costs 14% less (36 ms against 42 ms on one core of the 2-core box), and the answers
are the same to the bit as from one graph (measured against samdec-v2): the same operations in the same order.

Image side (`IMAGE_INPUTS`, `IMAGE_OUTPUTS`; E embeddings, R rows):

    image_embeddings  (E, 256, 64, 64)  float16   the cached bytes as they are (cast to float32 inside)
    embedding_index   (R,)              int64     which embedding each row reads
    mask_input        (R, 1, 256, 256)  float32   low-res logits of an earlier answer (zeros where unused)
    has_mask_input    (R,)              float32   1 where mask_input is used, else 0
  ->
    image_tokens      (R, 4096, 256)    float32   src in token layout
    first_keys        (R, 4096, 128)    float32   layer 0's token-to-image k_proj(src + image pe)
    first_values      (R, 4096, 128)    float32   layer 0's token-to-image v_proj(src)
    first_queries     (R, 4096, 128)    float32   layer 0's image-to-token q_proj(src + image pe)

Prompt side (`PROMPT_INPUTS`, `PROMPT_OUTPUTS`; B prompts, N tokens, K masks):

    image_tokens, first_keys, first_values, first_queries   (B, 4096, C)   the image side's row of each prompt
    point_coords      (B, N, 2)         float32   x, y in the model's input frame
    point_labels      (B, N)            int64     1 fg, 0 bg, 2 / 3 box corners, -1 "not a point", -2 padding
    mask_indices      (K,)              int64     [1, 2, 3] multimask, [0] one mask
  ->
    low_res_logits    (B, K, 256, 256)  float32
    iou_predictions   (B, K)            float32

A row without a mask input depends on its embedding alone: service.runtime.onnx.backend keeps it per image key.

Exactness. `SamPredictor`'s token sequence is: the points, then ONE "not a point" (-1) token when there is no box,
then the box's two corners. The -1 token is a real token (it takes part in attention), so padding a batch to a
common N with more -1 tokens, as users of the official export do, moves logits by 0.1-0.19 (measured): padding
here is label -2, which an additive -inf key bias removes from the token self-attention and the image-to-token
attention exactly. A padded prompt gives the unpadded answer up to summation order (<= 4.5e-7 measured).
The mask convolutions sit behind an ONNX If: they run only when some row has a mask input, and
has * mask_embedding + (1 - has) * no_mask_embedding is exact for the others (0 * x = 0, x + 0 = x): a row without
a mask input is the same to the bit whether or not it shares a call with one that has.

Layout. The same arithmetic as segment_anything's modules, rearranged for ONNX Runtime on a CPU (each change
worth measured milliseconds, 18% in all): image-side tensors stay in token layout (B, 4096, 256) from the cast on;
image-side Linears are 2-D Gemms with their bias fused; cross-attention uses block-diagonal head operands (no head
transposes of image-sized tensors); output_upscaling's two 2x2 stride-2 transposed convolutions are channels-last
MatMuls with one depth-to-space of the K masks at the end; `mask_indices` selects masks before the upscaling.
"""

from __future__ import annotations

import math
import warnings
from typing import Final

import torch
from segment_anything.modeling import MaskDecoder, PromptEncoder
from segment_anything.modeling.transformer import Attention, TwoWayAttentionBlock
from torch import Tensor, nn

from service.constants import LOW_RES_MASK_SIZE

PADDING_LABEL: Final = -2
NOT_A_POINT_LABEL: Final = -1
# Part of every graph file's name: bump it whenever this module's arithmetic or interface changes.
GRAPH_VERSION: Final = "samdec-v3"
OPSET: Final = 17

IMAGE_INPUTS: Final = ("image_embeddings", "embedding_index", "mask_input", "has_mask_input")
IMAGE_OUTPUTS: Final = ("image_tokens", "first_keys", "first_values", "first_queries")
PROMPT_INPUTS: Final = (*IMAGE_OUTPUTS, "point_coords", "point_labels", "mask_indices")
PROMPT_OUTPUTS: Final = ("low_res_logits", "iou_predictions")
IMAGE_AXES: Final = {
    "image_embeddings": {0: "E"},
    "embedding_index": {0: "R"},
    "mask_input": {0: "R"},
    "has_mask_input": {0: "R"},
    **{name: {0: "R"} for name in IMAGE_OUTPUTS},
}
PROMPT_AXES: Final = {
    **{name: {0: "B"} for name in IMAGE_OUTPUTS},
    "point_coords": {0: "B", 1: "N"},
    "point_labels": {0: "B", 1: "N"},
    "mask_indices": {0: "K"},
    "low_res_logits": {0: "B", 1: "K"},
    "iou_predictions": {0: "B", 1: "K"},
}
# The two graphs of a model: each its own file (service.runtime.onnx.graph_files).
PARTS: Final = ("image", "prompt")


def _attention(layer: Attention, q: Tensor, k: Tensor, v: Tensor, key_bias: Tensor) -> Tensor:
    """segment_anything's Attention.forward plus an additive key bias (B, 1, 1, Nk) of 0 and -inf."""
    q = layer._separate_heads(layer.q_proj(q), layer.num_heads)
    k = layer._separate_heads(layer.k_proj(k), layer.num_heads)
    v = layer._separate_heads(layer.v_proj(v), layer.num_heads)
    attn = q @ k.permute(0, 1, 3, 2)
    attn = attn / math.sqrt(layer.internal_dim // layer.num_heads)
    attn = torch.softmax(attn + key_bias, dim=-1)
    return layer.out_proj(layer._recombine_heads(attn @ v))  # type: ignore[no-any-return]


def _linear_2d(layer: nn.Linear, x: Tensor) -> Tensor:
    """A Linear on (B, N, C) as one 2-D Gemm with its bias fused (a 3-D MatMul exports as MatMul + Add)."""
    b, n, c = x.shape
    return nn.functional.linear(x.reshape(b * n, c), layer.weight, layer.bias).reshape(b, n, -1)


def _head_mask(layer: Attention, dtype: torch.dtype) -> Tensor:
    """(H, internal_dim) of 0 and 1: column j belongs to head h. Multiplying by it builds block-diagonal operands."""
    return torch.repeat_interleave(
        torch.eye(layer.num_heads, dtype=dtype), layer.internal_dim // layer.num_heads, dim=1
    )


def _attention_tokens_to_image(layer: Attention, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    """Tokens (B, T, C) attend to the image (B, N, C) (see _tokens_to_image)."""
    return _tokens_to_image(layer, q, _linear_2d(layer.k_proj, k), _linear_2d(layer.v_proj, v))


def _tokens_to_image(layer: Attention, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    """Tokens (B, T, C) attend to the image's projected keys and values (B, N, D): the per-head queries as one
    block-diagonal (B, H*T, D) matrix (exact zeros off their head's columns) give every head's scores in one
    MatMul; the values go per head, a batch of (T, N) @ (N, D/H) products. (One (H*T, N) @ (N, D) product instead,
    keeping its diagonal blocks, is as fast but ONNX Runtime splits its long inner dimension by the thread count:
    its results changed with the threads.)"""
    heads, d = layer.num_heads, layer.internal_dim
    mask = _head_mask(layer, q.dtype)
    q = layer.q_proj(q)
    b, t, _ = q.shape
    q_blocks = (q.unsqueeze(1) * mask[None, :, None, :]).reshape(b, heads * t, d)
    attn = torch.softmax((q_blocks @ k.transpose(1, 2)) / math.sqrt(d // heads), dim=-1)
    n = v.shape[1]
    v_heads = v.reshape(b, n, heads, d // heads).permute(0, 2, 1, 3)
    out = (attn.reshape(b, heads, t, n) @ v_heads).permute(0, 2, 1, 3).reshape(b, t, d)
    return layer.out_proj(out)  # type: ignore[no-any-return]


def _image_to_tokens(layer: Attention, q: Tensor, k: Tensor, v: Tensor, key_bias: Tensor) -> Tensor:
    """The image's projected queries (B, N, D) attend to the tokens (B, T, C): block-diagonal keys and values
    (B, H*T, D) give the scores (B, N, H*T) and the output (B, N, D) in the recombined-heads layout directly."""
    heads, d = layer.num_heads, layer.internal_dim
    mask = _head_mask(layer, k.dtype)
    k = layer.k_proj(k)
    v = layer.v_proj(v)
    b, t, _ = k.shape
    n = q.shape[1]
    k_blocks = (k.unsqueeze(1) * mask[None, :, None, :]).reshape(b, heads * t, d)
    v_blocks = (v.unsqueeze(1) * mask[None, :, None, :]).reshape(b, heads * t, d)
    attn = (q @ k_blocks.transpose(1, 2)) / math.sqrt(d // heads)
    attn = attn.reshape(b, n, heads, t) + key_bias.reshape(b, 1, 1, t)
    attn = torch.softmax(attn, dim=-1).reshape(b, n, heads * t)
    return _linear_2d(layer.out_proj, attn @ v_blocks)


def _first_projections(block: TwoWayAttentionBlock, keys: Tensor, key_pe: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """A block's image-side projections that read only the keys it starts from: the token-to-image keys and
    values, and the image-to-token queries (the keys change only at the block's end)."""
    k = keys + key_pe
    token_to_image, image_to_token = block.cross_attn_token_to_image, block.cross_attn_image_to_token
    return (
        _linear_2d(token_to_image.k_proj, k),
        _linear_2d(token_to_image.v_proj, keys),
        _linear_2d(image_to_token.q_proj, k),
    )


def _block(
    block: TwoWayAttentionBlock,
    queries: Tensor,
    keys: Tensor,
    projections: tuple[Tensor, Tensor, Tensor],
    query_pe: Tensor,
    token_bias: Tensor,
) -> tuple[Tensor, Tensor]:
    """TwoWayAttentionBlock.forward from the block's _first_projections of `keys`, with the padding tokens masked
    wherever tokens are attention keys."""
    image_keys, image_values, image_queries = projections
    if block.skip_first_layer_pe:
        queries = _attention(block.self_attn, queries, queries, queries, token_bias)
    else:
        q = queries + query_pe
        queries = queries + _attention(block.self_attn, q, q, queries, token_bias)
    queries = block.norm1(queries)
    q = queries + query_pe
    queries = block.norm2(queries + _tokens_to_image(block.cross_attn_token_to_image, q, image_keys, image_values))
    queries = block.norm3(queries + block.mlp(queries))
    q = queries + query_pe
    keys = block.norm4(keys + _image_to_tokens(block.cross_attn_image_to_token, image_queries, q, queries, token_bias))
    return queries, keys


@torch.jit.script_if_tracing
def _dense_tokens(
    mask_input: Tensor,
    has_mask_input: Tensor,
    no_mask: Tensor,
    w0: Tensor,
    b0: Tensor,
    n1w: Tensor,
    n1b: Tensor,
    w3: Tensor,
    b3: Tensor,
    n4w: Tensor,
    n4b: Tensor,
    w6: Tensor,
    b6: Tensor,
) -> Tensor:
    """The dense prompt embedding in token layout: (1, 1, C) no_mask_embed when no prompt has a mask (an ONNX If),
    else (B, N, C) = has * mask_downscaling(mask) + (1 - has) * no_mask_embed. mask_downscaling written out (Conv,
    LayerNorm2d, GELU, Conv, LayerNorm2d, GELU, Conv) so that it can be scripted."""
    if bool(has_mask_input.max() > 0):
        x = torch.nn.functional.conv2d(mask_input, w0, b0, stride=2)
        u = x.mean(1, keepdim=True)
        s = (x - u).pow(2).mean(1, keepdim=True)
        x = (x - u) / torch.sqrt(s + 1e-6)
        x = torch.nn.functional.gelu(n1w[:, None, None] * x + n1b[:, None, None])
        x = torch.nn.functional.conv2d(x, w3, b3, stride=2)
        u = x.mean(1, keepdim=True)
        s = (x - u).pow(2).mean(1, keepdim=True)
        x = (x - u) / torch.sqrt(s + 1e-6)
        x = torch.nn.functional.gelu(n4w[:, None, None] * x + n4b[:, None, None])
        x = torch.nn.functional.conv2d(x, w6, b6)
        has = has_mask_input.reshape(-1, 1, 1, 1)
        dense = has * x + (1 - has) * no_mask.reshape(1, -1, 1, 1)
        return dense.flatten(2).permute(0, 2, 1)
    return no_mask.reshape(1, 1, -1)


class _DecoderGraph(nn.Module):
    """What both sides read: the prompt encoder, the mask decoder and the image's positional encoding."""

    key_pe: Tensor

    def __init__(self, prompt_encoder: PromptEncoder, mask_decoder: MaskDecoder) -> None:
        super().__init__()
        self.prompt_encoder = prompt_encoder
        self.mask_decoder = mask_decoder
        with torch.no_grad():
            # get_dense_pe() (1, 256, 64, 64) stored as the transformer reads it, (1, 4096, 256): one initializer
            # (folding the permute at each of its uses had written a 4 MiB constant for each).
            dense_pe = prompt_encoder.get_dense_pe().detach().flatten(2).permute(0, 2, 1).contiguous()
            self.register_buffer("key_pe", dense_pe)


class ImageSideGraph(_DecoderGraph):
    """src and layer 0's image-side projections for R rows over E embeddings (see the module's docstring)."""

    def forward(
        self, image_embeddings: Tensor, embedding_index: Tensor, mask_input: Tensor, has_mask_input: Tensor
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        keys = self._image_tokens(image_embeddings, embedding_index, mask_input, has_mask_input)
        first_keys, first_values, first_queries = _first_projections(
            self.mask_decoder.transformer.layers[0], keys, self.key_pe
        )
        return keys, first_keys, first_values, first_queries

    def _image_tokens(
        self, image_embeddings: Tensor, embedding_index: Tensor, mask_input: Tensor, has_mask_input: Tensor
    ) -> Tensor:
        """src = embedding + dense prompt embedding, as (R, 4096, 256) tokens (cast and transposed once per
        embedding, not per row)."""
        e, c = image_embeddings.shape[0], image_embeddings.shape[1]
        tokens = image_embeddings.to(torch.float32).reshape(e, c, -1).permute(0, 2, 1)
        down = self.prompt_encoder.mask_downscaling
        dense = _dense_tokens(
            mask_input,
            has_mask_input,
            self.prompt_encoder.no_mask_embed.weight,
            down[0].weight,
            down[0].bias,
            down[1].weight,
            down[1].bias,
            down[3].weight,
            down[3].bias,
            down[4].weight,
            down[4].bias,
            down[6].weight,
            down[6].bias,
        )
        return tokens.index_select(0, embedding_index) + dense


class PromptSideGraph(_DecoderGraph):
    """The prompt encoder and the rest of the mask decoder for B prompts, padding masked exactly (see above)."""

    label_table: Tensor
    frame_size: Tensor

    def __init__(self, prompt_encoder: PromptEncoder, mask_decoder: MaskDecoder) -> None:
        super().__init__(prompt_encoder, mask_decoder)
        with torch.no_grad():
            # Rows: not-a-point, then point_embeddings[0..3] (background, foreground, box corner 0, box corner 1).
            table = torch.cat(
                [prompt_encoder.not_a_point_embed.weight]
                + [prompt_encoder.point_embeddings[i].weight for i in range(4)]
            )
            self.register_buffer("label_table", table.detach().clone())
            rows, columns = prompt_encoder.input_image_size
            self.register_buffer("frame_size", torch.tensor([float(columns), float(rows)]))

    def _embed_points(self, coords: Tensor, labels: Tensor) -> Tensor:
        """PromptEncoder._embed_points and _embed_boxes: +0.5, / the input frame, random Fourier features; the
        positional part dropped for -1 (and -2), plus the label's embedding."""
        coords = (coords + 0.5) / self.frame_size
        pe = self.prompt_encoder.pe_layer._pe_encoding(coords)
        keep_pe = (labels >= 0).unsqueeze(-1).to(pe.dtype)
        row = torch.clamp(labels + 1, min=0)  # -2 reads row 0 too: its value is masked out of attention anyway
        return pe * keep_pe + self.label_table[row]  # type: ignore[no-any-return]

    def forward(
        self,
        image_tokens: Tensor,
        first_keys: Tensor,
        first_values: Tensor,
        first_queries: Tensor,
        point_coords: Tensor,
        point_labels: Tensor,
        mask_indices: Tensor,
    ) -> tuple[Tensor, Tensor]:
        decoder = self.mask_decoder
        transformer = decoder.transformer
        sparse = self._embed_points(point_coords, point_labels)
        output_tokens = torch.cat([decoder.iou_token.weight, decoder.mask_tokens.weight], dim=0)
        output_tokens = output_tokens.unsqueeze(0).expand(sparse.shape[0], -1, -1)
        tokens = torch.cat((output_tokens, sparse), dim=1)
        padding = torch.cat(
            [torch.zeros_like(output_tokens[:, :, 0], dtype=torch.bool), point_labels == PADDING_LABEL], dim=1
        )
        token_bias = torch.where(padding, float("-inf"), 0.0).to(tokens.dtype)[:, None, None, :]

        # TwoWayTransformer.forward, image_pe broadcast over the batch instead of repeated.
        key_pe = self.key_pe
        queries, keys = tokens, image_tokens
        projections = (first_keys, first_values, first_queries)
        for index, layer in enumerate(transformer.layers):
            if index > 0:
                projections = _first_projections(layer, keys, key_pe)
            queries, keys = _block(layer, queries, keys, projections, tokens, token_bias)
        q = queries + tokens
        k = keys + key_pe
        queries = queries + _attention_tokens_to_image(transformer.final_attn_token_to_image, q, k, keys)
        hs = transformer.norm_final_attn(queries)

        iou_token_out = hs[:, 0, :]
        mask_tokens_out = hs[:, 1 : (1 + decoder.num_mask_tokens), :]
        hyper_in = torch.stack(
            [decoder.output_hypernetworks_mlps[i](mask_tokens_out[:, i, :]) for i in range(decoder.num_mask_tokens)],
            dim=1,
        ).index_select(1, mask_indices)
        iou_pred = decoder.iou_prediction_head(iou_token_out).index_select(1, mask_indices)
        side = math.isqrt(self.key_pe.shape[1])
        return self._masks_channels_last(keys, hyper_in, side, side), iou_pred

    def _masks_channels_last(self, keys: Tensor, hyper_in: Tensor, h: int, w: int) -> Tensor:
        """output_upscaling and the hypernetwork product on (B, h*w, C) tokens, with no NCHW round trip.

        A 2x2 stride-2 ConvTranspose2d is a per-pixel matmul: y[i, j, di, dj, o] = sum_c x[i, j, c] W[c, o, di, dj]
        + b[o]. The sub-pixel offsets stay as extra axes through both layers and LayerNorm2d (over channels, the
        last axis here); one depth-to-space of the K masks at the end gives row 4i + 2di + ei, column 4j + 2dj + ej.
        """
        up = self.mask_decoder.output_upscaling
        conv1, norm1, act1, conv2, act2 = up[0], up[1], up[2], up[3], up[4]
        b = keys.shape[0]
        c1, c2 = conv1.weight.shape[1], conv2.weight.shape[1]
        w1 = conv1.weight.permute(0, 2, 3, 1).reshape(conv1.weight.shape[0], 4 * c1)  # [c, (di, dj, o)]
        w2 = conv2.weight.permute(0, 2, 3, 1).reshape(conv2.weight.shape[0], 4 * c2)  # [o, (ei, ej, p)]
        x = torch.addmm(conv1.bias.repeat(4), keys.reshape(b * h * w, -1), w1).reshape(b * h * w * 4, c1)
        x = act1(nn.functional.layer_norm(x, (c1,), norm1.weight, norm1.bias, norm1.eps))
        x = act2(torch.addmm(conv2.bias.repeat(4), x, w2)).reshape(b, h * w * 16, c2)
        masks = hyper_in @ x.transpose(1, 2)  # (B, K, [i, j, di, dj, ei, ej])
        k = hyper_in.shape[1]
        masks = masks.reshape(b, k, h, w, 2, 2, 2, 2).permute(0, 1, 2, 4, 6, 3, 5, 7)
        return masks.reshape(b, k, 4 * h, 4 * w)


def example_image_inputs() -> tuple[Tensor, ...]:
    """Image-side inputs to trace with: two rows of one embedding."""
    return (
        torch.zeros((1, 256, 64, 64), dtype=torch.float16),
        torch.zeros((2,), dtype=torch.int64),
        torch.zeros((2, 1, LOW_RES_MASK_SIZE, LOW_RES_MASK_SIZE), dtype=torch.float32),
        torch.zeros((2,), dtype=torch.float32),
    )


def example_prompt_inputs(mask_decoder: MaskDecoder) -> tuple[Tensor, ...]:
    """Prompt-side inputs to trace with: two prompts, one padded."""
    channels = mask_decoder.transformer_dim
    internal = mask_decoder.transformer.layers[0].cross_attn_token_to_image.internal_dim
    tokens = 64 * 64
    return (
        torch.zeros((2, tokens, channels)),
        torch.zeros((2, tokens, internal)),
        torch.zeros((2, tokens, internal)),
        torch.zeros((2, tokens, internal)),
        torch.zeros((2, 3, 2), dtype=torch.float32),
        torch.tensor([[1, -1, -2], [2, 3, -2]], dtype=torch.int64),
        torch.tensor([1, 2, 3], dtype=torch.int64),
    )


def export_graph(prompt_encoder: PromptEncoder, mask_decoder: MaskDecoder, part: str, path: str) -> None:
    """Write one side ("image" or "prompt", see PARTS) to `path`: a self-contained file, its weights inside (the
    prompt side about 20 MB)."""
    names: tuple[tuple[str, ...], tuple[str, ...]]
    if part == "image":
        model: nn.Module = ImageSideGraph(prompt_encoder, mask_decoder)
        inputs, names, axes = example_image_inputs(), (IMAGE_INPUTS, IMAGE_OUTPUTS), IMAGE_AXES
    elif part == "prompt":
        model = PromptSideGraph(prompt_encoder, mask_decoder)
        inputs, names, axes = example_prompt_inputs(mask_decoder), (PROMPT_INPUTS, PROMPT_OUTPUTS), PROMPT_AXES
    else:
        raise ValueError(f"no graph part {part!r}; the parts are {', '.join(PARTS)}")
    with torch.no_grad(), warnings.catch_warnings():
        # The TorchScript exporter and script_if_tracing are deprecated in torch 2.14 (pinned): they still export
        # these graphs exactly, without onnxscript; moving to the dynamo exporter needs torch.cond for the If.
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            model.eval(),
            inputs,
            path,
            input_names=list(names[0]),
            output_names=list(names[1]),
            dynamic_axes=axes,
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,  # the TorchScript exporter: no onnxscript dependency, one self-contained file
        )
