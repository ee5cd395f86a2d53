"""The encoder's header-only reader agrees with the codec and rejects what is not a whole value."""

from __future__ import annotations

import numpy as np
import pytest

from service.embedding_codec import encode_embedding
from service.encoder.stored_header import HEADER_READ_BYTES, parse_stored_header
from service.errors import CorruptEmbedding
from service.runtime.preprocess import image_info_of


@pytest.mark.parametrize("original_size", [(480, 640), (3000, 17), (1, 1)])
def test_header_round_trips_with_the_codec(original_size: tuple[int, int]) -> None:
    info = image_info_of(original_size)
    value = encode_embedding(np.ones((256, 64, 64), np.float32), info, "vit_h-0123456789abcdef")

    header = parse_stored_header(value[:HEADER_READ_BYTES])

    assert header.info == info
    assert header.model_id == "vit_h-0123456789abcdef"
    assert header.value_bytes == len(value)


@pytest.mark.parametrize(
    ("prefix", "reason"),
    [
        (b"not an embedding at all", "unknown header|damaged header"),
        (b"", "damaged header"),
        (b"SAMEMB\r\n\x63\x00", "damaged header|unknown header"),
    ],
)
def test_foreign_or_short_values_are_corrupt(prefix: bytes, reason: str) -> None:
    with pytest.raises(CorruptEmbedding, match=reason):
        parse_stored_header(prefix)


def test_a_model_id_longer_than_the_read_is_rejected_not_misread() -> None:
    value = encode_embedding(np.ones((256, 64, 64), np.float32), image_info_of((10, 10)), "x" * 600)
    with pytest.raises(CorruptEmbedding, match="longer than this reader expects"):
        parse_stored_header(value[:HEADER_READ_BYTES])
