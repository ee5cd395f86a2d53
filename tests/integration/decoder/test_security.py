"""The security boundary through both services (issue 10, finding 4): bearer tokens from a file (with tenants), keys
that cannot be computed from the image alone and are scoped to the caller's tenant, TLS and mutual TLS, reflection
only when asked, and health open to probes on the gRPC port and on a plaintext health-only port."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
import redis.asyncio as aioredis
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from prometheus_client import REGISTRY, generate_latest

from service._proto.sam.v1 import sam_pb2, sam_pb2_grpc
from service.cache.keys import parse_image_key
from service.client import AsyncSamClient, RequestError, SamClient, make_prompt, make_request
from service.decoder.server import DecoderServer, start_decoder_server
from service.encoder.server import EncoderServer, start_encoder
from service.local.ports import free_port
from service.local.redis_server import RedisServer
from service.rpc.channel import channel_options
from service.rpc.tls import channel_credentials
from service.runtime.checkpoint import CheckpointInfo
from service.runtime.prompt_decoder import PromptDecoderRole
from service.triton.launcher import TritonServer
from tests.support.certificates import CertificateFiles
from tests.support.polling import wait_until_async
from tests.support.reference import StoreImage, make_test_image
from tests.support.servers import damage_a_chunk, decoder_settings, encoder_settings, health_status, wait_for_health

pytestmark = pytest.mark.slow

RADIOLOGY, PATHOLOGY, SHARED = "radiology-token-3f9a1c", "pathology-token-8b2e7d", "shared-token-51c0e4"
TOKENS = f"# the tests' callers\n{RADIOLOGY} radiology\n{PATHOLOGY} pathology\n{SHARED}\n"
GOOD = [make_prompt(points=[(20, 20, 1)])]
NOT_FOUND = grpc.StatusCode.NOT_FOUND.value[0]


@dataclass
class Secured:
    encoder: EncoderServer
    decoder: DecoderServer
    tokens_file: Path
    encoder_health_port: int
    decoder_health_port: int


@pytest.fixture(scope="module")
async def secured(
    tmp_path_factory: pytest.TempPathFactory,
    redis_server: RedisServer,
    triton_server: TritonServer,
    tiny_checkpoint: CheckpointInfo,
    decoder_role: PromptDecoderRole,
) -> AsyncIterator[Secured]:
    """Both services asking for tokens, with a key secret, each with a plaintext health port."""
    directory = tmp_path_factory.mktemp("secured")
    tokens_file = directory / "tokens"
    tokens_file.write_text(TOKENS)
    key_secret_file = directory / "key-secret"
    key_secret_file.write_bytes(os.urandom(32).hex().encode())
    ports = free_port(), free_port()
    async with contextlib.AsyncExitStack() as running:  # stops whatever started, whatever fails after
        encoder = await start_encoder(
            encoder_settings(
                redis_server.url,
                triton_server.grpc_url,
                tiny_checkpoint.model_id,
                auth_tokens_file=tokens_file,
                key_secret_file=key_secret_file,
                health_port=ports[0],
            )
        )
        running.push_async_callback(encoder.stop, grace_seconds=0.5)
        decoder = await start_decoder_server(
            decoder_settings(tiny_checkpoint, redis_server.url, auth_tokens_file=tokens_file, health_port=ports[1]),
            [decoder_role],
        )
        running.push_async_callback(decoder.stop, grace_seconds=0.5)
        await wait_for_health(f"127.0.0.1:{ports[0]}", serving=True)
        yield Secured(encoder, decoder, tokens_file, *ports)


def client(secured: Secured, token: str | None) -> AsyncSamClient:
    return AsyncSamClient(secured.encoder.address, secured.decoder.target, token=token or "")


async def test_calls_without_a_known_token_are_unauthenticated(secured: Secured) -> None:
    _, image_bytes = make_test_image(40, 50, seed=40)
    for token in (None, "not-a-token", f"{RADIOLOGY}x"):
        async with client(secured, token) as anonymous:
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await anonymous.embed(image_bytes)
            assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED, token
            stream = anonymous.open_stream()
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await stream.exchange(make_request("sam:m:{" + "0" * 64 + "}", GOOD))
            assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED, token
            await stream.close()
    # A bare Embed of megabytes from nobody is refused without being parsed (the refusal reads no payload).
    async with grpc.aio.insecure_channel(secured.encoder.address, options=channel_options()) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await sam_pb2_grpc.EncoderStub(channel).Embed(sam_pb2.EmbedRequest(image=b"\xff" * (8 << 20)), timeout=30)
        assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
    async with client(secured, SHARED) as known:
        assert (await known.embed(image_bytes)).image_key


async def test_health_stays_open_and_reflection_is_off(secured: Secured) -> None:
    serving = health_pb2.HealthCheckResponse.SERVING
    for address in (secured.encoder.address, f"127.0.0.1:{secured.encoder_health_port}"):
        assert await health_status(address) == serving
        assert await health_status(address, "sam.v1.Encoder") == serving
    await wait_for_health(f"127.0.0.1:{secured.decoder_health_port}", serving=True)
    # The health-only port serves nothing else.
    async with grpc.aio.insecure_channel(f"127.0.0.1:{secured.encoder_health_port}") as channel:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await sam_pb2_grpc.EncoderStub(channel).Embed(
                sam_pb2.EmbedRequest(image=b"x"), metadata=(("authorization", f"Bearer {SHARED}"),), timeout=10
            )
        assert raised.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert await _reflected_services(secured.encoder.address, SHARED) == grpc.StatusCode.UNIMPLEMENTED
    # Watch too (a stream its servicer writes with context.write, through every interceptor), without a token.
    async with grpc.aio.insecure_channel(secured.decoder.target) as channel:
        watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(service=""), timeout=10)
        assert (await watch.read()).status == serving
        watch.cancel()


async def _reflected_services(address: str, token: str | None) -> set[str] | grpc.StatusCode:
    metadata = (("authorization", f"Bearer {token}"),) if token else ()
    async with grpc.aio.insecure_channel(address) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        try:
            responses = stub.ServerReflectionInfo(iter([request]), metadata=metadata, timeout=10)
            return {service.name async for response in responses for service in response.list_services_response.service}
        except grpc.aio.AioRpcError as error:
            return error.code()


async def test_reflection_when_asked_needs_a_token_too(
    redis_server: RedisServer, tiny_checkpoint: CheckpointInfo, decoder_role: PromptDecoderRole, tmp_path: Path
) -> None:
    tokens_file = tmp_path / "tokens"
    tokens_file.write_text(TOKENS)
    settings = decoder_settings(tiny_checkpoint, redis_server.url, auth_tokens_file=tokens_file, reflection=True)
    server = await start_decoder_server(settings, [decoder_role])
    try:
        assert await _reflected_services(server.target, None) == grpc.StatusCode.UNAUTHENTICATED
        listed = await _reflected_services(server.target, SHARED)
        assert isinstance(listed, set) and {"sam.v1.Decoder", "grpc.health.v1.Health"} <= listed
    finally:
        await server.stop(grace_seconds=0.5)


async def test_tenants_have_their_own_keys_and_cannot_reach_each_others(
    secured: Secured, triton_server: TritonServer
) -> None:
    """A tenant can neither read another's embedding nor learn that it exists; each tenant's embedding is computed
    once; and no key can be computed from the image alone (it is an HMAC under the server's secret)."""
    _, image_bytes = make_test_image(44, 60, seed=41)
    before = triton_server.inference_count()
    async with client(secured, RADIOLOGY) as radiology, client(secured, PATHOLOGY) as pathology:
        first = await radiology.embed(image_bytes)
        again = await radiology.embed(image_bytes)
        other = await pathology.embed(image_bytes)  # the same bytes: not `cached`, nothing learnt
        assert (first.cached, again.cached, other.cached) == (False, True, False)
        assert triton_server.inference_count() - before == 2  # once per tenant and image

        keys = [parse_image_key(image.image_key) for image in (first, other)]
        assert [key.tenant for key in keys] == ["radiology", "pathology"]
        assert hashlib.sha256(image_bytes).hexdigest() not in {key.digest for key in keys}
        assert keys[0].digest != keys[1].digest

        async with radiology.open_stream() as own, pathology.open_stream() as foreign:
            assert len((await own.segment(first.image_key, GOOD)).objects) == 1
            stolen = await foreign.exchange(make_request(first.image_key, GOOD))
            never = await foreign.exchange(make_request(first.image_key.replace(keys[0].digest, "e" * 64), GOOD))
        # The answer to another tenant's key is word for word the answer to a key that does not exist.
        assert (stolen.error.code, stolen.error.field) == (NOT_FOUND, "image_key")
        assert stolen.error.message.replace(keys[0].digest, "e" * 64) == never.error.message


async def test_a_rotated_token_file_is_read_again(secured: Secured) -> None:
    _, image_bytes = make_test_image(30, 30, seed=42)
    replacement = secured.tokens_file.with_name("tokens.new")
    replacement.write_text(TOKENS.replace(SHARED, "rotated-token-7d1e90"))
    os.replace(replacement, secured.tokens_file)
    try:
        async with client(secured, "rotated-token-7d1e90") as rotated:

            async def accepted() -> bool:
                try:
                    await rotated.embed(image_bytes)
                except grpc.aio.AioRpcError as error:
                    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
                    return False
                return True

            await wait_until_async(accepted, 10, "the new token accepted", interval=0.2)
        async with client(secured, SHARED) as retired:
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await retired.embed(image_bytes)
            assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
    finally:
        secured.tokens_file.write_text(TOKENS)


async def test_logs_and_metrics_carry_no_whole_key(
    secured: Secured, redis_client: aioredis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    """With secret keys, a key is a capability: what the services log or export names it by a short digest only."""
    _, image_bytes = make_test_image(36, 48, seed=43)
    with caplog.at_level(logging.DEBUG):
        async with client(secured, RADIOLOGY) as radiology:
            image = await radiology.embed(image_bytes)
            await damage_a_chunk(redis_client, image.image_key, b"damage")  # logged by the decoder
            async with radiology.open_stream() as stream:
                answer = await stream.segment(image, GOOD)  # damaged: removed, re-embedded, answered
                assert len(answer.objects) == 1 and radiology.reembeddings == 1
                with pytest.raises(RequestError):
                    await stream.segment(image.image_key, [make_prompt(points=[(1e6, 1, 1)])])
    digest = parse_image_key(image.image_key).digest
    assert caplog.records and not [record for record in caplog.records if digest in record.getMessage()]
    assert any(digest[:12] in record.getMessage() for record in caplog.records)  # named, by its short form
    assert digest not in generate_latest(REGISTRY).decode()


async def test_tls_with_tokens_through_the_blocking_client(
    redis_server: RedisServer,
    triton_server: TritonServer,
    tiny_checkpoint: CheckpointInfo,
    certificates: CertificateFiles,
    tmp_path: Path,
) -> None:
    tokens_file = tmp_path / "tokens"
    tokens_file.write_text(TOKENS)
    health_port = free_port()
    settings = encoder_settings(
        redis_server.url,
        triton_server.grpc_url,
        tiny_checkpoint.model_id,
        auth_tokens_file=tokens_file,
        tls_cert_file=certificates.server_cert,
        tls_key_file=certificates.server_key,
        health_port=health_port,
    )
    server = await start_encoder(settings)
    _, image_bytes = make_test_image(32, 40, seed=44)

    def embed_with(credentials: grpc.ChannelCredentials | None, token: str) -> grpc.StatusCode:
        with SamClient(server.address, credentials=credentials, token=token) as blocking:
            try:
                blocking.embed(image_bytes, timeout_seconds=60)
            except grpc.RpcError as error:
                return error.code()  # type: ignore[no-any-return]
        return grpc.StatusCode.OK

    try:
        await wait_for_health(f"127.0.0.1:{health_port}", serving=True)
        trusted = channel_credentials(certificates.ca)
        assert await asyncio.to_thread(embed_with, trusted, SHARED) == grpc.StatusCode.OK
        assert await asyncio.to_thread(embed_with, trusted, "") == grpc.StatusCode.UNAUTHENTICATED
        assert await asyncio.to_thread(embed_with, None, SHARED) == grpc.StatusCode.UNAVAILABLE  # plaintext
        untrusted = channel_credentials(certificates.other_ca)
        assert await asyncio.to_thread(embed_with, untrusted, SHARED) == grpc.StatusCode.UNAVAILABLE
    finally:
        await server.stop(grace_seconds=0.5)


async def test_mutual_tls_asks_for_a_client_certificate(
    redis_server: RedisServer,
    tiny_checkpoint: CheckpointInfo,
    decoder_role: PromptDecoderRole,
    certificates: CertificateFiles,
    store_image: StoreImage,
) -> None:
    image, _ = await store_image(60, 80, seed=1)
    health_port = free_port()
    settings = decoder_settings(
        tiny_checkpoint,
        redis_server.url,
        tls_cert_file=certificates.server_cert,
        tls_key_file=certificates.server_key,
        tls_client_ca_file=certificates.client_ca,
        health_port=health_port,
    )
    server = await start_decoder_server(settings, [decoder_role])

    async def segment_with(credentials: grpc.ChannelCredentials) -> grpc.StatusCode:
        async with AsyncSamClient(decoder_target=f"localhost:{server.port}", credentials=credentials) as tls_client:
            try:
                async with tls_client.open_stream(timeout_seconds=30) as stream:
                    await stream.segment(image.image_key, GOOD)
            except grpc.aio.AioRpcError as error:
                return error.code()
        return grpc.StatusCode.OK

    try:
        await wait_for_health(f"127.0.0.1:{health_port}", serving=True)
        with_certificate = channel_credentials(certificates.ca, certificates.client_cert, certificates.client_key)
        assert await segment_with(with_certificate) == grpc.StatusCode.OK
        assert await segment_with(channel_credentials(certificates.ca)) == grpc.StatusCode.UNAVAILABLE
    finally:
        await server.stop(grace_seconds=0.5)
