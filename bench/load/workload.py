"""What the load test offers: interactive segmentation sessions that arrive at a fixed rate (an open model).

A session is one person working on one image: Embed it (a new image, or one of a pool already cached), open a
Segment stream, then click `prompts_per_image` times, each click after a think time and after the previous
answer (a person looks at the mask before clicking again), refining the previous mask. Sessions arrive as a
Poisson process at `session_rate` per locust user, whatever the server's speed: when the service slows down,
sessions pile up instead of arriving later, which is what a closed loop of users hides.

Nothing here knows the model: images are JPEG bytes, prompts are clicks in image pixels, so the same workload
runs against any model the stack serves. No locust import here (locust patches the standard library with gevent
on import): the step runner and the tests read this module too.
"""

from __future__ import annotations

import argparse
import io
import random
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from service.client import SamClient

PROMPT_KINDS = ("point", "box")


@dataclass(frozen=True)
class Workload:
    """The offered load and where it goes; one flag per field (see add_workload_arguments)."""

    encoder: str = "127.0.0.1:50051"
    decoder: str = "127.0.0.1:50052"
    model: str = ""  # the served model to use; "": the services' default
    tls_ca_file: str = ""  # connect over TLS, trusting these CAs; "": plaintext
    session_rate: float = 0.1  # sessions per second per locust user (arrival source)
    prompts_per_image: int = 10
    think_seconds: float = 1.0  # mean pause before each click (exponentially distributed)
    prompt_kind: str = "point"  # "point": clicks, refining the previous mask; "box": a box, then adjusted boxes
    new_image_share: float = 0.2  # share of sessions on an image nobody has embedded
    cached_images: int = 8  # the pool of images embedded before the run, for the other sessions
    image_rows: int = 480
    image_columns: int = 640
    max_sessions_in_flight: int = 400  # per locust process; an arrival beyond is dropped and counted as a failure
    timeout_seconds: float = 120.0  # deadline of each call (a stream: the whole session)

    def client(self, decoder: bool = True) -> SamClient:
        """A client of the services as this workload reaches them (token from SAMSVC_AUTH_TOKEN)."""
        credentials = None
        if self.tls_ca_file:
            from service.rpc.tls import channel_credentials

            credentials = channel_credentials(Path(self.tls_ca_file), None, None)
        return SamClient(self.encoder, self.decoder if decoder else None, self.model, credentials=credentials)

    @property
    def prompts_per_second_per_user(self) -> float:
        """Offered clicks per second of one locust user (arrival source)."""
        return self.session_rate * self.prompts_per_image

    @classmethod
    def from_options(cls, options: Any) -> Workload:
        return cls(**{field.name: getattr(options, field.name) for field in fields(cls)})


_HELP = {
    "encoder": "Encoder address (host:port, or dns:///name:port for round robin over a headless Service).",
    "decoder": "Decoder address (host:port, or dns:///name:port for round robin over a headless Service).",
    "model": "Served model to use (a --model NAME of the services); empty: their default.",
    "tls_ca_file": "CA certificates (PEM): connect over TLS trusting them; empty: plaintext. A bearer token, when the "
    "services ask for one, comes from SAMSVC_AUTH_TOKEN.",
    "session_rate": "Sessions arriving per second per locust user (Poisson); offered load = users x this.",
    "prompts_per_image": "Clicks per session, each refining the previous mask.",
    "think_seconds": "Mean think time before each click (exponential).",
    "prompt_kind": "point: clicks that refine the previous mask (SAM); box: a box, then adjusted boxes (box-prompted "
    "models such as LiteMedSAM).",
    "new_image_share": "Share of sessions on a new image (the encoder runs); the others use cached images.",
    "cached_images": "Images embedded before the run, used by the sessions on cached images.",
    "image_rows": "Rows of the generated images.",
    "image_columns": "Columns of the generated images.",
    "max_sessions_in_flight": "Sessions in flight per locust process beyond which an arrival is dropped (a failure).",
    "timeout_seconds": "Deadline of each Embed and of each session's stream.",
}


def add_workload_arguments(parser: Any) -> None:
    """One flag per Workload field (`--session-rate`), on argparse or on locust's own parser."""
    defaults = Workload()
    for field in fields(Workload):
        default = getattr(defaults, field.name)
        parser.add_argument(
            "--" + field.name.replace("_", "-"),
            type=type(default),
            default=default,
            choices=PROMPT_KINDS if field.name == "prompt_kind" else None,
            help=f"{_HELP[field.name]} Default: {default}.",
        )


def workload_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(add_help=False)
    add_workload_arguments(parser)
    return parser


def image_bytes(seed: int, rows: int, columns: int) -> bytes:
    """A JPEG of smooth shapes that only `seed` determines: new bytes (a new cache key) for every seed."""
    rng = np.random.default_rng(seed)
    row_grid, column_grid = np.mgrid[0:rows, 0:columns].astype(np.float32)
    channels = []
    for _ in range(3):
        frequency_rows, frequency_columns = rng.uniform(0.005, 0.03, 2)
        phase = rng.uniform(0, 6.28)
        channels.append(127 + 120 * np.sin(row_grid * frequency_rows + column_grid * frequency_columns + phase))
    pixels = np.stack(channels, axis=-1).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def clicks(rng: random.Random, rows: int, columns: int, count: int) -> list[tuple[float, float, int]]:
    """`count` clicks (x, y, label) inside the image: the first foreground, then a mix, as a person refines."""
    return [
        (rng.uniform(0, columns - 1), rng.uniform(0, rows - 1), 1 if index == 0 or rng.random() < 0.7 else 0)
        for index in range(count)
    ]


def boxes(rng: random.Random, rows: int, columns: int, count: int) -> list[tuple[float, float, float, float]]:
    """`count` boxes (x0, y0, x1, y1) inside the image: a first box, then the same box adjusted a little each time."""
    height, width = rng.uniform(0.1, 0.4) * rows, rng.uniform(0.1, 0.4) * columns
    top, left = rng.uniform(0, rows - height), rng.uniform(0, columns - width)
    found = []
    for _ in range(count):
        # Each adjustment moves every side by up to 5% of the box: it stays a box of about the same place.
        jitter_x, jitter_y = 0.05 * width, 0.05 * height
        x0 = max(0.0, left + rng.uniform(-jitter_x, jitter_x))
        y0 = max(0.0, top + rng.uniform(-jitter_y, jitter_y))
        x1 = min(columns - 1.0, left + width + rng.uniform(-jitter_x, jitter_x))
        y1 = min(rows - 1.0, top + height + rng.uniform(-jitter_y, jitter_y))
        found.append((x0, y0, x1, y1))
    return found
