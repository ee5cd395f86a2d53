"""`samsvc health` (the container health check) against a real grpc.aio server with the health service."""

from __future__ import annotations

import argparse
import asyncio

from service.client import health_cli
from service.local.ports import free_port
from service.rpc.server import SERVICE_NAMES, start_server


def _run_check(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    health_cli.register(parser.add_subparsers())
    args = parser.parse_args(["health", *argv])
    return int(args.func(args))


async def test_health_exits_zero_only_while_serving() -> None:
    running = await start_server(lambda server: None, [SERVICE_NAMES["Encoder"]], "127.0.0.1", free_port())
    address = f"127.0.0.1:{running.port}"
    try:
        # The sync gRPC call runs in a thread so the aio server on this loop can answer it.
        assert await asyncio.to_thread(_run_check, "--address", address) == 1
        await running.set_serving(True)
        assert await asyncio.to_thread(_run_check, "--address", address) == 0
        assert await asyncio.to_thread(_run_check, "--address", address, "--service", SERVICE_NAMES["Encoder"]) == 0
        assert await asyncio.to_thread(_run_check, "--address", address, "--service", "sam.v1.Nope") == 1
    finally:
        await running.stop(0)


def test_health_fails_when_nothing_listens() -> None:
    assert _run_check("--address", f"127.0.0.1:{free_port()}", "--timeout-seconds", "0.5") == 1


def test_default_addresses_follow_the_port_setting() -> None:
    assert health_cli.default_addresses({"SAMSVC_PORT": "6000"}) == ["127.0.0.1:6000"]
    assert health_cli.default_addresses({}) == ["127.0.0.1:50051", "127.0.0.1:50052"]
    # A service serving TLS answers plaintext health on its health port: that one is asked first.
    assert health_cli.default_addresses({"SAMSVC_PORT": "6000", "SAMSVC_HEALTH_PORT": "6100"}) == ["127.0.0.1:6100"]
    assert health_cli.default_addresses({"SAMSVC_PORT": "6000", "SAMSVC_HEALTH_PORT": "0"}) == ["127.0.0.1:6000"]
