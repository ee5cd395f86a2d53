"""Many streams at once, order within a stream, cancellation, and a decoder restart that loses nothing."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from prometheus_client import REGISTRY

from service._proto.sam.v1 import sam_pb2
from service.client import AsyncSamClient, logits_of, make_prompt, make_request
from service.decoder.server import DecoderServer, start_decoder_server
from service.local.redis_server import RedisServer
from service.runtime.checkpoint import CheckpointInfo
from service.runtime.prompt_decoder import PromptDecoderRole
from tests.numerical_contract import LOGITS_ATOL, SCORES_ATOL
from tests.support.polling import wait_until_async
from tests.support.reference import Reference, StoredImage, StoreImage, assert_matches_reference
from tests.support.servers import decoder_settings

pytestmark = pytest.mark.slow

STREAMS = 8
PROMPTS_PER_STREAM = 20


def _click(stream: int, index: int) -> tuple[float, float, int]:
    """Twenty clicks on a 48 x 64 image, in a different order on every stream (so order mix-ups show), while the
    reference runs only once per distinct prompt."""
    position = (stream * 7 + index) % PROMPTS_PER_STREAM
    return (float(position * 3 + 2), float((position * 11) % 48), 1)


async def _run_stream(client: AsyncSamClient, image: StoredImage, stream_number: int) -> list[sam_pb2.SegmentResponse]:
    """Write all requests first, then read: the server gets a full pipeline and must still answer in order."""
    stream = client.open_stream(timeout_seconds=120)
    for index in range(PROMPTS_PER_STREAM):
        request = make_request(
            image.image_key,
            [make_prompt(points=[_click(stream_number, index)])],
            multimask_output=index % 2 == 0,
            mask_format=sam_pb2.MASK_FORMAT_NONE,
            return_logits=True,
            request_id=f"{stream_number}-{index}",
        )
        await stream.call.write(request)
    await stream.call.done_writing()
    answers = [await stream.call.read() for _ in range(PROMPTS_PER_STREAM)]
    await stream.close()
    return answers


async def test_eight_streams_of_twenty_prompts_at_once(decoder_client: AsyncSamClient, store_image: StoreImage) -> None:
    image, reference = await store_image(48, 64, seed=8)
    before = REGISTRY.get_sample_value("sam_decoder_prompts_total") or 0.0
    results = await asyncio.wait_for(
        asyncio.gather(*(_run_stream(decoder_client, image, number) for number in range(STREAMS))), timeout=240
    )
    assert REGISTRY.get_sample_value("sam_decoder_prompts_total") == before + STREAMS * PROMPTS_PER_STREAM
    references: dict[tuple[tuple[float, float, int], bool], tuple[np.ndarray, np.ndarray]] = {}
    for stream_number, answers in enumerate(results):
        assert [answer.request_id for answer in answers] == [
            f"{stream_number}-{index}" for index in range(PROMPTS_PER_STREAM)
        ]
        for index, answer in enumerate(answers):
            assert not answer.HasField("error"), answer.error
            prompt = (_click(stream_number, index), index % 2 == 0)
            if prompt not in references:
                references[prompt] = _reference_answer(reference, *prompt)
            _assert_equals(answer, *references[prompt])


def _reference_answer(
    reference: Reference, click: tuple[float, float, int], multimask: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Scores and low-res logits of SamPredictor on the float16-rounded embedding."""
    _, scores, low_res = reference.predict(
        reference.rounded,
        point_coords=np.array([click[:2]]),
        point_labels=np.array([click[2]]),
        multimask_output=multimask,
    )
    return scores, low_res


def _assert_equals(answer: sam_pb2.SegmentResponse, scores: np.ndarray, low_res: np.ndarray) -> None:
    object_masks = answer.objects[0]
    np.testing.assert_allclose([mask.score for mask in object_masks.masks], scores, atol=SCORES_ATOL)
    np.testing.assert_allclose(logits_of(object_masks), low_res, atol=LOGITS_ATOL)


async def test_a_restarted_decoder_reloads_the_embedding_from_redis(
    tiny_checkpoint: CheckpointInfo,
    redis_server: RedisServer,
    decoder_role: PromptDecoderRole,
    store_image: StoreImage,
) -> None:
    image, reference = await store_image(48, 64, seed=9)
    click = (30.0, 20.0, 1)
    request = make_request(image.image_key, [make_prompt(points=[click])], multimask_output=True, return_logits=True)

    async def ask(server: DecoderServer) -> sam_pb2.SegmentResponse:
        async with AsyncSamClient(decoder_target=server.target) as client, client.open_stream() as stream:
            return await stream.exchange(request)

    first_server = await start_decoder_server(decoder_settings(tiny_checkpoint, redis_server.url), [decoder_role])
    try:
        first = await ask(first_server)
        assert first_server.source.lru.misses == 1 and image.image_key in first_server.source.lru
    finally:
        await first_server.stop(grace_seconds=1)
    found_before = REGISTRY.get_sample_value("sam_decoder_redis_fetches_total", {"result": "found"}) or 0.0
    second_server = await start_decoder_server(decoder_settings(tiny_checkpoint, redis_server.url), [decoder_role])
    try:
        second = await ask(second_server)
        again = await ask(second_server)
    finally:
        await second_server.stop(grace_seconds=1)
    assert REGISTRY.get_sample_value("sam_decoder_redis_fetches_total", {"result": "found"}) == found_before + 1
    assert (second_server.source.lru.misses, second_server.source.lru.hits) == (1, 1)
    assert second.objects == first.objects == again.objects
    _assert_equals(second, *_reference_answer(reference, click, True))


