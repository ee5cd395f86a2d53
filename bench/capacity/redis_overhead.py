"""Redis memory per stored embedding, measured on a real redis-server (Debian's 7.0, jemalloc 5.3).

For each family it encodes `--count` embeddings of random tensors with the service's own codec, stores them with
the service's own store (one hash per image: the header and payload chunks just under jemalloc's 2 MiB size class),
and reports the bytes Redis uses per embedding, by `MEMORY USAGE` of the key and by the growth of INFO's
`used_memory` (which also counts the key, its dict entry and its expiry). For comparison it also stores the same
bytes as one string (the first round's layout), which jemalloc rounds up to its next size class.

    .venv/bin/python bench/capacity/redis_overhead.py [--count 100]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import hashlib
from collections.abc import Callable

import numpy as np
import redis

from service.cache.codec import EncodedEmbedding, encode_embedding
from service.cache.keys import ImageKey
from service.cache.store import EmbeddingStore, connect_redis
from service.image_info import ImageInfo
from service.local.redis_server import RedisServer
from service.runtime.families.catalog import FAMILIES
from service.runtime.families.spec import Family

MIB = 1 << 20
INFO = ImageInfo(original_size=(768, 1024), input_size=(768, 1024))


def random_embedding(family: Family, seed: int) -> EncodedEmbedding:
    """An embedding of `family`'s tensors, random (incompressible, like real ones), encoded by the codec."""
    generator = np.random.default_rng(seed)
    tensors = {spec.name: generator.standard_normal(spec.shape, dtype=np.float32) for spec in family.outputs}
    return encode_embedding(tensors, family.outputs, INFO, f"bench-{family.name}")


def key_of(family: Family, number: int, layout: str) -> str:
    digest = hashlib.sha256(f"{layout} {number}".encode()).hexdigest()
    return str(ImageKey(model_id=f"bench-{family.name}", digest=digest))


async def store_hashes(url: str, family: Family, count: int) -> list[str]:
    store = EmbeddingStore(connect_redis(url), ttl_seconds=86400)
    keys = []
    try:
        for number in range(count):
            key = key_of(family, number, "hash")
            await store.put(key, random_embedding(family, number))
            keys.append(key)
    finally:
        await store.close()
    return keys


def store_hashes_now(url: str, family: Family, count: int) -> list[str]:
    return asyncio.run(store_hashes(url, family, count))


def store_strings(client: redis.Redis, family: Family, count: int) -> list[str]:
    keys = []
    for number in range(count):
        key = key_of(family, number, "string")
        value = random_embedding(family, number)
        client.set(key, value.header + b"".join(value.chunks), ex=86400)
        keys.append(key)
    return keys


def measure(client: redis.Redis, count: int, store: Callable[[], list[str]]) -> tuple[float, float]:
    """Mean MEMORY USAGE and mean used_memory growth per embedding, over the keys `store` writes."""
    client.flushall()
    before = int(client.info("memory")["used_memory"])
    keys = store()
    after = int(client.info("memory")["used_memory"])
    usage = sum(int(client.memory_usage(key, samples=0) or 0) for key in keys)
    return usage / count, (after - before) / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=100, help="Embeddings stored per family and layout.")
    arguments = parser.parse_args()
    print("| family | layout | stored bytes | MEMORY USAGE per embedding | used_memory per embedding | overhead |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    with RedisServer(maxmemory="8gb") as server:
        client = redis.Redis.from_url(server.url)
        print(f"<!-- {client.info('server')['redis_version']}, {client.info('memory')['mem_allocator']} -->")
        for family in (FAMILIES["sam"], FAMILIES["sam2"]):
            stored = random_embedding(family, 0).total_bytes
            layouts: dict[str, Callable[[], list[str]]] = {
                "hash (the store)": functools.partial(store_hashes_now, server.url, family, arguments.count),
                "one string": functools.partial(store_strings, client, family, arguments.count),
            }
            for layout, store in layouts.items():
                usage, growth = measure(client, arguments.count, store)
                print(
                    f"| {family.name} | {layout} | {stored:,} | {usage:,.0f} ({usage / MIB:.4f} MiB) "
                    f"| {growth:,.0f} ({growth / MIB:.4f} MiB) | {100 * (growth / stored - 1):.1f}% |"
                )
        client.close()


if __name__ == "__main__":
    main()
