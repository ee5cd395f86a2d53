"""The stored form of an embedding: a small versioned header, then each of the family's tensors as raw
little-endian bytes in its storage dtype, the bytes split into chunks that fit the allocator's size classes.

Header (all little-endian):
  magic        8 bytes  b"SAMEMB\\r\\n"
  version      u16      CODEC_VERSION
  original     2 x u32  rows, columns of the image
  input        2 x u32  rows, columns of its content in the model's input frame
  model_id     u16 length + UTF-8
  tensors      u8 count, then per tensor: u8 length + UTF-8 name, u8 dtype (1 float16, 2 float32),
               u8 ndim + ndim x u32 dims, u32 CRC-32 of its bytes
  chunks       u16 count, u64 payload bytes
Payload: the tensors' bytes in header order, cut into chunks of at most CHUNK_BYTES.

Why chunks: Redis's allocator (jemalloc) keeps a value of n bytes in the smallest size class of at least n + 10
bytes, and the classes above 1 MiB are 256 KiB apart: a 2 MiB embedding plus a header lands in the 2.5 MiB class
(25% lost). CHUNK_BYTES (2,097,142) is the longest value that stays in the 2 MiB class, measured with MEMORY USAGE
on redis-server 7.0 (jemalloc 5.3). A value of another codec version, or one that does not parse exactly, is
rejected, never decoded into garbage.
"""

from __future__ import annotations

import math
import struct
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np

from service.errors import CorruptEmbedding
from service.image_info import ImageInfo
from service.runtime.families.spec import TensorSpec

CODEC_VERSION: Final = 2
CHUNK_BYTES: Final = 2_097_142
_MAGIC: Final = b"SAMEMB\r\n"
_PREFIX = struct.Struct("<8sHIIII")
_U8 = struct.Struct("<B")
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_CHUNKS = struct.Struct("<HQ")
_DTYPES: Final = {"float16": 1, "float32": 2}
_DTYPE_OF_CODE: Final = {code: name for name, code in _DTYPES.items()}


@dataclass(frozen=True)
class TensorHeader:
    """One stored tensor: its name, storage dtype, shape and checksum."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    crc32: int

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * np.dtype(self.dtype).itemsize


@dataclass(frozen=True)
class EmbeddingHeader:
    """What a stored value says about itself, before its payload."""

    info: ImageInfo
    model_id: str
    tensors: tuple[TensorHeader, ...]
    chunk_count: int
    payload_bytes: int


@dataclass(frozen=True)
class EncodedEmbedding:
    """An embedding ready for the store: its header and its payload chunks."""

    header: bytes
    chunks: tuple[bytes, ...]

    @property
    def total_bytes(self) -> int:
        return len(self.header) + sum(len(chunk) for chunk in self.chunks)


@dataclass(frozen=True, eq=False)
class StoredEmbedding:
    """An image's tensors (storage dtype, read-only views of the stored bytes) with what the decoder needs."""

    tensors: Mapping[str, np.ndarray]
    info: ImageInfo
    model_id: str

    @property
    def nbytes(self) -> int:
        return sum(int(tensor.nbytes) for tensor in self.tensors.values())


def encode_embedding(
    tensors: Mapping[str, np.ndarray], specs: Sequence[TensorSpec], info: ImageInfo, model_id: str
) -> EncodedEmbedding:
    """Serialize the tensors named by `specs` (each of its spec's shape, optionally with a leading batch axis of 1)
    in their storage dtypes."""
    parts = []
    table = [_U8.pack(len(specs))]
    for spec in specs:
        array = np.asarray(tensors[spec.name]).reshape(spec.shape).astype(f"<{np.dtype(spec.storage_dtype).str[1:]}")
        data = np.ascontiguousarray(array).tobytes()
        parts.append(data)
        name = spec.name.encode()
        table += [_U8.pack(len(name)), name, _U8.pack(_DTYPES[spec.storage_dtype]), _U8.pack(len(spec.shape))]
        table += [struct.pack(f"<{len(spec.shape)}I", *spec.shape), _U32.pack(zlib.crc32(data))]
    payload = b"".join(parts)
    chunks = tuple(payload[start : start + CHUNK_BYTES] for start in range(0, len(payload), CHUNK_BYTES))
    model_id_bytes = model_id.encode()
    header = b"".join(
        (
            _PREFIX.pack(_MAGIC, CODEC_VERSION, *info.original_size, *info.input_size),
            _U16.pack(len(model_id_bytes)),
            model_id_bytes,
            *table,
            _CHUNKS.pack(len(chunks), len(payload)),
        )
    )
    return EncodedEmbedding(header, chunks)


