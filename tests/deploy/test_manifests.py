"""deploy/ checked offline: manifests, kustomizations, wiring between resources, settings, metric names, dashboard.

No cluster is needed. `kubernetes-validate` (bundled OpenAPI schemas) and `kubectl kustomize` are used when
installed; the structural checks below run everywhere.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
DASHBOARD = DEPLOY / "grafana" / "sam-dashboard.json"
KUSTOMIZATIONS = ("base", "monitoring", "grafana", "overlays/production")
# Applied by hand, once (see deploy/README.md), so in no kustomization.
STANDALONE = {DEPLOY / "jobs" / "load-checkpoint.yaml"}

KNOWN_KINDS = {
    ("v1", "Namespace"),
    ("v1", "PersistentVolumeClaim"),
    ("v1", "ConfigMap"),
    ("v1", "Service"),
    ("apps/v1", "Deployment"),
    ("autoscaling/v2", "HorizontalPodAutoscaler"),
    ("policy/v1", "PodDisruptionBudget"),
    ("networking.k8s.io/v1", "NetworkPolicy"),
    ("batch/v1", "Job"),
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
}
CUSTOM_RESOURCE_GROUPS = ("monitoring.coreos.com/",)
# Settings the Triton model reads from its environment (the brief's Triton contract).
TRITON_SETTINGS = {"SAMSVC_CHECKPOINT", "SAMSVC_ARCH"}
# Series Prometheus makes itself, not the services.
PROMETHEUS_BUILTIN_SERIES = {"up"}


# ---------------------------------------------------------------------------------------------- loading


def _manifest_files() -> list[Path]:
    return sorted(path for path in DEPLOY.rglob("*.yaml") if path.name != "kustomization.yaml")


@cache
def _documents() -> tuple[tuple[Path, dict[str, Any]], ...]:
    found = []
    for path in _manifest_files():
        for document in yaml.safe_load_all(path.read_text()):
            if document is not None:
                found.append((path, document))
    return tuple(found)


def _of_kind(kind: str) -> list[dict[str, Any]]:
    return [document for _, document in _documents() if document["kind"] == kind]


def _named(kind: str, name: str) -> dict[str, Any]:
    matches = [document for document in _of_kind(kind) if document["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind} {name}, found {len(matches)}"
    return matches[0]


def _kustomization(directory: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DEPLOY / directory / "kustomization.yaml").read_text())
    return loaded


def _pod_specs() -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(workload name, pod template metadata, pod spec) of every Deployment and Job."""
    for kind in ("Deployment", "Job"):
        for workload in _of_kind(kind):
            template = workload["spec"]["template"]
            yield workload["metadata"]["name"], template["metadata"], template["spec"]


def _containers() -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    for name, _, spec in _pod_specs():
        for container in spec["containers"]:
            yield name, spec, container


def _container_ports(container: dict[str, Any]) -> dict[str, int]:
    return {port.get("name", str(port["containerPort"])): port["containerPort"] for port in container.get("ports", [])}


def _port_exists(container: dict[str, Any], port: int | str) -> bool:
    ports = _container_ports(container)
    return port in ports if isinstance(port, str) else port in ports.values()


