"""The exported graphs of each model (its image side and prompt side), written once into a graph directory and
found there afterwards.

File name: `<model id>.<graph version>-<part>.op<opset>.torch<version>.onnx`. The model id names the weights
(family, architecture and a hash of the state dict), the graph version changes with service.runtime.onnx.graph's
code and the torch version with the exporter; nothing else (ONNX Runtime's version, the CPU) changes the file.

Writing: an flock on `<name>.lock` (N decoder processes starting together export once), the export into a
temporary file in the same directory, fsync, an atomic rename, fsync of the directory: readers never see a partial
file. A file ONNX Runtime rejects is removed and exported again, once.
"""

from __future__ import annotations

import fcntl
import logging
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from service.runtime.onnx.graph import GRAPH_VERSION, OPSET, PARTS

log = logging.getLogger(__name__)


def graph_file_name(model_id: str, part: str) -> str:
    if "/" in model_id or model_id.startswith("."):
        raise ValueError(f"model id {model_id!r} cannot name a file")
    if part not in PARTS:
        raise ValueError(f"no graph part {part!r}; the parts are {', '.join(PARTS)}")
    torch_version = torch.__version__.split("+")[0]
    return f"{model_id}.{GRAPH_VERSION}-{part}.op{OPSET}.torch{torch_version}.onnx"


def ensure_graph(model_id: str, part: str, directory: Path, export: Callable[[str], None]) -> Path:
    """The `part` graph file of `model_id` in `directory`, exported with `export(path)` if it is not there yet."""
    final = directory / graph_file_name(model_id, part)
    if final.exists():
        return final
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / f"{final.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when closed; waits while another process exports
        if final.exists():
            return final
        started = time.perf_counter()
        handle, temporary_name = tempfile.mkstemp(prefix=f"{final.name}.", suffix=".partial", dir=directory)
        os.close(handle)
        temporary = Path(temporary_name)
        try:
            export(temporary_name)
            with open(temporary, "rb") as written:
                os.fsync(written.fileno())
            os.chmod(temporary, 0o644)
            os.replace(temporary, final)
            directory_handle = os.open(directory, os.O_RDONLY)
            try:
                os.fsync(directory_handle)
            finally:
                os.close(directory_handle)
        finally:
            temporary.unlink(missing_ok=True)
    log.info(
        "exported the decoder's %s graph of %s to %s in %.1f s", part, model_id, final, time.perf_counter() - started
    )
    return final


def is_writable(directory: Path) -> bool:
    """True when files can be created in `directory` (or it can be created)."""
    existing = directory
    while not existing.exists():
        existing = existing.parent
    return os.access(existing, os.W_OK | os.X_OK)
