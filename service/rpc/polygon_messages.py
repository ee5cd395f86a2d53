"""Polygons to and from their messages (sam.v1.Polygons): for the decoder's answers and the clients' decoding."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from service._proto.sam.v1 import sam_pb2
from service.runtime.polygons import Polygon


def ring_message(ring: np.ndarray) -> sam_pb2.Ring:
    """(N, 2) x, y vertices as a Ring: x0, y0, x1, y1, ..."""
    return sam_pb2.Ring(coordinates=np.asarray(ring, dtype=np.int64).reshape(-1).tolist())


def polygons_message(polygons: Sequence[Polygon], size: tuple[int, int]) -> sam_pb2.Polygons:
    """A mask's polygons and its (rows, columns) size as a Polygons message."""
    return sam_pb2.Polygons(
        size=sam_pb2.ImageSize(height=size[0], width=size[1]),
        polygons=[
            sam_pb2.Polygon(
                exterior=ring_message(polygon.exterior), holes=[ring_message(hole) for hole in polygon.holes]
            )
            for polygon in polygons
        ],
    )


def ring_of_message(ring: sam_pb2.Ring) -> np.ndarray:
    """A Ring's vertices as (N, 2) int64 x, y; ValueError for an odd number of coordinates."""
    coordinates = np.asarray(ring.coordinates, dtype=np.int64)
    if coordinates.size % 2:
        raise ValueError(f"a ring has {coordinates.size} coordinates; x, y pairs make an even number")
    return coordinates.reshape(-1, 2)


def polygons_of_message(message: sam_pb2.Polygons) -> tuple[tuple[Polygon, ...], tuple[int, int]]:
    """The polygons of a Polygons message and the (rows, columns) size of their mask."""
    polygons = tuple(
        Polygon(ring_of_message(polygon.exterior), tuple(ring_of_message(hole) for hole in polygon.holes))
        for polygon in message.polygons
    )
    return polygons, (message.size.height, message.size.width)
