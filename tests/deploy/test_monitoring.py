"""The dashboard and the alert rules, offline: every metric they name exists, the dashboard is valid and shows what the
design asks for. tests/integration/test_prometheus.py runs the same queries against a real Prometheus."""

from __future__ import annotations

import re
from functools import cache

import pytest

from tests.deploy.manifests import DEPLOY, ROOT, named, of_kind
from tests.deploy.monitoring import (
    EXTERNAL_METRIC_PREFIXES,
    PROMETHEUS_BUILTIN_SERIES,
    adapter_rules,
    alerts,
    dashboard,
    dashboard_queries,
    metric_names,
    panels,
    rules,
)

_SUFFIXES = ("_bucket", "_count", "_sum", "_total", "_created")
# The services' own RPCs: panels and latency alerts leave gRPC health and reflection out.
OUR_SERVICES = 'grpc_service=~"sam.v1.(Encoder|Decoder)"'


@cache
def _service_sources() -> str:
    return "\n".join(path.read_text() for path in (ROOT / "service").rglob("*.py") if "_proto" not in path.parts)


def is_defined_in_service(name: str) -> bool:
    """The name, or its base name without a Prometheus suffix, is a quoted string in service/."""
    candidates = {name} | {name.removesuffix(suffix) for suffix in _SUFFIXES if name.endswith(suffix)}
    return any(re.search(rf"[\"']{re.escape(candidate)}[\"']", _service_sources()) for candidate in candidates)


def test_metric_name_extraction() -> None:
    expression = (
        'histogram_quantile(0.99, sum by (le, grpc_method) (rate(grpc_server_handling_seconds_bucket{a="b c"}'
        '[$__rate_interval]))) / ignoring(result) group_left sum(sam_x_total offset 5m) > 0.5 and up{job="t"} == 1'
        " / 1e6 / clamp_min(x_total, 1 / 60)"
    )
    assert metric_names(expression) == {"grpc_server_handling_seconds_bucket", "sam_x_total", "up", "x_total"}
    assert is_defined_in_service("grpc_server_handling_seconds_bucket")
    assert not is_defined_in_service("sam_no_such_metric_total")


def _queried(source: str) -> set[str]:
    expressions = {
        "alerts": [rule["expr"] for rule in rules()],
        "dashboard": [query.expr for query in dashboard_queries()],
        "autoscaling": [rule["metricsQuery"] + " " + rule["seriesQuery"] for rule in adapter_rules()],
    }[source]
    assert expressions
    return set().union(*(metric_names(expression) for expression in expressions)) - PROMETHEUS_BUILTIN_SERIES


@pytest.mark.parametrize("source", ["alerts", "dashboard", "autoscaling"])
def test_every_metric_queried_is_defined_in_service_or_an_exporter(source: str) -> None:
    """Our names must be in service/; Triton's and redis_exporter's are checked live by test_prometheus.py."""
    ours = {name for name in _queried(source) if not name.startswith(EXTERNAL_METRIC_PREFIXES)}
    missing = sorted(name for name in ours if not is_defined_in_service(name))
    assert not missing, f"{source} query metrics that service/ does not define: {missing}"


def test_alerts_cover_errors_latency_triton_redis_and_cache() -> None:
    wanted = {"SamEncoderErrorRatioHigh", "SamDecoderErrorRatioHigh", "SamEncoderLatencyP99High"}
    wanted |= {"SamDecodeLatencyP99High", "SamTritonDown", "SamRedisErrors", "SamCacheHitRatioLow"}
    wanted |= {"SamRedisCacheTooSmall", "SamTritonQueueTimeHigh", "SamTritonGpuMemoryHigh"}
    assert wanted <= set(alerts()), wanted - set(alerts())
    readme = (DEPLOY / "README.md").read_text()
    for name, rule in alerts().items():
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, name
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], name
        assert name in readme, f"deploy/README.md does not explain {name}"


def test_latency_alerts_and_rpc_panels_leave_out_grpc_health() -> None:
    """Readiness probes call grpc.health.v1.Health/Check every few seconds: they are not the service's traffic."""
    for query in dashboard_queries():
        if "grpc_server_" in query.expr:
            for selector in re.findall(r"grpc_server_\w+\{([^}]*)\}", query.expr):
                assert OUR_SERVICES in selector or 'grpc_service="sam.v1.' in selector, (query.panel_title, selector)
    for name, rule in alerts().items():
        for selector in re.findall(r"grpc_server_\w+\{([^}]*)\}", rule["expr"]):
            assert 'grpc_service="sam.v1.' in selector or OUR_SERVICES in selector, (name, selector)
        for selector in re.findall(r"sam_redis_seconds_bucket\{([^}]*)\}", rule["expr"]):
            assert 'operation!="ping"' in selector, name


