"""The stored embedding format: several named tensors in their storage dtypes, chunks under the allocator's
2 MiB size class, round trips, and rejection of anything damaged, incomplete, foreign or of another version."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from service.cache.codec import (
    CHUNK_BYTES,
    CODEC_VERSION,
    EncodedEmbedding,
    decode_embedding,
    encode_embedding,
    parse_header,
)
from service.errors import CorruptEmbedding
from service.image_info import ImageInfo
from service.runtime.families.catalog import SAM, SAM2

INFO = ImageInfo(original_size=(480, 640), input_size=(768, 1024))


def _tensors(family_outputs: tuple, seed: int = 0) -> dict[str, np.ndarray]:  # type: ignore[type-arg]
    rng = np.random.default_rng(seed)
    return {spec.name: rng.normal(0, 0.5, size=spec.shape).astype(np.float32) for spec in family_outputs}


def test_sam_round_trip_is_float16_of_the_input() -> None:
    tensors = _tensors(SAM.outputs)
    encoded = encode_embedding(tensors, SAM.outputs, INFO, "sam-tiny-0123456789abcdef")
    stored = decode_embedding(encoded.header, encoded.chunks, "sam-tiny-0123456789abcdef")
    embedding = stored.tensors["image_embeddings"]
    assert embedding.dtype == np.float16
    assert np.array_equal(embedding, tensors["image_embeddings"].astype(np.float16))
    assert (stored.info, stored.model_id) == (INFO, "sam-tiny-0123456789abcdef")
    assert stored.nbytes == 256 * 64 * 64 * 2


def test_sam2_keeps_each_tensor_in_its_storage_dtype() -> None:
    tensors = _tensors(SAM2.outputs, seed=1)
    encoded = encode_embedding(tensors, SAM2.outputs, INFO, "m")
    stored = decode_embedding(encoded.header, encoded.chunks)
    assert {name: array.dtype.name for name, array in stored.tensors.items()} == {
        "image_embed": "float16",
        "high_res_feats_0": "float32",
        "high_res_feats_1": "float16",
    }
    assert np.array_equal(stored.tensors["high_res_feats_0"], tensors["high_res_feats_0"])
    assert encoded.total_bytes - SAM2.storage_bytes < 256


@pytest.mark.parametrize("family", [SAM, SAM2], ids=["sam", "sam2"])
def test_chunks_stay_under_the_2_mib_size_class(family) -> None:  # type: ignore[no-untyped-def]
    encoded = encode_embedding(_tensors(family.outputs), family.outputs, INFO, "m")
    assert all(len(chunk) <= CHUNK_BYTES for chunk in encoded.chunks)
    assert sum(len(chunk) for chunk in encoded.chunks) == family.storage_bytes
    assert len(encoded.chunks) == -(-family.storage_bytes // CHUNK_BYTES)


def test_accepts_batched_shape() -> None:
    tensors = {name: array[None] for name, array in _tensors(SAM.outputs).items()}
    encoded = encode_embedding(tensors, SAM.outputs, INFO, "m")
    assert decode_embedding(encoded.header, encoded.chunks).tensors["image_embeddings"].shape == (256, 64, 64)


def _damaged(encoded: EncodedEmbedding, how: str) -> tuple[bytes, list[bytes | None]]:
    header, chunks = encoded.header, list(encoded.chunks)
    if how == "missing chunk":
        chunks[1] = None
    elif how == "short chunk":
        chunks[0] = chunks[0][:-1]
    elif how == "flipped byte":
        chunks[0] = chunks[0][:100] + bytes([chunks[0][100] ^ 0xFF]) + chunks[0][101:]
    elif how == "truncated header":
        header = header[:20]
    elif how == "no header":
        header = b""
    elif how == "foreign":
        header = b"not an embedding at all" * 10
    elif how == "old version":
        header = header[:8] + struct.pack("<H", CODEC_VERSION - 1) + header[10:]
    return header, chunks  # type: ignore[return-value]


@pytest.mark.parametrize(
    ("how", "message"),
    [
        ("missing chunk", "payload chunks"),
        ("short chunk", "payload bytes"),
        ("flipped byte", "checksum"),
        ("truncated header", "header"),
        ("no header", "header"),
        ("foreign", "magic"),
        ("old version", "codec version 1"),
    ],
)
def test_rejects_damaged_values(how: str, message: str) -> None:
    encoded = encode_embedding(_tensors(SAM.outputs), SAM.outputs, INFO, "m")
    header, chunks = _damaged(encoded, how)
    with pytest.raises(CorruptEmbedding, match=message):
        decode_embedding(header, chunks)


def test_rejects_another_models_embedding() -> None:
    encoded = encode_embedding(_tensors(SAM.outputs), SAM.outputs, INFO, "sam-vit_b-aaaa")
    with pytest.raises(CorruptEmbedding, match="sam-vit_b-aaaa"):
        decode_embedding(encoded.header, encoded.chunks, expected_model_id="sam-vit_h-bbbb")


def test_rejects_wrong_shape() -> None:
    with pytest.raises(ValueError):
        encode_embedding({"image_embeddings": np.zeros((256, 32, 32), np.float32)}, SAM.outputs, INFO, "m")


@pytest.mark.parametrize("original_size", [(480, 640), (3000, 17), (1, 1)])
def test_the_header_alone_says_sizes_model_and_chunks(original_size: tuple[int, int]) -> None:
    info = ImageInfo(original_size=original_size, input_size=(1024, 1024))
    encoded = encode_embedding(_tensors(SAM2.outputs), SAM2.outputs, info, "sam2-sam2.1_hiera_t-0123456789abcdef")
    header = parse_header(encoded.header)
    assert (header.info, header.model_id) == (info, "sam2-sam2.1_hiera_t-0123456789abcdef")
    assert header.chunk_count == len(encoded.chunks)
    assert [tensor.name for tensor in header.tensors] == ["image_embed", "high_res_feats_0", "high_res_feats_1"]
    assert len(encoded.header) < 256


def test_a_header_contradicting_its_tensors_is_rejected() -> None:
    encoded = encode_embedding(_tensors(SAM.outputs), SAM.outputs, INFO, "m")
    with pytest.raises(CorruptEmbedding, match="contradict"):
        parse_header(encoded.header[:-10] + struct.pack("<HQ", 7, 99))
