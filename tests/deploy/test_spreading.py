"""Streams that spread and move: a headless Service beside each service's ClusterIP one (client-side round robin
finds every pod), and servers that close old connections so long streams move to new pods."""

from __future__ import annotations

import pytest

from tests.deploy.manifests import named


def _environment(deployment: str) -> dict[str, str]:
    (container,) = named("Deployment", deployment)["spec"]["template"]["spec"]["containers"]
    return {variable["name"]: variable.get("value", "") for variable in container["env"]}


@pytest.mark.parametrize(("name", "port"), [("decoder", 50052), ("encoder", 50051)])
def test_a_headless_service_selects_the_same_pods_on_the_grpc_port(name: str, port: int) -> None:
    service = named("Service", name)["spec"]
    headless = named("Service", f"{name}-headless")["spec"]
    assert headless["clusterIP"] == "None"
    assert headless["selector"] == service["selector"]
    assert [(entry["name"], entry["port"], entry["targetPort"]) for entry in headless["ports"]] == [
        ("grpc", port, "grpc")
    ]


@pytest.mark.parametrize("name", ["decoder", "encoder"])
def test_connections_have_a_maximum_age_and_a_grace(name: str) -> None:
    environment = _environment(name)
    age = float(environment["SAMSVC_MAX_CONNECTION_AGE_SECONDS"])
    grace = float(environment["SAMSVC_MAX_CONNECTION_AGE_GRACE_SECONDS"])
    assert 60 <= age <= 3600 and 0 < grace <= age
