"""The `onnx` decoder backend: the two batched graphs (service.runtime.onnx.graph) of one model on ONNX Runtime.

An image's side of the graph (src and the first attention layer's image-side projections, 10 MiB) is computed once
and kept by image key in a byte-bounded LRU shared by the process's models; a prompt with a mask input gets its own.

On a CPU a decode running beside others uses one intra-op thread (two single-threaded workers decode 14% more a
second than two sharing two threads); one running alone uses `threads` (the decoder's --decode-threads: 1 by
default, which makes both one session; more cut a lone prompt from 36 ms to 24 ms on the 2-core box, at a cost in
prompts a second under load). Both sessions give the same answer to the bit: the graph avoids the one product
ONNX Runtime split differently by thread count (service.runtime.onnx.graph._tokens_to_image), and
tests/unit/runtime/test_onnx_graph.py holds it to that.
Spinning is off: idle ORT threads would burn the cores the other decodes and the postprocessing need. On a GPU
(`device` cuda) one session per graph on the CUDA provider.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import onnxruntime as ort

from service.byte_lru import ByteLru
from service.runtime.checkpoint import CheckpointInfo
from service.runtime.decoder_backend import DecodeItem
from service.runtime.families.spec import HieraParams
from service.runtime.onnx.graph import IMAGE_OUTPUTS, PARTS, export_graph
from service.runtime.onnx.graph_files import ensure_graph, graph_file_name, is_writable
from service.runtime.onnx.tokens import image_feeds, prompt_feeds
from service.runtime.prompt_decoder import LowResPrediction, PromptDecoderRole

log = logging.getLogger(__name__)

# The image sides kept when the caller gives no cache: a dozen images.
DEFAULT_IMAGE_SIDE_BYTES = 128 << 20


def supports(checkpoint: CheckpointInfo) -> bool:
    """True for the families whose decoder is SAM 1's (SAM ViT, MobileSAM, LiteMedSAM)."""
    return not isinstance(checkpoint.arch.params, HieraParams)


@dataclass(frozen=True, eq=False)
class GraphFiles:
    """A model's two graph files."""

    image: Path
    prompt: Path

    def of(self, part: str) -> Path:
        return self.image if part == "image" else self.prompt


@dataclass(frozen=True, eq=False)
class ImageSide:
    """One row of the image side's outputs (IMAGE_OUTPUTS, each (4096, C) float32)."""

    tensors: tuple[np.ndarray, ...]

    @property
    def nbytes(self) -> int:
        return sum(int(tensor.nbytes) for tensor in self.tensors)


def make_session(path: Path, threads: int, providers: Sequence[str]) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1  # the graph is a chain: a parallel executor only adds overhead
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(os.fspath(path), options, providers=list(providers))


def graph_paths(role: PromptDecoderRole, graph_dir: Path, fallback_dir: Path) -> GraphFiles:
    """The model's graph files: found in (or exported into) `graph_dir`, or exported into `fallback_dir` when
    `graph_dir` lacks them and is read-only (a volume the checkpoint Job fills, mounted read-only)."""
    model_id = role.checkpoint.model_id
    directory = graph_dir
    missing = [part for part in PARTS if not (graph_dir / graph_file_name(model_id, part)).exists()]
    if missing and not is_writable(graph_dir):
        log.warning(
            "%s is read-only and lacks %s's decoder graphs (%s): exporting into %s",
            graph_dir, model_id, ", ".join(missing), fallback_dir,
        )  # fmt: skip
        directory = fallback_dir
    return GraphFiles(*(ensure_graph(model_id, part, directory, exporter(role, part)) for part in PARTS))


def exporter(role: PromptDecoderRole, part: str) -> partial[None]:
    """What writes `role`'s `part` graph to a path."""
    return partial(export_graph, role.prompt_encoder, role.mask_decoder, part)


