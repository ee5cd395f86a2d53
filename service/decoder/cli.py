"""`samsvc decoder`: run the decoder service."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    from service.decoder.settings import add_decoder_settings

    parser = subparsers.add_parser(
        "decoder", help="run the decoder service (sam.v1.Decoder/Segment: prompts against cached embeddings)"
    )
    add_decoder_settings(parser)
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    import asyncio
    import logging

    from service.decoder.server import serve
    from service.decoder.settings import settings_from_args

    settings = settings_from_args(args)
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        asyncio.run(serve(settings))
    except ValueError as error:
        logging.getLogger("samsvc.decoder").error("%s", error)
        return 2
    return 0
