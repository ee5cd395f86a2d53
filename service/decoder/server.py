"""Wiring of the decoder service: model, Redis, LRU, thread pool and the gRPC server, for the CLI and tests."""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from service.byte_lru import ByteLru
from service.cache.store import EmbeddingStore, connect_redis
from service.decoder.embedding_lru import EmbeddingLru
from service.decoder.embedding_source import EmbeddingSource
from service.decoder.engine.limits import CostLimits
from service.decoder.engine.scheduler import DecodeEngine
from service.decoder.everything import EverythingLimits, EverythingSegmenter
from service.decoder.metrics import IMAGE_SIDE_BYTES, IMAGE_SIDE_REQUESTS
from service.decoder.segment import Segmenter
from service.decoder.settings import DecoderSettings
from service.metrics import start_metrics_server
from service.model_specs import model_specs
from service.rpc.channel import DEFAULT_MAX_MESSAGE_BYTES
from service.rpc.decoder_servicer import add_decoder_servicer
from service.rpc.server import SERVICE_NAMES, RunningServer, exposure_of, start_server, wait_for_stop_signal
from service.runtime.checkpoint import inspect_checkpoint
from service.runtime.decoder_backend import DecoderBackend, TorchDecoderBackend
from service.runtime.onnx.backend import ImageSide, OnnxDecoderBackend, graph_paths
from service.runtime.onnx.backend import supports as onnx_supports
from service.runtime.prompt_decoder import PromptDecoderRole
from service.runtime.prompts import PromptLimits
from service.settings import describe_exposure, describe_settings

log = logging.getLogger(__name__)

# Where graphs are exported when --decoder-graph-dir is read-only and lacks one (an emptyDir at /tmp in Kubernetes).
FALLBACK_GRAPH_DIR = Path(tempfile.gettempdir()) / "samsvc-decoder-graphs"
# Room in a response for everything but its masks (ids, the key, message framing) under the message limit.
ANSWER_HEADROOM_BYTES = 64 << 10


def make_backends(settings: DecoderSettings, roles: Sequence[PromptDecoderRole]) -> dict[str, DecoderBackend]:
    """The decoder backend of each served model by model id: onnx where the family has it (unless
    --decoder-backend torch), torch otherwise."""
    backends: dict[str, DecoderBackend] = {}
    image_sides: ByteLru[ImageSide] = ByteLru(settings.image_side_bytes, IMAGE_SIDE_BYTES.set, count_image_side)
    for role in roles:
        model_id = role.checkpoint.model_id
        if settings.decoder_backend == "onnx" and onnx_supports(role.checkpoint):
            files = graph_paths(role, settings.decoder_graph_dir, FALLBACK_GRAPH_DIR)
            backends[model_id] = OnnxDecoderBackend(
                role, files, threads=lone_decode_threads(settings), device=settings.device, image_sides=image_sides
            )
        else:
            if settings.decoder_backend == "onnx":
                log.warning("%s (%s) has no onnx decoder: served with torch", model_id, role.arch.name)
            backends[model_id] = TorchDecoderBackend(role)
    return backends


def count_image_side(hit: bool) -> None:
    IMAGE_SIDE_REQUESTS.labels("hit" if hit else "miss").inc()


def process_cores() -> int:
    """The cores this process may run on."""
    return max(1, len(os.sched_getaffinity(0)))


def lone_decode_threads(settings: DecoderSettings) -> int:
    """ONNX Runtime threads of a decode running alone: --decode-threads, or every core for 0."""
    return settings.decode_threads or process_cores()


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
    engine: DecodeEngine
    backends: dict[str, DecoderBackend]

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
        await asyncio.to_thread(self.engine.close)


async def start_decoder_server(
    settings: DecoderSettings, decoder_roles: Sequence[PromptDecoderRole] | None = None
) -> DecoderServer:
    """Start serving `sam.v1.Decoder`; health is SERVING while Redis answers. `decoder_roles` skips loading."""
    exposure = exposure_of(settings)
    roles = list(decoder_roles) if decoder_roles is not None else await asyncio.to_thread(load_decoder_roles, settings)
    backends = await asyncio.to_thread(make_backends, settings, roles)
    store = EmbeddingStore(
        connect_redis(settings.redis_url, settings.redis_password, ca_file=settings.redis_tls_ca_file), ttl_seconds=0
    )
    source = EmbeddingSource(store, EmbeddingLru(settings.lru_bytes), tuple(backends))
    engine = DecodeEngine(settings.decode_workers, settings.decode_max_batch, settings.decode_piece_pixels)
    limits = PromptLimits(max_points=settings.max_points, max_objects=settings.max_objects)
    costs = CostLimits(settings.max_mask_pixels, DEFAULT_MAX_MESSAGE_BYTES - ANSWER_HEADROOM_BYTES)
    segmenter = Segmenter(source, backends, limits, costs, engine)
    everything = EverythingSegmenter(source, backends, EverythingLimits(settings.max_everything_mask_pixels), engine)
    running = await start_server(
        lambda server: add_decoder_servicer(server, segmenter, everything),
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
        ", ".join(f"{model_id} ({backend.name})" for model_id, backend in backends.items()),
        settings.host,
        running.port,
        describe_exposure(settings),
    )
    return DecoderServer(running=running, source=source, engine=engine, backends=backends)


async def serve(settings: DecoderSettings) -> None:
    """Run until SIGTERM/SIGINT, then drain."""
    log.info("decoder settings:\n%s", describe_settings(settings))
    start_metrics_server(settings.metrics_port, settings.metrics_host)
    if settings.decode_workers > 1 and settings.decoder_backend == "onnx":
        # Each worker upscales masks with torch: a share of the cores each, so that the workers do not fight over them
        # (set here, for the process, not in start_decoder_server: tests run servers inside their own process). The
        # torch backend keeps every core: its decodes are torch too (one thread each made them 1.8x slower).
        torch.set_num_threads(max(1, process_cores() // settings.decode_workers))
    server = await start_decoder_server(settings)
    await wait_for_stop_signal()
    await server.stop()
