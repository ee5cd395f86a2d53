"""deploy/ as written: known kinds, Kubernetes schemas, wiring between resources, and the services' settings.

No cluster is needed: `kubernetes-validate` holds the OpenAPI schemas offline.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator
from typing import Any

import kubernetes_validate
import pytest

from tests.deploy.manifests import (
    PRODUCTION,
    ROOT,
    container_ports,
    containers,
    documents,
    env,
    matches,
    named,
    of_kind,
    pod_specs,
    port_exists,
    rendered,
)

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
KUBERNETES_VERSION = "1.32"
# Triton's models read their checkpoints from model_repo/'s config parameters, not from the environment.
TRITON_SETTINGS: set[str] = set()


# ---------------------------------------------------------------------------------------------- documents


def test_every_document_is_a_known_kind_with_a_name() -> None:
    assert len(documents()) >= 15
    for path, document in documents():
        assert (document.get("apiVersion"), document.get("kind")) in KNOWN_KINDS, f"{path}: {document.get('kind')}"
        assert document["metadata"].get("name"), f"{path}: {document['kind']} without a name"


def test_resources_are_unique_by_kind_and_name() -> None:
    keys = [(document["kind"], document["metadata"]["name"]) for _, document in documents()]
    assert len(keys) == len(set(keys)), sorted(key for key in keys if keys.count(key) > 1)


def _validate_strictly(objects: list[tuple[str, dict[str, Any]]]) -> int:
    validated = 0
    for where, document in objects:
        if document["apiVersion"].startswith(CUSTOM_RESOURCE_GROUPS):
            continue
        # strict: an unknown or misspelt field fails instead of being dropped by the API server.
        try:
            kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(f"{where}: {document['kind']} {document['metadata']['name']}: {error.message}")
        validated += 1
    return validated


def test_kubernetes_schemas_accept_every_builtin_resource() -> None:
    validated = _validate_strictly([(str(path.relative_to(ROOT)), document) for path, document in documents()])
    assert validated >= 20


def test_kubernetes_schemas_accept_the_rendered_production_overlay() -> None:
    """What `kubectl apply` receives, patches and components applied."""
    validated = _validate_strictly([(PRODUCTION, document) for document in rendered(PRODUCTION)])
    assert validated >= 25


# ---------------------------------------------------------------------------------------------- wiring


def test_every_service_selects_pods_that_have_its_target_ports() -> None:
    for service in of_kind("Service"):
        selector = service["spec"]["selector"]
        pods = [(spec, metadata) for _, metadata, spec in pod_specs() if matches(selector, metadata["labels"])]
        assert pods, f"Service {service['metadata']['name']} selects no pods"
        for spec, _ in pods:
            for port in service["spec"]["ports"]:
                target = port.get("targetPort", port["port"])
                assert any(port_exists(container, target) for container in spec["containers"]), (
                    f"Service {service['metadata']['name']}: no container port {target}"
                )


def test_deployment_selectors_match_their_pod_labels() -> None:
    for deployment in of_kind("Deployment"):
        selector = deployment["spec"]["selector"]["matchLabels"]
        assert matches(selector, deployment["spec"]["template"]["metadata"]["labels"])


def test_probes_use_ports_their_container_declares() -> None:
    for workload, _, container in containers():
        for probe_name in ("startupProbe", "readinessProbe", "livenessProbe"):
            probe = container.get(probe_name)
            if probe is None:
                continue
            for handler in ("httpGet", "tcpSocket", "grpc"):
                if handler in probe:
                    port = probe[handler]["port"]
                    assert port_exists(container, port), f"{workload}: {probe_name} uses port {port}"


def test_services_answer_grpc_health_and_triton_http_readiness() -> None:
    for name, service_name in (("encoder", "sam.v1.Encoder"), ("decoder", "sam.v1.Decoder")):
        container = named("Deployment", name)["spec"]["template"]["spec"]["containers"][0]
        # The gRPC port speaks TLS, which kubelet's gRPC probe cannot: it asks the plaintext health-only port.
        assert container["readinessProbe"]["grpc"] == {
            "port": container_ports(container)["health"],
            "service": service_name,
        }
        assert int(env(container)["SAMSVC_HEALTH_PORT"]["value"]) == container_ports(container)["health"]
    triton = named("Deployment", "triton")["spec"]["template"]["spec"]
    container = triton["containers"][0]
    assert container["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": "http"}
    assert container_ports(container) == {"http": 8000, "grpc": 8001, "metrics": 8002}
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert triton["nodeSelector"] and triton["tolerations"]


def test_scalers_and_budgets_point_at_existing_deployments() -> None:
    deployments = {deployment["metadata"]["name"]: deployment for deployment in of_kind("Deployment")}
    autoscalers = of_kind("HorizontalPodAutoscaler")
    for autoscaler in autoscalers:
        assert autoscaler["spec"]["scaleTargetRef"]["name"] in deployments
    assert {"encoder", "decoder", "triton"} <= {
        autoscaler["spec"]["scaleTargetRef"]["name"] for autoscaler in autoscalers
    }
    for name in ("encoder", "decoder", "triton"):
        # An autoscaler owns the count: a `replicas` in the manifest would reset it on every apply.
        assert "replicas" not in deployments[name]["spec"], name
    for budget in of_kind("PodDisruptionBudget"):
        selector = budget["spec"]["selector"]["matchLabels"]
        assert any(matches(selector, d["spec"]["template"]["metadata"]["labels"]) for d in deployments.values())


def test_volumes_reference_existing_claims_and_config_maps() -> None:
    claims = {claim["metadata"]["name"] for claim in of_kind("PersistentVolumeClaim")}
    config_maps = {config_map["metadata"]["name"] for config_map in of_kind("ConfigMap")}
    for workload, _, spec in pod_specs():
        volumes = {volume["name"]: volume for volume in spec.get("volumes", [])}
        for volume in volumes.values():
            if "persistentVolumeClaim" in volume:
                assert volume["persistentVolumeClaim"]["claimName"] in claims, workload
            if "configMap" in volume:
                assert volume["configMap"]["name"] in config_maps, workload
        for container in spec["containers"]:
            for mount in container.get("volumeMounts", []):
                assert mount["name"] in volumes, f"{workload}: mount of unknown volume {mount['name']}"


def _checkpoint_paths(workload: str, container: dict[str, Any]) -> list[str]:
    """The checkpoint files a container reads: the paths in SAMSVC_MODELS, or Triton's model_repo/ parameters."""
    if workload == "triton":
        configs = "\n".join(path.read_text() for path in (ROOT / "model_repo").glob("*/config.pbtxt"))
        return re.findall(r'key: "checkpoint"\s+value: \{ string_value: "(/[^"]+)" \}', configs)
    models = env(container).get("SAMSVC_MODELS", {}).get("value", "")
    return [spec.split("=", 1)[1] for spec in models.split(",") if "=/" in spec]