async def test_a_cancelled_stream_ends_its_work(
    decoder_server: DecoderServer, decoder_client: AsyncSamClient, store_image: StoreImage
) -> None:
    image, _ = await store_image(48, 64, seed=8)
    gauge = "sam_decoder_streams_in_flight"
    stream = decoder_client.open_stream()
    for index in range(10):
        await stream.call.write(make_request(image.image_key, [make_prompt(points=[(5, 5, 1)])], request_id=str(index)))
    await stream.call.read()
    assert (REGISTRY.get_sample_value(gauge) or 0) >= 1
    stream.call.cancel()
    prompts_then = REGISTRY.get_sample_value("sam_decoder_prompts_total") or 0.0

    async def stream_closed() -> bool:
        return REGISTRY.get_sample_value(gauge) == 0

    async def engine_idle() -> bool:
        return decoder_server.engine.idle

    await wait_until_async(stream_closed, 5, "the cancelled stream closed")
    await wait_until_async(engine_idle, 5, "the decode engine idle")
    # At most the decode already running finished; the other queued requests were never decoded.
    assert (REGISTRY.get_sample_value("sam_decoder_prompts_total") or 0.0) <= prompts_then + 1


async def test_lru_is_bounded_in_bytes(
    tiny_checkpoint: CheckpointInfo, redis_server: RedisServer, decoder_role: PromptDecoderRole, store_image: StoreImage
) -> None:
    """Room for two embeddings: a third image evicts the least recently used one."""
    images = [(await store_image(48, 64, seed=seed))[0] for seed in (20, 21, 22)]
    embedding_bytes = images[0].stored.nbytes
    settings = decoder_settings(tiny_checkpoint, redis_server.url, lru_bytes=2 * embedding_bytes + 1)
    server = await start_decoder_server(settings, [decoder_role])
    try:
        async with AsyncSamClient(decoder_target=server.target) as client, client.open_stream() as stream:
            for image in (images[0], images[1], images[0], images[2]):
                await stream.segment(image.image_key, [make_prompt(points=[(5, 5, 1)])])
        lru = server.source.lru
        assert len(lru) == 2 and lru.total_bytes == 2 * embedding_bytes <= settings.lru_bytes
        assert images[0].image_key in lru and images[1].image_key not in lru and images[2].image_key in lru
        assert (lru.hits, lru.misses) == (1, 3)
    finally:
        await server.stop(grace_seconds=1)


async def test_a_burst_of_superseding_requests_costs_at_most_two_decodes(
    decoder_client: AsyncSamClient, store_image: StoreImage
) -> None:
    image, reference = await store_image(48, 64, seed=9)
    drag = [[make_prompt(points=[(float(5 + 4 * step), 20.0, 1)])] for step in range(10)]
    prompts_before = REGISTRY.get_sample_value("sam_decoder_prompts_total") or 0.0
    superseded_before = REGISTRY.get_sample_value("sam_decoder_requests_superseded_total") or 0.0
    async with decoder_client.open_stream(timeout_seconds=60) as stream:
        answers = await stream.burst(image.image_key, drag, multimask_output=True, return_logits=True)
        decodes = (REGISTRY.get_sample_value("sam_decoder_prompts_total") or 0.0) - prompts_before
        assert decodes <= 2
        assert [answer.superseded for answer in answers].count(False) == decodes
        assert (REGISTRY.get_sample_value("sam_decoder_requests_superseded_total") or 0.0) - superseded_before == (
            10 - decodes
        )
        assert not answers[-1].superseded and len(answers[-1].objects[0].masks) == 3
        assert all(not answer.objects for answer in answers if answer.superseded)
        last_point = {"point_coords": np.array([[41.0, 20.0]]), "point_labels": np.array([1])}
        assert_matches_reference(answers[-1].objects[0], reference, **last_point, multimask_output=True)
        # The session remembers the last decoded answer: `previous` refines the dragged point's final mask.
        refined = await stream.segment(image.image_key, [make_prompt(points=[(41, 20, 1)], previous=True)])
        assert len(refined.objects) == 1
