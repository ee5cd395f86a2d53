"""A real Prometheus scraping the real local stack, with the repository's alert rules loaded.

The stack is `samsvc up`'s (tritonserver on the CPU, redis-server, the encoder and decoder as child processes), plus
Debian's prometheus-redis-exporter started with the sidecar's own arguments from deploy/base/redis.yaml, and
Debian's prometheus scraping all four every second, each target labelled as the ServiceMonitor labels it in a
cluster (`job` = component, `namespace`, `pod`). After driving traffic through both services, every dashboard
query must return data with a finite value, every rule must evaluate without error, and prometheus-adapter's
queries must answer. Only what a GPU feeds (Triton's nv_gpu_* metrics) is exempt on this CPU, by name.
"""

from __future__ import annotations

import json
import math
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import yaml

from service.client import SamClient, make_prompt
from service.local.child_process import ChildProcess
from service.local.ports import free_port
from service.model_specs import ModelSpec
from service.runtime.checkpoint import CheckpointInfo
from service.stack.up import Stack, StackOptions, pick_free_ports
from tests.deploy.manifests import named, require_tool
from tests.deploy.monitoring import (
    adapter_query,
    adapter_rules,
    dashboard_queries,
    metric_names,
    rule_file_text,
    rules,
    with_grafana_variables,
)
from tests.support.images import png_bytes, smooth_rgb

pytestmark = pytest.mark.slow

# Triton exports these only for GPUs it can see (and it starts with --allow-gpu-metrics=false here).
GPU_ONLY_METRICS = {"nv_gpu_utilization", "nv_gpu_memory_used_bytes", "nv_gpu_memory_total_bytes"}
NAMESPACE = "sam"
SCRAPE_SECONDS = 1
# Wide enough to hold the traffic below and several scrapes; Grafana's $__rate_interval is at least 4 scrapes.
RATE_INTERVAL = "1m"


def _get_json(url: str, timeout_seconds: float = 10.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout_seconds) as response:
        return json.load(response)


def _wait_for(url: str, process: ChildProcess, timeout_seconds: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        assert not process.exited(), f"exited:\n{process.log_tail()}"
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} not ready in {timeout_seconds} s:\n{process.log_tail()}")


def _exporter_arguments(redis_port: int, listen_port: int) -> list[str]:
    """The sidecar's arguments from deploy/base/redis.yaml, pointed at this Redis and a loopback port."""
    containers = named("Deployment", "redis")["spec"]["template"]["spec"]["containers"]
    sidecar = next(container for container in containers if container["name"] == "redis-exporter")
    arguments = []
    for argument in sidecar["args"]:
        if argument.startswith("--redis.addr="):
            argument = f"--redis.addr=redis://127.0.0.1:{redis_port}"
        elif argument.startswith("--web.listen-address="):
            argument = f"--web.listen-address=127.0.0.1:{listen_port}"
        arguments.append(argument)
    return arguments


