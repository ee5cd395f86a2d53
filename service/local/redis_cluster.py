"""A real Redis Cluster on loopback ports: masters and replicas from Debian's `redis-server`, joined by
`redis-cli --cluster create`, for the tests (and for trying `redis+cluster://` URLs locally).

Each node is a RedisServer (LRU eviction, no persistence) with cluster mode on and a short node timeout, so a
master that dies is replaced by its replica within a few seconds. `crash()` kills one node's process to make
that happen. Talks to the nodes with `redis-cli` only: the Redis client library stays in service.cache.store.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field

from service.local.ports import free_port
from service.local.redis_server import RedisNotInstalled, RedisServer

CLI_HINT = "redis-cli was not found on PATH (Debian: it comes with redis-server, package redis-tools)."


@dataclass
class LocalRedisCluster:
    """`masters` masters with `replicas_per_master` replicas each. start(), then `url` is a `redis+cluster://`
    URL naming every node as a seed; stop() ends every process and removes their data."""

    masters: int = 3
    replicas_per_master: int = 1
    host: str = "127.0.0.1"
    node_timeout_ms: int = 500
    maxmemory: str = "256mb"
    nodes: list[RedisServer] = field(default_factory=list)

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"{node.host}:{node.port}" for node in self.nodes)

    @property
    def ports(self) -> list[int]:
        return [node.port for node in self.nodes]

    def start(self, timeout_seconds: float = 30.0) -> LocalRedisCluster:
        if shutil.which("redis-cli") is None:
            raise RedisNotInstalled(CLI_HINT)
        try:
            for _ in range(self.masters * (1 + self.replicas_per_master)):
                self.nodes.append(self._node().start(timeout_seconds))
            self._cli(
                "--cluster", "create", *(f"{node.host}:{node.port}" for node in self.nodes),
                "--cluster-replicas", str(self.replicas_per_master), "--cluster-yes",
                timeout_seconds=timeout_seconds,
            )  # fmt: skip
            self.wait_until_healthy(timeout_seconds)
        except BaseException:
            self.stop()
            raise
        return self

    def _node(self) -> RedisServer:
        # The cluster bus port is set explicitly: the default (port + 10000) can be taken, or past 65535.
        arguments = (
            "--cluster-enabled", "yes",
            "--cluster-config-file", "nodes.conf",
            "--cluster-node-timeout", str(self.node_timeout_ms),
            "--cluster-port", str(free_port(self.host)),
            # A replica that lost its master for a while may still take over: this cluster is for failovers.
            "--cluster-replica-validity-factor", "0",
            # Replicas sync at once (Redis waits 5 s by default for more replicas to share one transfer).
            "--repl-diskless-sync-delay", "0",
        )  # fmt: skip
        return RedisServer(
            host=self.host, port=free_port(self.host), maxmemory=self.maxmemory, extra_arguments=arguments
        )

    def _cli(self, *arguments: str, port: int | None = None, timeout_seconds: float = 10.0) -> str:
        command = ["redis-cli", "-h", self.host]
        if port is not None:
            command += ["-p", str(port)]
        result = subprocess.run(
            [*command, *arguments], capture_output=True, text=True, timeout=timeout_seconds, check=False
        )
        if result.returncode != 0:
            raise RuntimeError(f"redis-cli {' '.join(arguments)} failed: {result.stdout[-500:]}{result.stderr[-500:]}")
        return result.stdout

    def info(self, port: int, section: str) -> dict[str, str]:
        """`INFO <section>` (or `CLUSTER INFO` for "cluster-info") of the node on `port`, as a dict."""
        arguments = ("cluster", "info") if section == "cluster-info" else ("info", section)
        text = self._cli(*arguments, port=port, timeout_seconds=5.0)
        pairs = (line.strip().split(":", 1) for line in text.splitlines() if ":" in line)
        return {name: value for name, value in pairs}

    def running_nodes(self) -> list[RedisServer]:
        return [node for node in self.nodes if not node.exited()]

    def master_ports(self) -> list[int]:
        """Ports of the running nodes that are masters now."""
        return [node.port for node in self.running_nodes() if self.info(node.port, "replication")["role"] == "master"]

    def replica_ports_of(self, master_port: int) -> list[int]:
        """Ports of the running replicas that follow the master on `master_port`."""
        replicas = []
        for node in self.running_nodes():
            replication = self.info(node.port, "replication")
            if replication["role"] == "slave" and int(replication["master_port"]) == master_port:
                replicas.append(node.port)
        return replicas

    def is_healthy(self) -> bool:
        """Every running node says cluster_state:ok, there are `masters` masters, and every replica is in sync."""
        try:
            running = self.running_nodes()
            if not all(self.info(node.port, "cluster-info").get("cluster_state") == "ok" for node in running):
                return False
            roles = [self.info(node.port, "replication") for node in running]
        except (RuntimeError, subprocess.TimeoutExpired):
            return False
        masters = sum(role["role"] == "master" for role in roles)
        replicas_up = all(role.get("master_link_status") == "up" for role in roles if role["role"] == "slave")
        return masters == self.masters and replicas_up

    def wait_until_healthy(self, timeout_seconds: float = 30.0) -> float:
        """Seconds until is_healthy(); RuntimeError after the timeout."""
        started = time.monotonic()
        while not self.is_healthy():
            if time.monotonic() - started > timeout_seconds:
                raise RuntimeError(f"the Redis Cluster on {self.ports} is not healthy within {timeout_seconds} s")
            time.sleep(0.05)
        return time.monotonic() - started

    def crash(self, port: int) -> None:
        """Kill the node on `port` at once (SIGKILL, as a crash or a lost machine), leaving its replica to take over."""
        (node,) = (node for node in self.nodes if node.port == port)
        if node.child is not None and node.child.process is not None:
            node.child.process.send_signal(signal.SIGKILL)
            node.child.process.wait()

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def __enter__(self) -> LocalRedisCluster:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
