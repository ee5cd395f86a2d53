"""`samsvc encoder`: the Embed gRPC server."""

from __future__ import annotations

import argparse
from typing import Any

from service.encoder.settings import EncoderSettings
from service.settings import add_settings


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "encoder",
        help="Run the encoder service (Embed: image → cached embedding, Triton on a miss).",
        description="The sam.v1.Encoder gRPC server: caches embeddings in Redis, encodes on Triton.",
    )
    add_settings(parser, EncoderSettings)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import asyncio
    import logging

    from service.encoder.server import serve
    from service.logs import configure_logging
    from service.settings import settings_from_args

    settings = settings_from_args(EncoderSettings, args)
    configure_logging(settings.log_level, settings.log_format)
    try:
        asyncio.run(serve(settings))
    except ValueError as error:  # a setting that cannot be used: a token, secret or certificate file
        logging.getLogger("samsvc.encoder").error("%s", error)
        return 2
    return 0
