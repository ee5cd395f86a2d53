"""The oracle: segment_anything.SamPredictor on the same checkpoint, and the numerical contract's checks."""

from __future__ import annotations

import io
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image

from service._proto.sam.v1 import sam_pb2
from service.cache.codec import EncodedEmbedding, StoredEmbedding, decode_embedding, encode_embedding
from service.cache.keys import image_key_of
from service.client import logits_of, mask_of
from service.runtime.image_encoder import ImageEncoderRole
from service.runtime.preprocess import prepare_encoder_input
from tests.numerical_contract import LOGITS_ATOL, MIN_IOU, SCORES_ATOL, STABILITY_ATOL, close_after_float16, iou
from tests.support.oracles import Oracle, fresh


def make_test_image(height: int, width: int, seed: int) -> tuple[np.ndarray, bytes]:
    """A seeded RGB image with some structure (gradients, a bright disc, noise) and its PNG bytes."""
    rng = np.random.default_rng(seed)
    rows, columns = np.mgrid[0:height, 0:width]
    center = (rng.uniform(0.3, 0.7) * height, rng.uniform(0.3, 0.7) * width)
    disc = ((rows - center[0]) ** 2 + (columns - center[1]) ** 2) < (min(height, width) / 4) ** 2
    rgb = np.stack([rows * 255 // max(height - 1, 1), columns * 255 // max(width - 1, 1), disc * 200], axis=-1)
    rgb = np.clip(rgb + rng.integers(0, 40, rgb.shape), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG")
    return rgb, buffer.getvalue()


@dataclass(frozen=True, eq=False)
class StoredImage:
    """An image embedded the way the encoder does it, as stored in Redis."""

    rgb: np.ndarray
    image_bytes: bytes
    image_key: str
    encoded: EncodedEmbedding  # what the store writes
    stored: StoredEmbedding  # float16 where the family stores it so, as the decoder reads it


def embed_for_redis(encoder: ImageEncoderRole, model_id: str, rgb: np.ndarray, image_bytes: bytes) -> StoredImage:
    prepared, info = prepare_encoder_input(rgb, encoder.arch)
    tensors = {name: batch[0] for name, batch in encoder.encode(prepared[None], np.array([info.input_size])).items()}
    encoded = encode_embedding(tensors, encoder.arch.family.outputs, info, model_id)
    return StoredImage(
        rgb=rgb,
        image_bytes=image_bytes,
        image_key=str(image_key_of(model_id, image_bytes)),
        encoded=encoded,
        stored=decode_embedding(encoded.header, encoded.chunks, model_id),
    )


@dataclass
class Reference:
    """The family's reference predictor on one image, twice: on the float16-rounded stored tensors (`rounded`)
    and untouched (`exact`)."""

    rounded: Oracle
    exact: Oracle

    @classmethod
    def of(cls, oracle: Oracle, rgb: np.ndarray, stored: StoredEmbedding) -> Reference:
        exact = fresh(oracle)
        exact.set_image(rgb)
        return cls(rounded=exact.with_features(stored.tensors), exact=exact)

    def predict(self, predictor: Oracle, **prompt: object) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Masks, scores and low-res logits, as the predictor's predict returns them."""
        masks, scores, low_res, _ = predictor.predict(**prompt)
        return masks, scores, low_res


def assert_matches_reference(answer: sam_pb2.ObjectMasks, reference: Reference, **prompt: object) -> np.ndarray:
    """Check one object's answer against the reference's predict(**prompt); returns the reference's low-res logits."""
    masks, scores, low_res, stability = reference.rounded.predict(**prompt)
    exact_masks, _, _, _ = reference.exact.predict(**prompt)
    assert len(answer.masks) == len(scores)
    got_scores = np.array([mask.score for mask in answer.masks])
    np.testing.assert_allclose(got_scores, scores, rtol=0, atol=SCORES_ATOL)
    np.testing.assert_allclose(logits_of(answer), low_res, rtol=0, atol=LOGITS_ATOL)
    for index, mask in enumerate(answer.masks):
        got = mask_of(mask)
        assert got.shape == masks[index].shape
        assert iou(got, masks[index]) >= MIN_IOU, f"mask {index}: IoU {iou(got, masks[index])} vs rounded reference"
        assert close_after_float16(got, exact_masks[index]), f"mask {index}: vs the unrounded reference"
        assert mask.area == int(got.sum())
    got_stability = np.array([mask.stability_score for mask in answer.masks])
    np.testing.assert_allclose(got_stability, stability, rtol=0, atol=STABILITY_ATOL)
    return low_res


# The decoder tests' `store_image` fixture: embed a seeded image, put it into Redis, return it with its references.
StoreImage = Callable[..., Awaitable[tuple[StoredImage, Reference]]]
