"""Wiring of the decoder service: model, Redis, LRU, thread pool and the gRPC server, for the CLI and tests."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from service.cache.store import EmbeddingStore, connect_redis
from service.decoder.embedding_lru import EmbeddingLru
from service.decoder.embedding_source import EmbeddingSource
from service.decoder.segment import Segmenter
from service.decoder.settings import DecoderSettings
from service.metrics import start_metrics_server
from service.model_specs import model_specs
from service.rpc.decoder_servicer import add_decoder_servicer
from service.rpc.server import SERVICE_NAMES, RunningServer, exposure_of, start_server, wait_for_stop_signal
from service.runtime.checkpoint import inspect_checkpoint
from service.runtime.prompt_decoder import PromptDecoderRole
from service.runtime.prompts import PromptLimits
from service.settings import describe_exposure, describe_settings

log = logging.getLogger(__name__)


def load_decoder_roles(settings: DecoderSettings) -> list[PromptDecoderRole]:
    """The prompt encoder and mask decoder of every served model; each model id from --model-id or its weights."""
    roles = []
    for spec in model_specs(settings, "default"):
        if spec.checkpoint is None:
            raise ValueError(f"the decoder needs the checkpoint of model {spec.name!r} (--model or --checkpoint)")
        checkpoint = inspect_checkpoint(spec.checkpoint, spec.arch, spec.model_id)
        roles.append(PromptDecoderRole(checkpoint, device=settings.device))
    return roles


@dataclass
class DecoderServer:
    """A running decoder: its gRPC server and what it owns, for tests to look into and stop."""

    running: RunningServer
    source: EmbeddingSource
    executor: ThreadPoolExecutor

    @property
    def port(self) -> int:
        return self.running.port

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.running.port}"

    @property
    def model_id(self) -> str:
        """The default (first) served model."""
        return self.source.model_ids[0]

    async def stop(self, grace_seconds: float = 5.0) -> None:
        await self.running.stop(grace_seconds)
        await self.source.store.close()
        self.executor.shutdown(wait=False, cancel_futures=True)


async def start_decoder_server(
    settings: DecoderSettings, decoder_roles: Sequence[PromptDecoderRole] | None = None
) -> DecoderServer:
    """Start serving `sam.v1.Decoder`; health is SERVING while Redis answers. `decoder_roles` skips loading."""
    exposure = exposure_of(settings)
    roles = list(decoder_roles) if decoder_roles is not None else await asyncio.to_thread(load_decoder_roles, settings)
    decoders = {role.checkpoint.model_id: role for role in roles}
    store = EmbeddingStore(
        connect_redis(settings.redis_url, settings.redis_password, ca_file=settings.redis_tls_ca_file), ttl_seconds=0
    )
    source = EmbeddingSource(store, EmbeddingLru(settings.lru_bytes), tuple(decoders))
    executor = ThreadPoolExecutor(max_workers=settings.decode_workers, thread_name_prefix="decode")
    limits = PromptLimits(max_points=settings.max_points, max_objects=settings.max_objects)
    segmenter = Segmenter(source, decoders, limits, executor)
    running = await start_server(
        lambda server: add_decoder_servicer(server, segmenter),
        [SERVICE_NAMES["Decoder"]],
        settings.host,
        settings.port,
        exposure=exposure,
        max_connection_age_seconds=settings.max_connection_age_seconds,
        max_connection_age_grace_seconds=settings.max_connection_age_grace_seconds,
    )
    # Requests go on being answered while Redis is down (LRU hits work; misses end UNAVAILABLE), but health
    # says NOT_SERVING so that load balancers prefer replicas that can reach it.
    running.follow_readiness(store.ping, settings.health_check_seconds)
    log.info(
        "decoder serving %s on %s:%d (%s)",
        ", ".join(decoders),
        settings.host,
        running.port,
        describe_exposure(settings),
    )
    return DecoderServer(running=running, source=source, executor=executor)


async def serve(settings: DecoderSettings) -> None:
    """Run until SIGTERM/SIGINT, then drain."""
    log.info("decoder settings:\n%s", describe_settings(settings))
    start_metrics_server(settings.metrics_port, settings.metrics_host)
    server = await start_decoder_server(settings)
    await wait_for_stop_signal()
    await server.stop()
