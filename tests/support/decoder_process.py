"""A decoder service as a process of its own (its own memory, as in production), for the heavy-request test and
bench_decoder: started over a Redis, SERVING before it is handed out, stopped with its whole process group."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from service.local.child_process import ChildProcess
from service.local.ports import free_port
from service.rpc.health_check import health_status
from service.runtime.checkpoint import CheckpointInfo


@dataclass(frozen=True)
class DecoderProcess:
    target: str  # host:port of its gRPC server
    metrics_url: str
    pid: int


@contextmanager
def decoder_process(
    checkpoint: CheckpointInfo, redis_url: str, graph_dir: Path, log_path: Path, extra: Sequence[str] = ()
) -> Iterator[DecoderProcess]:
    """`samsvc decoder` serving `checkpoint` with `extra` flags, once SERVING (RuntimeError with its log's tail if
    it exits or is not SERVING within 180 s); stopped on exit."""
    port, metrics_port = free_port(), free_port()
    command = [sys.executable, "-m", "service.cli", "decoder", "--host", "127.0.0.1", "--port", str(port),
               "--metrics-host", "127.0.0.1", "--metrics-port", str(metrics_port), "--redis-url", redis_url,
               "--checkpoint", str(checkpoint.path), "--model-id", checkpoint.model_id,
               "--decoder-graph-dir", str(graph_dir), "--log-level", "WARNING", *extra]  # fmt: skip
    child = ChildProcess("decoder", command, log_path).start()
    target = f"127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while health_status(target, timeout_seconds=1) != "SERVING":
            if child.exited() or time.monotonic() > deadline:
                state = f"exited with {child.returncode}" if child.exited() else "is not SERVING after 180 s"
                raise RuntimeError(f"the decoder {state}:\n{child.log_tail()}")
            time.sleep(0.2)
        assert child.pid is not None
        yield DecoderProcess(target, f"http://127.0.0.1:{metrics_port}/metrics", child.pid)
    finally:
        child.stop(timeout_seconds=20)
