"""The load test's outputs: the CSV round trip, the Markdown table and the PNG plot; the workload's flags."""

from __future__ import annotations

import dataclasses
import io
import random
from pathlib import Path

from PIL import Image

from tests.support.bench import bench_module

report = bench_module("load/report.py")
workload = bench_module("load/workload.py")


def step(users: int, p99: float) -> object:
    return report.StepResult(
        users=users,
        offered_sessions_per_second=0.1 * users,
        offered_prompts_per_second=1.0 * users,
        arrived_sessions_per_second=0.1 * users,
        seconds=60.0,
        sessions_in_flight=1.3 * users,
        prompts_per_second=0.95 * users,
        segment_p50_ms=100.0 + users,
        segment_p95_ms=200.0 + users,
        segment_p99_ms=p99,
        embeds_new=users,
        embeds_cached=4 * users,
        embed_new_p50_ms=900.0,
        embed_new_p99_ms=1500.0,
        embed_cached_p99_ms=12.0,
        requests=70 * users,
        failures=users - 1,
    )


def test_csv_round_trip_table_and_plot(tmp_path: Path) -> None:
    steps = [step(1, 300.0), step(2, 650.0), step(3, 1400.0)]
    report.write_csv(steps, tmp_path / "steps.csv")
    assert report.read_csv(tmp_path / "steps.csv") == steps

    table = report.markdown_table(steps, p99_target_ms=1000)
    lines = table.splitlines()
    assert len(lines) == 2 + 3
    assert lines[2].endswith("| yes |") and lines[4].endswith("| no |")
    assert "| 0.30 (0.30) | 3.0 |" in lines[4] and "2 (1.0%)" in lines[4]

    report.plot(steps, 1000, tmp_path / "plot.png", "test")
    with Image.open(tmp_path / "plot.png") as image:
        assert image.format == "PNG" and image.size[0] > 1000


def test_every_workload_field_has_a_flag_and_defaults_round_trip() -> None:
    options = workload.workload_parser().parse_args(["--session-rate", "0.5", "--prompts-per-image", "4"])
    loaded = workload.Workload.from_options(options)
    assert loaded == dataclasses.replace(workload.Workload(), session_rate=0.5, prompts_per_image=4)
    assert loaded.prompts_per_second_per_user == 2.0


def test_generated_images_differ_by_seed_only() -> None:
    first = workload.image_bytes(1, 48, 64)
    assert workload.image_bytes(1, 48, 64) == first != workload.image_bytes(2, 48, 64)
    with Image.open(io.BytesIO(first)) as image:
        assert (image.format, image.size) == ("JPEG", (64, 48))


def test_clicks_and_boxes_stay_inside_the_image() -> None:
    rng = random.Random(3)
    for x, y, label in workload.clicks(rng, 48, 64, 20):
        assert 0 <= x <= 63 and 0 <= y <= 47 and label in (0, 1)
    for x0, y0, x1, y1 in workload.boxes(rng, 48, 64, 20):
        assert 0 <= x0 < x1 <= 63 and 0 <= y0 < y1 <= 47
