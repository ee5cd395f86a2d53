"""Run the `tritonserver` binary shipped in the nvidia-pytriton wheel on this machine's CPU.

The wheel holds the server (`pytriton/tritonserver/bin/tritonserver`), the python backend
(`backends/python/libtriton_python.so`), one backend stub per Python version
(`python_backend_stubs/<X.Y>/triton_python_backend_stub`) and the shared libraries the server needs
(`site-packages/nvidia_pytriton.libs`). As pytriton itself does, we build a backend directory whose
`python/` holds the backend next to the stub of *this* interpreter's version, and start the server with
`LD_LIBRARY_PATH` covering the wheel's libraries.

The stub embeds Python; so that model.py can import torch, segment_anything and `service` from this
virtualenv, the child environment gets:
- `PATH` starting with this interpreter's bin directory: an embedded Python finds its prefix by looking
  up `python3` on PATH, and the virtualenv's `pyvenv.cfg` there adds its site-packages (pytriton does
  the same);
- `LD_LIBRARY_PATH` starting with this interpreter's own libpython directory, so the stub runs the same
  libpython as the venv rather than the system's;
- `PYTHONPATH` starting with this repository, so `service` imports even without the editable install.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import sys
import sysconfig
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from service.local.child_process import ChildProcess
from service.local.ports import free_port
from service.triton.model_config import TritonModel
from service.triton.model_repository import DEFAULT_MODEL_REPOSITORY, REPOSITORY_ROOT, write_repository


def _pytriton_dir() -> Path:
    """Where the nvidia-pytriton wheel is installed, found without importing it (it is an optional extra:
    the service image has no tritonserver, and `samsvc --help` must work there)."""
    spec = importlib.util.find_spec("pytriton")
    if spec is None or spec.origin is None:
        return Path("/nonexistent/nvidia-pytriton-is-not-installed/pytriton")
    return Path(spec.origin).resolve().parent


_PYTRITON_DIR = _pytriton_dir()
TRITONSERVER_BINARY = _PYTRITON_DIR / "tritonserver" / "bin" / "tritonserver"
_PYTHON_BACKEND_DIR = _PYTRITON_DIR / "tritonserver" / "backends" / "python"
_STUBS_DIR = _PYTRITON_DIR / "tritonserver" / "python_backend_stubs"
_WHEEL_LIBS_DIR = _PYTRITON_DIR.parent / "nvidia_pytriton.libs"
# The python backend copies every tensor through shared memory; an image batch is 3 MiB per image.
_SHM_DEFAULT_BYTES = 32 << 20
_SHM_GROWTH_BYTES = 16 << 20


class TritonFailedToStart(RuntimeError):
    pass


def stub_path(python_version: str | None = None) -> Path:
    """The wheel's backend stub for a Python version ("3.11"; default: this interpreter's)."""
    version = python_version or f"{sys.version_info.major}.{sys.version_info.minor}"
    path = _STUBS_DIR / version / "triton_python_backend_stub"
    if not path.exists():
        raise FileNotFoundError(f"nvidia-pytriton has no python backend stub for Python {version} at {path}")
    return path


def prepare_backend_directory(target: Path) -> Path:
    """`target/python/` with the python backend and this Python's stub side by side; returns `target`."""
    python_dir = target / "python"
    python_dir.mkdir(parents=True, exist_ok=True)
    for name in ("libtriton_python.so", "triton_python_backend_utils.py"):
        shutil.copy2(_PYTHON_BACKEND_DIR / name, python_dir / name)
    shutil.copy2(stub_path(), python_dir / "triton_python_backend_stub")
    return target


