"""The stored form of an embedding: a small versioned header, then raw little-endian float16.

Layout (all little-endian):
  magic        8 bytes  b"SAMEMB\\r\\n"
  version      u16      CODEC_VERSION
  dtype        u8       1 = float16
  ndim         u8       then ndim x u32 dims (256, 64, 64)
  original     2 x u32  rows, columns of the image
  input        2 x u32  rows, columns after resizing into the 1024 frame
  crc32        u32      of the payload
  model_id     u16 length + UTF-8
  payload      prod(dims) x 2 bytes
A value that does not parse exactly is rejected, never decoded into garbage.
"""

from __future__ import annotations

import math
import struct
import zlib
from dataclasses import dataclass
from typing import Final

import numpy as np

from service.constants import EMBEDDING_SHAPE
from service.errors import CorruptEmbedding
from service.image_info import ImageInfo

CODEC_VERSION: Final = 1
_MAGIC: Final = b"SAMEMB\r\n"
_FLOAT16: Final = 1
_FIXED = struct.Struct("<8sHBB")
_SIZES = struct.Struct("<IIIII")
_MODEL_ID_LENGTH = struct.Struct("<H")
_FLOAT16_BYTES: Final = 2
# Enough to read the header of any value this service writes (model ids are about 25 characters), so a
# reader that needs only the sizes (the encoder's cache hit) fetches this prefix, not 2 MiB.
HEADER_READ_BYTES: Final = 512


@dataclass(frozen=True)
class EmbeddingHeader:
    """What a stored value says about itself, before its payload."""

    info: ImageInfo
    model_id: str
    payload_crc32: int
    payload_offset: int
    value_bytes: int  # the length the whole value must have


@dataclass(frozen=True, eq=False)
class StoredEmbedding:
    """An embedding with what the decoder needs to use it."""

    embedding: np.ndarray  # (256, 64, 64) float16
    info: ImageInfo
    model_id: str


def encode_embedding(embedding: np.ndarray, info: ImageInfo, model_id: str) -> bytes:
    """Serialize a (256, 64, 64) (or (1, 256, 64, 64)) embedding as float16 with its header."""
    array = np.asarray(embedding).reshape(EMBEDDING_SHAPE).astype("<f2", copy=False)
    payload = np.ascontiguousarray(array).tobytes()
    model_id_bytes = model_id.encode()
    return b"".join(
        (
            _FIXED.pack(_MAGIC, CODEC_VERSION, _FLOAT16, array.ndim),
            struct.pack(f"<{array.ndim}I", *array.shape),
            _SIZES.pack(*info.original_size, *info.input_size, zlib.crc32(payload)),
            _MODEL_ID_LENGTH.pack(len(model_id_bytes)),
            model_id_bytes,
            payload,
        )
    )


def parse_header(value: bytes) -> EmbeddingHeader:
    """The header at the start of a stored value (the whole value or its first HEADER_READ_BYTES).

    CorruptEmbedding when it is not a header this codec wrote; the payload is not looked at.
    """
    try:
        magic, version, dtype_code, ndim = _FIXED.unpack_from(value, 0)
        if magic != _MAGIC:
            raise CorruptEmbedding("is not a SAM embedding (bad magic)")
        if version != CODEC_VERSION:
            raise CorruptEmbedding(f"has codec version {version}; this service reads version {CODEC_VERSION}")
        if dtype_code != _FLOAT16:
            raise CorruptEmbedding(f"has unknown dtype code {dtype_code}")
        offset = _FIXED.size
        shape = struct.unpack_from(f"<{ndim}I", value, offset)
        offset += 4 * ndim
        original_rows, original_columns, input_rows, input_columns, crc = _SIZES.unpack_from(value, offset)
        offset += _SIZES.size
        (model_id_length,) = _MODEL_ID_LENGTH.unpack_from(value, offset)
        offset += _MODEL_ID_LENGTH.size
        if offset + model_id_length > len(value):
            raise CorruptEmbedding(f"has a {model_id_length}-byte model id, longer than the {len(value)} bytes read")
        model_id = value[offset : offset + model_id_length].decode()
        offset += model_id_length
    except (struct.error, UnicodeDecodeError) as error:
        raise CorruptEmbedding(f"has a damaged header: {error}") from error
    if tuple(shape) != EMBEDDING_SHAPE:
        raise CorruptEmbedding(f"has shape {tuple(shape)}, expected {EMBEDDING_SHAPE}")
    return EmbeddingHeader(
        info=ImageInfo(original_size=(original_rows, original_columns), input_size=(input_rows, input_columns)),
        model_id=model_id,
        payload_crc32=crc,
        payload_offset=offset,
        value_bytes=offset + math.prod(shape) * _FLOAT16_BYTES,
    )


def decode_embedding(value: bytes, expected_model_id: str | None = None) -> StoredEmbedding:
    """Parse a stored value; CorruptEmbedding when it is damaged, foreign or from another model."""
    header = parse_header(value)
    if len(value) != header.value_bytes:
        expected_bytes = header.value_bytes - header.payload_offset
        raise CorruptEmbedding(f"has {len(value) - header.payload_offset} payload bytes, expected {expected_bytes}")
    payload = memoryview(value)[header.payload_offset :]
    if zlib.crc32(payload) != header.payload_crc32:
        raise CorruptEmbedding("fails its checksum")
    if expected_model_id is not None and header.model_id != expected_model_id:
        raise CorruptEmbedding(f"was made by model {header.model_id!r}, not {expected_model_id!r}")
    embedding = np.frombuffer(payload, dtype="<f2").reshape(EMBEDDING_SHAPE)
    return StoredEmbedding(embedding=embedding, info=header.info, model_id=header.model_id)
