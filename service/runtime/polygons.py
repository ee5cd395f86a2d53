"""Masks to polygons (OpenCV's contour finder) and polygons back to masks (for clients and tests).

Coordinates are the API's: x to the right, y down, (0, 0) the top-left corner of the top-left pixel, so pixel
(row r, column c) is the unit square [c, c + 1] x [r, r + 1] and its centre is (c + 0.5, r + 0.5).

At tolerance 0 a mask's polygons run along its pixels' edges: every vertex is a pixel corner (integers), and the
area they enclose is exactly the mask's pixels. Rasterising them by sampling each pixel at its centre (even-odd
or non-zero rule; no centre ever lies on an edge) gives the mask back exactly. OpenCV traces the centres of
boundary pixels instead, which would cut half a pixel off every edge; tracing the mask upsampled 2x and moving
each traced sub-pixel centre to the corner of its pixel on the same side (x -> ceil(x / 2)) gives the edges.

Rings: an outer ring has a positive signed (shoelace) area, sum(x[i] * y[i+1] - x[i+1] * y[i]) / 2 > 0, and each
hole a negative one. In image coordinates (y down) an outer ring therefore runs clockwise as drawn on screen, which
is counter-clockwise in the usual y-up sense: GeoJSON's and shapely's orientation when the coordinates are taken as
they are. The first vertex is not repeated at the end; a ring has at least 3 vertices. Each hole lies inside its
polygon's outer ring; a part of the mask inside a hole is a polygon of its own (OpenCV's RETR_CCOMP: two levels).

With a tolerance > 0, each ring is simplified with the Douglas-Peucker algorithm (cv2.approxPolyDP): its vertices
are a subset of the exact ring's, none of the exact boundary is farther than the tolerance from the simplified one,
and a ring left with under 3 vertices or no area is dropped (a small object or hole can vanish).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from service.errors import InvalidArgument


@dataclass(frozen=True, eq=False)
class Polygon:
    """One connected part of a mask: its outer ring and its holes, each (N, 2) int64 x, y vertices."""

    exterior: np.ndarray
    holes: tuple[np.ndarray, ...] = ()

    @property
    def vertex_count(self) -> int:
        return len(self.exterior) + sum(len(hole) for hole in self.holes)


def checked_tolerance(tolerance: float, field: str = "polygon_tolerance") -> float:
    """`tolerance` in pixels when it is finite and not negative; InvalidArgument naming `field` otherwise."""
    if not math.isfinite(tolerance) or tolerance < 0:
        raise InvalidArgument(f"is {tolerance!r}; a simplification tolerance is a finite number of pixels >= 0", field)
    return float(tolerance)


def mask_to_polygons(mask: np.ndarray, tolerance: float = 0.0) -> tuple[Polygon, ...]:
    """The polygons of a (H, W) boolean mask, each vertex a pixel corner; simplified to within `tolerance` pixels
    when it is > 0. An empty mask has none."""
    import cv2  # only the server traces; clients that rasterise need no OpenCV

    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return ()
    columns = np.flatnonzero(mask.any(axis=0))
    top, left = int(rows[0]), int(columns[0])
    crop = mask[top : int(rows[-1]) + 1, left : int(columns[-1]) + 1]
    # A blank border of one sub-pixel keeps every traced pixel inside the image OpenCV sees.
    upsampled = np.pad(np.repeat(np.repeat(crop.astype(np.uint8), 2, axis=0), 2, axis=1), 1)
    contours, hierarchy = cv2.findContours(upsampled, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    # Sub-pixel s (counted without the padding) is in pixel s // 2: an even s is the pixel's left (top) half, on the
    # boundary through the pixel's left (top) edge, an odd s its right (bottom) half; either way its corner on that
    # edge is ceil(s / 2) = (s + 1) // 2.
    sub_pixels = np.concatenate(contours).reshape(-1, 2).astype(np.int64) - 1
    corners = (sub_pixels + 1) // 2 + np.array([left, top], dtype=np.int64)
    rings, areas = _rings(corners, [len(contour) for contour in contours])
    if tolerance > 0:
        simplified = [
            cv2.approxPolyDP(ring.astype(np.int32), tolerance, True).reshape(-1, 2) if len(ring) else ring
            for ring in rings
        ]
        rings, areas = _rings(np.concatenate(simplified).astype(np.int64), [len(ring) for ring in simplified])
    polygons = []
    for index, (_, _, first_child, parent) in enumerate(hierarchy[0]):
        if parent >= 0 or areas[index] == 0:
            continue
        holes = []
        child = first_child
        while child >= 0:
            if areas[child] != 0:
                holes.append(rings[child] if areas[child] < 0 else rings[child][::-1])
            child = hierarchy[0][child][0]
        polygons.append(Polygon(rings[index] if areas[index] > 0 else rings[index][::-1], tuple(holes)))
    return tuple(polygons)


def _rings(points: np.ndarray, lengths: list[int]) -> tuple[list[np.ndarray], np.ndarray]:
    """The rings that `points` hold one after the other (`lengths` vertices each) without redundant vertices, and
    their signed areas (0 for a ring left without vertices)."""
    ring_ids = np.repeat(np.arange(len(lengths)), lengths)
    points, ring_ids = _without_redundant_vertices(points, ring_ids)
    _, following = _neighbours(ring_ids)
    x, y = points[:, 0], points[:, 1]
    twice_areas = np.bincount(ring_ids, weights=x * y[following] - x[following] * y, minlength=len(lengths))
    bounds = np.searchsorted(ring_ids, np.arange(len(lengths) + 1))
    return [points[bounds[index] : bounds[index + 1]] for index in range(len(lengths))], twice_areas / 2.0


def _without_redundant_vertices(points: np.ndarray, ring_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rings (`points` grouped by their sorted `ring_ids`) without repeated vertices and without vertices on the
    straight line through their neighbours: the enclosed area and every centre sample stay as they were. A ring
    left with no area loses every vertex."""
    while len(points):
        previous, following = _neighbours(ring_ids)
        repeated = np.all(points == points[previous], axis=1)
        if repeated.any():
            points, ring_ids = points[~repeated], ring_ids[~repeated]
            continue
        before, after = points - points[previous], points[following] - points
        # Neighbours flagged together all lie on one line, so removing them together changes nothing either.
        redundant = (before[:, 0] * after[:, 1] - before[:, 1] * after[:, 0]) == 0
        if not redundant.any():
            break
        points, ring_ids = points[~redundant], ring_ids[~redundant]
    return points, ring_ids


