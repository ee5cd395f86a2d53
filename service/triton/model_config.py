"""The Triton configuration of one served model, rendered from its family: what model_repo/ holds (a test checks
it against this) and what the local launcher writes for `samsvc up` and the tests.

Inputs: IMAGE, the image as service.runtime.preprocess prepares it (UINT8 [S, S, 3] padded for sam and tinyvit,
FP32 [3, S, S] in [0, 1] for sam2), and INPUT_SIZE, INT32 [2], the rows and columns of its content. Outputs: one
tensor per family output, named in capitals, in its storage dtype, and MODEL_ID, which the encoder checks before
storing. Dynamic batching (up to 4 images, 5 ms queue delay) with two priority levels, each a bounded queue with
a timeout: 1 for interactive Embeds (the default), 2 for bulk pre-embedding, so that a batch takes every waiting
interactive image before any bulk one; and a warm-up request, so that the first real image is not the slow one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from service.runtime.families.spec import Arch, ResizeRule

WARMUP_INPUT_SIZE_FILE = "input_size"
MAX_BATCH_SIZE = 4
MAX_QUEUE_DELAY_MICROSECONDS = 5000
# Triton's request priorities (a lower number is served first; 0 means the model's default level).
INTERACTIVE_PRIORITY = 1
BULK_PRIORITY = 2
# Each level's queue: at most this many waiting requests (more are rejected at once, UNAVAILABLE, rather than
# queueing without bound), each rejected when it has waited its timeout (a request may ask for a shorter one: the
# encoder passes its caller's remaining time, so an abandoned request never runs).
INTERACTIVE_MAX_QUEUE_SIZE = 64
INTERACTIVE_QUEUE_TIMEOUT_MICROSECONDS = 60_000_000
BULK_MAX_QUEUE_SIZE = 32
BULK_QUEUE_TIMEOUT_MICROSECONDS = 300_000_000
_TRITON_DTYPE = {"float16": "TYPE_FP16", "float32": "TYPE_FP32"}


@dataclass(frozen=True)
class TritonModel:
    """One served model as Triton knows it."""

    name: str  # the model's directory and Triton name
    arch: Arch
    checkpoint: str  # a path, or builtin:lite_medsam
    model_id: str = ""  # empty: the model hashes its checkpoint


def image_input(arch: Arch) -> tuple[str, tuple[int, ...]]:
    """The IMAGE input's Triton dtype and dims."""
    size = arch.input_size
    if arch.family.resize is ResizeRule.SQUARE_FLOAT:
        return "TYPE_FP32", (3, size, size)
    return "TYPE_UINT8", (size, size, 3)


def _dims(shape: tuple[int, ...]) -> str:
    return f"[ {', '.join(str(side) for side in shape)} ]"


def render_config(model: TritonModel, kind: str) -> str:
    """config.pbtxt of `model` for instances of `kind` ("KIND_GPU" in production, "KIND_CPU" locally)."""
    image_dtype, image_dims = image_input(model.arch)
    where = "a GPU node (half precision)" if kind == "KIND_GPU" else "the CPU (float32), for local and CI runs"
    outputs = "".join(
        f"""  {{
    name: "{spec.triton_name}"
    data_type: {_TRITON_DTYPE[spec.storage_dtype]}
    dims: {_dims(spec.shape)}
  }},
"""
        for spec in model.arch.family.outputs
    )
    parameters = [("checkpoint", model.checkpoint), ("arch", model.arch.name)]
    if model.model_id:
        parameters.append(("model_id", model.model_id))
    rendered_parameters = "".join(
        f"""parameters: {{
  key: "{key}"
  value: {{ string_value: "{value}" }}
}}
"""
        for key, value in parameters
    )
    return f"""# {model.arch.family.name} family, {model.arch.name}, on {where}. Rendered by service/triton/model_config.py.
name: "{model.name}"
backend: "python"
max_batch_size: {MAX_BATCH_SIZE}
input [
  {{
    # The image as service.runtime.preprocess prepares it for this family.
    name: "IMAGE"
    data_type: {image_dtype}
    dims: {_dims(image_dims)}
  }},
  {{
    # Rows, columns of the image's content inside the input frame.
    name: "INPUT_SIZE"
    data_type: TYPE_INT32
    dims: [ 2 ]
  }}
]
output [
{outputs}  {{
    # The model id (family, architecture, checkpoint content hash) that made the tensors.
    name: "MODEL_ID"
    data_type: TYPE_STRING
    dims: [ 1 ]
  }}
]
dynamic_batching {{
  max_queue_delay_microseconds: {MAX_QUEUE_DELAY_MICROSECONDS}
  # {INTERACTIVE_PRIORITY}: interactive Embeds (the default); {BULK_PRIORITY}: bulk pre-embedding, batched after every waiting interactive image.
  priority_levels: 2
  default_priority_level: {INTERACTIVE_PRIORITY}
  default_queue_policy {{
    timeout_action: REJECT
    default_timeout_microseconds: {INTERACTIVE_QUEUE_TIMEOUT_MICROSECONDS}
    allow_timeout_override: true
    max_queue_size: {INTERACTIVE_MAX_QUEUE_SIZE}
  }}
  priority_queue_policy {{
    key: {BULK_PRIORITY}
    value {{
      timeout_action: REJECT
      default_timeout_microseconds: {BULK_QUEUE_TIMEOUT_MICROSECONDS}
      allow_timeout_override: true
      max_queue_size: {BULK_MAX_QUEUE_SIZE}
    }}
  }}
}}
instance_group [
  {{
    kind: {kind}
    count: 1
  }}
]
model_warmup [
  {{
    name: "one_blank_image"
    batch_size: 1
    inputs {{
      key: "IMAGE"
      value: {{
        data_type: {image_dtype}
        dims: {_dims(image_dims)}
        zero_data: true
      }}
    }}
    inputs {{
      key: "INPUT_SIZE"
      value: {{
        data_type: TYPE_INT32
        dims: [ 2 ]
        input_data_file: "{WARMUP_INPUT_SIZE_FILE}"
      }}
    }}
  }}
]
{rendered_parameters}"""


def warmup_input_size(arch: Arch) -> bytes:
    """The raw INPUT_SIZE of the warm-up request: the whole input frame."""
    return np.array([arch.input_size, arch.input_size], dtype="<i4").tobytes()


def write_model_directory(model: TritonModel, directory: Path, kind: str, model_py: Path) -> Path:
    """`directory` as Triton loads it: config.pbtxt, warmup/input_size and 1/model.py (copied from `model_py`)."""
    (directory / "1").mkdir(parents=True, exist_ok=True)
    (directory / "warmup").mkdir(exist_ok=True)
    (directory / "config.pbtxt").write_text(render_config(model, kind))
    (directory / "warmup" / WARMUP_INPUT_SIZE_FILE).write_bytes(warmup_input_size(model.arch))
    (directory / "1" / "model.py").write_text(model_py.read_text())
    return directory