class OnnxDecoderBackend:
    """Prompts of several requests and images of one model in one prompt-side call."""

    name = "onnx"

    def __init__(
        self,
        role: PromptDecoderRole,
        files: GraphFiles,
        threads: int,
        device: str = "cpu",
        image_sides: ByteLru[ImageSide] | None = None,
    ) -> None:
        if not supports(role.checkpoint):
            raise ValueError(f"the onnx decoder backend serves SAM 1 decoders; {role.arch.name} has SAM 2's")
        self.checkpoint = role.checkpoint
        self.input_size = role.arch.input_size
        self.files = files  # the paths ONNX Runtime loaded (re-exported ones included)
        self.image_sides = image_sides if image_sides is not None else ByteLru(DEFAULT_IMAGE_SIDE_BYTES)
        self._sessions: dict[str, tuple[ort.InferenceSession, ort.InferenceSession]] = {}
        for part in PARTS:
            if device.startswith("cuda"):
                session = make_session(files.of(part), 1, ["CUDAExecutionProvider", "CPUExecutionProvider"])
                self._sessions[part] = (session, session)
                continue
            wide = self._cpu_session(role, part, threads)
            narrow = wide if threads == 1 else make_session(self.files.of(part), 1, ["CPUExecutionProvider"])
            self._sessions[part] = (wide, narrow)

    def _cpu_session(self, role: PromptDecoderRole, part: str, threads: int) -> ort.InferenceSession:
        """The part's session, its file exported again once if ONNX Runtime rejects it."""
        path = self.files.of(part)
        try:
            return make_session(path, threads, ["CPUExecutionProvider"])
        except Exception as error:  # noqa: BLE001 - ORT raises its own Fail / InvalidProtobuf types
            log.warning("ONNX Runtime rejects %s (%s): exporting it again", path, error)
            path.unlink(missing_ok=True)
            path = ensure_graph(self.checkpoint.model_id, part, path.parent, exporter(role, part))
            return make_session(path, threads, ["CPUExecutionProvider"])

    def decode(self, items: Sequence[DecodeItem], multimask_output: bool, alone: bool) -> list[LowResPrediction]:
        session = 0 if alone else 1
        sides = self._image_sides(items, self._sessions["image"][session])
        feeds = prompt_feeds([(item.prompt, item.info) for item in items], self.input_size, multimask_output)
        for name, rows in zip(IMAGE_OUTPUTS, zip(*(side.tensors for side in sides), strict=True), strict=True):
            feeds[name] = _stacked(rows)
        low_res, scores = self._sessions["prompt"][session].run(None, feeds)
        return [LowResPrediction(low_res[row], scores[row]) for row in range(len(items))]

    def _image_sides(self, items: Sequence[DecodeItem], session: ort.InferenceSession) -> list[ImageSide]:
        """Each item's image side: kept ones by image key; the missing ones, and those of prompts with a mask
        input, from one image-side call."""
        sides: list[ImageSide | None] = [None] * len(items)
        slots: dict[str, int] = {}
        embeddings: list[np.ndarray] = []
        rows: list[tuple[int, np.ndarray | None]] = []
        targets: list[tuple[str | None, list[int]]] = []  # each row's key to keep it under, and its items
        row_of_key: dict[str, int] = {}
        kept: dict[str, ImageSide] = {}
        for index, item in enumerate(items):
            key = item.embedding_key
            if item.prompt.mask_input is None:
                if key in row_of_key:
                    targets[row_of_key[key]][1].append(index)
                    continue
                side = kept[key] if key in kept else self.image_sides.get(key)
                if side is not None:
                    sides[index] = kept[key] = side
                    continue
                row_of_key[key] = len(rows)
            if key not in slots:
                slots[key] = len(embeddings)
                embeddings.append(_as_float16(item.tensors["image_embeddings"]))
            rows.append((slots[key], item.prompt.mask_input))
            targets.append((key if item.prompt.mask_input is None else None, [index]))
        if rows:
            outputs = session.run(None, image_feeds(_stacked(embeddings), rows))
            for row, (kept_key, indexes) in enumerate(targets):
                # A row of a one-row call is its whole output; of several, a copy (a view would hold them all).
                side = ImageSide(tuple(output[row] if len(rows) == 1 else output[row].copy() for output in outputs))
                if kept_key is not None:
                    self.image_sides.put(kept_key, side)
                for index in indexes:
                    sides[index] = side
        found = [side for side in sides if side is not None]
        assert len(found) == len(items), "every item has its image side"
        return found


def _stacked(arrays: Sequence[np.ndarray]) -> np.ndarray:
    """`arrays` along a new first axis: a lone one as a view, without np.stack's copy."""
    return arrays[0][None] if len(arrays) == 1 else np.stack(arrays)


def _as_float16(tensor: np.ndarray) -> np.ndarray:
    """(256, 64, 64) float16 as the graph takes it: the cached bytes without a copy when they are float16."""
    tensor = tensor.reshape(tensor.shape[-3:])
    return tensor if tensor.dtype == np.float16 else tensor.astype(np.float16)
