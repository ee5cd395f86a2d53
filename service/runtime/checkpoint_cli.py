"""`samsvc checkpoint`: make seeded test checkpoints and inspect checkpoints."""

from __future__ import annotations

import argparse
from pathlib import Path

from service.runtime.families.catalog import ARCHS


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("checkpoint", help="make a seeded test checkpoint or inspect one")
    actions = parser.add_subparsers(dest="checkpoint_command", required=True, metavar="ACTION")

    make = actions.add_parser(
        "make-test",
        help="write a SAM checkpoint with seeded random weights (official format; its masks mean nothing)",
    )
    make.add_argument("--arch", choices=sorted(ARCHS), default="tiny", help="architecture (default: tiny)")
    make.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    make.add_argument("--out", type=Path, required=True, help="where to write the .pth file")
    make.set_defaults(func=_make_test)

    show = actions.add_parser("inspect", help="print a checkpoint's architecture and model id")
    show.add_argument("path", type=Path)
    show.set_defaults(func=_inspect)


def _make_test(args: argparse.Namespace) -> int:
    from service.runtime.checkpoint import inspect_checkpoint, make_test_checkpoint

    path = make_test_checkpoint(args.arch, args.seed, args.out)
    info = inspect_checkpoint(path)
    print(
        f"wrote {path} ({info.arch.family.name} {info.arch.name}, model id {info.model_id}); random weights: masks mean nothing"
    )
    return 0


def _inspect(args: argparse.Namespace) -> int:
    from service.runtime.checkpoint import inspect_checkpoint

    info = inspect_checkpoint(args.path)
    print(f"{info.path}: family {info.arch.family.name}, architecture {info.arch.name}, model id {info.model_id}")
    return 0
