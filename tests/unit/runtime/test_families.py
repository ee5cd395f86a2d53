"""Every family against its own oracle, in process (DESIGN.md's numerical contract): seeded test architectures of
sam, tinyvit (MobileSAM's and LiteMedSAM's TinyViT) and sam2 (2.1 and 2.0), and LiteMedSAM's real weights.

For each: the checkpoint is recognised as itself, the roles hold only their own weights, the encoder's tensors
equal the oracle's, and the decoder on the stored (float16 where the family stores so) tensors equals the oracle on
the same tensors within the contract, stability scores included; against the unrounded oracle, masks stay within
the float16 bar."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import numpy as np
import pytest

from service.cache.codec import decode_embedding, encode_embedding
from service.runtime.checkpoint import CheckpointInfo, inspect_checkpoint, read_state_dict
from service.runtime.families.spec import CheckpointFormat, ResizeRule
from service.runtime.image_encoder import ImageEncoderRole
from service.runtime.preprocess import prepare_encoder_input
from service.runtime.prompt_decoder import ObjectPrediction, PromptDecoderRole
from service.runtime.prompts import Prompt
from tests.conftest import FAMILY_TEST_ARCHS
from tests.numerical_contract import (
    LOGITS_ATOL,
    MIN_IOU,
    SCORES_ATOL,
    STABILITY_ATOL,
    close_after_float16,
    iou,
)
from tests.support.composites import composites
from tests.support.images import smooth_rgb
from tests.support.oracles import Oracle, fresh, oracle_for
from tests.support.prompts import prompts_for
from tests.unit.runtime.test_checkpoint import reachable_tensors, storage_bytes

pytestmark = pytest.mark.slow

LITE_MEDSAM_SHA256 = "79d8c9dca6db4d69d3f905579e5250af05e859fff9c1f543e89a513c3028ce76"
# The encoder's tensors against the oracle's, in float32 (same arithmetic, another process layout).
ENCODER_ATOL = 1e-4


class Case:
    """One checkpoint and one image: the oracle on the image, our encoder's stored tensors, the oracle on those."""

    def __init__(self, checkpoint: CheckpointInfo, oracle: Oracle, rgb: np.ndarray) -> None:
        self.checkpoint = checkpoint
        self.encoder = ImageEncoderRole(checkpoint)
        self.decoder = PromptDecoderRole(checkpoint)
        self.oracle = oracle
        oracle.set_image(rgb)
        prepared, self.info = prepare_encoder_input(rgb, checkpoint.arch)
        outputs = self.encoder.encode(prepared[None], np.array([self.info.input_size]))
        self.tensors = {name: batch[0] for name, batch in outputs.items()}
        encoded = encode_embedding(self.tensors, checkpoint.arch.family.outputs, self.info, checkpoint.model_id)
        self.stored = decode_embedding(encoded.header, encoded.chunks, checkpoint.model_id)
        self.rounded_oracle = oracle.with_features(self.stored.tensors)

    def check(self, prompt: Prompt, multimask: bool) -> ObjectPrediction:
        (ours,) = self.decoder.decode(self.stored.tensors, self.stored.info, [prompt], multimask)
        query = {
            "point_coords": prompt.point_coords,
            "point_labels": prompt.point_labels,
            "box": prompt.box,
            "mask_input": prompt.mask_input,
            "multimask_output": multimask,
        }
        masks, scores, low_res, stability = self.rounded_oracle.predict(**query)
        exact_masks, *_ = self.oracle.predict(**query)
        assert ours.masks.shape == masks.shape
        assert np.abs(ours.low_res_logits - low_res).max() <= LOGITS_ATOL
        assert np.abs(ours.scores - scores).max() <= SCORES_ATOL
        assert np.abs(ours.stability_scores - stability).max() <= STABILITY_ATOL
        for index in range(masks.shape[0]):
            assert iou(ours.masks[index], masks[index]) >= MIN_IOU
            assert close_after_float16(ours.masks[index], exact_masks[index])
        return ours


