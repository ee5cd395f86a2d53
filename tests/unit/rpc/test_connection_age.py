"""Server and client channel options for streams that spread over replicas and move off old ones."""

from __future__ import annotations

from service.rpc.channel import client_channel_options
from service.rpc.server import connection_age_options


def test_connection_age_options_are_set_only_with_an_age() -> None:
    assert connection_age_options(0, 60) == []
    assert connection_age_options(300, 30.5) == [
        ("grpc.max_connection_age_ms", 300_000),
        ("grpc.max_connection_age_grace_ms", 30_500),
    ]


def test_clients_round_robin_over_every_resolved_address() -> None:
    options = dict(client_channel_options())
    assert options["grpc.lb_policy_name"] == "round_robin"
    assert options["grpc.max_receive_message_length"] == 64 << 20