class _Reader:
    """Reads the header's fields in order; struct errors become CorruptEmbedding at the caller."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.offset = 0

    def take(self, layout: struct.Struct) -> tuple[int, ...]:
        values = layout.unpack_from(self.data, self.offset)
        self.offset += layout.size
        return values

    def text(self, length_layout: struct.Struct) -> str:
        (length,) = self.take(length_layout)
        if self.offset + length > len(self.data):
            raise CorruptEmbedding(f"has a {length}-byte name past the end of its {len(self.data)}-byte header")
        text = self.data[self.offset : self.offset + length].decode()
        self.offset += length
        return text


def parse_header(header: bytes) -> EmbeddingHeader:
    """The header of a stored value; CorruptEmbedding when it is not one this codec wrote."""
    reader = _Reader(header)
    try:
        magic, version, original_rows, original_columns, input_rows, input_columns = reader.take(_PREFIX)
        if magic != _MAGIC:
            raise CorruptEmbedding("is not a SAM embedding (bad magic)")
        if version != CODEC_VERSION:
            raise CorruptEmbedding(f"has codec version {version}; this service reads version {CODEC_VERSION}")
        model_id = reader.text(_U16)
        tensors = []
        for _ in range(reader.take(_U8)[0]):
            name = reader.text(_U8)
            (dtype_code,) = reader.take(_U8)
            if dtype_code not in _DTYPE_OF_CODE:
                raise CorruptEmbedding(f"has unknown dtype code {dtype_code}")
            (ndim,) = reader.take(_U8)
            shape = reader.take(struct.Struct(f"<{ndim}I"))
            (crc,) = reader.take(_U32)
            tensors.append(TensorHeader(name, _DTYPE_OF_CODE[dtype_code], tuple(shape), crc))
        chunk_count, payload_bytes = reader.take(_CHUNKS)
    except (struct.error, UnicodeDecodeError) as error:
        raise CorruptEmbedding(f"has a damaged header: {error}") from error
    if reader.offset != len(header):
        raise CorruptEmbedding(f"has {len(header) - reader.offset} bytes after its header")
    if payload_bytes != sum(tensor.nbytes for tensor in tensors) or chunk_count != math.ceil(
        payload_bytes / CHUNK_BYTES
    ):
        raise CorruptEmbedding(f"says {chunk_count} chunks of {payload_bytes} bytes, which its tensors contradict")
    return EmbeddingHeader(
        info=ImageInfo(original_size=(original_rows, original_columns), input_size=(input_rows, input_columns)),
        model_id=model_id,
        tensors=tuple(tensors),
        chunk_count=chunk_count,
        payload_bytes=payload_bytes,
    )


def decode_embedding(
    header: bytes, chunks: Sequence[bytes | None], expected_model_id: str | None = None
) -> StoredEmbedding:
    """Parse a stored value; CorruptEmbedding when it is damaged, incomplete, foreign or from another model."""
    parsed = parse_header(header)
    if expected_model_id is not None and parsed.model_id != expected_model_id:
        raise CorruptEmbedding(f"was made by model {parsed.model_id!r}, not {expected_model_id!r}")
    if len(chunks) != parsed.chunk_count or any(chunk is None for chunk in chunks):
        raise CorruptEmbedding(f"has {sum(c is not None for c in chunks)} of its {parsed.chunk_count} payload chunks")
    payload = b"".join(chunk for chunk in chunks if chunk is not None)
    if len(payload) != parsed.payload_bytes:
        raise CorruptEmbedding(f"has {len(payload)} payload bytes, expected {parsed.payload_bytes}")
    tensors = {}
    view = memoryview(payload)
    offset = 0
    for tensor in parsed.tensors:
        data = view[offset : offset + tensor.nbytes]
        offset += tensor.nbytes
        if zlib.crc32(data) != tensor.crc32:
            raise CorruptEmbedding(f"fails its checksum (tensor {tensor.name!r})")
        tensors[tensor.name] = np.frombuffer(data, dtype=f"<{np.dtype(tensor.dtype).str[1:]}").reshape(tensor.shape)
    return StoredEmbedding(tensors=tensors, info=parsed.info, model_id=parsed.model_id)
