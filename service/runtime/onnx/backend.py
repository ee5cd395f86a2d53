"""The `onnx` decoder backend: the batched graph (service.runtime.onnx.graph) of one model on ONNX Runtime.

Two sessions over the one graph on a CPU, with the thread counts measured best on the 2-core box: `cores` intra-op
threads when a decode runs alone (30 ms a prompt against 48 ms on one thread: a lone stream's latency), one when
others run beside it (two single-threaded workers decode 14% more a second than two sharing two threads). Both give
the same answer to the bit: the graph avoids the one product ONNX Runtime split differently by thread count
(service.runtime.onnx.graph._attention_tokens_to_image), and tests/unit/runtime/test_onnx_graph.py holds it to
that. Spinning is off: idle ORT threads would burn the cores the other decodes and the postprocessing need. On a
GPU (`device` cuda) one session on the CUDA provider.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort

from service.runtime.checkpoint import CheckpointInfo
from service.runtime.decoder_backend import DecodeItem
from service.runtime.families.spec import HieraParams
from service.runtime.onnx.graph import export_graph
from service.runtime.onnx.graph_files import ensure_graph, graph_file_name, is_writable
from service.runtime.onnx.tokens import GraphPrompt, graph_feeds
from service.runtime.prompt_decoder import LowResPrediction, PromptDecoderRole

log = logging.getLogger(__name__)


def supports(checkpoint: CheckpointInfo) -> bool:
    """True for the families whose decoder is SAM 1's (SAM ViT, MobileSAM, LiteMedSAM)."""
    return not isinstance(checkpoint.arch.params, HieraParams)


def make_session(path: Path, threads: int, providers: Sequence[str]) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1  # the graph is a chain: a parallel executor only adds overhead
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(os.fspath(path), options, providers=list(providers))


def graph_path(role: PromptDecoderRole, graph_dir: Path, fallback_dir: Path) -> Path:
    """The model's graph file: found in (or exported into) `graph_dir`, or exported into `fallback_dir` when
    `graph_dir` lacks it and is read-only (a volume the checkpoint Job fills, mounted read-only)."""
    model_id = role.checkpoint.model_id
    directory = graph_dir
    if not (graph_dir / graph_file_name(model_id)).exists() and not is_writable(graph_dir):
        log.warning(
            "%s is read-only and lacks %s's decoder graph: exporting into %s", graph_dir, model_id, fallback_dir
        )
        directory = fallback_dir
    return ensure_graph(model_id, directory, lambda path: export_graph(role.prompt_encoder, role.mask_decoder, path))


class OnnxDecoderBackend:
    """Prompts of several requests and images of one model in one graph call."""

    name = "onnx"

    def __init__(self, role: PromptDecoderRole, path: Path, threads: int, device: str = "cpu") -> None:
        if not supports(role.checkpoint):
            raise ValueError(f"the onnx decoder backend serves SAM 1 decoders; {role.arch.name} has SAM 2's")
        self.checkpoint = role.checkpoint
        self.input_size = role.arch.input_size
        self.path = path
        if device.startswith("cuda"):
            self._wide = self._narrow = make_session(path, 1, ["CUDAExecutionProvider", "CPUExecutionProvider"])
        else:
            try:
                self._wide = make_session(path, threads, ["CPUExecutionProvider"])
            except Exception as error:  # noqa: BLE001 - ORT raises its own Fail / InvalidProtobuf types
                log.warning("ONNX Runtime rejects %s (%s): exporting it again", path, error)
                path.unlink(missing_ok=True)
                path = graph_path(role, path.parent, path.parent)
                self._wide = make_session(path, threads, ["CPUExecutionProvider"])
            self._narrow = self._wide if threads == 1 else make_session(path, 1, ["CPUExecutionProvider"])

    def decode(self, items: Sequence[DecodeItem], multimask_output: bool, alone: bool) -> list[LowResPrediction]:
        slots: dict[str, int] = {}
        embeddings: list[np.ndarray] = []
        prompts = []
        for item in items:
            if item.embedding_key not in slots:
                slots[item.embedding_key] = len(embeddings)
                embeddings.append(_as_float16(item.tensors["image_embeddings"]))
            prompts.append(GraphPrompt(item.prompt, item.info, slots[item.embedding_key]))
        stacked = embeddings[0][None] if len(embeddings) == 1 else np.stack(embeddings)
        feeds = graph_feeds(prompts, stacked, self.input_size, multimask_output)
        session = self._wide if alone else self._narrow
        low_res, scores = session.run(None, feeds)
        return [LowResPrediction(low_res[row], scores[row]) for row in range(len(items))]


def _as_float16(tensor: np.ndarray) -> np.ndarray:
    """(256, 64, 64) float16 as the graph takes it: the cached bytes without a copy when they are float16."""
    tensor = tensor.reshape(tensor.shape[-3:])
    return tensor if tensor.dtype == np.float16 else tensor.astype(np.float16)
