"""Building and running a `grpc.aio` server: health, opt-in reflection, bearer tokens, TLS, message limits, metrics,
a plaintext health-only port for probes, graceful stop."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from service._proto.sam.v1 import sam_pb2
from service.rpc.auth import AuthInterceptor
from service.rpc.channel import DEFAULT_MAX_MESSAGE_BYTES, channel_options
from service.rpc.interceptors import ReadableRequestsInterceptor, RpcMetricsInterceptor, create_rpc_series
from service.rpc.tls import server_credentials
from service.security.tokens import BearerTokens
from service.settings import ServiceSettings

log = logging.getLogger(__name__)

# How long past its grace a server's stop waits for cancelled calls to end.
STOP_SLACK_SECONDS = 5.0


@dataclass(frozen=True)
class Exposure:
    """How a server is reached and who may call it. The defaults: plaintext, no token asked, no reflection."""

    tokens: BearerTokens | None = None  # None: no token asked
    credentials: grpc.ServerCredentials | None = None  # None: plaintext
    reflection: bool = False
    health_port: int | None = None  # a second, plaintext port serving health only (0: a free one); None: none


def exposure_of(settings: ServiceSettings) -> Exposure:
    """The exposure the settings ask for; ValueError for files that cannot be read or do not go together."""
    if settings.tls_client_ca_file is not None and settings.tls_cert_file is None:
        raise ValueError("--tls-client-ca-file needs --tls-cert-file and --tls-key-file (mutual TLS is TLS first)")
    credentials = None
    if settings.tls_cert_file is not None:
        credentials = server_credentials(settings.tls_cert_file, settings.tls_key_file, settings.tls_client_ca_file)
    tokens = BearerTokens(settings.auth_tokens_file) if settings.auth_tokens_file is not None else None
    return Exposure(tokens, credentials, settings.reflection, settings.health_port or None)


@dataclass
class RunningServer:
    """A started server with its health servicer, the ports it is bound to and the task keeping health true."""

    server: grpc.aio.Server
    health: health.aio.HealthServicer
    port: int
    service_names: tuple[str, ...]
    readiness_task: asyncio.Task[None] | None = field(default=None)
    health_server: grpc.aio.Server | None = None  # the plaintext health-only port's server
    health_port: int | None = None

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
            # Waited for at most the slack: a check stuck in its dependency's client must not hold the stop.
            await asyncio.wait({self.readiness_task}, timeout=STOP_SLACK_SECONDS)
        # NOT_SERVING for every service from now on, so load balancers stop sending while calls drain.
        await self.health.enter_graceful_shutdown()
        # grpc.aio cancels the calls left after the grace and waits for their handlers; a handler that does not end
        # must not hold the process (or a pod's termination) forever.
        try:
            await asyncio.wait_for(self.server.stop(grace_seconds), grace_seconds + STOP_SLACK_SECONDS)
        except TimeoutError:
            log.warning("calls still running %.0f s after the grace period; stopping without them", STOP_SLACK_SECONDS)
        if self.health_server is not None:
            await self.health_server.stop(0)


async def start_server(
    add_servicers: Callable[[grpc.aio.Server], None],
    service_names: Sequence[str],
    host: str,
    port: int,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    exposure: Exposure | None = None,
    max_connection_age_seconds: float = 0.0,
    max_connection_age_grace_seconds: float = 60.0,
) -> RunningServer:
    """Build and start a server: our servicers, health (NOT_SERVING until told), RPC metrics, and as `exposure`
    says: bearer tokens, TLS, reflection, a health-only port.

    With `max_connection_age_seconds`, each connection is told to go away (GOAWAY) after about that long, and
    closed `max_connection_age_grace_seconds` later with whatever still runs on it: clients connect again,
    resolve the service's name again and land on any replica, new ones included (a Kubernetes Service balances
    connections, not calls, and a Segment stream lives as long as its user's session).
    """
    exposure = exposure or Exposure()
    # Outermost first: metrics see every call's final code; the token check comes before any request is parsed.
    interceptors: list[grpc.aio.ServerInterceptor] = [RpcMetricsInterceptor()]
    if exposure.tokens is not None:
        interceptors.append(AuthInterceptor(exposure.tokens))
    interceptors.append(ReadableRequestsInterceptor())
    options = channel_options(max_message_bytes) + connection_age_options(
        max_connection_age_seconds, max_connection_age_grace_seconds
    )
    server = grpc.aio.server(interceptors=interceptors, options=options)
    for name in service_names:
        create_rpc_series(name, sam_pb2.DESCRIPTOR.pool)
    add_servicers(server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    if exposure.reflection:
        reflection.enable_server_reflection(
            (*service_names, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME),
            server,
        )
    address = f"{host}:{port}"
    if exposure.credentials is not None:
        bound_port = server.add_secure_port(address, exposure.credentials)
    else:
        bound_port = server.add_insecure_port(address)
    if bound_port == 0:
        raise OSError(f"cannot bind {address}")
    health_server, health_port = None, None
    if exposure.health_port is not None:
        # Its own server: a port of the main one would serve every service there, in plaintext.
        health_server = grpc.aio.server()
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, health_server)
        health_port = health_server.add_insecure_port(f"{host}:{exposure.health_port}")
        if health_port == 0:
            raise OSError(f"cannot bind the health port {host}:{exposure.health_port}")
        await health_server.start()
    await server.start()
    running = RunningServer(
        server, health_servicer, bound_port, tuple(service_names), health_server=health_server, health_port=health_port
    )
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
