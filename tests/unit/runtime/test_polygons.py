"""Masks to polygons and back: exact at tolerance 0 (edges of pixels, centre sampling), documented orientation and
closing rule, an independent rasteriser agrees, and simplification keeps IoU within measured bounds on real masks."""

from __future__ import annotations

import math

import numpy as np
import pytest
from skimage.draw import polygon2mask

from service.errors import InvalidArgument
from service.runtime.checkpoint import CheckpointInfo
from service.runtime.polygons import (
    Polygon,
    checked_tolerance,
    mask_to_polygons,
    polygons_to_mask,
    rings_to_mask,
    signed_area,
)
from tests.support.composites import composites
from tests.support.oracles import oracle_for

# IoU of rasterised polygons with the mask at each tolerance, at least (LiteMedSAM's real box masks and the pasted
# objects of the eight composites). Measured minima: 1.0 at 0 and 0.5 px, 0.986 at 1 px, 0.972 at 2 px, 0.950 at 4.
IOU_AT_LEAST = {0.0: 1.0, 0.5: 1.0, 1.0: 0.98, 2.0: 0.96, 4.0: 0.93}


def iou(first: np.ndarray, second: np.ndarray) -> float:
    union = int((first | second).sum())
    return 1.0 if union == 0 else int((first & second).sum()) / union


def _disk(shape: tuple[int, int], row: float, column: float, radius: float) -> np.ndarray:
    rows, columns = np.mgrid[0 : shape[0], 0 : shape[1]]
    return np.asarray((rows - row) ** 2 + (columns - column) ** 2 <= radius**2)


def synthetic_masks() -> dict[str, np.ndarray]:
    """Shapes that trip contour tracers: holes, islands in holes, single pixels, diagonal pinches, the border."""
    single = np.zeros((5, 6), bool)
    single[2, 3] = True
    corner = np.zeros((4, 4), bool)
    corner[0, 0] = corner[3, 3] = True
    ring = _disk((40, 50), 20, 25, 15) & ~_disk((40, 50), 20, 25, 7)
    island = ring | _disk((40, 50), 20, 25, 3)
    checker = (np.indices((9, 11)).sum(axis=0) % 2).astype(bool)
    line = np.zeros((7, 30), bool)
    line[3, 2:28] = True
    frame = np.ones((12, 12), bool)
    frame[1:-1, 1:-1] = False
    touching = np.zeros((20, 30), bool)
    touching[:, 20:] = True
    touching[5:9, 24:27] = False
    return {
        "empty": np.zeros((6, 7), bool),
        "full": np.ones((6, 7), bool),
        "single_pixel": single,
        "opposite_corner_pixels": corner,
        "ring_with_hole": ring,
        "island_in_a_hole": island,
        "checkerboard": checker,
        "one_pixel_line": line,
        "one_pixel_frame_on_the_border": frame,
        "touching_the_border_with_a_hole": touching,
        "one_by_one": np.ones((1, 1), bool),
    }


@pytest.mark.parametrize("name", list(synthetic_masks()))
def test_exact_round_trip_of_tricky_shapes(name: str) -> None:
    mask = synthetic_masks()[name]
    polygons = mask_to_polygons(mask)
    assert np.array_equal(polygons_to_mask(polygons, mask.shape), mask)
    # The rings enclose exactly the mask's pixels.
    enclosed = sum(
        signed_area(polygon.exterior) + sum(signed_area(hole) for hole in polygon.holes) for polygon in polygons
    )
    assert enclosed == int(mask.sum())


def test_shapes_are_what_they_look_like() -> None:
    masks = synthetic_masks()
    assert mask_to_polygons(masks["empty"]) == ()
    (full,) = mask_to_polygons(masks["full"])
    assert sorted(map(tuple, full.exterior.tolist())) == [(0, 0), (0, 6), (7, 0), (7, 6)] and full.holes == ()
    (pixel,) = mask_to_polygons(masks["single_pixel"])
    assert pixel.exterior.tolist() == _rotated_to([[3, 2], [4, 2], [4, 3], [3, 3]], pixel.exterior.tolist())
    (ring,) = mask_to_polygons(masks["ring_with_hole"])
    assert len(ring.holes) == 1
    assert len(mask_to_polygons(masks["island_in_a_hole"])) == 2  # the island is a polygon of its own
    assert len(mask_to_polygons(masks["opposite_corner_pixels"])) == 2
    (frame,) = mask_to_polygons(masks["one_pixel_frame_on_the_border"])
    assert frame.exterior.min() == 0 and frame.exterior.max() == 12 and len(frame.holes) == 1


def _rotated_to(ring: list[list[int]], like: list[list[int]]) -> list[list[int]]:
    start = ring.index(like[0])
    return ring[start:] + ring[:start]


def test_random_masks_round_trip_exactly() -> None:
    rng = np.random.default_rng(7)
    for _ in range(400):
        height, width = (int(side) for side in rng.integers(1, 16, 2))
        mask = rng.random((height, width)) < rng.random()
        assert np.array_equal(polygons_to_mask(mask_to_polygons(mask), mask.shape), mask), mask.astype(int)


