"""The numerical contract: the service's runtime against segment_anything.SamPredictor, same checkpoint.

Tolerances (DESIGN.md): low-res logits within 1e-3 absolute, scores within 1e-4, full-size masks IoU ≥ 0.999,
and IoU ≥ 0.999 still after the embedding's float16 round trip through the codec.
"""

from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from segment_anything import SamPredictor

from service.cache.codec import decode_embedding, encode_embedding
from service.image_info import ImageInfo
from service.runtime.checkpoint import CheckpointInfo
from service.runtime.decoder_backend import BACKEND_NAMES, DecodeItem, DecoderBackend
from service.runtime.families.spec import Arch
from service.runtime.image_encoder import ImageEncoderRole
from service.runtime.image_file import decode_image
from service.runtime.onnx.backend import OnnxDecoderBackend, graph_paths
from service.runtime.preprocess import prepare_encoder_input
from service.runtime.prompt_decoder import ObjectPrediction, PromptDecoderRole, predict_masks
from service.runtime.prompts import Prompt
from tests.numerical_contract import (
    LOGITS_ATOL,
    MIN_IOU,
    SCORES_ATOL,
    STABILITY_ATOL,
    iou,
    reference_prediction,
    reference_sam,
)
from tests.support.images import sample_image_files
from tests.support.prompts import prompts_for as shared_prompts

pytestmark = pytest.mark.slow


@dataclass
class Reference:
    """A SamPredictor with the image set, and our runtime's embedding of the same image."""

    predictor: SamPredictor
    tensors: dict[str, np.ndarray]
    info: ImageInfo

    def for_decoder(self, decoder: PromptDecoderRole | BackendDecoder) -> Reference:
        """The reference of what `decoder` is fed: the onnx graph takes the float16 the cache holds, so its
        reference predictor decodes the float16-rounded embedding (as the service's parity tests do)."""
        if isinstance(decoder, PromptDecoderRole):
            return self
        rounded = self.tensors["image_embeddings"].astype(np.float16)
        predictor = copy.copy(self.predictor)
        predictor.features = torch.from_numpy(rounded.astype(np.float32))[None]
        return Reference(predictor, {"image_embeddings": rounded}, self.info)


@pytest.fixture(scope="module")
def predictor_model(tiny_checkpoint: CheckpointInfo) -> torch.nn.Module:
    return reference_sam(tiny_checkpoint)


@pytest.fixture(scope="module")
def encoder(tiny_checkpoint: CheckpointInfo) -> ImageEncoderRole:
    return ImageEncoderRole(tiny_checkpoint)


class BackendDecoder:
    """A decoder backend with PromptDecoderRole.decode's interface: low-res answers, then the service's masks."""

    def __init__(self, backend: DecoderBackend, arch: Arch) -> None:
        self.backend = backend
        self.arch = arch

    def decode(
        self, tensors: dict[str, np.ndarray], info: ImageInfo, prompts: list[Prompt], multimask: bool
    ) -> list[ObjectPrediction]:
        key = hashlib.sha256(tensors["image_embeddings"].tobytes()).hexdigest()  # content-named, as image keys are
        items = [DecodeItem(key, tensors, info, prompt) for prompt in prompts]
        return [predict_masks(low_res, info, self.arch) for low_res in self.backend.decode(items, multimask, True)]


@pytest.fixture(scope="module", params=BACKEND_NAMES)
def decoder(
    request: pytest.FixtureRequest, tiny_checkpoint: CheckpointInfo, tmp_path_factory: pytest.TempPathFactory
) -> PromptDecoderRole | BackendDecoder:
    """The torch role itself, and the onnx backend over the same checkpoint (fed the float16 the cache holds)."""
    role = PromptDecoderRole(tiny_checkpoint)
    if request.param == "torch":
        return role
    graphs = tmp_path_factory.mktemp("graphs")
    backend = OnnxDecoderBackend(role, graph_paths(role, graphs, graphs), threads=2)
    return BackendDecoder(backend, role.arch)


_REFERENCES: dict[str, Reference] = {}


@pytest.fixture(params=sorted(sample_image_files()), scope="module")
def reference(request: pytest.FixtureRequest, predictor_model: torch.nn.Module, encoder: ImageEncoderRole) -> Reference:
    name = request.param
    if name not in _REFERENCES:
        rgb = decode_image(sample_image_files()[name])
        predictor = SamPredictor(predictor_model)
        predictor.set_image(rgb)
        padded, info = prepare_encoder_input(rgb, encoder.arch)
        tensors = {name: batch[0] for name, batch in encoder.encode(padded[None], np.array([info.input_size])).items()}
        _REFERENCES[name] = Reference(predictor, tensors, info)
    return _REFERENCES[name]


