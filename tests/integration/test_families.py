"""Every family through both services, several models in one deployment: one tritonserver serving a TinyViT
(MobileSAM's), a TinyViT at 256 (LiteMedSAM's test size), a SAM 2.1 Hiera and LiteMedSAM's real weights; one encoder
and one decoder serving all four; real Redis. Each answer equals its own family's oracle on the stored tensors
(DESIGN.md's numerical contract); keys of two models never mix; Redis memory per embedding is measured."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass

import numpy as np
import pytest
import redis.asyncio as aioredis

from service.cache.keys import parse_image_key
from service.client import AsyncSamClient, make_prompt
from service.decoder.server import DecoderServer, start_decoder_server
from service.encoder.server import EncoderServer, start_encoder
from service.local.redis_server import RedisServer
from service.runtime.checkpoint import CheckpointInfo
from service.runtime.image_file import decode_image
from service.triton.launcher import TritonServer
from tests.support.composites import composites
from tests.support.oracles import Oracle, oracle_for
from tests.support.reference import Reference, assert_matches_reference, make_test_image
from tests.support.servers import decoder_settings, encoder_settings, make_triton_server, read_stored, wait_for_health

pytestmark = pytest.mark.slow

MODEL_NAMES = ("mobile_test", "lite_test", "sam2_test", "lite_medsam")
# Measured with redis-server 7.0 (jemalloc): a SAM-family embedding in the 2 MiB size class with its few fields;
# SAM 2's three tensors (12 MiB: high_res_feats_0 stays float32) likewise without a size-class overhead.
SAM_EMBEDDING_MAX_BYTES = 2.05 * 2**20
SAM2_EMBEDDING_MAX_BYTES = 12.05 * 2**20


@dataclass
class Deployment:
    checkpoints: dict[str, CheckpointInfo]
    oracles: dict[str, Oracle]
    encoder: EncoderServer
    decoder: DecoderServer
    redis_url: str


@pytest.fixture(scope="module")
def served(
    family_checkpoint: Callable[[str], CheckpointInfo], lite_medsam_checkpoint: CheckpointInfo
) -> dict[str, CheckpointInfo]:
    return {
        "mobile_test": family_checkpoint("tinyvit_test_mobile"),
        "lite_test": family_checkpoint("tinyvit_test_lite"),
        "sam2_test": family_checkpoint("sam2.1_hiera_test"),
        "lite_medsam": lite_medsam_checkpoint,
    }


@pytest.fixture(scope="module")
def families_triton(served: dict[str, CheckpointInfo]) -> Iterator[TritonServer]:
    with make_triton_server(*served.values(), names=tuple(served)) as server:
        yield server


@pytest.fixture(scope="module")
async def deployment(
    served: dict[str, CheckpointInfo], families_triton: TritonServer, redis_server: RedisServer
) -> AsyncIterator[Deployment]:
    models = tuple(f"{name}={checkpoint.path}" for name, checkpoint in served.items())
    async with contextlib.AsyncExitStack() as running:  # stops whatever started, whatever fails after
        encoder = await start_encoder(encoder_settings(redis_server.url, families_triton.grpc_url, None, models=models))
        running.push_async_callback(encoder.stop, grace_seconds=1)
        first = next(iter(served.values()))
        decoder = await start_decoder_server(
            decoder_settings(first, redis_server.url, checkpoint=None, model_id=None, models=models)
        )
        running.push_async_callback(decoder.stop, grace_seconds=1)
        await wait_for_health(encoder.address, serving=True, timeout_seconds=120)
        oracles = {name: oracle_for(checkpoint) for name, checkpoint in served.items()}
        yield Deployment(served, oracles, encoder, decoder, redis_server.url)


async def _check_model(deployment: Deployment, name: str, image_bytes: bytes, boxes: list[tuple[float, ...]]) -> None:
    checkpoint = deployment.checkpoints[name]
    async with AsyncSamClient(deployment.encoder.address, deployment.decoder.target, model=name) as client:
        image = await client.embed(image_bytes)
        assert image.model == checkpoint.model_id and parse_image_key(image.image_key).model_id == checkpoint.model_id
        stored = await read_stored(deployment.redis_url, image.image_key, checkpoint.model_id)
        reference = Reference.of(deployment.oracles[name], decode_image(image_bytes), stored)
        rows, columns = image.original_size
        click = (columns * 0.45, rows * 0.55, 1)
        async with client.open_stream() as stream:
            answer = await stream.segment(
                image,
                [make_prompt(points=[click]), *(make_prompt(box=box) for box in boxes)],
                multimask_output=True,
                return_logits=True,
            )
    assert_matches_reference(
        answer.objects[0],
        reference,
        point_coords=np.array([click[:2]]),
        point_labels=np.array([1]),
        multimask_output=True,
    )
    for object_masks, box in zip(answer.objects[1:], boxes, strict=True):
        assert_matches_reference(object_masks, reference, box=np.array(box), multimask_output=True)


@pytest.mark.parametrize("name", ["mobile_test", "lite_test", "sam2_test"])
async def test_each_test_family_through_both_services_equals_its_oracle(deployment: Deployment, name: str) -> None:
    rgb, image_bytes = make_test_image(90, 120, seed=40)
    await _check_model(deployment, name, image_bytes, [(10.0, 12.0, 70.0, 80.0)])


async def test_lite_medsam_real_weights_through_both_services(deployment: Deployment) -> None:
    composite = composites()[0]
    await _check_model(deployment, "lite_medsam", composite.png, [composite.box])


async def test_keys_of_two_models_never_mix(deployment: Deployment, redis_server: RedisServer) -> None:
    """The same image under two models: two keys, two values, each answered by its own model; a key of a model the
    decoder does not serve is NOT_FOUND."""
    _, image_bytes = make_test_image(64, 80, seed=41)
    keys = {}
    for name in ("mobile_test", "sam2_test"):
        async with AsyncSamClient(deployment.encoder.address, model=name) as client:
            keys[name] = (await client.embed(image_bytes)).image_key
    assert len(set(keys.values())) == 2
    assert {parse_image_key(key).digest for key in keys.values()} == {parse_image_key(keys["mobile_test"]).digest}
    for name, key in keys.items():
        stored = await read_stored(redis_server.url, key, deployment.checkpoints[name].model_id)
        assert set(stored.tensors) == {spec.name for spec in deployment.checkpoints[name].arch.family.outputs}
    async with AsyncSamClient(decoder_target=deployment.decoder.target) as client, client.open_stream() as stream:
        for key in keys.values():
            answer = await stream.segment(key, [make_prompt(points=[(20, 20, 1)])])
            assert len(answer.objects) == 1
        foreign = keys["mobile_test"].replace(
            deployment.checkpoints["mobile_test"].model_id, "sam-vit_h-0000000000000000"
        )
        missing = await stream.segment(foreign, [make_prompt(points=[(20, 20, 1)])], raise_on_error=False)
    assert missing.error.code == 5 and missing.error.field == "image_key"


async def test_redis_memory_per_embedding(deployment: Deployment, redis_server: RedisServer) -> None:
    """MEMORY USAGE of one embedding: a SAM-family value stays in the 2 MiB size class (2.5 MiB with one string)."""
    _, image_bytes = make_test_image(60, 60, seed=42)
    usage = {}
    client = aioredis.from_url(redis_server.url)
    try:
        for name in ("lite_medsam", "sam2_test"):
            async with AsyncSamClient(deployment.encoder.address, model=name) as sam_client:
                key = (await sam_client.embed(image_bytes)).image_key
            usage[name] = int(await client.memory_usage(key, samples=0))
    finally:
        await client.aclose()
    assert 2 * 2**20 < usage["lite_medsam"] <= SAM_EMBEDDING_MAX_BYTES, usage
    assert 12 * 2**20 < usage["sam2_test"] <= SAM2_EMBEDDING_MAX_BYTES, usage
