"""Redis memory per stored embedding, measured on a real redis-server (Debian's 7.0, jemalloc 5.3).

For each family's stored bytes (bench/capacity/figures.toml) it stores `--count` values two ways and reports
the bytes Redis uses per embedding, by `MEMORY USAGE` of each key and by the growth of INFO's `used_memory`
(which also counts the key, its dict entry and its expiry):

- whole: one string per embedding, the payload plus the codec's header (today's format: a 2 MiB + 67-byte
  value lands in jemalloc's 2.5 MiB size class);
- pieces: the payload split into strings sized just under a jemalloc size class (1 MiB minus 64 bytes),
  under one hash tag, plus the header as its own small string: what the families work will store.

    .venv/bin/python bench/capacity/redis_overhead.py [--count 100]
"""

from __future__ import annotations

import argparse
import os

import redis

from service.local.redis_server import RedisServer

MIB = 1 << 20
HEADER_BYTES = 67  # the codec's header today (service/cache/codec.py)
PIECE_BYTES = MIB - 64  # under the 1 MiB size class, with room for Redis's string header
FAMILIES = {
    "sam / tinyvit (256x64x64 float16)": 256 * 64 * 64 * 2,
    "sam2 (256x64x64 + 32x256x256 + 64x128x128 float16)": (256 * 64 * 64 + 32 * 256 * 256 + 64 * 128 * 128) * 2,
}


def pieces_of(payload_bytes: int) -> list[int]:
    sizes = [PIECE_BYTES] * (payload_bytes // PIECE_BYTES)
    if payload_bytes % PIECE_BYTES:
        sizes.append(payload_bytes % PIECE_BYTES)
    return [HEADER_BYTES, *sizes]


def measure(client: redis.Redis, layout: list[int], count: int, name: str) -> tuple[float, float]:
    """Mean MEMORY USAGE summed over an embedding's keys, and mean used_memory growth, per embedding."""
    client.flushall()
    before = int(client.info("memory")["used_memory"])
    usage = 0
    for number in range(count):
        for piece, size in enumerate(layout):
            key = f"sam:{name}:{{{number:064x}}}:{piece}"
            client.set(key, os.urandom(size), ex=86400)
            usage += int(client.memory_usage(key, samples=0) or 0)
    after = int(client.info("memory")["used_memory"])
    return usage / count, (after - before) / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=100, help="Embeddings stored per family and layout.")
    arguments = parser.parse_args()
    print("| family | layout | stored bytes | MEMORY USAGE per embedding | used_memory per embedding | overhead |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    with RedisServer(maxmemory="4gb") as server:
        client = redis.Redis.from_url(server.url)
        print(f"<!-- {client.info('server')['redis_version']}, {client.info('memory')['mem_allocator']} -->")
        for family, payload in FAMILIES.items():
            for layout_name, layout in (("whole", [HEADER_BYTES + payload]), ("pieces", pieces_of(payload))):
                usage, growth = measure(client, layout, arguments.count, layout_name)
                stored = sum(layout)
                print(
                    f"| {family} | {layout_name} ({len(layout)} key{'s' if len(layout) > 1 else ''}) | {stored:,} "
                    f"| {usage:,.0f} ({usage / MIB:.3f} MiB) | {growth:,.0f} ({growth / MIB:.3f} MiB) "
                    f"| {100 * (growth / stored - 1):.1f}% |"
                )
        client.close()


if __name__ == "__main__":
    main()