@pytest.fixture(scope="module", params=[arch for arch in FAMILY_TEST_ARCHS if arch != "tiny"])
def family_arch(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def cases(family_arch: str, family_checkpoint: Callable[[str], CheckpointInfo]) -> list[Case]:
    checkpoint = family_checkpoint(family_arch)
    oracle = oracle_for(checkpoint)
    return [
        Case(checkpoint, fresh(oracle), smooth_rgb(*size, seed=seed))
        for size, seed in (((240, 320), 1), ((300, 180), 2))
    ]


def test_each_test_checkpoint_is_recognised_in_its_official_format(
    family_arch: str, family_checkpoint: Callable[[str], CheckpointInfo]
) -> None:
    checkpoint = family_checkpoint(family_arch)
    _, found_format = read_state_dict(checkpoint.path)
    assert checkpoint.arch.name == family_arch
    assert found_format is checkpoint.arch.family.checkpoint_format
    assert checkpoint.model_id.startswith(f"{checkpoint.arch.family.name}-{family_arch}-")
    assert (found_format is CheckpointFormat.MODEL_WRAPPED) == (checkpoint.arch.family.name == "sam2")


def test_the_encoder_equals_the_oracle(cases: list[Case]) -> None:
    for case in cases:
        expected = case.oracle.features()
        assert sorted(case.tensors) == sorted(expected)
        for name, tensor in case.tensors.items():
            assert tensor.shape == expected[name].shape
            assert np.abs(tensor - expected[name]).max() <= ENCODER_ATOL, name


@pytest.mark.parametrize("multimask", [True, False])
def test_the_decoder_equals_the_oracle(cases: list[Case], multimask: bool) -> None:
    for case in cases:
        for prompt in prompts_for(case.info.original_size).values():
            case.check(prompt, multimask)


def test_refinement_with_the_previous_mask_and_a_batch_of_shapes(cases: list[Case]) -> None:
    case = cases[0]
    prompts = prompts_for(case.info.original_size)
    first = case.check(prompts["one_point"], True)
    prior = first.low_res_logits[first.best_index][None]
    case.check(Prompt(prompts["one_point"].point_coords, np.array([1]), mask_input=prior), False)
    batch = list(prompts.values())
    answers = case.decoder.decode(case.stored.tensors, case.stored.info, batch, True)
    for prompt, answer in zip(batch, answers, strict=True):
        alone = case.check(prompt, True)
        np.testing.assert_allclose(answer.low_res_logits, alone.low_res_logits, atol=LOGITS_ATOL)


def test_the_roles_hold_only_their_own_weights(cases: list[Case]) -> None:
    """What each role keeps alive, found by walking its object graph: the decoder its part and the dense positional
    encoding, nothing of the image encoder; the encoder its part (plus what its modules derive: TinyViT's attention
    biases, Hiera's cached positional encodings), nothing of the decoder side."""
    case = cases[0]
    state_dict, _ = read_state_dict(case.checkpoint.path)
    sam2 = case.checkpoint.arch.family.name == "sam2"
    decoder_prefixes = ("sam_prompt_encoder.", "sam_mask_decoder.") if sam2 else ("prompt_encoder.", "mask_decoder.")
    encoder_side = ("sam_mask_decoder.conv_s0.", "sam_mask_decoder.conv_s1.")
    decoder_part = {
        key: tensor
        for key, tensor in state_dict.items()
        if key.startswith(decoder_prefixes) and not key.startswith(encoder_side)
    }
    encoder_part = {
        key: tensor
        for key, tensor in state_dict.items()
        if key.startswith(("image_encoder.", *encoder_side)) or key == "no_mem_embed"
    }
    dense_pe_bytes = 256 * 64 * 64 * 4
    decoder_kept = reachable_tensors(case.decoder)
    encoder_kept = reachable_tensors(case.encoder)
    assert storage_bytes(decoder_kept) <= sum(t.nbytes for t in decoder_part.values()) + dense_pe_bytes + (64 << 10)
    assert storage_bytes(encoder_kept) >= sum(t.nbytes for t in encoder_part.values())
    only_encoder = {tuple(t.shape) for t in encoder_part.values()} - {tuple(t.shape) for t in decoder_part.values()}
    only_decoder = {tuple(t.shape) for t in decoder_part.values()} - {tuple(t.shape) for t in encoder_part.values()}
    assert not {tuple(t.shape) for t in decoder_kept} & only_encoder
    assert not {tuple(t.shape) for t in encoder_kept} & only_decoder


def test_lite_medsam_is_the_wheels_checkpoint(lite_medsam_checkpoint: CheckpointInfo) -> None:
    assert hashlib.sha256(lite_medsam_checkpoint.path.read_bytes()).hexdigest() == LITE_MEDSAM_SHA256
    assert lite_medsam_checkpoint.arch.name == "lite_medsam" and lite_medsam_checkpoint.arch.input_size == 256
    assert lite_medsam_checkpoint.model_id.startswith("tinyvit-lite_medsam-")
    assert inspect_checkpoint(lite_medsam_checkpoint.path).model_id == lite_medsam_checkpoint.model_id


@pytest.fixture(scope="module")
def lite_medsam_cases(lite_medsam_checkpoint: CheckpointInfo) -> list[tuple[Case, tuple[float, ...]]]:
    oracle = oracle_for(lite_medsam_checkpoint)
    return [
        (Case(lite_medsam_checkpoint, fresh(oracle), composite.rgb), composite.box) for composite in composites()[:3]
    ]


def test_lite_medsam_real_weights_equal_their_oracle_on_boxes(
    lite_medsam_cases: list[tuple[Case, tuple[float, ...]]],
) -> None:
    """Real weights give logits far past ±1, so stability scores are compared for real (random weights give 0)."""
    stabilities = []
    for case, box in lite_medsam_cases:
        expected = case.oracle.features()["image_embeddings"]
        assert np.abs(case.tensors["image_embeddings"] - expected).max() <= ENCODER_ATOL
        case.check(Prompt(box=np.array(box)), True)
        stabilities.extend(case.check(Prompt(box=np.array(box)), False).stability_scores.tolist())
    assert min(stabilities) > 0.5  # meaningful stability scores of the box's mask, not the zeros of random weights


def test_sam2_takes_the_float_image(family_checkpoint: Callable[[str], CheckpointInfo]) -> None:
    sam2 = family_checkpoint("sam2.1_hiera_test").arch
    assert sam2.family.resize is ResizeRule.SQUARE_FLOAT
    prepared, info = prepare_encoder_input(smooth_rgb(100, 160, seed=3), sam2)
    assert prepared.dtype == np.float32 and prepared.shape == (3, 1024, 1024) and info.input_size == (1024, 1024)


def test_lite_medsam_normalises_each_image_by_its_own_range(family_checkpoint: Callable[[str], CheckpointInfo]) -> None:
    """An image and the same image with its range halved and shifted give the same embedding under min-max (with
    fixed statistics they would not). 192 x 256 is already LiteMedSAM's input size, so no resize rounds."""
    encoder = ImageEncoderRole(family_checkpoint("tinyvit_test_lite"))
    even = (smooth_rgb(192, 256, seed=4) // 2 * 2).astype(np.uint8)
    squeezed = (even // 2 + 64).astype(np.uint8)
    outputs = []
    for rgb in (even, squeezed):
        prepared, info = prepare_encoder_input(rgb, encoder.arch)
        outputs.append(encoder.encode(prepared[None], np.array([info.input_size]))["image_embeddings"])
    assert np.abs(outputs[0] - outputs[1]).max() <= 1e-5
    assert float(np.abs(outputs[0]).max()) > 1e-2
