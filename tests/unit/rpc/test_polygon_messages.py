"""Polygons on the wire: MASK_FORMAT_POLYGON and its tolerance reach the query, answers carry rings that the clients
read back (as polygons, as a mask, as `samsvc segment`'s JSON)."""

from __future__ import annotations

import numpy as np
import pytest

from service._proto.sam.v1 import sam_pb2
from service.client import make_prompt, make_request, mask_of, polygons_of
from service.client.segment_cli import answer_json
from service.decoder.mask_encoding import ObjectResult, encode_mask
from service.decoder.query import MaskEncoding
from service.decoder.segment import SegmentResult
from service.decoder.session import StreamSession
from service.errors import InvalidArgument
from service.rpc.decoder_convert import query_of_request, response_of_result
from service.rpc.polygon_messages import ring_of_message
from service.runtime.mask_summary import summarize_mask
from service.runtime.polygons import mask_to_polygons

KEY = "sam:m:{" + "0" * 64 + "}"


def _ring_mask() -> np.ndarray:
    rows, columns = np.mgrid[0:60, 0:80]
    distance = np.hypot(rows - 30, columns - 40)
    return np.asarray((distance <= 25) & (distance > 10))


def _answer(mask: np.ndarray, tolerance: float) -> sam_pb2.ObjectMasks:
    summary = summarize_mask(np.where(mask, 4.0, -4.0).astype(np.float32))
    encoded = encode_mask(summary, 0.9, MaskEncoding.POLYGON, tolerance)
    result = SegmentResult("r", KEY, (ObjectResult((encoded,), None),), ())
    (answer,) = response_of_result(result).objects
    return answer


def test_the_format_and_tolerance_reach_the_query() -> None:
    request = make_request(
        KEY, [make_prompt(points=[(1, 1, 1)])], mask_format=sam_pb2.MASK_FORMAT_POLYGON, polygon_tolerance=1.5
    )
    query = query_of_request(request, StreamSession())
    assert (query.encoding, query.polygon_tolerance) == (MaskEncoding.POLYGON, 1.5)
    assert (
        query_of_request(make_request(KEY, [make_prompt(points=[(1, 1, 1)])]), StreamSession()).polygon_tolerance == 0
    )


def test_a_negative_tolerance_names_its_field() -> None:
    request = make_request(
        KEY, [make_prompt(points=[(1, 1, 1)])], mask_format=sam_pb2.MASK_FORMAT_POLYGON, polygon_tolerance=-1
    )
    with pytest.raises(InvalidArgument) as raised:
        query_of_request(request, StreamSession())
    assert raised.value.field == "polygon_tolerance"


def test_exact_polygons_travel_and_read_back_as_the_mask() -> None:
    mask = _ring_mask()
    (message,) = _answer(mask, 0.0).masks
    assert message.WhichOneof("encoding") == "polygons"
    assert (message.polygons.size.height, message.polygons.size.width) == mask.shape
    (polygon,) = polygons_of(message)
    (expected,) = mask_to_polygons(mask)
    assert np.array_equal(polygon.exterior, expected.exterior) and len(polygon.holes) == 1
    assert list(message.polygons.polygons[0].exterior.coordinates) == expected.exterior.reshape(-1).tolist()
    assert np.array_equal(mask_of(message), mask)


def test_simplified_polygons_have_fewer_vertices() -> None:
    mask = _ring_mask()
    exact, simplified = (polygons_of(_answer(mask, tolerance).masks[0]) for tolerance in (0.0, 2.0))
    assert sum(p.vertex_count for p in simplified) < sum(p.vertex_count for p in exact)


def test_a_ring_with_an_odd_number_of_coordinates_is_refused() -> None:
    with pytest.raises(ValueError, match="even"):
        ring_of_message(sam_pb2.Ring(coordinates=[0, 0, 1, 0, 1]))
    with pytest.raises(ValueError, match="MASK_FORMAT_POLYGON"):
        polygons_of(sam_pb2.Mask())


def test_segment_json_carries_polygons() -> None:
    mask = _ring_mask()
    (message,) = _answer(mask, 0.0).masks
    (entry,) = answer_json(KEY, mask.shape, "m", [message])["masks"]
    assert "rle" not in entry
    (polygon,) = entry["polygons"]
    assert len(polygon["exterior"]) % 2 == 0 and len(polygon["holes"]) == 1
