"""`samsvc decoder`: run the decoder service; `samsvc export-decoder`: export its ONNX graphs ahead of it."""

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
    export = subparsers.add_parser(
        "export-decoder",
        help="Export the onnx decoder graphs of each model into --decoder-graph-dir (the checkpoint Job's step).",
        description="Write each served model's two batched prompt-encoder + mask-decoder graphs (its image side and "
        "prompt side) into --decoder-graph-dir, as the decoder would on its first start, so that decoder pods "
        "(read-only root filesystems) find them there. Takes the decoder's own settings; a graph already there is "
        "kept.",
    )
    add_settings(export, DecoderSettings)
    export.set_defaults(func=export_graphs)


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


def export_graphs(args: argparse.Namespace) -> int:
    import logging

    from service.decoder.server import load_decoder_roles
    from service.logs import configure_logging
    from service.runtime.onnx.backend import exporter, supports
    from service.runtime.onnx.graph import PARTS
    from service.runtime.onnx.graph_files import ensure_graph
    from service.settings import settings_from_args

    settings = settings_from_args(DecoderSettings, args)
    configure_logging(settings.log_level, settings.log_format)
    log = logging.getLogger("samsvc.export-decoder")
    try:
        roles = load_decoder_roles(settings)
    except ValueError as error:
        log.error("%s", error)
        return 2
    for role in roles:
        if not supports(role.checkpoint):
            log.warning("%s (%s) has no onnx decoder: the decoder serves it with torch", role.checkpoint.model_id,
                        role.arch.name)  # fmt: skip
            continue
        for part in PARTS:
            path = ensure_graph(role.checkpoint.model_id, part, settings.decoder_graph_dir, exporter(role, part))
            print(f"{role.checkpoint.model_id}: {path}")
    return 0
