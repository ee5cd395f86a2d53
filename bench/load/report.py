"""The results of a stepped load test: one row per step, as CSV, as a Markdown table and as a PNG plot of
latency against offered load (matplotlib). No locust import: tests and the capacity notes read this too.

Drawn again from a steps.csv (after a change of title or target):

    .venv/bin/python bench/load/report.py bench/load/results/tiny-2core --p99-target-ms 1000 --title "..."
"""

from __future__ import annotations

import argparse
import csv
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path


@dataclass(frozen=True)
class StepResult:
    """What one step of offered load gave, measured after its warm-up."""

    users: int  # locust users (arrival sources)
    offered_sessions_per_second: float
    offered_prompts_per_second: float
    arrived_sessions_per_second: float  # the Poisson arrivals as they came in this step
    seconds: float
    sessions_in_flight: float  # mean over the step: the concurrent interactive users the load amounts to
    prompts_per_second: float  # Segment answers per second, achieved
    segment_p50_ms: float
    segment_p95_ms: float
    segment_p99_ms: float
    embeds_new: int
    embeds_cached: int
    embed_new_p50_ms: float
    embed_new_p99_ms: float
    embed_cached_p99_ms: float
    requests: int
    failures: int  # failed Embeds, Segments and dropped arrivals

    @property
    def error_ratio(self) -> float:
        return self.failures / self.requests if self.requests else 0.0


def write_csv(steps: Sequence[StepResult], path: Path) -> None:
    with path.open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=[field.name for field in fields(StepResult)])
        writer.writeheader()
        for step in steps:
            writer.writerow(asdict(step))


def read_csv(path: Path) -> list[StepResult]:
    kinds = {field.name: field.type for field in fields(StepResult)}
    with path.open() as file:
        return [
            StepResult(**{name: (int if kinds[name] in (int, "int") else float)(value) for name, value in row.items()})
            for row in csv.DictReader(file)
        ]


def markdown_table(steps: Sequence[StepResult], p99_target_ms: float) -> str:
    """One line per step; the steps whose Segment p99 is within the target are marked."""
    lines = [
        "| users | offered (arrived) sessions/s | offered prompts/s | sessions in flight | prompts/s | Segment p50 / p95 / p99 (ms) "
        "| Embed new p50 / p99 (ms) | Embed cached p99 (ms) | new / cached Embeds | errors | p99 ≤ target |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | :---: |",
    ]
    for step in steps:
        lines.append(
            f"| {step.users} | {step.offered_sessions_per_second:.2f} ({step.arrived_sessions_per_second:.2f}) "
            f"| {step.offered_prompts_per_second:.1f} "
            f"| {step.sessions_in_flight:.1f} | {step.prompts_per_second:.2f} "
            f"| {step.segment_p50_ms:.0f} / {step.segment_p95_ms:.0f} / {step.segment_p99_ms:.0f} "
            f"| {_milliseconds(step.embeds_new, step.embed_new_p50_ms, step.embed_new_p99_ms)} "
            f"| {_milliseconds(step.embeds_cached, step.embed_cached_p99_ms)} "
            f"| {step.embeds_new} / {step.embeds_cached} | {step.failures} ({100 * step.error_ratio:.1f}%) "
            f"| {'yes' if step.segment_p99_ms <= p99_target_ms else 'no'} |"
        )
    return "\n".join(lines) + "\n"


def _milliseconds(samples: int, *values: float) -> str:
    return " / ".join(f"{value:.0f}" for value in values) if samples else "–"


def plot(steps: Sequence[StepResult], p99_target_ms: float, path: Path, title: str) -> None:
    """Segment latency percentiles against offered prompts/s (left) and achieved against offered (right)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FormatStrFormatter

    offered = [step.offered_prompts_per_second for step in steps]
    figure, (latency_axes, throughput_axes) = plt.subplots(1, 2, figsize=(12, 4.8), constrained_layout=True)
    for label, values, style in (
        ("p50", [step.segment_p50_ms for step in steps], "o-"),
        ("p95", [step.segment_p95_ms for step in steps], "s-"),
        ("p99", [step.segment_p99_ms for step in steps], "^-"),
    ):
        latency_axes.plot(offered, values, style, label=f"Segment {label}")
    latency_axes.axhline(p99_target_ms, color="red", linestyle="--", label=f"p99 target {p99_target_ms:g} ms")
    latency_axes.set_yscale("log")
    latency_axes.yaxis.set_major_formatter(FormatStrFormatter("%.0f"))
    latency_axes.yaxis.set_minor_formatter(FormatStrFormatter("%.0f"))
    latency_axes.set_xlabel("offered load (prompts/s)")
    latency_axes.set_ylabel("latency per prompt (ms, log scale)")
    latency_axes.set_title("latency against offered load")
    latency_axes.grid(True, which="both", alpha=0.3)
    latency_axes.legend()
    for step in steps:
        latency_axes.annotate(
            f"{step.sessions_in_flight:.0f}",
            (step.offered_prompts_per_second, step.segment_p99_ms),
            textcoords="offset points",
            xytext=(0, 6),
            fontsize=7,
            ha="center",
        )

    throughput_axes.plot(offered, [step.prompts_per_second for step in steps], "o-", label="achieved prompts/s")
    throughput_axes.plot(offered, offered, ":", color="gray", label="offered = achieved")
    throughput_axes.set_xlabel("offered load (prompts/s)")
    throughput_axes.set_ylabel("prompts/s")
    throughput_axes.set_title("throughput (labels on the left: sessions in flight)")
    throughput_axes.grid(True, alpha=0.3)
    throughput_axes.legend()
    figure.suptitle(title)
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", type=Path, help="A folder holding steps.csv.")
    parser.add_argument("--p99-target-ms", type=float, default=1000.0)
    parser.add_argument("--title", default="samsvc")
    arguments = parser.parse_args()
    steps = read_csv(arguments.results / "steps.csv")
    table = markdown_table(steps, arguments.p99_target_ms)
    (arguments.results / "table.md").write_text(table)
    plot(steps, arguments.p99_target_ms, arguments.results / "latency_vs_load.png", arguments.title)
    print(table)


if __name__ == "__main__":
    main()
