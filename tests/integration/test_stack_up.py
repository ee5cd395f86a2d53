"""`samsvc up` as a user runs it: the whole stack in a subprocess, `samsvc segment` against it, SIGTERM, nothing left;
and, protected by tokens from its environment, a part that dies is restarted, and SIGKILL of `up` leaves nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as coco_mask

from service.client import SamClient, make_prompt, mask_of
from service.local.ports import free_port
from service.rpc.health_check import health_status
from service.runtime.checkpoint import CheckpointInfo
from tests.numerical_contract import iou
from tests.support.composites import composites
from tests.support.images import smooth_rgb
from tests.support.polling import wait_until
from tests.support.processes import command_of, descendants, is_alive

pytestmark = pytest.mark.slow

SAMSVC = [sys.executable, "-m", "service.cli"]


Up = tuple[subprocess.Popen[str], dict[str, str]]


@pytest.fixture
def start_up(tiny_checkpoint: CheckpointInfo) -> Iterator[Callable[..., Up]]:
    """Start `samsvc up` with extra environment variables (and model flags: the tiny checkpoint unless given); the
    process and its encoder and decoder targets."""
    started: list[subprocess.Popen[str]] = []

    def start(environment: dict[str, str], models: list[str] | None = None) -> Up:
        ports = {"encoder": free_port(), "decoder": free_port()}
        process = subprocess.Popen(
            [
                *SAMSVC,
                "up",
                *(["--checkpoint", str(tiny_checkpoint.path)] if models is None else models),
                "--encoder-port",
                str(ports["encoder"]),
                "--decoder-port",
                str(ports["decoder"]),
                "--encoder-metrics-port",
                "0",
                "--decoder-metrics-port",
                "0",
            ],  # fmt: skip
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, **environment},
        )
        started.append(process)
        return process, {name: f"127.0.0.1:{port}" for name, port in ports.items()}

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.fixture
def default_stack(start_up: Callable[..., Up]) -> Up:
    """`samsvc up` with no model flags: LiteMedSAM's real weights from the installed package."""
    return start_up({}, models=[])


def wait_serving(process: subprocess.Popen[str], targets: dict[str, str], timeout_seconds: float = 240) -> None:
    def serving() -> bool:
        assert process.poll() is None, f"samsvc up exited early:\n{process.stdout.read() if process.stdout else ''}"
        return all(health_status(target, "", 1.0) == "SERVING" for target in targets.values())

    wait_until(serving, timeout_seconds, "the stack reports SERVING")


