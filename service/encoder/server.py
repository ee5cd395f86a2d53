"""Wiring: Redis, Triton, the Embedder and the gRPC server with health that follows both dependencies."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from service.cache.store import EmbeddingStore, connect_redis
from service.encoder.embed import Embedder
from service.encoder.get_embedding import EmbeddingReader
from service.encoder.settings import EncoderSettings
from service.metrics import start_metrics_server
from service.model_identity import ModelIdentity, arch_of_model_id
from service.model_specs import model_specs
from service.rpc.encoder_servicer import add_encoder_servicer
from service.rpc.server import SERVICE_NAMES, RunningServer, exposure_of, start_server, wait_for_stop_signal
from service.runtime.families.catalog import get_arch
from service.security.key_secret import read_key_secret
from service.settings import describe_exposure, describe_settings
from service.triton.client import TritonEncoderClient

log = logging.getLogger(__name__)


def resolve_models(settings: EncoderSettings) -> list[ModelIdentity]:
    """The served models' identities, each named by its Triton model: from --model-id with --arch when given (no
    checkpoint read), else from the checkpoint (read and hashed)."""
    from service.runtime.checkpoint import inspect_checkpoint

    identities = []
    for spec in model_specs(settings, settings.triton_model):
        if spec.model_id and (spec.arch or spec.checkpoint is None):
            arch = get_arch(spec.arch or arch_of_model_id(spec.model_id)).name
            identities.append(ModelIdentity(spec.model_id, arch, spec.name))
            continue
        if spec.checkpoint is None:
            raise ValueError(f"model {spec.name!r} has no checkpoint")
        info = inspect_checkpoint(spec.checkpoint, spec.arch, spec.model_id)
        identities.append(ModelIdentity(info.model_id, info.arch.name, spec.name))
    return identities


async def dependencies_ready(store: EmbeddingStore, triton: TritonEncoderClient, models: list[ModelIdentity]) -> bool:
    """True when Triton reports every served model READY and Redis answers."""
    checks = await asyncio.gather(*(triton.is_model_ready(model.name) for model in models), store.ping())
    return all(checks)


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


async def start_encoder(settings: EncoderSettings, models: list[ModelIdentity] | None = None) -> EncoderServer:
    """Build and start the encoder (one function for the CLI and the tests); health starts NOT_SERVING."""
    if models is None:
        models = await asyncio.to_thread(resolve_models, settings)
    exposure = exposure_of(settings)
    key_secret = read_key_secret(settings.key_secret_file) if settings.key_secret_file is not None else None
    store = EmbeddingStore(
        connect_redis(settings.redis_url, settings.redis_password, ca_file=settings.redis_tls_ca_file),
        settings.embedding_ttl_seconds,
    )
    triton = TritonEncoderClient(settings.triton_url)
    embedder = Embedder(
        store,
        triton,
        models,
        settings.image_limits,
        triton_timeout_seconds=settings.triton_timeout_seconds,
        single_flight_wait_seconds=settings.single_flight_wait_seconds,
        key_secret=key_secret,
    )
    reader = EmbeddingReader(store, [model.model_id for model in models])
    running = await start_server(
        lambda server: add_encoder_servicer(server, embedder, reader),
        [SERVICE_NAMES["Encoder"]],
        settings.host,
        settings.port,
        exposure=exposure,
        max_connection_age_seconds=settings.max_connection_age_seconds,
        max_connection_age_grace_seconds=settings.max_connection_age_grace_seconds,
    )
    running.follow_readiness(lambda: dependencies_ready(store, triton, models), settings.health_check_seconds)
    return EncoderServer(running, embedder, settings.host)


async def serve(settings: EncoderSettings) -> None:
    """Run the encoder until SIGTERM or SIGINT."""
    log.info("encoder settings:\n%s", describe_settings(settings))
    start_metrics_server(settings.metrics_port, settings.metrics_host)
    server = await start_encoder(settings)
    served = ", ".join(f"{model.name} ({model.model_id})" for model in server.embedder.models)
    log.info("encoder serving %s on port %d (%s)", served, server.port, describe_exposure(settings))
    await wait_for_stop_signal()
    await server.stop()
