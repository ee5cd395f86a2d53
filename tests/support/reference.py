"""The oracle: segment_anything.SamPredictor on the same checkpoint, and the numerical contract's checks."""

from __future__ import annotations

import io
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from segment_anything import SamPredictor
from segment_anything.modeling import Sam

from service._proto.sam.v1 import sam_pb2
from service.cache.codec import StoredEmbedding, decode_embedding, encode_embedding
from service.cache.keys import image_key_of
from service.client import logits_of, mask_of
from service.runtime.image_encoder import ImageEncoderRole
from service.runtime.preprocess import prepare_encoder_input
from tests.numerical_contract import LOGITS_ATOL, MIN_IOU, SCORES_ATOL, STABILITY_ATOL, iou, reference_prediction


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
    """An image embedded the way the encoder does it, as stored in Redis, with its reference predictors."""

    rgb: np.ndarray
    image_bytes: bytes
    image_key: str
    value: bytes  # the encoded Redis value
    stored: StoredEmbedding  # float16, as the decoder reads it


def embed_for_redis(encoder: ImageEncoderRole, model_id: str, rgb: np.ndarray, image_bytes: bytes) -> StoredImage:
    padded, info = prepare_encoder_input(rgb)
    embedding = encoder.encode(padded[None], np.array([info.input_size]))[0]
    value = encode_embedding(embedding, info, model_id)
    return StoredImage(
        rgb=rgb,
        image_bytes=image_bytes,
        image_key=str(image_key_of(model_id, image_bytes)),
        value=value,
        stored=decode_embedding(value, model_id),
    )


@dataclass
class Reference:
    """Two SamPredictors on one image: on the float16-rounded stored embedding, and the untouched reference."""

    rounded: SamPredictor
    exact: SamPredictor

    @classmethod
    def of(cls, sam: Sam, rgb: np.ndarray, stored: StoredEmbedding) -> Reference:
        exact = SamPredictor(sam)
        exact.set_image(rgb)
        rounded = SamPredictor(sam)
        rounded.set_image(rgb)
        rounded.features = torch.from_numpy(stored.embedding.astype(np.float32))[None]
        return cls(rounded=rounded, exact=exact)

    def predict(self, predictor: SamPredictor, **prompt: object) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Masks, scores and low-res logits, as SamPredictor.predict returns them."""
        masks, scores, low_res, _ = reference_prediction(predictor, **prompt)
        return masks, scores, low_res


def assert_matches_reference(answer: sam_pb2.ObjectMasks, reference: Reference, **prompt: object) -> np.ndarray:
    """Check one object's answer against SamPredictor.predict(**prompt); returns the reference's low-res logits."""
    masks, scores, low_res, stability = reference_prediction(reference.rounded, **prompt)
    exact_masks, _, _ = reference.predict(reference.exact, **prompt)
    assert len(answer.masks) == len(scores)
    got_scores = np.array([mask.score for mask in answer.masks])
    np.testing.assert_allclose(got_scores, scores, rtol=0, atol=SCORES_ATOL)
    np.testing.assert_allclose(logits_of(answer), low_res, rtol=0, atol=LOGITS_ATOL)
    for index, mask in enumerate(answer.masks):
        got = mask_of(mask)
        assert got.shape == masks[index].shape
        assert iou(got, masks[index]) >= MIN_IOU, f"mask {index}: IoU {iou(got, masks[index])} vs rounded reference"
        assert iou(got, exact_masks[index]) >= MIN_IOU, f"mask {index}: IoU vs the unrounded reference"
        assert mask.area == int(got.sum())
    got_stability = np.array([mask.stability_score for mask in answer.masks])
    np.testing.assert_allclose(got_stability, stability, rtol=0, atol=STABILITY_ATOL)
    return low_res


# The decoder tests' `store_image` fixture: embed a seeded image, put it into Redis, return it with its references.
StoreImage = Callable[..., Awaitable[tuple[StoredImage, Reference]]]