def test_checkpoints_are_mounted_read_only_where_they_are_read() -> None:
    """Every service reads the volume read-only; only the checkpoint Job writes it (the weights, the graphs)."""
    read = set()
    for workload, _, spec in pod_specs():
        if workload == "load-sam-checkpoint":
            continue
        volumes = {volume["name"]: volume for volume in spec.get("volumes", [])}
        for container in spec["containers"]:
            for checkpoint in _checkpoint_paths(workload, container):
                read.add(workload)
                mount = next(m for m in container["volumeMounts"] if checkpoint.startswith(m["mountPath"] + "/"))
                assert mount["readOnly"] is True, workload
                claim = volumes[mount["name"]]["persistentVolumeClaim"]
                assert claim == {"claimName": "sam-checkpoints", "readOnly": True}
    assert {"triton", "encoder", "decoder"} <= read


def test_redis_is_an_lru_cache_with_an_exporter_beside_it() -> None:
    config = named("ConfigMap", "redis-config")["data"]["redis.conf"]
    assert re.search(r"^maxmemory \d+[kmg]b$", config, re.MULTILINE)
    assert re.search(r"^maxmemory-policy allkeys-lru$", config, re.MULTILINE)
    pod = named("Deployment", "redis")["spec"]["template"]["spec"]
    redis, exporter = pod["containers"]
    assert redis["image"].startswith("redis:7")
    assert exporter["image"].startswith("oliver006/redis_exporter:")
    assert "--redis.addr=redis://localhost:6379" in exporter["args"]
    assert container_ports(exporter) == {"metrics": 9121}
    assert f":{container_ports(exporter)['metrics']}" in " ".join(exporter["args"])


def test_redis_asks_for_the_password_of_the_secret_and_keeps_protected_mode() -> None:
    """Issue 10, finding 4: Redis ran with no password, `protected-mode no`, bound to 0.0.0.0."""
    config = named("ConfigMap", "redis-config")["data"]["redis.conf"]
    assert re.search(r"^protected-mode yes$", config, re.MULTILINE)
    assert not re.search(r"^(protected-mode no|bind |requirepass )", config, re.MULTILINE)
    redis, exporter = named("Deployment", "redis")["spec"]["template"]["spec"]["containers"]
    secret = {"name": "sam-redis", "key": "password"}
    assert redis["args"] == ["--bind", "$(POD_IP)", "127.0.0.1", "--requirepass", "$(REDIS_PASSWORD)"]
    assert env(redis)["POD_IP"]["valueFrom"] == {"fieldRef": {"fieldPath": "status.podIP"}}
    for container, variable in ((redis, "REDIS_PASSWORD"), (redis, "REDISCLI_AUTH"), (exporter, "REDIS_PASSWORD")):
        assert env(container)[variable]["valueFrom"]["secretKeyRef"] == secret, variable