def test_up_serves_real_masks_by_default_segment_and_clean_stop(default_stack: Up, tmp_path: Path) -> None:
    """With no model flags `samsvc up` serves LiteMedSAM: box prompts on photos with a pasted object of known extent
    give real masks (mean IoU >= 0.8 with the truth, none under 0.6), through Embed and Segment; `samsvc segment`
    draws and prints one; SIGTERM stops every process."""
    process, targets = default_stack
    wait_serving(process, targets)
    ious = composite_ious(targets)
    assert np.mean(list(ious.values())) >= 0.8 and min(ious.values()) >= 0.6, ious
    running = descendants(process.pid)
    assert len(running) >= 4  # redis-server, tritonserver (+ its stub), encoder, decoder

    rgb = smooth_rgb(240, 320, seed=11)
    image_path = tmp_path / "photo.png"
    Image.fromarray(rgb).save(image_path)
    overlay_path = tmp_path / "overlay.png"
    result = subprocess.run(
        [
            *SAMSVC,
            "segment",
            str(image_path),
            "--point",
            "160,120",
            "--point",
            "20,20,0",
            "--box",
            "40,30,280,200",
            "--out",
            str(overlay_path),
            "--json",
            "--encoder",
            targets["encoder"],
            "--decoder",
            targets["decoder"],
        ],  # fmt: skip
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    overlay = np.asarray(Image.open(overlay_path).convert("RGB"))
    assert overlay.shape == rgb.shape
    assert np.count_nonzero(np.any(overlay != rgb, axis=2)) > 0
    answer = json.loads(result.stdout)
    assert answer["original_size"] == {"height": 240, "width": 320}
    assert answer["image_key"].startswith(f"sam:{answer['model']}:") and answer["model"].startswith(
        "tinyvit-lite_medsam-"
    )
    assert len(answer["masks"]) == 1
    mask = answer["masks"][0]
    rle = coco_mask.frPyObjects(mask["rle"], 240, 320)
    assert int(coco_mask.area(rle)) == mask["area"]
    if mask["area"]:
        assert [int(v) for v in coco_mask.toBbox(rle)] == mask["bbox"]

    everything_path = tmp_path / "everything.png"
    result = subprocess.run(
        [*SAMSVC, "segment", str(image_path), "--everything", "--points-per-side", "8", "--pred-iou-thresh", "0.5",
         "--stability-score-thresh", "0.8", "--out", str(everything_path), "--json", "--encoder", targets["encoder"],
         "--decoder", targets["decoder"]],
        capture_output=True,
        text=True,
        timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "points 64/64" in result.stderr
    everything = json.loads(result.stdout)
    for mask in everything["masks"]:
        assert len(mask["point"]) == 2 and mask["score"] > 0.5 and mask["stability_score"] >= 0.8
        assert int(coco_mask.area(coco_mask.frPyObjects(mask["rle"], 240, 320))) == mask["area"]
    drawn = np.asarray(Image.open(everything_path).convert("RGB"))
    assert drawn.shape == rgb.shape
    assert (np.count_nonzero(np.any(drawn != rgb, axis=2)) > 0) == any(mask["area"] for mask in everything["masks"])

    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=90)
    assert process.returncode == 0, output
    assert "stopped." in output
    wait_until(lambda: not any(is_alive(pid) for pid in running), 10, "every process of the stack gone after SIGTERM")


def _segment(image_path: Path, targets: dict[str, str], token: str | None) -> subprocess.CompletedProcess[str]:
    environment = {key: value for key, value in os.environ.items() if key != "SAMSVC_AUTH_TOKEN"}
    if token is not None:
        environment["SAMSVC_AUTH_TOKEN"] = token
    return subprocess.run(
        [*SAMSVC, "segment", str(image_path), "--point", "40,30", "--json"]
        + ["--encoder", targets["encoder"], "--decoder", targets["decoder"]],
        capture_output=True,
        text=True,
        timeout=120,
        env=environment,
    )


def test_up_protected_by_tokens_restarts_a_dead_part_and_dies_whole(
    start_up: Callable[[dict[str, str]], Up], tmp_path: Path
) -> None:
    """Issue 10, findings 4 and 6: `SAMSVC_AUTH_TOKENS_FILE=... samsvc up` protects both services; when its
    redis-server dies, it is restarted (the stack used to tear down in ~5 s); when `up` is SIGKILLed, every process
    of the stack is gone within 10 s, tritonserver's python stub included (they used to keep running)."""
    tokens_file = tmp_path / "tokens"
    tokens_file.write_text("up-test-token-1f2e3d\n")
    process, targets = start_up({"SAMSVC_AUTH_TOKENS_FILE": str(tokens_file)})
    wait_serving(process, targets)
    image_path = tmp_path / "photo.png"
    Image.fromarray(smooth_rgb(60, 80, seed=12)).save(image_path)

    refused = _segment(image_path, targets, token=None)
    assert refused.returncode == 1 and "UNAUTHENTICATED" in refused.stderr, refused.stderr
    assert _segment(image_path, targets, token="up-test-token-1f2e3d").returncode == 0

    def redis_pids() -> set[int]:
        return {pid for pid in descendants(process.pid) if command_of(pid).split(" ")[0].endswith("redis-server")}

    (first_redis,) = redis_pids()
    os.kill(first_redis, signal.SIGKILL)
    wait_until(lambda: len(redis_pids() - {first_redis}) == 1, 30, "redis-server restarted by `up`")
    assert process.poll() is None
    wait_serving(process, targets, timeout_seconds=30)
    answer = _segment(image_path, targets, token="up-test-token-1f2e3d")
    assert answer.returncode == 0, answer.stderr

    running = descendants(process.pid)
    commands = {command_of(pid) for pid in running}
    assert any("tritonserver" in command for command in commands)
    assert any("triton_python_backend_stub" in command for command in commands), commands
    process.send_signal(signal.SIGKILL)
    process.wait()
    wait_until(lambda: not any(is_alive(pid) for pid in running), 10, "every process of the stack gone after SIGKILL")
    output = process.stdout.read() if process.stdout else ""
    assert "redis exited" in output and "redis restarted" in output, output[-2000:]


def composite_ious(targets: dict[str, str]) -> dict[str, float]:
    """IoU with the truth of the best mask for each composite's box, through the running stack."""
    ious = {}
    with SamClient(targets["encoder"], targets["decoder"]) as client:
        for composite in composites():
            image = client.embed(composite.png)
            with client.open_stream(timeout_seconds=120) as stream:
                answer = stream.segment(image, [make_prompt(box=composite.box)])
            ious[composite.name] = iou(mask_of(answer.objects[0].masks[0]), composite.truth)
    return ious
