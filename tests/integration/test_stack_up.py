"""`samsvc up` as a user runs it: the whole stack in a subprocess, `samsvc segment` against it, SIGTERM, nothing left."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as coco_mask

from service.local.ports import free_port
from service.rpc.health_check import health_status
from service.runtime.checkpoint import CheckpointInfo
from tests.support.images import smooth_rgb
from tests.support.polling import wait_until

pytestmark = pytest.mark.slow

SAMSVC = [sys.executable, "-m", "service.cli"]


def descendants(pid: int) -> set[int]:
    """Every process below `pid`, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    found: set[int] = set()
    pending = [pid]
    while pending:
        for child in children.get(pending.pop(), []):
            if child not in found:
                found.add(child)
                pending.append(child)
    return found


def is_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.fixture
def stack(tiny_checkpoint: CheckpointInfo, tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], dict[str, str]]]:
    ports = {"encoder": free_port(), "decoder": free_port()}
    process = subprocess.Popen(
        [
            *SAMSVC,
            "up",
            "--checkpoint",
            str(tiny_checkpoint.path),
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
    )
    targets = {name: f"127.0.0.1:{port}" for name, port in ports.items()}
    try:
        yield process, targets
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_up_segment_and_clean_stop(stack: tuple[subprocess.Popen[str], dict[str, str]], tmp_path: Path) -> None:
    process, targets = stack

    def serving() -> bool:
        assert process.poll() is None, f"samsvc up exited early:\n{process.stdout.read() if process.stdout else ''}"
        return all(health_status(target, "", 1.0) == "SERVING" for target in targets.values())

    wait_until(serving, 240, "the stack reports SERVING")
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
    assert answer["image_key"].startswith(f"sam:{answer['model']}:")
    assert len(answer["masks"]) == 1
    mask = answer["masks"][0]
    rle = coco_mask.frPyObjects(mask["rle"], 240, 320)
    assert int(coco_mask.area(rle)) == mask["area"]
    if mask["area"]:
        assert [int(v) for v in coco_mask.toBbox(rle)] == mask["bbox"]

    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=90)
    assert process.returncode == 0, output
    assert "stopped." in output
    wait_until(lambda: not any(is_alive(pid) for pid in running), 10, "every process of the stack gone after SIGTERM")
