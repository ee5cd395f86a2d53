"""The rendered NetworkPolicies admit exactly the connections each part needs, and nothing else.

checkov's CKV2_K8S_6 passes as soon as any policy selects every pod (the default deny does), so this test reads the
policies themselves: it evaluates Kubernetes' NetworkPolicy rules for every pair of parts and ports, in the
cluster and outside it, and compares the connections allowed with the list of those the design needs.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

import yaml

from tests.deploy.manifests import CHECKPOINT_JOB, PRODUCTION, pod_specs, rendered

NAMESPACE = "sam"


@dataclass(frozen=True)
class Peer:
    """A pod (namespace and labels) or an address outside the cluster (ip), with the ports it listens on."""

    name: str
    namespace: str | None
    labels: dict[str, str] = field(default_factory=dict, hash=False)
    ports: dict[str, tuple[int, str]] = field(default_factory=dict, hash=False)  # name -> (port, protocol)
    ip: str | None = None


# Others the parts meet: who must reach them (Prometheus, clients), what they must reach (DNS, the internet),
# and who must not reach anything (a stray pod in the namespace, another pod in the monitoring namespace).
OUTSIDERS = (
    Peer("prometheus", "monitoring", {"app.kubernetes.io/name": "prometheus"}),
    Peer("grafana", "monitoring", {"app.kubernetes.io/name": "grafana"}),
    Peer("client", "apps", {"app": "client"}),
    Peer("stray pod in sam", NAMESPACE, {"app": "debug"}),
    Peer("kube-dns", "kube-system", {"k8s-app": "kube-dns"}, {"dns": (53, "UDP"), "dns-tcp": (53, "TCP")}),
    Peer("internet", None, ports={"https": (443, "TCP")}, ip="203.0.113.7"),
)
# The API is public: anything outside the namespace may call it (in-namespace pods are held by their own egress).
CLIENTS = tuple(peer.name for peer in OUTSIDERS if peer.namespace != NAMESPACE)

NEEDED = {
    *((client, "encoder", 50051, "TCP") for client in CLIENTS),
    *((client, "decoder", 50052, "TCP") for client in CLIENTS),
    ("encoder", "triton", 8001, "TCP"),
    ("encoder", "redis", 6379, "TCP"),
    ("decoder", "redis", 6379, "TCP"),
    ("prometheus", "encoder", 9101, "TCP"),
    ("prometheus", "decoder", 9102, "TCP"),
    ("prometheus", "triton", 8002, "TCP"),
    ("prometheus", "redis", 9121, "TCP"),
    *((part, "kube-dns", 53, protocol) for part in ("encoder", "decoder") for protocol in ("UDP", "TCP")),
    ("load-sam-checkpoint", "kube-dns", 53, "UDP"),
    ("load-sam-checkpoint", "kube-dns", 53, "TCP"),
    ("load-sam-checkpoint", "internet", 443, "TCP"),
}


def _objects() -> list[dict[str, Any]]:
    job = [document for document in yaml.safe_load_all(CHECKPOINT_JOB.read_text()) if document]
    return [*rendered(PRODUCTION), *job]


def _parts(objects: list[dict[str, Any]]) -> list[Peer]:
    parts = []
    for name, metadata, spec in pod_specs(objects):
        ports = {
            port.get("name", str(port["containerPort"])): (port["containerPort"], port.get("protocol", "TCP"))
            for container in spec["containers"]
            for port in container.get("ports", [])
        }
        parts.append(Peer(name, NAMESPACE, metadata["labels"], ports))
    return parts


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    if any(labels.get(key) != value for key, value in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        key, operator, values = expression["key"], expression["operator"], expression.get("values", [])
        ok = {
            "In": key in labels and labels[key] in values,
            "NotIn": key not in labels or labels[key] not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[operator]
        if not ok:
            return False
    return True


def _peer_matches(rule_peer: dict[str, Any], policy_namespace: str, other: Peer) -> bool:
    if "ipBlock" in rule_peer:
        if other.ip is None:
            return False
        address = ipaddress.ip_address(other.ip)
        block = rule_peer["ipBlock"]
        return address in ipaddress.ip_network(block["cidr"]) and not any(
            address in ipaddress.ip_network(excluded) for excluded in block.get("except", [])
        )
    if other.namespace is None:
        return False
    if "namespaceSelector" in rule_peer:
        namespace_labels = {"kubernetes.io/metadata.name": other.namespace}
        if not _selects(rule_peer["namespaceSelector"], namespace_labels):
            return False
    elif other.namespace != policy_namespace:
        return False
    return _selects(rule_peer.get("podSelector", {}), other.labels)


def _port_matches(rule_ports: list[dict[str, Any]] | None, destination: Peer, port: int, protocol: str) -> bool:
    if not rule_ports:
        return True
    for rule_port in rule_ports:
        if rule_port.get("protocol", "TCP") != protocol:
            continue
        wanted = rule_port.get("port")
        if wanted is None or wanted == port:
            return True
        if isinstance(wanted, str) and destination.ports.get(wanted) == (port, protocol):
            return True
    return False


def _policy_types(policy: dict[str, Any]) -> list[str]:
    spec = policy["spec"]
    return spec.get("policyTypes") or (["Ingress", "Egress"] if "egress" in spec else ["Ingress"])


def _admits(
    policies: list[dict[str, Any]], direction: str, pod: Peer, other: Peer, destination: Peer, port: int, protocol: str
) -> bool:
    """Whether `pod`'s policies let traffic in from `other` (Ingress) or out to `other` (Egress)."""
    if pod.namespace != NAMESPACE:
        return True  # only our namespace's policies are ours to check
    selecting = [
        policy
        for policy in policies
        if direction in _policy_types(policy) and _selects(policy["spec"]["podSelector"], pod.labels)
    ]
    if not selecting:
        return True
    rules_key, peers_key = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
    for policy in selecting:
        for rule in policy["spec"].get(rules_key, []):
            peers = rule.get(peers_key)
            peer_ok = not peers or any(_peer_matches(peer, policy["metadata"]["namespace"], other) for peer in peers)
            if peer_ok and _port_matches(rule.get("ports"), destination, port, protocol):
                return True
    return False


