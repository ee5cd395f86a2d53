"""bench/load/steps.py end to end, briefly: locust (in its own process: gevent) drives the real encoder and a
real decoder, and writes the CSV, the table and the plot."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest
from PIL import Image

from service.decoder.server import start_decoder_server
from service.encoder.server import EncoderServer
from service.local.redis_server import RedisServer
from service.runtime.checkpoint import CheckpointInfo
from tests.support.bench import BENCH, bench_module
from tests.support.servers import decoder_settings

pytestmark = pytest.mark.slow

report = bench_module("load/report.py")


async def test_two_steps_write_a_table_a_csv_and_a_plot(
    encoder_server: EncoderServer, redis_server: RedisServer, tiny_checkpoint: CheckpointInfo, tmp_path: Path
) -> None:
    decoder = await start_decoder_server(decoder_settings(tiny_checkpoint, redis_server.url))
    try:
        process = await asyncio.create_subprocess_exec(
            sys.executable, str(BENCH / "load" / "steps.py"),
            "--encoder", encoder_server.address, "--decoder", decoder.target,
            "--users-start", "2", "--users-step", "2", "--max-users", "4",
            "--warmup-seconds", "1", "--step-seconds", "4",
            "--session-rate", "1", "--prompts-per-image", "3", "--think-seconds", "0.1",
            "--new-image-share", "0.2", "--cached-images", "2", "--image-rows", "96", "--image-columns", "128",
            "--p99-target-ms", "60000", "--out", str(tmp_path), "--title", "test",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            # This checkout's service package, whichever one the virtualenv has installed.
            env={**os.environ, "PYTHONPATH": str(BENCH.parent)},
        )  # fmt: skip
        output, _ = await asyncio.wait_for(process.communicate(), timeout=120)
    finally:
        await decoder.stop(grace_seconds=0.5)
    assert process.returncode == 0, output.decode()[-2000:]

    steps = report.read_csv(tmp_path / "steps.csv")
    assert [step.users for step in steps] == [2, 4]
    assert all(step.prompts_per_second > 0 and step.segment_p99_ms > 0 for step in steps)
    assert sum(step.failures for step in steps) == 0
    assert (tmp_path / "table.md").read_text().count("\n") == 2 + 2
    with Image.open(tmp_path / "latency_vs_load.png") as image:
        assert image.format == "PNG"
