"""The decoder's settings: each declared once, with its flag and SAMSVC_* environment variable."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from service.settings import ServiceSettings, setting, with_default

DecoderBackendName = Literal["onnx", "torch"]


@dataclass(frozen=True)
class DecoderSettings(ServiceSettings):
    port: int = with_default(ServiceSettings, "port", 50052)
    metrics_port: int = with_default(ServiceSettings, "metrics_port", 9102)
    device: str = setting("cpu", "Device of the mask decoder (cpu, cuda: ONNX Runtime's CUDA provider or torch's).")
    decoder_backend: DecoderBackendName = setting(
        "onnx",
        "What runs the prompt encoder and mask decoder: onnx (ONNX Runtime, batched graph: the fast path, for SAM, "
        "MobileSAM and LiteMedSAM; SAM 2 models use torch) or torch (the families' own modules, the oracle).",
    )
    decoder_graph_dir: Path = setting(
        Path.home() / ".cache" / "samsvc" / "decoder-graphs",
        "Where the onnx backend finds each model's exported graph, exporting it there once when missing (a "
        "writable cache, or a volume `samsvc export-decoder` filled; read-only and missing: exported under /tmp).",
    )
    lru_bytes: int = setting(512 << 20, "Bytes of embeddings kept in process.")
    image_side_bytes: int = setting(
        128 << 20,
        "Bytes of the onnx backend's image sides kept in process (10 MiB per image: the image's part of the mask "
        "decoder, computed once per image instead of once per prompt).",
    )
    max_points: int = setting(64, "Points allowed per prompt.")
    max_objects: int = setting(16, "Prompts allowed per request.")
    max_mask_pixels: int = setting(
        600_000_000,
        "Objects x masks x image pixels allowed per request (12 masks of a 7000x7000 image); more is refused "
        "RESOURCE_EXHAUSTED in-band before any work.",
    )
    max_everything_mask_pixels: int = setting(
        40_000_000_000,
        "Points x 3 masks x image pixels allowed per SegmentEverything call (AMG's default 32x32 grid on a "
        "12-megapixel photo); more is refused RESOURCE_EXHAUSTED.",
    )
    decode_workers: int = setting(2, "Threads of the decode engine (about one per core the decoder may use).")
    decode_threads: int = setting(
        1,
        "ONNX Runtime threads of a decode running alone (0: every core); one beside others always uses one. 1 keeps "
        "each decode on one core, the workers being the parallelism: the most prompts a second under load. 0 "
        "answers a lone stream sooner on an idle replica, at the cost of prompts a second under load.",
    )
    decode_max_batch: int = setting(1, "Prompts (of any requests) decoded together in one mask decoder call.")
    decode_piece_pixels: int = setting(
        4 << 20,
        "Mask pixels upscaled and encoded in one work piece: a request waits at most about one piece of another's.",
    )
