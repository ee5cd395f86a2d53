"""Channel options shared by servers and clients, so message limits match on both ends."""

from __future__ import annotations

from typing import Final

# Images and embeddings exceed gRPC's 4 MiB default: a float32 embedding alone is exactly 4 MiB.
DEFAULT_MAX_MESSAGE_BYTES: Final = 64 << 20


def channel_options(max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> list[tuple[str, int]]:
    """Options for both servers and client channels."""
    return [
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.max_receive_message_length", max_message_bytes),
    ]