def child_environment(base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for tritonserver and its stubs (see the module docstring for why)."""
    environment = dict(os.environ if base is None else base)

    def prepend(name: str, *paths: str) -> None:
        existing = [environment[name]] if environment.get(name) else []
        environment[name] = os.pathsep.join([*paths, *existing])

    libpython_dir = sysconfig.get_config_var("LIBDIR") or ""
    library_dirs = [libpython_dir] if libpython_dir and sysconfig.get_config_var("Py_ENABLE_SHARED") else []
    prepend("LD_LIBRARY_PATH", *library_dirs, str(_WHEEL_LIBS_DIR))
    prepend("PATH", str(Path(sys.executable).parent))
    prepend("PYTHONPATH", str(REPOSITORY_ROOT))
    return environment


@dataclass
class TritonServer:
    """A tritonserver child; start() waits until every model is READY.

    It serves `models` from a repository it writes under its work directory (CPU instances), or, without models,
    the existing `model_repository` (with configs/<model_config_name>.pbtxt when a name is given). Ports left at
    0 are chosen free on start() and kept, so stop() then start() comes back on the same address (tests rely on
    this to prove clients recover).
    """

    models: Sequence[TritonModel] = ()
    model_repository: Path = DEFAULT_MODEL_REPOSITORY
    # "cpu" selects configs/cpu.pbtxt; None uses config.pbtxt (the GPU production configuration).
    model_config_name: str | None = "cpu"
    host: str = "127.0.0.1"
    grpc_port: int = 0
    http_port: int = 0
    metrics_port: int = 0
    log_verbose: int = 0
    child: ChildProcess | None = None
    work_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="samsvc-triton-")))

    @property
    def grpc_url(self) -> str:
        """host:port of the gRPC endpoint, as tritonclient.grpc wants it."""
        return f"{self.host}:{self.grpc_port}"

    @property
    def log_path(self) -> Path:
        return self.work_dir / "tritonserver.log"

    @property
    def model_names(self) -> list[str]:
        if self.models:
            return [model.name for model in self.models]
        return sorted(path.name for path in self.model_repository.iterdir() if (path / "1").is_dir())

    def command(self) -> list[str]:
        backend_dir = prepare_backend_directory(self.work_dir / "backends")
        repository = self.model_repository
        if self.models:
            repository = write_repository(self.work_dir / "model_repo", self.models, "KIND_CPU")
        command = [
            str(TRITONSERVER_BINARY),
            f"--model-repository={repository}",
            f"--backend-directory={backend_dir}",
            f"--backend-config=python,shm-default-byte-size={_SHM_DEFAULT_BYTES}",
            f"--backend-config=python,shm-growth-byte-size={_SHM_GROWTH_BYTES}",
            f"--grpc-address={self.host}",
            f"--grpc-port={self.grpc_port}",
            f"--http-address={self.host}",
            f"--http-port={self.http_port}",
            f"--metrics-address={self.host}",
            f"--metrics-port={self.metrics_port}",
            "--allow-gpu-metrics=false",
            "--exit-on-error=true",
            "--strict-readiness=true",
            f"--log-verbose={self.log_verbose}",
        ]
        if self.model_config_name and not self.models:
            command.append(f"--model-config-name={self.model_config_name}")
        return command

    def launch(self) -> TritonServer:
        """Start the process without waiting for the model (a supervisor's restart; start() waits)."""
        if not TRITONSERVER_BINARY.exists():
            raise FileNotFoundError(f"tritonserver not found at {TRITONSERVER_BINARY}; install nvidia-pytriton")
        self.grpc_port = self.grpc_port or free_port(self.host)
        self.http_port = self.http_port or free_port(self.host)
        self.metrics_port = self.metrics_port or free_port(self.host)
        self.work_dir.mkdir(parents=True, exist_ok=True)
        # Its own process group, so stop() also ends the backend stubs it forks if the server itself hangs.
        self.child = ChildProcess("tritonserver", self.command(), self.log_path, child_environment()).start()
        return self

    def start(self, timeout_seconds: float = 180.0) -> TritonServer:
        self.launch()
        try:
            self.wait_until_ready(timeout_seconds)
        except BaseException:
            self.stop(remove_work_dir=False)
            raise
        return self

    def is_model_ready(self) -> bool:
        """True when every served model is READY."""
        return all(self._ready(name) for name in self.model_names)

    def _ready(self, model_name: str) -> bool:
        url = f"http://{self.host}:{self.http_port}/v2/models/{model_name}/ready"
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def inference_count(self, model_name: str | None = None, settle_seconds: float = 0.25) -> int:
        """Images (batch items) a model (default: every model) has inferred since this server started, from
        Triton's statistics.

        Triton counts an inference just after sending its response, so a caller that has its answer may read
        the old count: read until two reads `settle_seconds` apart agree.
        """
        count = self._read_inference_count(model_name)
        while True:
            time.sleep(settle_seconds)
            settled = self._read_inference_count(model_name)
            if settled == count:
                return count
            count = settled

    def statistics(self, model_name: str | None = None) -> dict[str, Any]:
        """Triton's inference statistics of a model (default: every model)."""
        path = f"/v2/models/{model_name}/stats" if model_name else "/v2/models/stats"
        with urllib.request.urlopen(f"http://{self.host}:{self.http_port}{path}", timeout=5) as response:
            statistics: dict[str, Any] = json.load(response)
        return statistics

    def _read_inference_count(self, model_name: str | None) -> int:
        statistics = self.statistics(model_name)
        return sum(int(model.get("inference_count", 0)) for model in statistics.get("model_stats", []))

    def model_config(self, model_name: str | None = None) -> dict[str, Any]:
        """The configuration Triton loaded for a model (default: the first)."""
        url = f"http://{self.host}:{self.http_port}/v2/models/{model_name or self.model_names[0]}/config"
        with urllib.request.urlopen(url, timeout=5) as response:
            config: dict[str, Any] = json.load(response)
        return config

    def wait_until_ready(self, timeout_seconds: float) -> None:
        deadline = time.monotonic() + timeout_seconds
        while time.monotonic() < deadline:
            if self.exited():
                raise TritonFailedToStart(f"tritonserver exited during start-up:\n{self.log_tail()}")
            if self.is_model_ready():
                return
            time.sleep(0.2)
        raise TritonFailedToStart(f"models {self.model_names} not ready within {timeout_seconds} s:\n{self.log_tail()}")

    def exited(self) -> bool:
        return self.child is None or self.child.exited()

    def log_tail(self, lines: int = 40) -> str:
        return self.child.log_tail(lines) if self.child is not None else "(not started)"

    def stop(self, timeout_seconds: float = 30.0, remove_work_dir: bool = False) -> None:
        """SIGTERM (Triton finishes in-flight requests), then SIGKILL of its process group after the timeout."""
        if self.child is not None:
            self.child.stop(timeout_seconds)
        if remove_work_dir:
            shutil.rmtree(self.work_dir, ignore_errors=True)

    def __enter__(self) -> TritonServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop(remove_work_dir=True)
