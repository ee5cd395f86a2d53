"""Building and running a `grpc.aio` server: health, reflection, message limits, metrics, graceful stop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from service._proto.sam.v1 import sam_pb2
from service.rpc.channel import DEFAULT_MAX_MESSAGE_BYTES, channel_options
from service.rpc.interceptors import RpcMetricsInterceptor, create_rpc_series

log = logging.getLogger(__name__)


@dataclass
class RunningServer:
    """A started server with its health servicer, the port it is bound to and the task keeping health true."""

    server: grpc.aio.Server
    health: health.aio.HealthServicer
    port: int
    service_names: tuple[str, ...]
    readiness_task: asyncio.Task[None] | None = field(default=None)

    async def set_serving(self, serving: bool) -> None:
        status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        for name in ("", *self.service_names):
            await self.health.set(name, status)

    def follow_readiness(self, is_ready: Callable[[], Awaitable[bool]], interval_seconds: float) -> None:
        """From now until stop(), keep gRPC health equal to `is_ready()` (the dependencies answer)."""
        self.readiness_task = asyncio.create_task(_follow_readiness(self, is_ready, interval_seconds))

    async def stop(self, grace_seconds: float = 5.0) -> None:
        if self.readiness_task is not None:
            self.readiness_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.readiness_task
        # NOT_SERVING for every service from now on, so load balancers stop sending while calls drain.
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace_seconds)


async def start_server(
    add_servicers: Callable[[grpc.aio.Server], None],
    service_names: Sequence[str],
    host: str,
    port: int,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    max_connection_age_seconds: float = 0.0,
    max_connection_age_grace_seconds: float = 60.0,
) -> RunningServer:
    """Build and start a server: our servicers, health (NOT_SERVING until told), reflection, RPC metrics.

    With `max_connection_age_seconds`, each connection is told to go away (GOAWAY) after about that long, and
    closed `max_connection_age_grace_seconds` later with whatever still runs on it: clients connect again,
    resolve the service's name again and land on any replica, new ones included (a Kubernetes Service balances
    connections, not calls, and a Segment stream lives as long as its user's session).
    """
    options = channel_options(max_message_bytes) + connection_age_options(
        max_connection_age_seconds, max_connection_age_grace_seconds
    )
    server = grpc.aio.server(interceptors=[RpcMetricsInterceptor()], options=options)
    for name in service_names:
        create_rpc_series(name, sam_pb2.DESCRIPTOR.pool)
    add_servicers(server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (*service_names, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME), server
    )
    bound_port = server.add_insecure_port(f"{host}:{port}")
    if bound_port == 0:
        raise OSError(f"cannot bind {host}:{port}")
    await server.start()
    running = RunningServer(server, health_servicer, bound_port, tuple(service_names))
    await running.set_serving(False)
    return running


def connection_age_options(max_age_seconds: float, grace_seconds: float) -> list[tuple[str, int]]:
    """gRPC core's server options for a maximum connection age (none when `max_age_seconds` is 0)."""
    if max_age_seconds <= 0:
        return []
    return [
        ("grpc.max_connection_age_ms", max(1, round(max_age_seconds * 1000))),
        ("grpc.max_connection_age_grace_ms", max(0, round(grace_seconds * 1000))),
    ]


async def _follow_readiness(
    running: RunningServer, is_ready: Callable[[], Awaitable[bool]], interval_seconds: float
) -> None:
    """Keep gRPC health equal to `is_ready()`, both ways, until cancelled."""
    serving: bool | None = None
    while True:
        ready = await is_ready()
        if ready != serving:
            log.info(
                "dependencies %s: health %s", "ready" if ready else "not ready", "SERVING" if ready else "NOT_SERVING"
            )
            await running.set_serving(ready)
            serving = ready
        await asyncio.sleep(interval_seconds)


async def wait_for_stop_signal() -> None:
    """Return on SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signal_number in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signal_number, stop.set)
    await stop.wait()
    log.info("stop signal received, draining")


SERVICE_NAMES = {name: sam_pb2.DESCRIPTOR.services_by_name[name].full_name for name in ("Encoder", "Decoder")}
