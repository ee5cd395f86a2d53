"""Bulk pre-embedding as plain async code: which files a command line names, and embedding them with a bounded
number of calls in flight, at Triton's bulk priority, with a result per file. `samsvc embed` (embed_cli.py) prints.

Resuming is the server's cache: a rerun sends every file again and the encoder answers those already embedded from
a header read (`cached: true`), encoding none of them.
"""

from __future__ import annotations

import asyncio
import glob
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from service.client.aio import AsyncSamClient

# What a folder is searched for (case-insensitive); a file named on its own is sent whatever its name.
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"})
_GLOB_CHARACTERS = frozenset("*?[")
# Codes worth another try later: the encoder, Triton or Redis is down or its queue is full.
_RETRIED_CODES = frozenset({grpc.StatusCode.UNAVAILABLE})
# The local failures' codes, beside gRPC's status names.
NO_FILE, UNREADABLE = "NO_FILE", "UNREADABLE"


@dataclass(frozen=True)
class FileResult:
    """One file's outcome: its image key (cached: no encode ran for it) or an error code and message."""

    file: str
    image_key: str = ""
    cached: bool = False
    original_size: tuple[int, int] = (0, 0)
    model: str = ""
    error_code: str = ""
    error_message: str = ""

    @property
    def failed(self) -> bool:
        return bool(self.error_code)

    def as_json(self) -> dict[str, Any]:
        """The JSON-lines record: {"file", "image_key", "cached", "original_size": [rows, columns], "model"} or
        {"file", "error": {"code", "message"}}."""
        if self.failed:
            return {"file": self.file, "error": {"code": self.error_code, "message": self.error_message}}
        return {
            "file": self.file,
            "image_key": self.image_key,
            "cached": self.cached,
            "original_size": list(self.original_size),
            "model": self.model,
        }


def collect_files(paths: Iterable[str], list_files: Sequence[str] = ()) -> tuple[list[Path], list[FileResult]]:
    """The files `paths` name, in order, each once: a file as it is, a folder's images (recursively, sorted), a
    glob's matches (`**` recursive), and likewise every line of each list file ("-": standard input; blank lines and
    `#` comments skipped). Paths that name nothing come back as NO_FILE results."""
    named = list(paths)
    for list_file in list_files:
        text = _read_stdin() if list_file == "-" else Path(list_file).read_text()
        named.extend(line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#"))
    files: list[Path] = []
    missing: list[FileResult] = []
    seen: set[Path] = set()

    def add(path: Path) -> None:
        resolved = path.resolve()
        if resolved not in seen:
            seen.add(resolved)
            files.append(path)

    for text in named:
        path = Path(text)
        if path.is_dir():
            for found in _images_under(path):
                add(found)
        elif path.is_file():
            add(path)
        elif _GLOB_CHARACTERS & set(text):
            matches = sorted(glob.glob(text, recursive=True))
            for match in matches:
                if Path(match).is_dir():
                    for found in _images_under(Path(match)):
                        add(found)
                elif Path(match).is_file():
                    add(Path(match))
            if not matches:
                missing.append(FileResult(text, error_code=NO_FILE, error_message="the pattern matches no file"))
        else:
            missing.append(FileResult(text, error_code=NO_FILE, error_message="no such file or folder"))
    return files, missing


def _images_under(folder: Path) -> list[Path]:
    return sorted(path for path in folder.rglob("*") if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file())


def _read_stdin() -> str:
    import sys

    return sys.stdin.read()


async def embed_files(
    client: AsyncSamClient,
    files: Sequence[Path],
    concurrency: int,
    timeout_seconds: float,
    on_result: Callable[[FileResult], None],
    retries: int = 3,
    retry_delay_seconds: float = 1.0,
    bulk: bool = True,
) -> list[FileResult]:
    """Embed every file at bulk priority (`bulk` False: interactive, for comparisons) with at most `concurrency`
    calls in flight (and as many files in memory), calling `on_result` as each finishes; UNAVAILABLE is tried again
    `retries` times, the delay doubling each time. The results come back in completion order."""
    if concurrency < 1:
        raise ValueError(f"concurrency must be at least 1, not {concurrency}")
    pending = iter(files)
    results: list[FileResult] = []

    async def worker() -> None:
        for path in pending:  # one shared iterator: each file goes to the first free worker
            result = await _embed_one(client, path, timeout_seconds, retries, retry_delay_seconds, bulk)
            results.append(result)
            on_result(result)

    await asyncio.gather(*(worker() for _ in range(min(concurrency, len(files)))))
    return results


async def _embed_one(
    client: AsyncSamClient, path: Path, timeout_seconds: float, retries: int, retry_delay_seconds: float, bulk: bool
) -> FileResult:
    try:
        image_bytes = await asyncio.to_thread(path.read_bytes)
    except OSError as error:
        return FileResult(str(path), error_code=UNREADABLE, error_message=error.strerror or str(error))
    delay = retry_delay_seconds
    deadline = time.monotonic() + timeout_seconds
    for attempt in range(retries + 1):
        try:
            image = await client.embed(image_bytes, timeout_seconds=max(deadline - time.monotonic(), 0.001), bulk=bulk)
        except grpc.aio.AioRpcError as error:
            code = error.code()
            if code in _RETRIED_CODES and attempt < retries and time.monotonic() + delay < deadline:
                await asyncio.sleep(delay)
                delay *= 2
                continue
            return FileResult(str(path), error_code=code.name, error_message=error.details() or "")
        return FileResult(
            str(path), image.image_key, image.cached, image.original_size, image.model, error_code="", error_message=""
        )
    raise AssertionError("unreachable: the last attempt returns")