def reference_predict(predictor: SamPredictor, prompt: Prompt, multimask: bool) -> tuple[np.ndarray, ...]:
    """Masks, scores, low-res logits and stability scores of the reference."""
    return reference_prediction(
        predictor,
        point_coords=prompt.point_coords,
        point_labels=prompt.point_labels,
        box=prompt.box,
        mask_input=prompt.mask_input,
        multimask_output=multimask,
    )


def assert_matches_reference(
    ours: ObjectPrediction, masks: np.ndarray, scores: np.ndarray, logits: np.ndarray, stability: np.ndarray
) -> None:
    assert ours.masks.shape == masks.shape
    assert np.abs(ours.low_res_logits - logits).max() <= LOGITS_ATOL
    assert np.abs(ours.scores - scores).max() <= SCORES_ATOL
    assert np.abs(ours.stability_scores - stability).max() <= STABILITY_ATOL
    for index in range(masks.shape[0]):
        assert iou(ours.masks[index], masks[index]) >= MIN_IOU


def prompts_for(info: ImageInfo) -> dict[str, Prompt]:
    """Every family's shared prompt shapes, and a click on the image's edge."""
    rows, columns = info.original_size
    return {
        **shared_prompts(info.original_size),
        "edge_point": Prompt(np.array([[float(columns), 0.0]]), np.array([1])),
    }


def test_embedding_matches_reference(reference: Reference) -> None:
    expected = reference.predictor.features[0].numpy()
    ours = reference.tensors["image_embeddings"]
    assert ours.shape == expected.shape
    assert np.abs(ours - expected).max() <= 1e-4
    assert reference.info.original_size == reference.predictor.original_size
    assert reference.info.input_size == reference.predictor.input_size


@pytest.mark.parametrize("multimask", [True, False])
@pytest.mark.parametrize("prompt_name", ["one_point", "points_with_negatives", "box", "box_and_points", "edge_point"])
def test_prompt_matches_reference(
    reference: Reference, decoder: PromptDecoderRole | BackendDecoder, prompt_name: str, multimask: bool
) -> None:
    reference = reference.for_decoder(decoder)
    prompt = prompts_for(reference.info)[prompt_name]
    (ours,) = decoder.decode(reference.tensors, reference.info, [prompt], multimask)
    assert ours.scores.shape == ((3,) if multimask else (1,))
    assert_matches_reference(ours, *reference_predict(reference.predictor, prompt, multimask))


def test_mask_input_from_previous_answer(reference: Reference, decoder: PromptDecoderRole | BackendDecoder) -> None:
    reference = reference.for_decoder(decoder)
    first = prompts_for(reference.info)["one_point"]
    (previous,) = decoder.decode(reference.tensors, reference.info, [first], True)
    _, ref_scores, ref_logits, _ = reference_predict(reference.predictor, first, True)
    best_logits = ref_logits[np.argmax(ref_scores)][None]
    ours_best = previous.low_res_logits[previous.best_index][None]
    assert previous.best_index == int(np.argmax(ref_scores))
    refine_points = np.concatenate([first.point_coords, [[reference.info.original_size[1] * 0.6, 10.0]]])  # type: ignore[list-item]
    ours_prompt = Prompt(refine_points, np.array([1, 0]), mask_input=ours_best)
    ref_prompt = Prompt(refine_points, np.array([1, 0]), mask_input=best_logits)
    (ours,) = decoder.decode(reference.tensors, reference.info, [ours_prompt], False)
    assert_matches_reference(ours, *reference_predict(reference.predictor, ref_prompt, False))


def test_several_objects_in_one_batch(reference: Reference, decoder: PromptDecoderRole | BackendDecoder) -> None:
    reference = reference.for_decoder(decoder)
    prompts = prompts_for(reference.info)
    rows, columns = reference.info.original_size
    extra_box = Prompt(box=np.array([columns * 0.5, rows * 0.05, columns * 0.95, rows * 0.5]))
    batch = [
        prompts["box"],
        prompts["one_point"],
        extra_box,
        prompts["box_and_points"],
        prompts["points_with_negatives"],
    ]
    answers = decoder.decode(reference.tensors, reference.info, batch, True)
    assert len(answers) == len(batch)
    for prompt, ours in zip(batch, answers, strict=True):
        assert_matches_reference(ours, *reference_predict(reference.predictor, prompt, True))


def test_float16_round_trip_keeps_masks(reference: Reference, decoder: PromptDecoderRole | BackendDecoder) -> None:
    encoded = encode_embedding(reference.tensors, decoder.arch.family.outputs, reference.info, "tiny-test")
    stored = decode_embedding(encoded.header, encoded.chunks, "tiny-test")
    assert stored.info == reference.info
    for prompt in prompts_for(reference.info).values():
        (ours,) = decoder.decode(stored.tensors, stored.info, [prompt], True)
        masks, *_ = reference_predict(reference.predictor, prompt, True)
        for index in range(masks.shape[0]):
            assert iou(ours.masks[index], masks[index]) >= MIN_IOU
