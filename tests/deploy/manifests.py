"""What the deploy tests read: deploy/'s files as written, kustomize's renders of them, and the tools that check them.

Every tool the deploy tests need is installed by scripts/setup.sh (Debian packages, and a pinned .venv-tools for
checkov and kubectl); a missing one fails the test that needs it, never skips it, so CI cannot pass by skipping.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
DASHBOARD = DEPLOY / "grafana" / "sam-dashboard.json"
PROMETHEUS_RULE = DEPLOY / "monitoring" / "prometheusrule.yaml"
KUSTOMIZATIONS = ("base", "monitoring", "grafana", "autoscaling", "overlays/production")
PRODUCTION = "overlays/production"
# Applied by hand, once (see deploy/README.md), so in no kustomization.
CHECKPOINT_JOB = DEPLOY / "jobs" / "load-checkpoint.yaml"
STANDALONE = {CHECKPOINT_JOB}
# Not Kubernetes objects: values for the prometheus-adapter Helm chart.
NOT_MANIFESTS = {DEPLOY / "autoscaling" / "prometheus-adapter-values.yaml"}
TOOLS_BIN = ROOT / ".venv-tools" / "bin"
SETUP_HINT = "run scripts/setup.sh, which installs it"

PodSpec = dict[str, Any]


# ---------------------------------------------------------------------------------------------- tools


def find_tool(name: str) -> str | None:
    """`name` from .venv-tools (pinned by scripts/setup.sh), beside this interpreter, or on PATH."""
    for directory in (TOOLS_BIN, Path(sys.executable).parent):
        if (directory / name).exists():
            return str(directory / name)
    return shutil.which(name)


def require_tool(name: str) -> str:
    """The tool's path; fails (never skips) the calling test when it is missing."""
    path = find_tool(name)
    if path is None:
        pytest.fail(f"{name} is not installed: {SETUP_HINT}")
    return path


def kustomize_command() -> list[str]:
    """`kubectl kustomize` from .venv-tools (what CI uses), else a kustomize or kubectl on PATH."""
    if (TOOLS_BIN / "kubectl").exists():
        return [str(TOOLS_BIN / "kubectl"), "kustomize"]
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    return [require_tool("kubectl"), "kustomize"]


def kustomize_build(directory: Path) -> list[dict[str, Any]]:
    result = subprocess.run([*kustomize_command(), str(directory)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return [document for document in yaml.safe_load_all(result.stdout) if document]


@cache
def rendered(directory: str) -> tuple[dict[str, Any], ...]:
    """The objects `kustomize build deploy/<directory>` renders (built once per session)."""
    return tuple(kustomize_build(DEPLOY / directory))


# ---------------------------------------------------------------------------------------------- files as written


def manifest_files() -> list[Path]:
    return sorted(
        path for path in DEPLOY.rglob("*.yaml") if path.name != "kustomization.yaml" and path not in NOT_MANIFESTS
    )


@cache
def documents() -> tuple[tuple[Path, dict[str, Any]], ...]:
    found = []
    for path in manifest_files():
        for document in yaml.safe_load_all(path.read_text()):
            if document is not None:
                found.append((path, document))
    return tuple(found)


def of_kind(kind: str) -> list[dict[str, Any]]:
    return [document for _, document in documents() if document["kind"] == kind]


def named(kind: str, name: str) -> dict[str, Any]:
    matches = [document for document in of_kind(kind) if document["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind} {name}, found {len(matches)}"
    return matches[0]


def kustomization(directory: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DEPLOY / directory / "kustomization.yaml").read_text())
    return loaded


def standalone_documents() -> list[dict[str, Any]]:
    return [document for path, document in documents() if path in STANDALONE]


# ---------------------------------------------------------------------------------------------- pods


def pod_specs(
    objects: Iterator[dict[str, Any]] | list[dict[str, Any]] | None = None,
) -> Iterator[tuple[str, dict[str, Any], PodSpec]]:
    """(workload name, pod template metadata, pod spec) of every Deployment and Job (default: deploy/ as written)."""
    for workload in objects if objects is not None else [document for _, document in documents()]:
        if workload["kind"] in ("Deployment", "Job"):
            template = workload["spec"]["template"]
            yield workload["metadata"]["name"], template["metadata"], template["spec"]


def containers(objects: list[dict[str, Any]] | None = None) -> Iterator[tuple[str, PodSpec, dict[str, Any]]]:
    for name, _, spec in pod_specs(objects):
        for container in [*spec.get("initContainers", []), *spec["containers"]]:
            yield name, spec, container


def container_ports(container: dict[str, Any]) -> dict[str, int]:
    return {port.get("name", str(port["containerPort"])): port["containerPort"] for port in container.get("ports", [])}


def port_exists(container: dict[str, Any], port: int | str) -> bool:
    ports = container_ports(container)
    return port in ports if isinstance(port, str) else port in ports.values()


def matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def env(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {variable["name"]: variable for variable in container.get("env", [])}


def checkov_report(path: Path, checks: list[str]) -> dict[str, Any]:
    """checkov's JSON report of `checks` on a Kubernetes manifest file (offline: --skip-download)."""
    checkov = require_tool("checkov")
    result = subprocess.run(
        [
            checkov,
            "--skip-download",
            "--framework",
            "kubernetes",
            "-o",
            "json",
            "--check",
            ",".join(checks),
            "-f",
            str(path),
        ],  # fmt: skip
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.stdout.strip(), result.stderr
    report: dict[str, Any] = json.loads(result.stdout)
    return report