def test_service_monitor_scrapes_the_metrics_ports() -> None:
    monitor = named("ServiceMonitor", "sam")
    assert [endpoint["port"] for endpoint in monitor["spec"]["endpoints"]] == ["metrics"]
    selected = set(monitor["spec"]["selector"]["matchExpressions"][0]["values"])
    assert selected == {"encoder", "decoder", "triton", "redis"}
    for service in of_kind("Service"):
        if service["metadata"]["labels"]["app.kubernetes.io/component"] in selected:
            assert "metrics" in {port["name"] for port in service["spec"]["ports"]}


# ---------------------------------------------------------------------------------------------- dashboard


def test_dashboard_is_a_valid_grafana_dashboard() -> None:
    board = dashboard()
    assert board["uid"] and board["title"] and isinstance(board["schemaVersion"], int)
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in board["panels"]:
        position = panel["gridPos"]
        assert 0 <= position["x"] and position["x"] + position["w"] <= 24, panel["title"]
        if panel["type"] != "row":
            assert panel["targets"] and all(target["expr"] for target in panel["targets"]), panel["title"]
            assert [target["refId"] for target in panel["targets"]] == [
                chr(65 + i) for i in range(len(panel["targets"]))
            ]


def test_dashboard_shows_what_the_design_asks_for() -> None:
    queried = _queried("dashboard")
    wanted = {
        "grpc_server_handled_total",  # RED per RPC
        "grpc_server_handling_seconds_bucket",
        "sam_encoder_cache_requests_total",  # cache hit ratio
        "sam_encoder_triton_seconds_bucket",  # Triton latency
        "sam_redis_seconds_bucket",  # Redis latency
        "sam_encoder_single_flight_waits_total",  # single-flight waits
        "sam_decoder_batch_size_bucket",  # decoder batch sizes
        "sam_decoder_request_seconds_bucket",  # per-request decode latency
        "sam_decoder_queue_depth",  # the decode engine: queue depth, time waiting, pieces cancelled
        "sam_decoder_queue_wait_seconds_bucket",
        "sam_decoder_pieces_cancelled_total",
        "sam_decoder_requests_refused_total",
        "sam_decoder_lru_requests_total",  # LRU hit ratio
        "sam_decoder_streams_in_flight",  # streams in flight
        # Redis, from its exporter: memory against maxmemory, evictions, hit ratio, command latency.
        "redis_memory_used_bytes",
        "redis_memory_max_bytes",
        "redis_evicted_keys_total",
        "redis_keyspace_hits_total",
        "redis_commands_duration_seconds_total",
        # Triton's own: queue and compute time, throughput, batching, GPU utilisation and memory.
        "nv_inference_queue_duration_us",
        "nv_inference_compute_infer_duration_us",
        "nv_inference_request_success",
        "nv_inference_exec_count",
        "nv_gpu_utilization",
        "nv_gpu_memory_used_bytes",
    }
    assert wanted <= queried, wanted - queried
    titles = " ".join(panel["title"] for panel in panels())
    assert "Redis" in titles and "Triton" in titles and "GPU" in titles


def test_every_series_is_shown_in_its_own_unit() -> None:
    """A panel mixing seconds with events per second gives the odd series its own unit (an override)."""
    for panel in panels():
        default_unit = panel["fieldConfig"]["defaults"].get("unit")
        assert default_unit, panel["title"]
        overridden = {
            override["matcher"]["options"]: {item["id"]: item["value"] for item in override["properties"]}
            for override in panel["fieldConfig"].get("overrides", [])
            if override["matcher"]["id"] == "byFrameRefID"
        }
        for target in panel["targets"]:
            unit = overridden.get(target["refId"], {}).get("unit", default_unit)
            expr = target["expr"]
            if expr.startswith("histogram_quantile") and "_seconds_bucket" in expr:
                assert unit == "s", (panel["title"], target["refId"], unit)
            elif re.match(r"sum( by \([^)]*\))? \(rate\(\w+_(errors|failure)", expr):
                assert unit in ("reqps", "ops", "short"), (panel["title"], target["refId"], unit)
