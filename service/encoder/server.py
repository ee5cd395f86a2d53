"""Wiring: Redis, Triton, the Embedder and the gRPC server with health that follows both dependencies."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from service.cache.store import EmbeddingStore, connect_redis
from service.encoder.embed import Embedder
from service.encoder.settings import EncoderSettings
from service.metrics import start_metrics_server
from service.model_identity import ModelIdentity
from service.rpc.encoder_servicer import add_encoder_servicer
from service.rpc.server import SERVICE_NAMES, RunningServer, start_server, wait_for_stop_signal
from service.settings import describe_settings
from service.triton.client import TritonEncoderClient

log = logging.getLogger(__name__)


def resolve_model_identity(settings: EncoderSettings) -> ModelIdentity:
    """--model-id when given (no checkpoint needed), else the id of --checkpoint (read and hashed)."""
    if settings.model_id:
        return ModelIdentity.of_model_id(settings.model_id, settings.arch)
    if settings.checkpoint is None:
        raise ValueError("the encoder needs --model-id or --checkpoint (SAMSVC_MODEL_ID / SAMSVC_CHECKPOINT)")
    from service.runtime.checkpoint import inspect_checkpoint

    info = inspect_checkpoint(settings.checkpoint, settings.arch)
    return info.identity


async def dependencies_ready(store: EmbeddingStore, triton: TritonEncoderClient) -> bool:
    """True when Triton reports the model READY and Redis answers."""
    triton_ready, redis_ready = await asyncio.gather(triton.is_model_ready(), store.ping())
    return triton_ready and redis_ready


@dataclass
class EncoderServer:
    """A started encoder: `address` is host:port for clients; stop() drains and closes everything."""

    running: RunningServer
    embedder: Embedder
    host: str

    @property
    def port(self) -> int:
        return self.running.port

    @property
    def address(self) -> str:
        return f"{'127.0.0.1' if self.host in ('0.0.0.0', '') else self.host}:{self.port}"

    async def stop(self, grace_seconds: float = 5.0) -> None:
        await self.running.stop(grace_seconds)
        await self.embedder.triton.close()
        await self.embedder.store.close()


async def start_encoder(settings: EncoderSettings, model: ModelIdentity | None = None) -> EncoderServer:
    """Build and start the encoder (one function for the CLI and the tests); health starts NOT_SERVING."""
    if model is None:
        model = await asyncio.to_thread(resolve_model_identity, settings)
    store = EmbeddingStore(connect_redis(settings.redis_url, settings.redis_password), settings.embedding_ttl_seconds)
    triton = TritonEncoderClient(settings.triton_url, settings.triton_model)
    embedder = Embedder(
        store,
        triton,
        model,
        settings.image_limits,
        triton_timeout_seconds=settings.triton_timeout_seconds,
        single_flight_wait_seconds=settings.single_flight_wait_seconds,
    )
    running = await start_server(
        lambda server: add_encoder_servicer(server, embedder),
        [SERVICE_NAMES["Encoder"]],
        settings.host,
        settings.port,
        max_connection_age_seconds=settings.max_connection_age_seconds,
        max_connection_age_grace_seconds=settings.max_connection_age_grace_seconds,
    )
    running.follow_readiness(lambda: dependencies_ready(store, triton), settings.health_check_seconds)
    return EncoderServer(running, embedder, settings.host)


async def serve(settings: EncoderSettings) -> None:
    """Run the encoder until SIGTERM or SIGINT."""
    log.info("encoder settings:\n%s", describe_settings(settings))
    start_metrics_server(settings.metrics_port, settings.metrics_host)
    server = await start_encoder(settings)
    log.info("encoder serving model %s on port %d", server.embedder.model.model_id, server.port)
    await wait_for_stop_signal()
    await server.stop()
