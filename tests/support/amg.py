"""The reference of SegmentEverything: segment_anything's SamAutomaticMaskGenerator on the float16-rounded stored
embedding, and the comparison the issue asks for (same count; each mask matched, by its point, with IoU >= 0.999 and
scores within 1e-4)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from pycocotools import mask as coco_mask
from segment_anything import SamAutomaticMaskGenerator

from service._proto.sam.v1 import sam_pb2
from service.cache.codec import StoredEmbedding
from service.client import mask_of
from tests.numerical_contract import MIN_IOU, SCORES_ATOL, STABILITY_ATOL, iou


def reference_everything(sam: torch.nn.Module, rgb: np.ndarray, stored: StoredEmbedding, **parameters: Any
                         ) -> list[dict[str, Any]]:  # fmt: skip
    """AMG's annotations for `rgb`, its predictor fed the stored (rounded) embedding instead of its own."""
    generator = SamAutomaticMaskGenerator(sam, output_mode="uncompressed_rle", **parameters)
    set_image = generator.predictor.set_image
    rounded = torch.from_numpy(np.asarray(stored.tensors["image_embeddings"], np.float32))[None]

    def set_rounded_image(image: np.ndarray, image_format: str = "RGB") -> None:
        set_image(image, image_format)
        generator.predictor.features = rounded

    generator.predictor.set_image = set_rounded_image  # type: ignore[method-assign]
    return generator.generate(rgb)


def reference_mask(annotation: dict[str, Any]) -> np.ndarray:
    rle = annotation["segmentation"]
    height, width = rle["size"]
    return coco_mask.decode(coco_mask.frPyObjects(rle, height, width)).astype(bool)


def assert_matches_everything(ours: Sequence[sam_pb2.EverythingMask], reference: Sequence[dict[str, Any]]) -> None:
    """Same count, and each of ours matched to the reference mask of the same point with the highest IoU."""
    assert len(ours) == len(reference), (len(ours), len(reference))
    unmatched = list(range(len(reference)))
    for mask in ours:
        point = (mask.point.x, mask.point.y)
        candidates = [
            index for index in unmatched if np.allclose(reference[index]["point_coords"][0], point, atol=1e-3)
        ]
        assert candidates, f"no reference mask for point {point}"
        pixels = mask_of(mask.mask)
        best = max(candidates, key=lambda index: iou(pixels, reference_mask(reference[index])))
        annotation = reference[best]
        assert iou(pixels, reference_mask(annotation)) >= MIN_IOU
        assert abs(mask.mask.score - annotation["predicted_iou"]) <= SCORES_ATOL
        assert abs(mask.mask.stability_score - annotation["stability_score"]) <= STABILITY_ATOL
        assert abs(int(mask.mask.area) - annotation["area"]) <= max(2, annotation["area"] // 1000)
        unmatched.remove(best)