def allowed_connections(objects: list[dict[str, Any]]) -> set[tuple[str, str, int, str]]:
    policies = [document for document in objects if document["kind"] == "NetworkPolicy"]
    assert all(policy["metadata"]["namespace"] == NAMESPACE for policy in policies)
    everyone = [*_parts(objects), *OUTSIDERS]
    allowed = set()
    for source in everyone:
        for destination in everyone:
            if source is destination or (source.namespace != NAMESPACE and destination.namespace != NAMESPACE):
                continue
            for port, protocol in destination.ports.values():
                if _admits(policies, "Egress", source, destination, destination, port, protocol) and _admits(
                    policies, "Ingress", destination, source, destination, port, protocol
                ):
                    allowed.add((source.name, destination.name, port, protocol))
    return allowed


def test_policies_allow_exactly_the_connections_the_parts_need() -> None:
    allowed = allowed_connections(_objects())
    assert not allowed - NEEDED, f"allowed but not needed: {sorted(allowed - NEEDED)}"
    assert not NEEDED - allowed, f"needed but denied: {sorted(NEEDED - allowed)}"


def test_triton_is_reached_only_by_encoders_and_prometheus() -> None:
    reaching = {
        (source, port) for source, destination, port, _ in allowed_connections(_objects()) if destination == "triton"
    }
    assert reaching == {("encoder", 8001), ("prometheus", 8002)}


def test_every_pod_is_isolated_both_ways() -> None:
    """A default deny selects every pod, for ingress and egress, so a new pod starts with no paths at all."""
    policies = [document for document in _objects() if document["kind"] == "NetworkPolicy"]
    for part in _parts(_objects()):
        for direction in ("Ingress", "Egress"):
            assert any(
                policy["spec"]["podSelector"] == {} and direction in _policy_types(policy) for policy in policies
            ), (part.name, direction)


def test_evaluator_sees_a_hole_when_one_is_opened() -> None:
    """The evaluator itself: letting the decoders reach Triton must show up as a path that is not needed."""
    objects = _objects()
    opened = [dict(document) for document in objects]
    opened.append(
        {
            "kind": "NetworkPolicy",
            "metadata": {"name": "hole", "namespace": NAMESPACE},
            "spec": {
                "podSelector": {"matchLabels": {"app.kubernetes.io/component": "triton"}},
                "policyTypes": ["Ingress"],
                "ingress": [{"from": [{"podSelector": {"matchLabels": {"app.kubernetes.io/component": "decoder"}}}]}],
            },
        }
    )
    opened.append(
        {
            "kind": "NetworkPolicy",
            "metadata": {"name": "hole-out", "namespace": NAMESPACE},
            "spec": {"podSelector": {}, "policyTypes": ["Egress"], "egress": [{}]},
        }
    )
    extra = allowed_connections(opened) - NEEDED
    assert ("decoder", "triton", 8001, "TCP") in extra
    assert ("decoder", "triton", 8000, "TCP") in extra
