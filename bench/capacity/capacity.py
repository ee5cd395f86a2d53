"""How many Triton GPUs, decoder pods and GiB of Redis serve N interactive users at M new images per minute
with a p99 per prompt under T: the capacity model of deploy/README.md, from the figures in figures.toml.

    python bench/capacity/capacity.py --users 500 --new-images-per-minute 120 --p99-ms 300
    python bench/capacity/capacity.py --family sam2 --backend onnx-cpu --triton gpu-a100-sam-vit-h ...

Standard library only (tomllib): an operator runs it anywhere. The model:

- prompts/s = users / (think time + p99): each interactive user clicks once per think time, after the answer.
- decoder: each decode worker (one core) is a server of rate mu = prompts/s per core for the backend; the
  fewest workers c for which an M/M/c queue keeps P(response > T) under 1% (Erlang C for the wait, plus one
  service time), then pods = ceil(c / cores per pod), plus one pod of headroom for a rolling update or a lost
  node. Arrivals of many independent users are close to Poisson; SAM's decode time is nearly constant, so M/M/c
  (exponential service) is pessimistic, which is the right side to err on.
- Triton: encodes/s = new images per minute / 60; instances = ceil(encodes/s / (encodes/s per instance x the
  target utilisation)), so that a burst of new images queues briefly (the encoder's p99 is not a click's).
- Redis: embeddings kept = new images per minute x minutes an image must stay cached (its TTL, or how long users
  come back to it); bytes = that x Redis's bytes per embedding for the family (measured with MEMORY USAGE),
  over maxmemory's usable share, times the copies (a Redis Cluster replica per master doubles it).
"""

from __future__ import annotations

import argparse
import math
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FIGURES = Path(__file__).with_name("figures.toml")
GIB = 1 << 30


def load_figures(path: Path = FIGURES) -> dict[str, Any]:
    with path.open("rb") as file:
        return tomllib.load(file)


def erlang_c(servers: int, offered_erlangs: float) -> float:
    """Probability that an arrival waits in an M/M/c queue with `servers` servers and load a = lambda / mu."""
    if offered_erlangs >= servers:
        return 1.0
    term = 1.0
    total = 1.0  # sum over k < c of a^k / k!
    for k in range(1, servers):
        term *= offered_erlangs / k
        total += term
    last = term * offered_erlangs / servers  # a^c / c!
    waiting = last * servers / (servers - offered_erlangs)
    return waiting / (total + waiting)


def response_tail(servers: int, arrival_rate: float, service_rate: float, seconds: float) -> float:
    """P(response time > seconds) in M/M/c, taking the response as the wait plus one mean service time."""
    wait_budget = seconds - 1.0 / service_rate
    if wait_budget < 0:
        return 1.0
    load = arrival_rate / service_rate
    if load >= servers:
        return 1.0
    return erlang_c(servers, load) * math.exp(-(servers * service_rate - arrival_rate) * wait_budget)


def workers_for(arrival_rate: float, service_rate: float, p99_seconds: float, tail: float = 0.01) -> int:
    """The fewest decode workers for which P(response > p99_seconds) <= tail."""
    if 1.0 / service_rate > p99_seconds:
        raise ValueError(
            f"one prompt takes {1000 / service_rate:.0f} ms on this backend, over the p99 target of "
            f"{1000 * p99_seconds:.0f} ms: no number of decoders meets it"
        )
    servers = max(1, math.ceil(arrival_rate / service_rate))
    while response_tail(servers, arrival_rate, service_rate, p99_seconds) > tail:
        servers += 1
    return servers


@dataclass(frozen=True)
class Plan:
    prompts_per_second: float
    decode_workers: int
    decoder_pods: int
    encodes_per_second: float
    triton_instances: int
    embeddings_kept: int
    redis_gib: float
    redis_gib_with_replicas: float

    def lines(self) -> list[str]:
        return [
            f"prompts/s offered:        {self.prompts_per_second:,.1f}",
            f"decode workers (cores):   {self.decode_workers}",
            f"decoder pods:             {self.decoder_pods} (including one of headroom)",
            f"encodes/s (new images):   {self.encodes_per_second:,.2f}",
            f"Triton instances:         {self.triton_instances}",
            f"embeddings kept in Redis: {self.embeddings_kept:,}",
            f"Redis memory:             {self.redis_gib:,.1f} GiB of maxmemory "
            f"({self.redis_gib_with_replicas:,.1f} GiB with replicas)",
        ]


