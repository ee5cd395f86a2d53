"""A stored embedding to a GetEmbeddingResponse and back through the client: names, dtypes, shapes, sizes and
every value survive, float16 and float32 alike."""

from __future__ import annotations

import numpy as np

from service.cache.codec import StoredEmbedding
from service.cache.keys import parse_image_key
from service.client import cached_embedding_of
from service.image_info import ImageInfo
from service.rpc.encoder_convert import embedding_response

KEY = "sam:sam2-hiera_t-0123456789abcdef:{" + "ab" * 32 + "}"


def test_tensors_and_sizes_round_trip_exactly() -> None:
    generator = np.random.default_rng(5)
    tensors = {
        "image_embed": generator.standard_normal((256, 64, 64)).astype(np.float16),
        "high_res_feats_0": generator.standard_normal((32, 256, 256)).astype(np.float32),
        "high_res_feats_1": generator.standard_normal((64, 128, 128)).astype(np.float16),
    }
    stored = StoredEmbedding(tensors, ImageInfo((480, 640), (1024, 1024)), "sam2-hiera_t-0123456789abcdef")
    response = embedding_response(parse_image_key(KEY), stored)
    assert [tensor.dtype for tensor in response.tensors] == ["float16", "float32", "float16"]
    assert list(response.tensors[0].shape) == [256, 64, 64]
    assert len(response.tensors[1].data) == 32 * 256 * 256 * 4
    embedding = cached_embedding_of(response)
    assert (embedding.image_key, embedding.model) == (KEY, stored.model_id)
    assert (embedding.original_size, embedding.input_size) == ((480, 640), (1024, 1024))
    assert list(embedding.tensors) == list(tensors)
    for name, tensor in tensors.items():
        assert embedding.tensors[name].dtype == tensor.dtype and np.array_equal(embedding.tensors[name], tensor)


def test_big_endian_arrays_are_sent_little_endian() -> None:
    values = np.arange(12, dtype=">f4").reshape(3, 4)
    stored = StoredEmbedding({"image_embeddings": values}, ImageInfo((3, 4), (3, 4)), "m")
    response = embedding_response(parse_image_key("sam:m:{" + "0" * 64 + "}"), stored)
    assert response.tensors[0].data == values.astype("<f4").tobytes()
    assert np.array_equal(cached_embedding_of(response).tensors["image_embeddings"], values)
