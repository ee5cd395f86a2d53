"""`samsvc embed`'s pure parts: which files a command line names, the progress bar, the JSON record, retries."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import grpc
import pytest

from service.client.bulk_embed import NO_FILE, UNREADABLE, FileResult, collect_files, embed_files
from service.client.messages import EmbeddedImage
from service.client.progress import ProgressBar


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def test_files_folders_globs_and_list_files_each_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    a = _touch(tmp_path / "set" / "a.JPG")
    b = _touch(tmp_path / "set" / "deep" / "b.png")
    _touch(tmp_path / "set" / "readme.txt")  # a folder gives only its images
    c = _touch(tmp_path / "other" / "c.webp")
    d = _touch(tmp_path / "d.raw")  # named on its own: sent whatever its name
    listed = tmp_path / "list.txt"
    listed.write_text(f"# a comment\n\n{c}\n{a}\nother/*.webp\nnothing-*.png\n")
    files, missing = collect_files([str(tmp_path / "set"), "d.raw", str(a), "gone.png"], [str(listed)])
    assert [path.resolve() for path in files] == [a, b, d, c]
    assert [(result.file, result.error_code) for result in missing] == [
        ("gone.png", NO_FILE),
        ("nothing-*.png", NO_FILE),
    ]


def test_recursive_globs(tmp_path: Path) -> None:
    a = _touch(tmp_path / "x" / "1.png")
    b = _touch(tmp_path / "x" / "y" / "2.png")
    files, missing = collect_files([str(tmp_path / "**" / "*.png")])
    assert files == [a, b] and not missing


def test_the_json_record() -> None:
    ok = FileResult("a.png", "sam:m:{00}", True, (3, 4), "m")
    assert ok.as_json() == {
        "file": "a.png",
        "image_key": "sam:m:{00}",
        "cached": True,
        "original_size": [3, 4],
        "model": "m",
    }
    failed = FileResult("b.png", error_code="INVALID_ARGUMENT", error_message="image: not an image")
    assert failed.failed and failed.as_json() == {
        "file": "b.png",
        "error": {"code": "INVALID_ARGUMENT", "message": "image: not an image"},
    }


def test_progress_lines_when_not_a_terminal() -> None:
    stream = io.StringIO()
    progress = ProgressBar(4, stream, in_place=False, line_seconds=3600)
    for cached, failed in ((False, False), (True, False), (False, True), (False, False)):
        progress.advance(cached=cached, failed=failed)
    progress.finish()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2  # the first advance, then the interval holds lines back until finish()
    assert lines[0].startswith("[" + "#" * 7 + "." * 23 + "] 1/4")
    assert lines[-1].startswith("[" + "#" * 30 + "] 4/4") and "1 cached  1 failed" in lines[-1]


def test_progress_in_place_on_a_terminal() -> None:
    stream = io.StringIO()
    progress = ProgressBar(2, stream, in_place=True, redraw_seconds=0)
    progress.advance()
    progress.advance()
    progress.finish()
    assert stream.getvalue().count("\r") == 3 and stream.getvalue().endswith("\n") and "s left" in stream.getvalue()


class _Unavailable(grpc.aio.AioRpcError):
    def __init__(self) -> None:
        super().__init__(grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), grpc.aio.Metadata(), "queue full")


class _FlakyClient:
    """Fails each image's first `failures` calls with UNAVAILABLE; records the priority asked."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls: dict[bytes, int] = {}
        self.bulk: list[bool] = []

    async def embed(self, image_bytes: bytes, timeout_seconds: float, bulk: bool = False) -> EmbeddedImage:
        self.bulk.append(bulk)
        self.calls[image_bytes] = self.calls.get(image_bytes, 0) + 1
        if self.calls[image_bytes] <= self.failures:
            raise _Unavailable()
        return EmbeddedImage(image_bytes, f"key-{image_bytes.decode()}", (1, 1), False, "m")


async def test_unavailable_is_tried_again_then_reported(tmp_path: Path) -> None:
    files = [tmp_path / f"{index}.png" for index in range(3)]
    for index, path in enumerate(files):
        path.write_bytes(str(index).encode())
    seen: list[FileResult] = []
    client = _FlakyClient(failures=2)
    results = await embed_files(client, files, 2, 60, seen.append, retries=2, retry_delay_seconds=0.001)  # type: ignore[arg-type]
    assert sorted(result.image_key for result in results) == ["key-0", "key-1", "key-2"] and seen == results
    assert set(client.calls.values()) == {3} and all(client.bulk)

    gave_up = await embed_files(
        _FlakyClient(failures=5), files[:1], 1, 60, lambda _: None, retries=1, retry_delay_seconds=0.001
    )  # type: ignore[arg-type]
    assert [(result.error_code, result.error_message) for result in gave_up] == [("UNAVAILABLE", "queue full")]


async def test_an_unreadable_file_is_a_result(tmp_path: Path) -> None:
    folder = tmp_path / "a-folder.png"
    folder.mkdir()
    results = await embed_files(_FlakyClient(0), [folder], 1, 60, lambda _: None)  # type: ignore[arg-type]
    assert [result.error_code for result in results] == [UNREADABLE]


def test_nothing_named_is_a_usage_error() -> None:
    result = subprocess.run([sys.executable, "-m", "service.cli", "embed"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "name at least one PATH" in result.stderr
