"""The capacity model's arithmetic (bench/capacity/capacity.py) and its figures file."""

from __future__ import annotations

import math

import pytest

from tests.support.bench import bench_module

capacity = bench_module("capacity/capacity.py")


def test_erlang_c_known_values() -> None:
    assert capacity.erlang_c(1, 0.5) == pytest.approx(0.5)  # M/M/1: P(wait) = utilisation
    assert capacity.erlang_c(2, 1.0) == pytest.approx(1 / 3)
    assert capacity.erlang_c(3, 3.0) == 1.0  # saturated


def test_workers_meet_the_tail_and_one_fewer_does_not() -> None:
    arrival, service, p99 = 60.0, 20.0, 0.3
    workers = capacity.workers_for(arrival, service, p99)
    assert capacity.response_tail(workers, arrival, service, p99) <= 0.01
    assert capacity.response_tail(workers - 1, arrival, service, p99) > 0.01
    with pytest.raises(ValueError, match="no number of decoders"):
        capacity.workers_for(arrival, 2.0, 0.3)  # one prompt takes 500 ms


def test_plan_from_figures() -> None:
    figures = {
        "model": {
            "think_seconds": 2.7,
            "cores_per_decoder_pod": 2,
            "decoder_pods_headroom": 1,
            "retention_minutes": 60,
            "triton_target_utilisation": 0.5,
            "redis_usable_share": 0.8,
            "redis_replicas_per_master": 1,
        },
        "decoder": {"cpu": {"prompts_per_second_per_core": 20.0}},
        "triton": {"gpu": {"encodes_per_second": 4.0}},
        "families": {"sam": {"redis_bytes": 2 * 2**20, "redis_bytes_one_string": 2.5 * 2**20}},
    }
    plan = capacity.plan(
        figures, users=300, new_images_per_minute=240, p99_ms=300, family="sam", backend="cpu", triton="gpu"
    )
    assert plan.prompts_per_second == pytest.approx(100.0)
    assert plan.decode_workers == capacity.workers_for(100.0, 20.0, 0.3)
    assert plan.decoder_pods == math.ceil(plan.decode_workers / 2) + 1
    assert plan.triton_instances == 2  # 4 encodes/s at 50% of 4/s
    assert plan.embeddings_kept == 14_400
    assert plan.redis_gib == pytest.approx(14_400 * 2 / 1024 / 0.8)
    assert plan.redis_gib_with_replicas == pytest.approx(2 * plan.redis_gib)


def test_the_shipped_figures_compute_the_worked_example(capsys: pytest.CaptureFixture[str]) -> None:
    figures = capacity.load_figures()
    for section in ("model", "example", "families", "triton", "decoder"):
        assert figures[section], section
    for name, family in figures["families"].items():
        assert family["embedding_bytes"] <= family["redis_bytes"] < family["redis_bytes_one_string"], name
        assert family["source"], name
    for table in ("triton", "decoder"):
        for name, entry in figures[table].items():
            assert entry["source"], f"{table}.{name} says where its figure comes from"
    capacity.main([])
    printed = capsys.readouterr().out
    assert "decoder pods:" in printed and "Triton instances:" in printed and "GiB" in printed