def plan(
    figures: dict[str, Any],
    *,
    users: int,
    new_images_per_minute: float,
    p99_ms: float,
    family: str,
    backend: str,
    triton: str,
    retention_minutes: float | None = None,
    think_seconds: float | None = None,
    cores_per_decoder_pod: int | None = None,
) -> Plan:
    model = figures["model"]
    think = model["think_seconds"] if think_seconds is None else think_seconds
    cores = model["cores_per_decoder_pod"] if cores_per_decoder_pod is None else cores_per_decoder_pod
    retention = model["retention_minutes"] if retention_minutes is None else retention_minutes
    p99 = p99_ms / 1000

    prompts_per_second = users / (think + p99)
    service_rate = figures["decoder"][backend]["prompts_per_second_per_core"]
    workers = workers_for(prompts_per_second, service_rate, p99)
    pods = math.ceil(workers / cores) + model["decoder_pods_headroom"]

    encodes_per_second = new_images_per_minute / 60
    per_instance = figures["triton"][triton]["encodes_per_second"]
    instances = max(1, math.ceil(encodes_per_second / (per_instance * model["triton_target_utilisation"])))

    kept = math.ceil(new_images_per_minute * retention)
    per_embedding = figures["families"][family]["redis_bytes"]
    redis_bytes = kept * per_embedding / model["redis_usable_share"]
    copies = 1 + model["redis_replicas_per_master"]
    return Plan(
        prompts_per_second=prompts_per_second,
        decode_workers=workers,
        decoder_pods=pods,
        encodes_per_second=encodes_per_second,
        triton_instances=instances,
        embeddings_kept=kept,
        redis_gib=redis_bytes / GIB,
        redis_gib_with_replicas=redis_bytes * copies / GIB,
    )


def main(argv: list[str] | None = None) -> None:
    figures = load_figures()
    example = figures["example"]
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=example["users"], help="Interactive users at once (N).")
    parser.add_argument(
        "--new-images-per-minute", type=float, default=example["new_images_per_minute"], help="New images (M)."
    )
    parser.add_argument("--p99-ms", type=float, default=example["p99_ms"], help="p99 per prompt (T).")
    parser.add_argument("--family", default=example["family"], choices=sorted(figures["families"]))
    parser.add_argument("--backend", default=example["backend"], choices=sorted(figures["decoder"]))
    parser.add_argument("--triton", default=example["triton"], choices=sorted(figures["triton"]))
    parser.add_argument("--retention-minutes", type=float, help="How long an image must stay cached.")
    parser.add_argument("--think-seconds", type=float, help="Mean time between a user's clicks.")
    parser.add_argument("--cores-per-decoder-pod", type=int, help="Decode workers per decoder pod.")
    arguments = parser.parse_args(argv)
    result = plan(
        figures,
        users=arguments.users,
        new_images_per_minute=arguments.new_images_per_minute,
        p99_ms=arguments.p99_ms,
        family=arguments.family,
        backend=arguments.backend,
        triton=arguments.triton,
        retention_minutes=arguments.retention_minutes,
        think_seconds=arguments.think_seconds,
        cores_per_decoder_pod=arguments.cores_per_decoder_pod,
    )
    print(
        f"{arguments.users} users, {arguments.new_images_per_minute:g} new images/min, p99 {arguments.p99_ms:g} ms, "
        f"family {arguments.family}, decoder {arguments.backend}, Triton {arguments.triton}:"
    )
    print("\n".join("  " + line for line in result.lines()))
    print(f"  (figures: {FIGURES}; sources in its comments)")


if __name__ == "__main__":
    main()
