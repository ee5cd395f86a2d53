"""What model_repo's model.py runs: settings from Triton's args, batches split back per request."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from segment_anything import SamPredictor

from service.runtime.checkpoint import CheckpointInfo
from service.runtime.image_encoder import ImageEncoderRole
from service.triton.encoder_model import (
    encode_requests,
    load_encoder,
    model_id_output,
    settings_from_triton,
)
from service.triton.launcher import DEFAULT_MODEL_REPOSITORY, child_environment, prepare_backend_directory, stub_path
from tests.numerical_contract import reference_sam


def triton_args(kind: str = "CPU", checkpoint: str | None = "/models/sam.pth") -> dict[str, str]:
    parameters = {"checkpoint": {"string_value": checkpoint}} if checkpoint else {}
    return {
        "model_config": json.dumps({"name": "sam_image_encoder", "parameters": parameters}),
        "model_instance_kind": kind,
        "model_instance_device_id": "1",
    }


def test_parameter_names_the_checkpoint_and_environment_overrides_it() -> None:
    assert settings_from_triton(triton_args(), environ={}).checkpoint == Path("/models/sam.pth")
    settings = settings_from_triton(triton_args(), environ={"SAMSVC_CHECKPOINT": "/mnt/x.pth", "SAMSVC_ARCH": "vit_b"})
    assert (settings.checkpoint, settings.arch) == (Path("/mnt/x.pth"), "vit_b")
    with pytest.raises(ValueError, match="SAMSVC_CHECKPOINT"):
        settings_from_triton(triton_args(checkpoint=None), environ={})


def test_gpu_instances_run_in_half_precision_on_their_device() -> None:
    gpu = settings_from_triton(triton_args("GPU"), environ={})
    cpu = settings_from_triton(triton_args("CPU"), environ={})
    assert (gpu.device, gpu.half) == ("cuda:1", True)
    assert (cpu.device, cpu.half) == ("cpu", False)


def test_a_dynamic_batch_is_one_forward_pass_split_back_per_request(tiny_checkpoint: CheckpointInfo) -> None:
    """Each request's embeddings come back in order and equal the reference's SamPredictor features of its image."""
    encoder = load_encoder(settings_from_triton(triton_args(checkpoint=str(tiny_checkpoint.path)), environ={}))
    assert isinstance(encoder, ImageEncoderRole) and encoder.checkpoint.model_id == tiny_checkpoint.model_id
    rng = np.random.default_rng(0)
    # 1024 x 700 content (the reference keeps that size: its longest side is already 1024); the columns past 700
    # hold noise that the model must treat as padding.
    images = [rng.integers(0, 256, (count, 1024, 1024, 3), dtype=np.uint8) for count in (1, 2)]
    sizes = [np.array([[1024, 700]] * count, dtype=np.int32) for count in (1, 2)]

    outputs = encode_requests(encoder, images, sizes)

    assert [output.shape for output in outputs] == [(1, 256, 64, 64), (2, 256, 64, 64)]
    assert all(output.dtype == np.float16 for output in outputs)
    predictor = SamPredictor(reference_sam(tiny_checkpoint))
    for batch, output in zip(images, outputs, strict=True):
        for image, embedding in zip(batch, output, strict=True):
            with torch.inference_mode():
                predictor.set_image(np.ascontiguousarray(image[:, :700]))
            reference = predictor.features[0].numpy()
            # float16 rounding moves each value by at most 2^-11 of itself, plus float32 noise.
            difference = np.abs(embedding.astype(np.float32) - reference)
            assert np.all(difference <= np.abs(reference) * 2.0**-11 + 1e-4), float(difference.max())
    assert model_id_output("tiny-abc", 2).tolist() == [[b"tiny-abc"], [b"tiny-abc"]]


def test_backend_directory_holds_this_pythons_stub_beside_the_backend(tmp_path: Path) -> None:
    backend = prepare_backend_directory(tmp_path / "backends") / "python"
    assert sorted(path.name for path in backend.iterdir()) == [
        "libtriton_python.so",
        "triton_python_backend_stub",
        "triton_python_backend_utils.py",
    ]
    assert (backend / "triton_python_backend_stub").read_bytes() == stub_path().read_bytes()


def test_child_environment_finds_the_wheel_libraries_this_venv_and_the_repository() -> None:
    environment = child_environment({"PATH": "/usr/bin"})
    assert "nvidia_pytriton.libs" in environment["LD_LIBRARY_PATH"]
    assert environment["PATH"].endswith(":/usr/bin")
    assert environment["PYTHONPATH"].split(":")[0] == str(DEFAULT_MODEL_REPOSITORY.parent)


def test_model_repository_has_gpu_and_cpu_configs_differing_only_in_instance_kind() -> None:
    model_dir = DEFAULT_MODEL_REPOSITORY / "sam_image_encoder"
    gpu = (model_dir / "config.pbtxt").read_text()
    cpu = (model_dir / "configs" / "cpu.pbtxt").read_text()

    def body(text: str) -> list[str]:
        return [line for line in text.splitlines() if line and not line.startswith("#")]

    assert "kind: KIND_GPU" in gpu and "kind: KIND_CPU" in cpu
    assert body(gpu) == [line.replace("KIND_CPU", "KIND_GPU") for line in body(cpu)]
    assert (model_dir / "1" / "model.py").exists()
