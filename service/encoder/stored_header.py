"""Reading only the header of a stored embedding: a cache hit needs the image's sizes, not 2 MiB of payload.

The layout is service.embedding_codec's (its struct definitions are used here, not restated); a unit test
round-trips encode_embedding through this reader so the two cannot drift apart. The payload's checksum is
not verified on a hit: the decoder verifies it when it reads the value (DATA_LOSS if damaged), while the
header, the model id and the total length are checked here, so a truncated or foreign value is a miss.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from typing import Final

from service import embedding_codec as codec
from service.constants import EMBEDDING_SHAPE
from service.errors import CorruptEmbedding
from service.runtime.preprocess import ImageInfo

# Enough for the fixed part, the dims, the sizes and any model id this service makes (ids are ~25 chars).
HEADER_READ_BYTES: Final = 512
_FLOAT16_BYTES: Final = 2


@dataclass(frozen=True)
class StoredHeader:
    info: ImageInfo
    model_id: str
    value_bytes: int  # the length the whole value must have


def parse_stored_header(prefix: bytes) -> StoredHeader:
    """The header at the start of a stored value; CorruptEmbedding when it is not one this codec wrote."""
    try:
        magic, version, dtype_code, ndim = codec._FIXED.unpack_from(prefix, 0)
        if magic != codec._MAGIC or version != codec.CODEC_VERSION or dtype_code != codec._FLOAT16:
            raise CorruptEmbedding(f"has an unknown header (version {version}, dtype {dtype_code})")
        offset = codec._FIXED.size
        shape = struct.unpack_from(f"<{ndim}I", prefix, offset)
        offset += 4 * ndim
        original_rows, original_columns, input_rows, input_columns, _crc = codec._SIZES.unpack_from(prefix, offset)
        offset += codec._SIZES.size
        (model_id_length,) = codec._MODEL_ID_LENGTH.unpack_from(prefix, offset)
        offset += codec._MODEL_ID_LENGTH.size
        if offset + model_id_length > len(prefix):
            raise CorruptEmbedding(f"has a {model_id_length}-byte model id, longer than this reader expects")
        model_id = prefix[offset : offset + model_id_length].decode()
        offset += model_id_length
    except (struct.error, UnicodeDecodeError) as error:
        raise CorruptEmbedding(f"has a damaged header: {error}") from error
    if tuple(shape) != EMBEDDING_SHAPE:
        raise CorruptEmbedding(f"has shape {tuple(shape)}, expected {EMBEDDING_SHAPE}")
    info = ImageInfo(original_size=(original_rows, original_columns), input_size=(input_rows, input_columns))
    return StoredHeader(info, model_id, offset + math.prod(shape) * _FLOAT16_BYTES)