def _neighbours(ring_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The index of each vertex's previous and following vertex in its own ring (rings are contiguous runs)."""
    index = np.arange(len(ring_ids))
    first = np.r_[True, ring_ids[1:] != ring_ids[:-1]]
    last = np.r_[ring_ids[1:] != ring_ids[:-1], True]
    ring_start = np.maximum.accumulate(np.where(first, index, 0))
    ring_end = np.minimum.accumulate(np.where(last, index, len(index))[::-1])[::-1]
    return np.where(first, ring_end, index - 1), np.where(last, ring_start, index + 1)


def signed_area(ring: np.ndarray) -> float:
    """The shoelace area of a ring of (N, 2) x, y vertices: positive for an outer ring, negative for a hole."""
    x, y = ring[:, 0].astype(np.float64), ring[:, 1].astype(np.float64)
    return float(np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y)) / 2.0


def polygons_to_mask(polygons: Sequence[Polygon], size: tuple[int, int]) -> np.ndarray:
    """The (rows, columns) boolean mask of the pixels whose centres lie inside the polygons (even-odd rule over
    every ring): the exact inverse of mask_to_polygons at tolerance 0."""
    rings = [ring for polygon in polygons for ring in (polygon.exterior, *polygon.holes) if len(ring) >= 3]
    return rings_to_mask(rings, size)


def rings_to_mask(rings: Sequence[np.ndarray], size: tuple[int, int]) -> np.ndarray:
    """The pixels whose centres an odd number of the rings enclose, by one scanline pass over every edge."""
    height, width = size
    if not rings:
        return np.zeros(size, dtype=bool)
    starts = np.concatenate([np.asarray(ring, dtype=np.float64) for ring in rings])
    ends = np.concatenate([np.roll(np.asarray(ring, dtype=np.float64), -1, axis=0) for ring in rings])
    sloped = starts[:, 1] != ends[:, 1]
    starts, ends = starts[sloped], ends[sloped]
    low = np.minimum(starts[:, 1], ends[:, 1])
    high = np.maximum(starts[:, 1], ends[:, 1])
    # Rows whose centre line y = row + 0.5 the edge crosses, half-open in y ([low, high)), so that a vertex lying on
    # a centre line is counted once and every ring is crossed an even number of times on every row.
    first_row = np.clip(np.ceil(low - 0.5), 0, height).astype(np.int64)
    end_row = np.clip(np.ceil(high - 0.5), 0, height).astype(np.int64)
    spans = np.maximum(end_row - first_row, 0)
    edge = np.repeat(np.arange(len(spans)), spans)
    rows = np.repeat(first_row, spans) + np.arange(int(spans.sum())) - np.repeat(np.cumsum(spans) - spans, spans)
    x0, y0 = starts[edge, 0], starts[edge, 1]
    x1, y1 = ends[edge, 0], ends[edge, 1]
    crossing = x0 + (rows + 0.5 - y0) * (x1 - x0) / (y1 - y0)
    # Each crossing flips inside/outside for every pixel whose centre lies to its right.
    first_column = np.clip(np.ceil(crossing - 0.5), 0, width).astype(np.int64)
    flips = np.bincount(rows * (width + 1) + first_column, minlength=height * (width + 1))
    return (np.cumsum(flips.reshape(height, width + 1), axis=1)[:, :width] % 2).astype(bool)