def _matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def _env(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {variable["name"]: variable for variable in container.get("env", [])}


# ---------------------------------------------------------------------------------------------- documents


def test_every_document_is_a_known_kind_with_a_name() -> None:
    assert len(_documents()) >= 15
    for path, document in _documents():
        assert (document.get("apiVersion"), document.get("kind")) in KNOWN_KINDS, f"{path}: {document.get('kind')}"
        assert document["metadata"].get("name"), f"{path}: {document['kind']} without a name"


def test_resources_are_unique_by_kind_and_name() -> None:
    keys = [(document["kind"], document["metadata"]["name"]) for _, document in _documents()]
    assert len(keys) == len(set(keys)), sorted(key for key in keys if keys.count(key) > 1)


def test_kubernetes_schemas_accept_every_builtin_resource() -> None:
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    version = "1.32"
    validated = 0
    for path, document in _documents():
        if document["apiVersion"].startswith(CUSTOM_RESOURCE_GROUPS):
            continue
        # strict: an unknown or misspelt field fails instead of being dropped by the API server.
        try:
            kubernetes_validate.validate(document, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(f"{path.relative_to(ROOT)}: {document['kind']} {document['metadata']['name']}: {error.message}")
        validated += 1
    assert validated >= 13


# ---------------------------------------------------------------------------------------------- kustomize


@pytest.mark.parametrize("directory", KUSTOMIZATIONS)
def test_kustomization_lists_exactly_its_files(directory: str) -> None:
    kustomization = _kustomization(directory)
    assert kustomization["apiVersion"] == "kustomize.config.k8s.io/v1beta1"
    assert kustomization["kind"] == "Kustomization"
    here = DEPLOY / directory
    listed_files = set()
    for resource in kustomization.get("resources", []):
        target = (here / resource).resolve()
        if target.is_dir():
            assert (target / "kustomization.yaml").exists(), f"{directory}: {resource} is not a kustomization"
        else:
            assert target.is_file(), f"{directory}: {resource} does not exist"
            listed_files.add(target)
    for generator in kustomization.get("configMapGenerator", []):
        for file_name in generator.get("files", []):
            assert (here / file_name.split("=")[-1]).is_file(), f"{directory}: {file_name} does not exist"
    present = {path.resolve() for path in here.glob("*.yaml") if path.name != "kustomization.yaml"}
    assert present == listed_files, f"{directory}: unlisted {present - listed_files}"


def test_every_manifest_belongs_to_a_kustomization_or_is_standalone() -> None:
    covered = set(STANDALONE)
    for directory in KUSTOMIZATIONS:
        covered.update(path for path in (DEPLOY / directory).glob("*.yaml") if path.name != "kustomization.yaml")
    assert set(_manifest_files()) <= covered, set(_manifest_files()) - covered


def test_overlay_images_name_the_images_the_workloads_use() -> None:
    used = {container["image"].rsplit(":", 1)[0] for _, _, container in _containers()}
    for image in _kustomization("overlays/production")["images"]:
        assert image["name"] in used
    assert {"samsvc", "samsvc-triton"} <= used


def _kustomize() -> list[str] | None:
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    return None


@pytest.mark.parametrize("directory", KUSTOMIZATIONS)
def test_kustomize_builds(directory: str) -> None:
    command = _kustomize()
    if command is None:
        pytest.skip("neither kustomize nor kubectl is installed")
    result = subprocess.run([*command, str(DEPLOY / directory)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    built = [document for document in yaml.safe_load_all(result.stdout) if document]
    assert built
    for document in built:
        if document["kind"] != "Namespace":
            assert document["metadata"]["namespace"] == "sam", document["metadata"]["name"]
    if directory == "overlays/production":
        kinds = {document["kind"] for document in built}
        assert {"Deployment", "ServiceMonitor", "PrometheusRule", "ConfigMap", "HorizontalPodAutoscaler"} <= kinds
        dashboard = next(document for document in built if document["metadata"]["name"] == "sam-grafana-dashboard")
        assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert json.loads(dashboard["data"]["sam-dashboard.json"]) == json.loads(DASHBOARD.read_text())


# ---------------------------------------------------------------------------------------------- wiring


def test_every_service_selects_pods_that_have_its_target_ports() -> None:
    for service in _of_kind("Service"):
        selector = service["spec"]["selector"]
        pods = [(spec, metadata) for _, metadata, spec in _pod_specs() if _matches(selector, metadata["labels"])]
        assert pods, f"Service {service['metadata']['name']} selects no pods"
        for spec, _ in pods:
            for port in service["spec"]["ports"]:
                target = port.get("targetPort", port["port"])
                assert any(_port_exists(container, target) for container in spec["containers"]), (
                    f"Service {service['metadata']['name']}: no container port {target}"
                )


def test_deployment_selectors_match_their_pod_labels() -> None:
    for deployment in _of_kind("Deployment"):
        selector = deployment["spec"]["selector"]["matchLabels"]
        assert _matches(selector, deployment["spec"]["template"]["metadata"]["labels"])


def test_probes_use_ports_their_container_declares() -> None:
    for workload, _, container in _containers():
        for probe_name in ("startupProbe", "readinessProbe", "livenessProbe"):
            probe = container.get(probe_name)
            if probe is None:
                continue
            for handler in ("httpGet", "tcpSocket", "grpc"):
                if handler in probe:
                    port = probe[handler]["port"]
                    assert _port_exists(container, port), f"{workload}: {probe_name} uses port {port}"


def test_services_answer_grpc_health_and_triton_http_readiness() -> None:
    for name, service_name in (("encoder", "sam.v1.Encoder"), ("decoder", "sam.v1.Decoder")):
        container = _named("Deployment", name)["spec"]["template"]["spec"]["containers"][0]
        assert container["readinessProbe"]["grpc"] == {
            "port": _container_ports(container)["grpc"],
            "service": service_name,
        }
    triton = _named("Deployment", "triton")["spec"]["template"]["spec"]
    container = triton["containers"][0]
    assert container["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": "http"}
    assert _container_ports(container) == {"http": 8000, "grpc": 8001, "metrics": 8002}
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert triton["nodeSelector"] and triton["tolerations"]


def test_scalers_and_budgets_point_at_existing_deployments() -> None:
    deployments = {deployment["metadata"]["name"]: deployment for deployment in _of_kind("Deployment")}
    for autoscaler in _of_kind("HorizontalPodAutoscaler"):
        assert autoscaler["spec"]["scaleTargetRef"]["name"] in deployments
    assert "decoder" in {
        autoscaler["spec"]["scaleTargetRef"]["name"] for autoscaler in _of_kind("HorizontalPodAutoscaler")
    }
    for budget in _of_kind("PodDisruptionBudget"):
        selector = budget["spec"]["selector"]["matchLabels"]
        assert any(_matches(selector, d["spec"]["template"]["metadata"]["labels"]) for d in deployments.values())


def test_volumes_reference_existing_claims_and_config_maps() -> None:
    claims = {claim["metadata"]["name"] for claim in _of_kind("PersistentVolumeClaim")}
    config_maps = {config_map["metadata"]["name"] for config_map in _of_kind("ConfigMap")}
    for workload, _, spec in _pod_specs():
        volumes = {volume["name"]: volume for volume in spec.get("volumes", [])}
        for volume in volumes.values():
            if "persistentVolumeClaim" in volume:
                assert volume["persistentVolumeClaim"]["claimName"] in claims, workload
            if "configMap" in volume:
                assert volume["configMap"]["name"] in config_maps, workload
        for container in spec["containers"]:
            for mount in container.get("volumeMounts", []):
                assert mount["name"] in volumes, f"{workload}: mount of unknown volume {mount['name']}"


def test_checkpoint_is_mounted_read_only_where_it_is_read() -> None:
    for workload, _, spec in _pod_specs():
        volumes = {volume["name"]: volume for volume in spec.get("volumes", [])}
        for container in spec["containers"]:
            checkpoint = _env(container).get("SAMSVC_CHECKPOINT")
            if checkpoint is None:
                continue
            mount = next(m for m in container["volumeMounts"] if checkpoint["value"].startswith(m["mountPath"] + "/"))
            assert mount["readOnly"] is True, workload
            assert volumes[mount["name"]]["persistentVolumeClaim"] == {"claimName": "sam-checkpoints", "readOnly": True}


def test_redis_is_an_lru_cache() -> None:
    config = _named("ConfigMap", "redis-config")["data"]["redis.conf"]
    assert re.search(r"^maxmemory \d+[kmg]b$", config, re.MULTILINE)
    assert re.search(r"^maxmemory-policy allkeys-lru$", config, re.MULTILINE)
    redis = _named("Deployment", "redis")["spec"]["template"]["spec"]["containers"][0]
    assert redis["image"].startswith("redis:7")


# ---------------------------------------------------------------------------------------------- settings


def _role_help(role: str) -> str | None:
    """`samsvc <role> --help`, or None while that subcommand does not exist."""
    from service.cli import build_parser

    parser = build_parser()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) and role in action.choices:
            return str(action.choices[role].format_help())
    return None


def _settings_from_brief(role: str) -> set[str]:
    common = {"HOST", "PORT", "METRICS_PORT", "METRICS_HOST", "REDIS_URL", "REDIS_PASSWORD", "CHECKPOINT", "ARCH"}
    common |= {"MODEL_ID", "LOG_LEVEL"}
    own = {
        "encoder": {"TRITON_URL", "TRITON_MODEL", "EMBEDDING_TTL_SECONDS", "MAX_IMAGE_BYTES", "MAX_IMAGE_PIXELS"}
        | {"TRITON_TIMEOUT_SECONDS", "SINGLE_FLIGHT_WAIT_SECONDS"},
        "decoder": {"DEVICE", "LRU_BYTES", "MAX_POINTS", "MAX_OBJECTS", "DECODE_WORKERS"},
    }[role]
    return {f"SAMSVC_{name}" for name in common | own}


def _is_setting_of(role: str, variable: str) -> bool:
    help_text = _role_help(role)
    if help_text is None:
        return variable in _settings_from_brief(role)
    return re.search(rf"\b{variable}\b", help_text) is not None


def _samsvc_containers() -> Iterator[tuple[str, dict[str, Any]]]:
    for _, _, container in _containers():
        if container["image"].rsplit(":", 1)[0] == "samsvc":
            yield container["args"][0], container


def test_service_containers_set_only_real_settings() -> None:
    roles = set()
    for role, container in _samsvc_containers():
        roles.add(role)
        for variable in _env(container):
            assert variable.startswith("SAMSVC_"), f"{role}: {variable}"
            assert _is_setting_of(role, variable), f"{role}: {variable} is not a setting of `samsvc {role}`"
    assert roles == {"encoder", "decoder"}


def test_triton_container_sets_only_what_the_model_reads() -> None:
    sources = "\n".join(path.read_text() for path in (ROOT / "model_repo").rglob("*.py"))
    sources += "\n".join(path.read_text() for path in (ROOT / "service").rglob("*.py"))
    container = _named("Deployment", "triton")["spec"]["template"]["spec"]["containers"][0]
    for variable in _env(container):
        assert variable in TRITON_SETTINGS and variable in sources, variable


def test_settings_agree_with_ports_and_services() -> None:
    services = {service["metadata"]["name"]: service for service in _of_kind("Service")}

    def service_port(name: str, port_name: str) -> int:
        return next(port["port"] for port in services[name]["spec"]["ports"] if port["name"] == port_name)

    for role, container in _samsvc_containers():
        env = _env(container)
        ports = _container_ports(container)
        assert int(env["SAMSVC_PORT"]["value"]) == ports["grpc"], role
        assert int(env["SAMSVC_METRICS_PORT"]["value"]) == ports["metrics"], role
        assert env["SAMSVC_REDIS_URL"]["value"] == f"redis://redis:{service_port('redis', 'redis')}/0"
        assert env["SAMSVC_REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"]["optional"] is True
        help_text = _role_help(role)
        if help_text is not None:  # the manifests keep each service's default port
            assert re.search(rf"SAMSVC_PORT; default: {ports['grpc']}\]", " ".join(help_text.split())), role
        if role == "encoder":
            assert env["SAMSVC_TRITON_URL"]["value"] == f"triton:{service_port('triton', 'grpc')}"
            assert env["SAMSVC_TRITON_MODEL"]["value"] == "sam_image_encoder"


# ---------------------------------------------------------------------------------------------- metrics

_PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool"}
_PROMQL_WORDS |= {"offset", "inf", "nan"}
_SUFFIXES = ("_bucket", "_count", "_sum", "_total", "_created")


def metric_names(expression: str) -> set[str]:
    """Metric names in a PromQL expression: identifiers that are not functions, keywords or labels."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expression)  # strings (label values)
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # range durations, $__rate_interval
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)  # label lists
    names = set()
    for match in re.finditer(r"(?<![\w$.])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?", text):
        name, is_call = match.group(1), match.group(2)
        if not is_call and name not in _PROMQL_WORDS:
            names.add(name)
    return names


def _alert_expressions() -> list[str]:
    return [
        rule["expr"]
        for rule_set in _of_kind("PrometheusRule")
        for group in rule_set["spec"]["groups"]
        for rule in group["rules"]
    ]


def _dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def _dashboard_expressions() -> list[str]:
    return [target["expr"] for panel in _dashboard()["panels"] for target in panel.get("targets", [])]


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
    )
    assert metric_names(expression) == {"grpc_server_handling_seconds_bucket", "sam_x_total", "up"}
    assert is_defined_in_service("grpc_server_handling_seconds_bucket")
    assert not is_defined_in_service("sam_no_such_metric_total")


@pytest.mark.parametrize("source", ["alerts", "dashboard"])
def test_every_metric_queried_is_defined_in_service(source: str) -> None:
    expressions = _alert_expressions() if source == "alerts" else _dashboard_expressions()
    assert expressions
    used = set().union(*(metric_names(expression) for expression in expressions)) - PROMETHEUS_BUILTIN_SERIES
    missing = sorted(name for name in used if not is_defined_in_service(name))
    assert not missing, f"{source} query metrics that service/ does not define: {missing}"


def test_alerts_cover_errors_latency_triton_redis_and_cache() -> None:
    alerts = {
        rule["alert"]: rule
        for rule_set in _of_kind("PrometheusRule")
        for group in rule_set["spec"]["groups"]
        for rule in group["rules"]
    }
    wanted = {"SamEncoderErrorRatioHigh", "SamDecoderErrorRatioHigh", "SamEncoderLatencyP99High"}
    wanted |= {"SamDecodeLatencyP99High", "SamTritonDown", "SamRedisErrors", "SamCacheHitRatioLow"}
    assert wanted <= set(alerts), wanted - set(alerts)
    for name, rule in alerts.items():
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, name
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], name
        assert name in (DEPLOY / "README.md").read_text(), f"deploy/README.md does not explain {name}"


def test_service_monitor_scrapes_the_metrics_ports() -> None:
    monitor = _named("ServiceMonitor", "sam")
    assert [endpoint["port"] for endpoint in monitor["spec"]["endpoints"]] == ["metrics"]
    selected = monitor["spec"]["selector"]["matchExpressions"][0]["values"]
    for service in _of_kind("Service"):
        if service["metadata"]["labels"]["app.kubernetes.io/component"] in selected:
            assert "metrics" in {port["name"] for port in service["spec"]["ports"]}


# ---------------------------------------------------------------------------------------------- dashboard


def test_dashboard_is_a_valid_grafana_dashboard() -> None:
    dashboard = _dashboard()
    assert dashboard["uid"] and dashboard["title"] and isinstance(dashboard["schemaVersion"], int)
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        position = panel["gridPos"]
        assert 0 <= position["x"] and position["x"] + position["w"] <= 24, panel["title"]
        if panel["type"] != "row":
            assert panel["targets"] and all(target["expr"] for target in panel["targets"]), panel["title"]
            assert [target["refId"] for target in panel["targets"]] == [
                chr(65 + i) for i in range(len(panel["targets"]))
            ]


def test_dashboard_shows_what_the_design_asks_for() -> None:
    queried = set().union(*(metric_names(expression) for expression in _dashboard_expressions()))
    wanted = {
        "grpc_server_handled_total",  # RED per RPC
        "grpc_server_handling_seconds_bucket",
        "sam_encoder_cache_requests_total",  # cache hit ratio
        "sam_encoder_triton_seconds_bucket",  # Triton latency
        "sam_redis_seconds_bucket",  # Redis latency
        "sam_encoder_single_flight_waits_total",  # single-flight waits
        "sam_decoder_batch_size_bucket",  # decoder batch sizes
        "sam_decoder_decode_seconds_bucket",  # decode latency
        "sam_decoder_lru_requests_total",  # LRU hit ratio
        "sam_decoder_streams_in_flight",  # streams in flight
    }
    assert wanted <= queried, wanted - queried