def test_services_ask_for_tokens_and_serve_tls_from_mounted_secrets() -> None:
    for name in ("encoder", "decoder"):
        pod = named("Deployment", name)["spec"]["template"]["spec"]
        container = pod["containers"][0]
        volumes = {volume["name"]: volume for volume in pod["volumes"]}
        mounts = {mount["mountPath"]: mount for mount in container["volumeMounts"]}
        files = {"SAMSVC_AUTH_TOKENS_FILE", "SAMSVC_TLS_CERT_FILE", "SAMSVC_TLS_KEY_FILE"}
        if name == "encoder":
            files.add("SAMSVC_KEY_SECRET_FILE")
        assert "SAMSVC_KEY_SECRET_FILE" not in env(container) or name == "encoder"  # decoders never see it
        for variable in files:
            path = env(container)[variable]["value"]
            mount = mounts[path.rsplit("/", 1)[0]]
            assert mount["readOnly"] is True, (name, variable)
            volume = volumes[mount["name"]]["secret"]
            items = {item["path"] for item in volume.get("items", [])}
            assert not items or path.rsplit("/", 1)[1] in items, (name, variable)
            assert volume["secretName"] in {"sam-auth", "sam-tls"}
        assert "SAMSVC_REFLECTION" not in env(container)  # reflection stays off
        assert pod["securityContext"]["fsGroup"] == pod["securityContext"]["runAsGroup"]


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
    for _, _, container in containers():
        if container["image"].rsplit(":", 1)[0] == "samsvc":
            yield container["args"][0], container


def test_service_containers_set_only_real_settings() -> None:
    roles = set()
    for role, container in _samsvc_containers():
        roles.add(role)
        for variable in env(container):
            assert variable.startswith("SAMSVC_"), f"{role}: {variable}"
            assert _is_setting_of(role, variable), f"{role}: {variable} is not a setting of `samsvc {role}`"
    assert roles == {"encoder", "decoder", "export-decoder"}


def test_the_checkpoint_job_exports_the_graphs_the_decoders_read() -> None:
    samsvc = dict(_samsvc_containers())
    decoder, export = env(samsvc["decoder"]), env(samsvc["export-decoder"])
    assert export["SAMSVC_MODELS"] == decoder["SAMSVC_MODELS"]
    assert export["SAMSVC_DECODER_GRAPH_DIR"] == decoder["SAMSVC_DECODER_GRAPH_DIR"]
    assert decoder["SAMSVC_DECODER_BACKEND"]["value"] == "onnx"
    graph_dir = decoder["SAMSVC_DECODER_GRAPH_DIR"]["value"]
    checkpoints = next(m for m in samsvc["decoder"]["volumeMounts"] if graph_dir.startswith(m["mountPath"] + "/"))
    assert checkpoints["name"] == "checkpoints"
    assert any(m["mountPath"] == "/tmp" for m in samsvc["decoder"]["volumeMounts"])  # where a missing graph goes
    job = named("Job", "load-sam-checkpoint")["spec"]["template"]["spec"]
    assert [c["name"] for c in job["initContainers"]] == ["download"]  # the weights first, then the export


def test_triton_container_sets_only_what_the_model_reads() -> None:
    sources = "\n".join(path.read_text() for path in (ROOT / "model_repo").rglob("*.py"))
    sources += "\n".join(path.read_text() for path in (ROOT / "service").rglob("*.py"))
    container = named("Deployment", "triton")["spec"]["template"]["spec"]["containers"][0]
    for variable in env(container):
        assert variable in TRITON_SETTINGS and variable in sources, variable


def test_settings_agree_with_ports_and_services() -> None:
    services = {service["metadata"]["name"]: service for service in of_kind("Service")}

    def service_port(name: str, port_name: str) -> int:
        return next(port["port"] for port in services[name]["spec"]["ports"] if port["name"] == port_name)

    for role, container in _samsvc_containers():
        if role == "export-decoder":  # a Job's step: no ports, no Redis
            continue
        variables = env(container)
        ports = container_ports(container)
        assert int(variables["SAMSVC_PORT"]["value"]) == ports["grpc"], role
        assert int(variables["SAMSVC_METRICS_PORT"]["value"]) == ports["metrics"], role
        assert variables["SAMSVC_REDIS_URL"]["value"] == f"redis://redis:{service_port('redis', 'redis')}/0"
        assert variables["SAMSVC_REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
            "name": "sam-redis",
            "key": "password",
        }
        help_text = _role_help(role)
        if help_text is not None:  # the manifests keep each service's default port
            assert re.search(rf"SAMSVC_PORT; default: {ports['grpc']}\]", " ".join(help_text.split())), role
        if role == "encoder":
            assert variables["SAMSVC_TRITON_URL"]["value"] == f"triton:{service_port('triton', 'grpc')}"
            # Each served model's name is its Triton model in model_repo/.
            names = [spec.split("=", 1)[0] for spec in variables["SAMSVC_MODELS"]["value"].split(",")]
            assert names and all((ROOT / "model_repo" / name / "config.pbtxt").exists() for name in names)
