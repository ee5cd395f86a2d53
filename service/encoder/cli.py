"""`samsvc encoder`: the Embed gRPC server."""

from __future__ import annotations

import argparse
import asyncio
import logging
from typing import Any

from service.encoder.settings import add_encoder_settings, settings_from_args


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "encoder",
        help="Run the encoder service (Embed: image → cached embedding, Triton on a miss).",
        description="The sam.v1.Encoder gRPC server: caches embeddings in Redis, encodes on Triton.",
    )
    add_encoder_settings(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from service.encoder.server import serve

    settings = settings_from_args(args)
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(serve(settings))
    return 0