@pytest.fixture(scope="module")
def stack(tiny_checkpoint: CheckpointInfo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    options = StackOptions(
        models=(ModelSpec("sam_tiny", str(tiny_checkpoint.path)),), redis_url=None, encoder_port=0, decoder_port=0,
        encoder_metrics_port=0, decoder_metrics_port=0,
    )  # fmt: skip
    running = Stack(pick_free_ports(options), work_dir=tmp_path_factory.mktemp("stack"))
    try:
        running.start()
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def prometheus(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Prometheus's base URL, once it scrapes every target; the redis exporter runs beside it."""
    work = tmp_path_factory.mktemp("prometheus")
    assert stack.redis is not None and stack.triton is not None
    exporter_port = free_port()
    # The sidecar's REDIS_PASSWORD comes from the sam-redis Secret; here, from the password `up` made.
    exporter = ChildProcess(
        "redis-exporter",
        [require_tool("prometheus-redis-exporter"), *_exporter_arguments(stack.redis.port, exporter_port)],
        work / "redis-exporter.log",
        {**os.environ, "REDIS_PASSWORD": stack.redis.password or ""},
    ).start()
    targets = {
        "encoder": stack.options.encoder_metrics_port,
        "decoder": stack.options.decoder_metrics_port,
        "triton": stack.triton.metrics_port,
        "redis": exporter_port,
    }
    config = {
        "global": {"scrape_interval": f"{SCRAPE_SECONDS}s", "evaluation_interval": f"{SCRAPE_SECONDS}s"},
        "rule_files": ["rules.yaml"],
        "scrape_configs": [
            {
                "job_name": job,
                "static_configs": [
                    {"targets": [f"127.0.0.1:{port}"], "labels": {"namespace": NAMESPACE, "pod": f"{job}-0"}}
                ],
            }
            for job, port in targets.items()
        ],
    }
    (work / "prometheus.yml").write_text(yaml.safe_dump(config))
    (work / "rules.yaml").write_text(rule_file_text())
    port = free_port()
    server = ChildProcess(
        "prometheus",
        [
            require_tool("prometheus"),
            f"--config.file={work / 'prometheus.yml'}",
            f"--storage.tsdb.path={work / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        work / "prometheus.log",
    ).start()
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for(f"http://127.0.0.1:{exporter_port}/health", exporter)
        _wait_for(f"{url}/-/ready", server)
        deadline = time.monotonic() + 30
        while True:
            active = _get_json(f"{url}/api/v1/targets")["data"]["activeTargets"]
            health = {target["labels"]["job"]: target["health"] for target in active}
            if health == dict.fromkeys(targets, "up"):
                break
            assert time.monotonic() < deadline, f"targets not all up: {health}\n{server.log_tail()}"
            time.sleep(0.2)
        yield url
    finally:
        server.stop()
        exporter.stop()


def _drive_traffic(stack: Stack) -> None:
    """Cache misses and hits, a single-flight wait, decodes (LRU miss then hits), and in-band errors."""
    endpoints = stack.endpoints()
    first, second = png_bytes(smooth_rgb(120, 160, seed=21)), png_bytes(smooth_rgb(96, 128, seed=22))
    with SamClient(endpoints["encoder"], endpoints["decoder"]) as client:
        image = client.embed(first)
        assert client.embed(first).cached
        # Three calls for one new image at once: one encodes, the others wait for its value (single flight).
        with ThreadPoolExecutor(max_workers=3) as pool:
            answers = list(pool.map(lambda _: client.embed(second), range(3)))
        assert len({answer.image_key for answer in answers}) == 1
        missing_key = image.image_key.rsplit(":", 1)[0] + ":" + "0" * 64
        with client.open_stream() as stream:
            for x in (40, 80, 120):
                answer = stream.segment(image, [make_prompt(points=[(x, 60, 1)])], multimask_output=True)
                assert len(answer.objects[0].masks) == 3
            # A click outside the image (INVALID_ARGUMENT) and an unknown key (NOT_FOUND): in band.
            outside = stream.segment(image, [make_prompt(points=[(10_000, 60, 1)])], raise_on_error=False)
            unknown = stream.segment(missing_key, [make_prompt(points=[(40, 60, 1)])], raise_on_error=False)
            assert outside.error.code and unknown.error.code
            answer = stream.segment(image, [make_prompt(points=[(60, 60, 1)]), make_prompt(box=(10, 10, 90, 70))])
            assert len(answer.objects) == 2


def _query(url: str, expression: str) -> list[dict[str, Any]]:
    response = _get_json(f"{url}/api/v1/query?" + urllib.parse.urlencode({"query": expression}))
    assert response["status"] == "success", (expression, response)
    result: list[dict[str, Any]] = response["data"]["result"]
    return result


def _finite_values(result: list[dict[str, Any]]) -> list[float]:
    return [value for sample in result if math.isfinite(value := float(sample["value"][1]))]


def _warm_up(stack: Stack) -> None:
    """One call of each kind, so that every labelled series exists before the traffic that is measured.

    A series the client library creates at its first event starts with that event already counted, and rate()
    cannot see an increase before the first sample: traffic that all falls between two scrapes would read as none.
    (Series that service/ creates at 0 up front do not need this; the RPC interceptor learns a method's labels only
    from its first call.)
    """
    endpoints = stack.endpoints()
    with SamClient(endpoints["encoder"], endpoints["decoder"]) as client:
        image = client.embed(png_bytes(smooth_rgb(64, 64, seed=20)))
        with client.open_stream() as stream:
            stream.segment(image, [make_prompt(points=[(30, 30, 1)])])


@pytest.fixture(scope="module")
def after_traffic(stack: Stack, prometheus: str) -> str:
    _warm_up(stack)
    time.sleep(2.5 * SCRAPE_SECONDS)
    _drive_traffic(stack)
    time.sleep(3 * SCRAPE_SECONDS)  # scraped, and the rules evaluated on it
    return prometheus


def test_every_dashboard_query_returns_data(after_traffic: str) -> None:
    empty, exempt = [], []
    for query in dashboard_queries():
        expression = with_grafana_variables(query.expr, RATE_INTERVAL, NAMESPACE)
        result = _query(after_traffic, expression)
        label = f"panel {query.panel_id} {query.panel_title!r} {query.ref_id}: {expression}"
        if metric_names(query.expr) <= GPU_ONLY_METRICS:
            assert result == [], f"{label} has data on a CPU: drop it from the exemptions"
            exempt.append(query.panel_id)
        elif not _finite_values(result):
            empty.append(f"{label} -> {result}")
    assert not empty, "queries without a finite value:\n" + "\n".join(empty)
    assert exempt, "the GPU panels are gone from the dashboard?"


def test_every_metric_the_dashboard_rules_and_autoscalers_name_is_exported(after_traffic: str) -> None:
    exported = set(_get_json(f"{after_traffic}/api/v1/label/__name__/values")["data"])
    expressions = [query.expr for query in dashboard_queries()] + [rule["expr"] for rule in rules()]
    expressions += [rule["metricsQuery"] + " " + rule["seriesQuery"] for rule in adapter_rules()]
    named_metrics = set().union(*(metric_names(expression) for expression in expressions))
    missing = sorted(named_metrics - exported - GPU_ONLY_METRICS)
    assert not missing, f"named but not exported by the live stack: {missing}"


def test_every_rule_evaluates_without_error(after_traffic: str) -> None:
    groups = _get_json(f"{after_traffic}/api/v1/rules")["data"]["groups"]
    loaded = {rule["name"]: rule for group in groups for rule in group["rules"]}
    assert set(loaded) == {rule["alert"] for rule in rules()}
    for name, rule in loaded.items():
        assert rule["health"] == "ok", (name, rule.get("lastError"))
        assert not rule.get("lastError"), name
        assert not rule["lastEvaluation"].startswith("0001-"), f"{name} never evaluated"
    # Triton is up, and `job` names it as the ServiceMonitor does: SamTritonDown stays quiet.
    assert loaded["SamTritonDown"]["state"] == "inactive"


def test_autoscaling_metrics_answer(after_traffic: str) -> None:
    """prometheus-adapter's queries, as the adapter fills them in for the pods an autoscaler scales."""
    for rule in adapter_rules():
        job = "triton" if rule["seriesQuery"].startswith("nv_") else "decoder"
        expression = adapter_query(rule, f'namespace="{NAMESPACE}",pod=~"{job}-0"', "pod")
        result = _query(after_traffic, expression)
        assert [sample["metric"].get("pod") for sample in result] == [f"{job}-0"], (expression, result)
        assert _finite_values(result), (expression, result)
