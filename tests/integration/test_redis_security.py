"""Redis with a password and over TLS (issue 10, deliverable 4): the services reach a protected Redis with the right
credentials and CA, and report it unreachable, never answer from it, without them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from service.cache.codec import EncodedEmbedding
from service.cache.store import EmbeddingStore, connect_redis
from service.encoder.server import start_encoder
from service.errors import Unavailable
from service.local.redis_server import RedisServer, RedisTls
from service.model_identity import ModelIdentity
from service.settings import describe_settings
from service.triton.launcher import TritonServer
from tests.support.certificates import CertificateFiles
from tests.support.servers import encoder_settings, wait_for_health

pytestmark = pytest.mark.slow

PASSWORD = "redis-test-password-5e1f"


@pytest.fixture(scope="module")
def protected_redis() -> Iterator[RedisServer]:
    with RedisServer(password=PASSWORD) as server:
        yield server


@pytest.fixture(scope="module")
def tls_redis(certificates: CertificateFiles) -> Iterator[RedisServer]:
    tls = RedisTls(certificates.server_cert, certificates.server_key, certificates.ca)
    with RedisServer(password=PASSWORD, tls=tls) as server:
        yield server


async def _round_trip(store: EmbeddingStore) -> bytes | None:
    """Put a small value and read it back; the header it comes back with."""
    try:
        await store.put("test:security", EncodedEmbedding(b"value", ()))
        stored = await store.get("test:security")
        return None if stored is None else stored.header
    finally:
        await store.close()


async def test_a_password_is_required(protected_redis: RedisServer) -> None:
    url = protected_redis.url_without_password
    assert PASSWORD not in url and PASSWORD in protected_redis.url
    assert await _round_trip(EmbeddingStore(connect_redis(url, PASSWORD), ttl_seconds=60)) == b"value"
    assert await _round_trip(EmbeddingStore(connect_redis(protected_redis.url), ttl_seconds=60)) == b"value"
    for password in (None, "wrong-password"):
        store = EmbeddingStore(connect_redis(url, password), ttl_seconds=60)
        with pytest.raises(Unavailable, match="Redis"):
            await _round_trip(store)
        store = EmbeddingStore(connect_redis(url, password), ttl_seconds=60)
        assert await store.ping() is False
        await store.close()


async def test_rediss_checks_the_servers_certificate(tls_redis: RedisServer, certificates: CertificateFiles) -> None:
    url = tls_redis.url_without_password
    assert url.startswith("rediss://")
    store = EmbeddingStore(connect_redis(url, PASSWORD, ca_file=certificates.ca), ttl_seconds=60)
    assert await _round_trip(store) == b"value"
    for ca_file in (None, certificates.other_ca):  # the system's CAs, another CA: the certificate is not trusted
        with pytest.raises(Unavailable, match="Redis"):
            await _round_trip(EmbeddingStore(connect_redis(url, PASSWORD, ca_file=ca_file), ttl_seconds=60))
    plaintext = url.replace("rediss://", "redis://")
    with pytest.raises(Unavailable, match="Redis"):
        await _round_trip(EmbeddingStore(connect_redis(plaintext, PASSWORD, timeout_seconds=2), ttl_seconds=60))


async def test_the_encoder_serves_over_a_protected_tls_redis(
    tls_redis: RedisServer, triton_server: TritonServer, certificates: CertificateFiles
) -> None:
    model = ModelIdentity("sam-tiny-00000000000000bb", "tiny", "sam_image_encoder")
    settings = encoder_settings(
        tls_redis.url_without_password,
        triton_server.grpc_url,
        model.model_id,
        redis_password=PASSWORD,
        redis_tls_ca_file=certificates.ca,
    )
    assert PASSWORD not in describe_settings(settings)
    server = await start_encoder(settings, models=[model])
    try:
        await wait_for_health(server.address, serving=True)
    finally:
        await server.stop(grace_seconds=0.5)
    wrong = encoder_settings(
        tls_redis.url_without_password, triton_server.grpc_url, model.model_id, redis_tls_ca_file=certificates.ca
    )
    server = await start_encoder(wrong, models=[model])
    try:
        await wait_for_health(server.address, serving=False)
    finally:
        await server.stop(grace_seconds=0.5)


def test_a_ca_file_with_a_plaintext_url_is_refused() -> None:
    with pytest.raises(ValueError, match="rediss://"):
        connect_redis("redis://127.0.0.1:6379/0", ca_file=Path(__file__))
