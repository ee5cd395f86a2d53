"""Locust load test of samsvc: interactive sessions (Embed, then a Segment stream of clicks) arriving at a fixed
rate. See bench/load/README.md.

    locust -f bench/load/locustfile.py --headless -u 4 -t 60s --encoder 127.0.0.1:50051 --decoder 127.0.0.1:50052
    .venv/bin/python bench/load/steps.py --help     # steps the users up until p99 passes a target, plots

Each locust user is an arrival source, not a person: it starts a new session every Exp(1/session_rate)
seconds whether or not its earlier sessions have finished, so the offered load is users x session_rate
sessions per second, whatever the service's speed. Requests are reported as "Embed (new)" (the encoder ran),
"Embed (cached)" and "Segment" (one click: request to answer on an open stream).
"""

from __future__ import annotations

# gRPC must cooperate with gevent (locust's concurrency) before any channel exists.
import grpc.experimental.gevent as grpc_gevent

grpc_gevent.init_gevent()

import itertools  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

import gevent  # noqa: E402
import gevent.pool  # noqa: E402
import grpc  # noqa: E402
from locust import User, events, task  # noqa: E402
from locust.env import Environment  # noqa: E402
from workload import Workload, add_workload_arguments, boxes, clicks, image_bytes  # noqa: E402

from service.client import RequestError, make_prompt  # noqa: E402

_NEW_IMAGE_SEEDS = itertools.count(1_000_000 * (os.getpid() % 1000) + int(time.time()) % 1_000_000)
_POOL_SEED = 7


@events.init_command_line_parser.add_listener
def _add_arguments(parser: Any) -> None:
    add_workload_arguments(parser)


@events.init.add_listener
def _read_arguments(environment: Environment, **_: Any) -> None:
    if environment.parsed_options is not None and hasattr(environment.parsed_options, "session_rate"):
        InteractiveSessions.workload = Workload.from_options(environment.parsed_options)


@events.test_start.add_listener
def _embed_the_pool(environment: Environment, **_: Any) -> None:
    """Embed the cached images once, before any session (each locust process does; after the first it is a hit)."""
    InteractiveSessions.embed_pool()


@events.test_stop.add_listener
def _end_sessions(environment: Environment, **_: Any) -> None:
    InteractiveSessions.sessions.kill(block=False)


def _report(name: str, started: float, length: int = 0, error: BaseException | None = None) -> None:
    events.request.fire(
        request_type="grpc",
        name=name,
        response_time=(time.perf_counter() - started) * 1000,
        response_length=length,
        exception=error,
        context={},
    )


class InteractiveSessions(User):
    """An arrival source of interactive sessions (see the module's docstring)."""

    workload = Workload()
    sessions = gevent.pool.Group()  # every session in flight in this process
    arrived = 0  # sessions started in this process (the offered load as it came)
    pool: list[bytes] = []

    def on_start(self) -> None:
        self.client = self.workload.client()
        self.rng = random.Random()

    def on_stop(self) -> None:
        self.client.close()

    @classmethod
    def embed_pool(cls) -> None:
        workload = cls.workload
        cls.pool = [
            image_bytes(_POOL_SEED * 1000 + number, workload.image_rows, workload.image_columns)
            for number in range(workload.cached_images)
        ]
        with workload.client(decoder=False) as client:
            for image in cls.pool:
                client.embed(image, timeout_seconds=workload.timeout_seconds)

    @task
    def arrivals(self) -> None:
        """Start sessions at the offered rate, forever (until locust stops this user)."""
        while True:
            gevent.sleep(self.rng.expovariate(self.workload.session_rate))
            InteractiveSessions.arrived += 1
            if len(self.sessions) >= self.workload.max_sessions_in_flight:
                _report("arrival dropped", time.perf_counter(), error=RuntimeError("too many sessions in flight"))
                continue
            self.sessions.spawn(self.session)

    def session(self) -> None:
        workload = self.workload
        rows, columns = workload.image_rows, workload.image_columns
        if self.rng.random() < workload.new_image_share or not self.pool:
            image = image_bytes(next(_NEW_IMAGE_SEEDS), rows, columns)
        else:
            image = self.rng.choice(self.pool)
        started = time.perf_counter()
        try:
            embedded = self.client.embed(image, timeout_seconds=workload.timeout_seconds)
        except grpc.RpcError as error:
            _report("Embed", started, error=error)
            return
        _report("Embed (cached)" if embedded.cached else "Embed (new)", started, len(image))

        count = workload.prompts_per_image
        if workload.prompt_kind == "box":
            prompts = [
                make_prompt(box=box, previous=number > 0)
                for number, box in enumerate(boxes(self.rng, rows, columns, count))
            ]
        else:
            chosen = clicks(self.rng, rows, columns, count)
            prompts = [make_prompt(points=chosen[: number + 1], previous=number > 0) for number in range(count)]
        with self.client.open_stream(timeout_seconds=workload.timeout_seconds) as stream:
            for number, prompt in enumerate(prompts):
                gevent.sleep(self.rng.expovariate(1 / workload.think_seconds) if workload.think_seconds else 0)
                started = time.perf_counter()
                try:
                    answer = stream.segment(embedded, [prompt], multimask_output=number == 0)
                except (grpc.RpcError, RequestError) as error:
                    _report("Segment", started, error=error)
                    return
                _report("Segment", started, answer.ByteSize())
