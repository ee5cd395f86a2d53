"""`samsvc`: one command line for every part of the service."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# Each module defines `register(subparsers)`, adding its subcommand with `func` set to a handler that
# takes the parsed arguments and returns an exit status. Imported lazily so `--help` stays fast.
_COMMAND_MODULES = (
    "service.runtime.checkpoint_cli",
    "service.decoder.cli",
    "service.encoder.cli",
    "service.triton.cli",
    "service.stack.cli",
    "service.client.health_cli",
    "service.client.segment_cli",
    "service.client.embed_cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="samsvc", description="Segment Anything as gRPC services: encoder (Triton + Redis) and streaming decoder."
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module_name in _COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
