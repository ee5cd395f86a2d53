"""The kustomizations: each lists exactly its files, builds, and the production overlay renders what a cluster needs,
with the monitoring objects labelled for kube-prometheus-stack and every image pinnable by digest."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import yaml

from tests.deploy.manifests import (
    DASHBOARD,
    DEPLOY,
    KUSTOMIZATIONS,
    NOT_MANIFESTS,
    PRODUCTION,
    STANDALONE,
    checkov_report,
    containers,
    documents,
    kustomization,
    kustomize_build,
    manifest_files,
    rendered,
)

# Components are built only as part of a kustomization that includes them.
BUILDABLE = tuple(directory for directory in KUSTOMIZATIONS if kustomization(directory)["kind"] == "Kustomization")
DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")


@pytest.mark.parametrize("directory", KUSTOMIZATIONS)
def test_kustomization_lists_exactly_its_files(directory: str) -> None:
    listed = kustomization(directory)
    assert listed["apiVersion"].startswith("kustomize.config.k8s.io/")
    assert listed["kind"] in ("Kustomization", "Component")
    here = DEPLOY / directory
    listed_files = set()
    for resource in listed.get("resources", []):
        target = (here / resource).resolve()
        if target.is_dir():
            assert (target / "kustomization.yaml").exists(), f"{directory}: {resource} is not a kustomization"
        else:
            assert target.is_file(), f"{directory}: {resource} does not exist"
            listed_files.add(target)
    for component in listed.get("components", []):
        assert kustomization(str((here / component).resolve().relative_to(DEPLOY)))["kind"] == "Component"
    for generator in listed.get("configMapGenerator", []):
        for file_name in generator.get("files", []):
            assert (here / file_name.split("=")[-1]).is_file(), f"{directory}: {file_name} does not exist"
    present = {path.resolve() for path in here.glob("*.yaml") if path.name != "kustomization.yaml"}
    assert present - NOT_MANIFESTS == listed_files, f"{directory}: unlisted {present - NOT_MANIFESTS - listed_files}"


def test_every_manifest_belongs_to_a_kustomization_or_is_standalone() -> None:
    covered = set(STANDALONE)
    for directory in KUSTOMIZATIONS:
        covered.update(path for path in (DEPLOY / directory).glob("*.yaml") if path.name != "kustomization.yaml")
    assert set(manifest_files()) <= covered, set(manifest_files()) - covered


@pytest.mark.parametrize("directory", BUILDABLE)
def test_kustomize_builds(directory: str) -> None:
    built = rendered(directory)
    assert built
    for document in built:
        if document["kind"] != "Namespace":
            assert document["metadata"]["namespace"] == "sam", document["metadata"]["name"]


def test_production_overlay_renders_workloads_monitoring_and_autoscaling() -> None:
    built = rendered(PRODUCTION)
    kinds = {document["kind"] for document in built}
    assert {"Deployment", "ServiceMonitor", "PrometheusRule", "ConfigMap", "HorizontalPodAutoscaler"} <= kinds
    assert "NetworkPolicy" in kinds
    dashboard = next(document for document in built if document["metadata"]["name"] == "sam-grafana-dashboard")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(dashboard["data"]["sam-dashboard.json"]) == json.loads(DASHBOARD.read_text())
    autoscalers = {
        document["metadata"]["name"]: document for document in built if document["kind"] == "HorizontalPodAutoscaler"
    }
    assert set(autoscalers) == {"encoder", "decoder", "triton"}
    decoder_metrics = {
        metric["pods"]["metric"]["name"] if metric["type"] == "Pods" else metric["resource"]["name"]
        for metric in autoscalers["decoder"]["spec"]["metrics"]
    }
    assert decoder_metrics == {"cpu", "sam_decoder_streams_in_flight"}
    deployments = {document["metadata"]["name"]: document for document in built if document["kind"] == "Deployment"}
    assert "replicas" not in deployments["triton"]["spec"]  # the autoscaler's to set


def test_monitoring_objects_carry_the_release_label_set_in_one_place() -> None:
    """kube-prometheus-stack's Prometheus selects ServiceMonitors and PrometheusRules by `release`."""
    release_labels = [
        pairs["release"]
        for directory in KUSTOMIZATIONS
        for entry in kustomization(directory).get("labels", [])
        if "release" in (pairs := entry["pairs"])
    ]
    assert len(release_labels) == 1, "set `release` once, in monitoring/kustomization.yaml"
    assert not any("release:" in path.read_text() for path in manifest_files())
    for document in rendered(PRODUCTION):
        if document["kind"] in ("ServiceMonitor", "PrometheusRule"):
            assert document["metadata"]["labels"]["release"] == release_labels[0], document["kind"]


def test_overlay_names_every_image_the_pods_run() -> None:
    """So that a digest set in the overlay pins every image (nothing floats unpinned)."""
    in_overlay = {image["name"] for image in kustomization(PRODUCTION)["images"]}
    workloads = [document for path, document in documents() if path not in STANDALONE]
    used = {container["image"].rsplit(":", 1)[0] for _, _, container in containers(workloads)}
    assert used == in_overlay
    assert {"samsvc", "samsvc-triton"} <= used


def test_pinning_every_overlay_image_by_digest_pins_every_rendered_container(tmp_path: Path) -> None:
    """deploy/README.md's recipe: `digest:` in the overlay's images (what `kustomize edit set image` writes)."""
    copy = tmp_path / "deploy"
    shutil.copytree(DEPLOY, copy)
    overlay_file = copy / PRODUCTION / "kustomization.yaml"
    overlay = yaml.safe_load(overlay_file.read_text())
    for index, image in enumerate(overlay["images"]):
        image.pop("newTag")
        image["digest"] = f"sha256:{index:064x}"
    overlay_file.write_text(yaml.safe_dump(overlay, sort_keys=False))

    built = kustomize_build(copy / PRODUCTION)
    images = [container["image"] for _, _, container in containers(built)]
    assert len(images) >= 5
    unpinned = [image for image in images if not DIGEST.search(image)]
    assert not unpinned, unpinned
    # checkov agrees (CKV_K8S_43: "Image should use digest").
    rendered_file = tmp_path / "pinned.yaml"
    rendered_file.write_text(yaml.safe_dump_all(built, sort_keys=False))
    report = checkov_report(rendered_file, ["CKV_K8S_43"])
    assert report["summary"]["failed"] == 0 and report["summary"]["passed"] >= 4, report["summary"]
