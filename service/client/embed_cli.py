"""`samsvc embed`: pre-embed many images (files, folders, globs, list files) at Triton's bulk priority."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from service.client.settings import ClientSettings
from service.settings import add_settings

DEFAULT_CONCURRENCY = 8


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "embed",
        help="Pre-embed many images at bulk priority (resumable); one JSON line per file.",
        description=(
            "Embeds every image PATH names (a file, a folder's images recursively, a glob; --list adds the paths of "
            "a file, one a line) with the encoder at Triton's bulk priority, so interactive Embeds go first. Prints "
            'one JSON line per file as it finishes: {"file", "image_key", "cached", "original_size", "model"} or '
            '{"file", "error": {"code", "message"}}, and a progress bar on stderr. Resumable: a rerun sends every '
            "file again and the encoder answers the ones already embedded from a header read (cached: true). Exit "
            "status 1 when any file failed (listed at the end), 2 when nothing could be started."
        ),
    )
    parser.add_argument("paths", nargs="*", metavar="PATH", help="image files, folders or globs (quote globs)")
    parser.add_argument(
        "--list", action="append", default=[], metavar="FILE", dest="list_files",
        help="a file of paths, one a line (folders and globs too; '#' comments); '-' reads standard input; repeatable",
    )  # fmt: skip
    parser.add_argument(
        "--concurrency", type=int, default=DEFAULT_CONCURRENCY, metavar="N",
        help=f"Embed calls in flight (default {DEFAULT_CONCURRENCY}: enough for Triton's batches of 4 and the next)",
    )  # fmt: skip
    parser.add_argument("--output", type=Path, metavar="FILE", help="write the JSON lines here (default: stdout)")
    parser.add_argument(
        "--model", default="", help="the model to embed with (name, id or architecture; default: the server's)"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    parser.add_argument(
        "--retries", type=int, default=3, metavar="N",
        help="tries again after UNAVAILABLE (the encoder, Triton or Redis down, Triton's bulk queue full), 1 s then doubling",
    )  # fmt: skip
    add_settings(parser, ClientSettings)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import asyncio
    import json
    import time

    from service.client.aio import AsyncSamClient
    from service.client.bulk_embed import FileResult, collect_files, embed_files
    from service.client.progress import ProgressBar
    from service.logs import configure_logging
    from service.settings import settings_from_args

    settings = settings_from_args(ClientSettings, args)
    configure_logging(settings.log_level, settings.log_format)
    if args.concurrency < 1:
        print("samsvc embed: --concurrency must be at least 1", file=sys.stderr)
        return 2
    if not args.paths and not args.list_files:
        print("samsvc embed: name at least one PATH or --list FILE", file=sys.stderr)
        return 2
    try:
        files, missing = collect_files(args.paths, args.list_files)
        credentials = None
        if settings.uses_tls:
            from service.rpc.tls import channel_credentials

            credentials = channel_credentials(settings.tls_ca_file, settings.tls_cert_file, settings.tls_key_file)
    except (OSError, ValueError) as error:
        print(f"samsvc embed: {error}", file=sys.stderr)
        return 2

    output = args.output.open("w") if args.output is not None else sys.stdout
    progress = None if args.no_progress else ProgressBar(len(files) + len(missing), sys.stderr)

    def record(result: FileResult) -> None:
        output.write(json.dumps(result.as_json()) + "\n")
        output.flush()
        if progress is not None:
            progress.advance(cached=result.cached, failed=result.failed)

    async def embed_all() -> list[FileResult]:
        async with AsyncSamClient(
            settings.encoder, model=args.model, token=settings.auth_token or "", credentials=credentials
        ) as client:
            return await embed_files(
                client, files, args.concurrency, settings.timeout_seconds, record, retries=args.retries
            )

    started = time.monotonic()
    try:
        for result in missing:
            record(result)
        results = missing + asyncio.run(embed_all())
    finally:
        if progress is not None:
            progress.finish()
        if args.output is not None:
            output.close()
    elapsed = time.monotonic() - started
    failures = [result for result in results if result.failed]
    cached = sum(result.cached for result in results)
    encoded = len(results) - cached - len(failures)
    print(
        f"samsvc embed: {len(results)} files: {encoded} encoded, {cached} already cached, {len(failures)} failed "
        f"in {elapsed:.1f} s ({(len(results) - len(failures)) / max(elapsed, 1e-9):.1f} images/s)",
        file=sys.stderr,
    )
    for failure in failures:
        print(f"  failed: {failure.file}: {failure.error_code}: {failure.error_message}", file=sys.stderr)
    return 1 if failures else 0
