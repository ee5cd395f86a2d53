"""Step the offered load up until the Segment p99 passes a target; write the table, a CSV and the plot.

Runs locust in process (its library API) with bench/load/locustfile.py's sessions against a running stack:

    .venv/bin/samsvc up &                                   # or any deployment: see bench/load/README.md
    .venv/bin/python bench/load/steps.py --p99-target-ms 1000 --out bench/load/results/tiny

Step k runs `users_start + k * users_step` locust users (each an arrival source of --session-rate sessions/s)
for --warmup-seconds (not measured: queues settle), then --step-seconds measured. It stops after the first step
whose p99 is over the target, whose errors pass 5%, or after --max-users. Sessions in flight carry over from step
to step, as they would in a service whose traffic grows.
"""

# ruff: noqa: E402, I001  (locustfile first: gevent's patches and gRPC's gevent mode before anything else)
from __future__ import annotations

import locustfile

import argparse
import logging
import time
from pathlib import Path

import gevent
from locust.env import Environment
from locust.stats import StatsEntry
from report import StepResult, markdown_table, plot, write_csv
from workload import Workload, add_workload_arguments

InteractiveSessions = locustfile.InteractiveSessions
MAX_ERROR_RATIO = 0.05


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_workload_arguments(parser)
    parser.add_argument("--users-start", type=int, default=1, help="Locust users in the first step. Default: 1.")
    parser.add_argument("--users-step", type=int, default=1, help="Users added per step. Default: 1.")
    parser.add_argument("--max-users", type=int, default=16, help="Last step at most. Default: 16.")
    parser.add_argument("--warmup-seconds", type=float, default=10.0, help="Unmeasured start of each step.")
    parser.add_argument("--step-seconds", type=float, default=40.0, help="Measured length of each step.")
    parser.add_argument("--p99-target-ms", type=float, default=1000.0, help="Stop after the step over it.")
    parser.add_argument("--out", type=Path, default=Path("bench/load/results"), help="Folder for the results.")
    parser.add_argument("--title", default="samsvc", help="Title of the plot (what was measured, where).")
    return parser.parse_args(argv)


def _percentile(entry: StatsEntry, fraction: float) -> float:
    return float(entry.get_response_time_percentile(fraction) or 0.0) if entry.num_requests else 0.0


def measure_step(environment: Environment, users: int, workload: Workload, seconds: float) -> StepResult:
    """Statistics of the last `seconds` (the caller has started `users` and waited out the warm-up)."""
    environment.stats.reset_all()
    in_flight: list[int] = []
    arrived_before = InteractiveSessions.arrived
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        gevent.sleep(0.5)
        in_flight.append(len(InteractiveSessions.sessions))
    elapsed = time.monotonic() - started
    stats = environment.stats
    segment = stats.get("Segment", "grpc")
    embed_new = stats.get("Embed (new)", "grpc")
    embed_cached = stats.get("Embed (cached)", "grpc")
    return StepResult(
        users=users,
        offered_sessions_per_second=users * workload.session_rate,
        offered_prompts_per_second=users * workload.prompts_per_second_per_user,
        arrived_sessions_per_second=(InteractiveSessions.arrived - arrived_before) / elapsed,
        seconds=round(elapsed, 1),
        sessions_in_flight=sum(in_flight) / max(1, len(in_flight)),
        prompts_per_second=(segment.num_requests - segment.num_failures) / elapsed,
        segment_p50_ms=_percentile(segment, 0.50),
        segment_p95_ms=_percentile(segment, 0.95),
        segment_p99_ms=_percentile(segment, 0.99),
        embeds_new=embed_new.num_requests,
        embeds_cached=embed_cached.num_requests,
        embed_new_p50_ms=_percentile(embed_new, 0.50),
        embed_new_p99_ms=_percentile(embed_new, 0.99),
        embed_cached_p99_ms=_percentile(embed_cached, 0.99),
        requests=stats.total.num_requests,
        failures=stats.total.num_failures,
    )


def run_steps(arguments: argparse.Namespace) -> list[StepResult]:
    workload = Workload.from_options(arguments)
    InteractiveSessions.workload = workload
    environment = Environment(user_classes=[InteractiveSessions], events=locustfile.events)
    runner = environment.create_local_runner()
    InteractiveSessions.embed_pool()
    steps: list[StepResult] = []
    users = arguments.users_start
    try:
        while users <= arguments.max_users:
            runner.start(users, spawn_rate=max(users, 1))
            gevent.sleep(arguments.warmup_seconds)
            step = measure_step(environment, users, workload, arguments.step_seconds)
            steps.append(step)
            logging.info(
                "users %d: offered %.1f prompts/s, achieved %.2f, p50/p95/p99 %.0f/%.0f/%.0f ms, %d failures",
                users,
                step.offered_prompts_per_second,
                step.prompts_per_second,
                step.segment_p50_ms,
                step.segment_p95_ms,
                step.segment_p99_ms,
                step.failures,
            )
            if step.segment_p99_ms > arguments.p99_target_ms or step.error_ratio > MAX_ERROR_RATIO:
                break
            users += arguments.users_step
    finally:
        runner.quit()
        InteractiveSessions.sessions.kill(block=True, timeout=10)
    return steps


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    arguments = parse_arguments(argv)
    steps = run_steps(arguments)
    arguments.out.mkdir(parents=True, exist_ok=True)
    write_csv(steps, arguments.out / "steps.csv")
    table = markdown_table(steps, arguments.p99_target_ms)
    (arguments.out / "table.md").write_text(table)
    plot(steps, arguments.p99_target_ms, arguments.out / "latency_vs_load.png", arguments.title)
    print(table)
    print(f"wrote {arguments.out}/steps.csv, table.md, latency_vs_load.png")


if __name__ == "__main__":
    main()
