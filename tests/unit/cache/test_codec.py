"""The stored embedding format: round trip, and rejection of anything damaged or foreign."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from service.cache.codec import CODEC_VERSION, HEADER_READ_BYTES, decode_embedding, encode_embedding, parse_header
from service.constants import EMBEDDING_SHAPE
from service.errors import CorruptEmbedding
from service.image_info import ImageInfo
from service.runtime.preprocess import image_info_of

INFO = ImageInfo(original_size=(480, 640), input_size=(768, 1024))


@pytest.fixture
def embedding() -> np.ndarray:
    return np.random.default_rng(0).normal(0, 0.5, size=EMBEDDING_SHAPE).astype(np.float32)


def test_round_trip_is_float16_of_the_input(embedding: np.ndarray) -> None:
    value = encode_embedding(embedding, INFO, "tiny-0123456789abcdef")
    stored = decode_embedding(value, "tiny-0123456789abcdef")
    assert stored.embedding.dtype == np.float16
    assert np.array_equal(stored.embedding, embedding.astype(np.float16))
    assert stored.info == INFO
    assert stored.model_id == "tiny-0123456789abcdef"
    assert np.abs(stored.embedding.astype(np.float32) - embedding).max() <= 1e-3


def test_value_is_half_the_float32_size(embedding: np.ndarray) -> None:
    value = encode_embedding(embedding, INFO, "m")
    assert len(value) - embedding.size * 2 < 128


def test_accepts_batched_shape(embedding: np.ndarray) -> None:
    stored = decode_embedding(encode_embedding(embedding[None], INFO, "m"))
    assert stored.embedding.shape == EMBEDDING_SHAPE


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda v: v[:-1], "payload bytes"),
        (lambda v: v[:20], "header"),
        (lambda v: b"", "header"),
        (lambda v: b"not an embedding at all" * 10, "magic"),
        (lambda v: v[:-5] + bytes([v[-5] ^ 0xFF]) + v[-4:], "checksum"),
        (lambda v: v[:8] + struct.pack("<H", CODEC_VERSION + 1) + v[10:], "codec version"),
    ],
)
def test_rejects_damaged_values(embedding: np.ndarray, damage, message: str) -> None:  # type: ignore[no-untyped-def]
    value = encode_embedding(embedding, INFO, "m")
    with pytest.raises(CorruptEmbedding, match=message):
        decode_embedding(damage(value))


def test_rejects_another_models_embedding(embedding: np.ndarray) -> None:
    value = encode_embedding(embedding, INFO, "vit_b-aaaa")
    with pytest.raises(CorruptEmbedding, match="vit_b-aaaa"):
        decode_embedding(value, expected_model_id="vit_h-bbbb")


def test_rejects_wrong_shape() -> None:
    with pytest.raises(ValueError):
        encode_embedding(np.zeros((256, 32, 32), np.float32), INFO, "m")


@pytest.mark.parametrize("original_size", [(480, 640), (3000, 17), (1, 1)])
def test_header_alone_is_readable_from_a_prefix(original_size: tuple[int, int]) -> None:
    info = image_info_of(original_size)
    value = encode_embedding(np.ones(EMBEDDING_SHAPE, np.float32), info, "vit_h-0123456789abcdef")
    header = parse_header(value[:HEADER_READ_BYTES])
    assert header.info == info
    assert header.model_id == "vit_h-0123456789abcdef"
    assert header.value_bytes == len(value)


@pytest.mark.parametrize(
    ("prefix", "reason"),
    [(b"not an embedding at all", "bad magic"), (b"", "damaged header"), (b"SAMEMB\r\n\x63\x00", "damaged header")],
)
def test_foreign_or_short_headers_are_corrupt(prefix: bytes, reason: str) -> None:
    with pytest.raises(CorruptEmbedding, match=reason):
        parse_header(prefix)


def test_a_model_id_longer_than_the_prefix_is_rejected_not_misread() -> None:
    value = encode_embedding(np.ones(EMBEDDING_SHAPE, np.float32), image_info_of((10, 10)), "x" * 600)
    with pytest.raises(CorruptEmbedding, match="longer than the 512 bytes read"):
        parse_header(value[:HEADER_READ_BYTES])
