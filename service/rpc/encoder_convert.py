"""Encoder answers as messages: a stored embedding as a GetEmbeddingResponse."""

from __future__ import annotations

import numpy as np

from service._proto.sam.v1 import sam_pb2
from service.cache.codec import StoredEmbedding
from service.cache.keys import ImageKey


def tensor_message(name: str, tensor: np.ndarray) -> sam_pb2.Tensor:
    """A tensor as stored: its name, dtype name, shape and little-endian row-major bytes."""
    little_endian = np.ascontiguousarray(tensor, dtype=tensor.dtype.newbyteorder("<"))
    return sam_pb2.Tensor(name=name, dtype=tensor.dtype.name, shape=list(tensor.shape), data=little_endian.tobytes())


def embedding_response(image_key: ImageKey, stored: StoredEmbedding) -> sam_pb2.GetEmbeddingResponse:
    (original_rows, original_columns), (input_rows, input_columns) = stored.info.original_size, stored.info.input_size
    return sam_pb2.GetEmbeddingResponse(
        image_key=str(image_key),
        model=stored.model_id,
        original_size=sam_pb2.ImageSize(height=original_rows, width=original_columns),
        input_size=sam_pb2.ImageSize(height=input_rows, width=input_columns),
        tensors=[tensor_message(name, tensor) for name, tensor in stored.tensors.items()],
    )
