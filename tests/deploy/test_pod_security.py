"""Locked-down pods: checkov on what a cluster receives, and the `restricted` Pod Security Standard checked field by
field, the way the namespace's admission controller will."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.manifests import CHECKPOINT_JOB, PRODUCTION, checkov_report, named, pod_specs, rendered

# The checks a platform team runs on every pod: none of them may fail on anything deploy/ ships.
REQUIRED_CHECKS = {
    "CKV_K8S_10": "CPU requests",
    "CKV_K8S_12": "memory requests",
    "CKV_K8S_13": "memory limits",
    "CKV_K8S_22": "read-only root filesystem",
    "CKV_K8S_31": "seccomp profile RuntimeDefault",
    "CKV_K8S_38": "service-account token not mounted",
    "CKV2_K8S_6": "a NetworkPolicy selects every pod",
}
# Volume types the restricted standard allows.
RESTRICTED_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim"}
RESTRICTED_VOLUMES |= {"projected", "secret"}


@pytest.fixture(scope="module")
def production_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("rendered") / "production.yaml"
    path.write_text(yaml.safe_dump_all(rendered(PRODUCTION), sort_keys=False))
    return path


@pytest.mark.parametrize("target", ["production overlay", "checkpoint job"])
def test_checkov_finds_no_failure_of_the_required_checks(target: str, production_file: Path) -> None:
    path = production_file if target == "production overlay" else CHECKPOINT_JOB
    report = checkov_report(path, sorted(REQUIRED_CHECKS))
    failed = [
        f"{check['check_id']} ({REQUIRED_CHECKS.get(check['check_id'], '')}) on {check['resource']}"
        for check in report["results"]["failed_checks"]
    ]
    assert not failed, "\n".join(failed)
    passed = {check["check_id"] for check in report["results"]["passed_checks"]}
    # Every required check ran (a renamed or dropped check would otherwise pass silently).
    expected = set(REQUIRED_CHECKS) - ({"CKV2_K8S_6"} if target == "checkpoint job" else set())
    assert expected <= passed, expected - passed


def _workloads() -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    objects = [*rendered(PRODUCTION), *yaml.safe_load_all(CHECKPOINT_JOB.read_text())]
    found = list(pod_specs([document for document in objects if document]))
    assert {name for name, _, _ in found} == {"encoder", "decoder", "triton", "redis", "load-sam-checkpoint"}
    return found


def test_namespace_enforces_the_restricted_pod_security_standard() -> None:
    namespace = named("Namespace", "sam")["metadata"]["labels"]
    for mode in ("enforce", "warn", "audit"):
        assert namespace[f"pod-security.kubernetes.io/{mode}"] == "restricted"
        assert namespace[f"pod-security.kubernetes.io/{mode}-version"].startswith("v1.")


@pytest.mark.parametrize("name", ["encoder", "decoder", "triton", "redis", "load-sam-checkpoint"])
def test_pod_meets_the_restricted_standard(name: str) -> None:
    """Pod Security Standards, `restricted` profile (kubernetes.io/docs/concepts/security/pod-security-standards)."""
    spec = next(spec for workload, _, spec in _workloads() if workload == name)
    pod = spec.get("securityContext", {})
    for flag in ("hostNetwork", "hostPID", "hostIPC"):
        assert not spec.get(flag), flag
    for volume in spec.get("volumes", []):
        assert set(volume) - {"name"} <= RESTRICTED_VOLUMES, volume
    for container in [*spec.get("initContainers", []), *spec["containers"]]:
        context = container.get("securityContext", {})
        label = f"{name}/{container['name']}"
        assert context.get("allowPrivilegeEscalation") is False, label
        assert not context.get("privileged"), label
        assert context.get("capabilities", {}).get("drop") == ["ALL"], label
        assert not context.get("capabilities", {}).get("add"), label
        assert context.get("runAsNonRoot", pod.get("runAsNonRoot")) is True, label
        assert context.get("runAsUser", pod.get("runAsUser", 1)) != 0, label
        seccomp = context.get("seccompProfile", pod.get("seccompProfile", {}))
        assert seccomp.get("type") in ("RuntimeDefault", "Localhost"), label
        # Beyond the standard, the house rules.
        assert context.get("readOnlyRootFilesystem") is True, label
        resources = container.get("resources", {})
        assert {"cpu", "memory"} <= set(resources.get("requests", {})), label
        assert "memory" in resources.get("limits", {}), label
        assert not any("hostPort" in port for port in container.get("ports", [])), label
    assert spec.get("automountServiceAccountToken") is False, name


def test_triton_writes_only_to_its_own_volumes() -> None:
    """A read-only root: the python backend's shared memory and temporary files get emptyDirs."""
    spec = next(spec for workload, _, spec in _workloads() if workload == "triton")
    mounts = {mount["mountPath"]: mount for mount in spec["containers"][0]["volumeMounts"]}
    volumes = {volume["name"]: volume for volume in spec["volumes"]}
    assert volumes[mounts["/dev/shm"]["name"]]["emptyDir"]["medium"] == "Memory"
    assert "emptyDir" in volumes[mounts["/tmp"]["name"]]