def test_orientation_closing_and_coordinates() -> None:
    mask = synthetic_masks()["island_in_a_hole"].copy()
    mask[:20, 20:] |= synthetic_masks()["touching_the_border_with_a_hole"]
    polygons = mask_to_polygons(mask)
    height, width = mask.shape
    for polygon in polygons:
        assert signed_area(polygon.exterior) > 0
        for ring in (polygon.exterior, *polygon.holes):
            assert len(ring) >= 3 and not np.array_equal(ring[0], ring[-1])
            assert ring.dtype == np.int64 and ring.min() >= 0
            assert ring[:, 0].max() <= width and ring[:, 1].max() <= height
        for hole in polygon.holes:
            assert signed_area(hole) < 0
            # A hole lies inside its polygon's outer ring.
            inside_hole = rings_to_mask([hole], mask.shape)
            assert not (inside_hole & ~rings_to_mask([polygon.exterior], mask.shape)).any()


def test_another_rasteriser_that_samples_pixel_centres_agrees() -> None:
    """skimage's polygon2mask puts pixel (r, c) at (r, c): our corners shifted by half a pixel."""
    mask = synthetic_masks()["island_in_a_hole"]
    parity = np.zeros(mask.shape, bool)
    for polygon in mask_to_polygons(mask):
        for ring in (polygon.exterior, *polygon.holes):
            parity ^= polygon2mask(mask.shape, ring[:, ::-1].astype(float) - 0.5)
    assert np.array_equal(parity, mask)


def test_the_non_zero_rule_gives_the_same_mask() -> None:
    """Outer rings and holes turn opposite ways, so a non-zero winding fill (cv2.fillPoly, canvas) agrees."""
    mask = synthetic_masks()["island_in_a_hole"]
    winding = np.zeros(mask.shape, np.int64)
    rows, columns = np.mgrid[0 : mask.shape[0], 0 : mask.shape[1]] + 0.5
    for polygon in mask_to_polygons(mask):
        for ring in (polygon.exterior, *polygon.holes):
            winding += _winding_numbers(ring.astype(float), columns, rows)
    assert np.array_equal(winding != 0, mask)


def _winding_numbers(ring: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    total = np.zeros(x.shape, np.int64)
    for (x0, y0), (x1, y1) in zip(ring, np.roll(ring, -1, axis=0), strict=True):
        side = (x1 - x0) * (y - y0) - (x - x0) * (y1 - y0)
        total += ((y0 <= y) & (y1 > y) & (side > 0)).astype(np.int64)
        total -= ((y1 <= y) & (y0 > y) & (side < 0)).astype(np.int64)
    return total


def test_tolerance_simplifies_within_it() -> None:
    mask = _disk((300, 400), 150, 200, 110) & ~_disk((300, 400), 150, 200, 40)
    exact = mask_to_polygons(mask)
    simplified = mask_to_polygons(mask, 2.0)
    assert sum(p.vertex_count for p in simplified) < sum(p.vertex_count for p in exact) / 5
    assert iou(polygons_to_mask(simplified, mask.shape), mask) >= IOU_AT_LEAST[2.0]
    # Every simplified vertex is one of the exact ones (Douglas-Peucker keeps a subset).
    exact_vertices = {tuple(v) for p in exact for ring in (p.exterior, *p.holes) for v in ring.tolist()}
    assert {tuple(v) for p in simplified for ring in (p.exterior, *p.holes) for v in ring.tolist()} <= exact_vertices
    # A tolerance wider than a small object lets it vanish, never leaving a degenerate ring.
    assert mask_to_polygons(synthetic_masks()["single_pixel"], 5.0) == ()


@pytest.mark.parametrize("bad", [-0.5, math.nan, math.inf])
def test_bad_tolerances_are_invalid_arguments(bad: float) -> None:
    with pytest.raises(InvalidArgument) as raised:
        checked_tolerance(bad)
    assert raised.value.field == "polygon_tolerance"
    assert checked_tolerance(0.0) == 0.0 and checked_tolerance(1.5) == 1.5


def test_polygon_counts_its_vertices() -> None:
    square = np.array([[0, 0], [2, 0], [2, 2], [0, 2]])
    assert Polygon(square, (square[::-1],)).vertex_count == 8


@pytest.fixture(scope="module")
def real_masks(lite_medsam_checkpoint: CheckpointInfo) -> list[tuple[str, np.ndarray]]:
    """LiteMedSAM's three masks for the box around each composite's pasted object, and each object's truth."""
    oracle = oracle_for(lite_medsam_checkpoint)
    masks = []
    for composite in composites():
        oracle.set_image(composite.rgb)
        predicted, _, _, _ = oracle.predict(box=np.array(composite.box), multimask_output=True)
        masks += [(f"{composite.name}[{index}]", mask) for index, mask in enumerate(predicted)]
        masks.append((f"{composite.name}.truth", composite.truth))
    return masks


@pytest.mark.slow
def test_real_masks_round_trip_and_simplify_within_measured_bounds(real_masks: list[tuple[str, np.ndarray]]) -> None:
    assert len(real_masks) == 32 and all(mask.sum() > 1000 for _, mask in real_masks)
    vertex_counts: dict[float, int] = {}
    for tolerance, at_least in IOU_AT_LEAST.items():
        vertex_counts[tolerance] = 0
        for name, mask in real_masks:
            polygons = mask_to_polygons(mask, tolerance)
            assert iou(polygons_to_mask(polygons, mask.shape), mask) >= at_least, (name, tolerance)
            vertex_counts[tolerance] += sum(polygon.vertex_count for polygon in polygons)
    counts = list(vertex_counts.values())
    assert counts == sorted(counts, reverse=True) and counts[-1] < counts[0] / 10, vertex_counts
