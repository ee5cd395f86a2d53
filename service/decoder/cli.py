"""`samsvc decoder`: run the decoder service."""

from __future__ import annotations

import argparse
from typing import Any

from service.decoder.settings import DecoderSettings
from service.settings import add_settings


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "decoder",
        help="Run the decoder service (Segment: prompts against cached embeddings, streamed).",
        description="The sam.v1.Decoder gRPC server: prompts against embeddings cached in Redis.",
    )
    add_settings(parser, DecoderSettings)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import asyncio
    import logging

    from service.decoder.server import serve
    from service.logs import configure_logging
    from service.settings import settings_from_args

    settings = settings_from_args(DecoderSettings, args)
    configure_logging(settings.log_level, settings.log_format)
    try:
        asyncio.run(serve(settings))
    except ValueError as error:
        logging.getLogger("samsvc.decoder").error("%s", error)
        return 2
    return 0
