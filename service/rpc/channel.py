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


def client_channel_options(max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> list[tuple[str, int | str]]:
    """Options for the clients' channels: the message limits, and round-robin over every address the target
    resolves to. With a `dns:///` target naming a headless Kubernetes Service (one address per ready pod), each
    new stream goes to the next replica instead of all of them to the first; the name is resolved again when a
    connection closes (a replica gone, or its maximum connection age reached), so new replicas are found too.
    With one address it behaves as gRPC's default (pick_first)."""
    return [*channel_options(max_message_bytes), ("grpc.lb_policy_name", "round_robin")]
