"""`samsvc embed` against a real encoder, Triton and Redis: 100 images with a progress bar and a JSON line each, Triton
batching them (batch sizes above 1 in its statistics), failures listed at the end and in the exit status, and a
rerun that encodes none."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import pytest

from service.encoder.server import EncoderServer
from service.triton.client import batch_size_counts
from service.triton.launcher import TritonServer
from tests.support.reference import make_test_image

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
IMAGES = 100


async def _samsvc_embed(*arguments: str) -> tuple[int, list[dict[str, object]], str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "service.cli", "embed", *arguments,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode is not None
    return process.returncode, [json.loads(line) for line in stdout.decode().splitlines()], stderr.decode()


async def test_a_hundred_images_batched_then_a_rerun_that_encodes_none(
    encoder_server: EncoderServer, triton_server: TritonServer, tmp_path: Path
) -> None:
    folder = tmp_path / "dataset"
    (folder / "nested").mkdir(parents=True)
    for index in range(IMAGES):
        _, image_bytes = make_test_image(24, 32, seed=10_000 + index)
        (folder / ("nested" if index % 2 else "") / f"image-{index:03d}.png").write_bytes(image_bytes)
    (folder / "notes.txt").write_text("not an image, and not picked from a folder")
    not_an_image = tmp_path / "broken.png"
    not_an_image.write_bytes(b"\x89PNG not really")
    arguments = [str(folder), str(not_an_image), str(tmp_path / "missing.jpg"), "--encoder", encoder_server.address]

    batches_before = batch_size_counts(triton_server.statistics())
    count_before = triton_server.inference_count()
    code, results, stderr = await _samsvc_embed(*arguments, "--concurrency", "8")
    batches = {
        size: count - batches_before.get(size, 0)
        for size, count in batch_size_counts(triton_server.statistics()).items()
    }

    # One line per file, the folder's 100 images (not notes.txt) and the two failures.
    assert code == 1, stderr
    assert len(results) == IMAGES + 2
    embedded = [result for result in results if "image_key" in result]
    assert len(embedded) == IMAGES and not any(result["cached"] for result in embedded)
    assert all(result["original_size"] == [24, 32] for result in embedded)
    assert len({result["image_key"] for result in embedded}) == IMAGES
    errors = {result["file"]: result["error"]["code"] for result in results if "error" in result}  # type: ignore[index]
    assert errors == {str(not_an_image): "INVALID_ARGUMENT", str(tmp_path / "missing.jpg"): "NO_FILE"}
    # The progress bar's last line, the summary and the failures, on stderr.
    assert f"{IMAGES + 2}/{IMAGES + 2}" in stderr and "2 failed" in stderr
    assert f"{IMAGES} encoded, 0 already cached, 2 failed" in stderr
    assert f"failed: {not_an_image}: INVALID_ARGUMENT" in stderr
    # Triton ran the images in batches, and each image once.
    assert triton_server.inference_count() - count_before == IMAGES
    assert sum(size * runs for size, runs in batches.items()) == IMAGES
    assert max(size for size, runs in batches.items() if runs) > 1, batches

    # The rerun: every image answered from the cache (a header read each), Triton not called.
    output = tmp_path / "rerun.jsonl"
    code, _, stderr = await _samsvc_embed(*arguments, "--output", str(output), "--no-progress")
    rerun = [json.loads(line) for line in output.read_text().splitlines()]
    assert code == 1
    assert sum(1 for result in rerun if result.get("cached") is True) == IMAGES
    assert {result["image_key"] for result in rerun if "image_key" in result} == {
        result["image_key"] for result in embedded
    }
    assert f"0 encoded, {IMAGES} already cached, 2 failed" in stderr
    assert not any(line.startswith("[") for line in stderr.splitlines())  # --no-progress
    assert triton_server.inference_count() - count_before == IMAGES
