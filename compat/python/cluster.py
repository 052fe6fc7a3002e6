"""A multi-node runnel cluster on 127.0.0.1: free ports, own dirs, every process stopped.

Each node is one `runnel server` process in the combined roles (broker and
controller, a voter of the metadata quorum), formatted first with `runnel format`
and one shared cluster id. Node ids are 1..N; node i has a client port (PLAINTEXT)
and a controller port (CONTROLLER), both probed free on 127.0.0.1.

The binary is RUNNEL_BIN, as for broker.py; a missing binary is a failure.

Nodes can be stopped (SIGTERM: controlled shutdown, then SIGKILL after
STOP_GRACE_S), killed (SIGKILL) and started again with the same command, ports and
data dir; every incarnation appends to the node's log after a `=== start` marker,
so `log_tails()` shows what each node said, for assertion messages.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from confluent_kafka.admin import AdminClient

from broker import free_port, log_tail, port_accepts, stop_process

READY_TIMEOUT_S = 45.0
STOP_GRACE_S = 15.0
START_ATTEMPTS = 3
FORMAT_TIMEOUT_S = 30.0
ADMIN_TIMEOUT_S = 10.0


def runnel_bin() -> str:
    runnel = os.environ.get("RUNNEL_BIN")
    assert runnel, "RUNNEL_BIN is not set: build with `cargo build -p runnel-cli` and export its path"
    assert os.access(runnel, os.X_OK), f"RUNNEL_BIN={runnel} is not an executable file"
    return runnel


@dataclass
class Node:
    """One node of the cluster; `process` is None while it is down."""

    node_id: int
    port: int
    controller_port: int
    data_dir: Path
    log_path: Path
    command: list[str]
    process: subprocess.Popen | None = None
    starts: int = 0

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def launch(self) -> None:
        """Start the process (without waiting for it to be ready)."""
        assert not self.running(), f"node {self.node_id} is already running"
        self.starts += 1
        with open(self.log_path, "ab") as log:
            log.write(f"\n=== start {self.starts} at {time.time():.3f}\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                self.command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )

    def wait_ready(self, deadline: float) -> bool:
        """True once the client port accepts connections; False if the process exits or time runs out."""
        while time.monotonic() < deadline and self.running():
            if port_accepts(self.port):
                return True
            time.sleep(0.1)
        return False

    def stop(self, grace_s: float = STOP_GRACE_S) -> int | None:
        """SIGTERM, then SIGKILL after `grace_s`; returns the exit code (None if it was not running)."""
        return stop_process(self.process, grace_s)

    def kill(self) -> None:
        """SIGKILL, as in a crash."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def log_tail(self, lines: int = 40) -> str:
        return log_tail(self.log_path, lines)


@dataclass
class Cluster:
    """A running cluster; `nodes` maps node id to Node."""

    root: Path
    cluster_id: str
    nodes: dict[int, Node] = field(default_factory=dict)

    def node(self, node_id: int) -> Node:
        return self.nodes[node_id]

    def bootstrap(self, *node_ids: int) -> str:
        """Bootstrap string of the given nodes, or of every running node."""
        ids = node_ids or tuple(i for i, n in self.nodes.items() if n.running())
        return ",".join(self.nodes[i].bootstrap for i in ids)

    def admin(self, *node_ids: int) -> AdminClient:
        return AdminClient({"bootstrap.servers": self.bootstrap(*node_ids)})

    def describe(self, *node_ids: int) -> tuple[int, list[int]]:
        """(controller id, sorted broker ids) as DescribeCluster reports them."""
        # The client must outlive the future: a destroyed AdminClient drops its answers.
        admin = self.admin(*node_ids)
        described = admin.describe_cluster(request_timeout=ADMIN_TIMEOUT_S).result(
            timeout=ADMIN_TIMEOUT_S + 5
        )
        controller = described.controller.id if described.controller is not None else -1
        return controller, sorted(n.id for n in described.nodes)

    def log_tails(self, lines: int = 40) -> str:
        parts = []
        for node_id, node in self.nodes.items():
            state = "running" if node.running() else f"down (exit {node.process and node.process.returncode})"
            parts.append(
                f"--- node {node_id} ({node.bootstrap}, {state}) log tail ---\n{node.log_tail(lines)}"
            )
        return "\n".join(parts)

    def start(self, *node_ids: int, timeout_s: float = READY_TIMEOUT_S) -> None:
        """Start the given nodes (default: every node that is down) concurrently; wait for their ports."""
        ids = node_ids or tuple(i for i, n in self.nodes.items() if not n.running())
        for node_id in ids:
            self.nodes[node_id].launch()
        deadline = time.monotonic() + timeout_s
        not_ready = [i for i in ids if not self.nodes[i].wait_ready(deadline)]
        assert not not_ready, (
            f"nodes {not_ready} not ready within {timeout_s}s\n{self.log_tails()}"
        )

    def stop_node(self, node_id: int) -> int | None:
        return self.nodes[node_id].stop()

    def kill_node(self, node_id: int) -> None:
        self.nodes[node_id].kill()

    def restart_node(self, node_id: int, *, kill: bool = False) -> None:
        """Stop (SIGTERM, or SIGKILL with `kill`) and start again with the same command and dir."""
        if kill:
            self.kill_node(node_id)
        else:
            self.stop_node(node_id)
        self.start(node_id)

    def stop_all(self) -> None:
        """SIGTERM every running node at once, then wait (SIGKILL after STOP_GRACE_S)."""
        for node in self.nodes.values():
            if node.running():
                node.process.send_signal(signal.SIGTERM)
        for node in self.nodes.values():
            node.stop()

    def wait_brokers(
        self, expected: list[int], *, via: tuple[int, ...] = (), timeout_s: float = 30.0
    ) -> tuple[int, list[int]]:
        """Wait until DescribeCluster (through `via`, default every running node) lists exactly `expected`."""
        deadline = time.monotonic() + timeout_s
        last: object = None
        while True:
            try:
                last = self.describe(*via)
                if last[1] == sorted(expected) and last[0] in expected:
                    return last
            except Exception as error:  # noqa: BLE001 - retried until the deadline
                last = error
            assert time.monotonic() < deadline, (
                f"DescribeCluster via {via or 'all'} never listed brokers {sorted(expected)} "
                f"with a live controller within {timeout_s}s; last answer: {last!r}\n{self.log_tails()}"
            )
            time.sleep(0.3)

    def close(self) -> None:
        """Stop every node and delete the cluster's files."""
        try:
            self.stop_all()
        finally:
            for node in self.nodes.values():
                node.kill()
            shutil.rmtree(self.root, ignore_errors=True)


def _format(runnel: str, data_dir: Path, node_id: int, cluster_id: str | None) -> str:
    command = [runnel, "format", "--data-dir", str(data_dir), "--node-id", str(node_id)]
    if cluster_id is not None:
        command += ["--cluster-id", cluster_id]
    result = subprocess.run(command, capture_output=True, text=True, timeout=FORMAT_TIMEOUT_S)
    assert result.returncode == 0, (
        f"{' '.join(command)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    )
    if cluster_id is not None:
        return cluster_id
    meta = (data_dir / "meta.properties").read_text()
    for line in meta.splitlines():
        if line.startswith("cluster.id="):
            return line.split("=", 1)[1].strip()
    raise AssertionError(f"no cluster.id in {data_dir / 'meta.properties'}:\n{meta}")


def _layout(runnel: str, root: Path, size: int, overrides: dict) -> Cluster:
    ports = {i: (free_port(), free_port()) for i in range(1, size + 1)}
    while len({p for pair in ports.values() for p in pair}) < 2 * size:
        ports = {i: (free_port(), free_port()) for i in range(1, size + 1)}
    voters = ",".join(f"{i}@127.0.0.1:{q}" for i, (_, q) in ports.items())
    cluster_id = None
    nodes = {}
    for node_id, (port, controller_port) in ports.items():
        data_dir = root / f"node-{node_id}"
        # The first format generates the cluster id; the others join it.
        cluster_id = _format(runnel, data_dir, node_id, cluster_id)
        command = [
            runnel,
            "server",
            "--data-dir",
            str(data_dir),
            "--node-id",
            str(node_id),
            "--listeners",
            f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
            "--advertised-listeners",
            f"PLAINTEXT://127.0.0.1:{port}",
        ]
        settings = {
            "process.roles": "broker,controller",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "controller.quorum.voters": voters,
            **overrides,
        }
        for key, value in settings.items():
            command += ["--override", f"{key}={value}"]
        nodes[node_id] = Node(
            node_id, port, controller_port, data_dir, root / f"node-{node_id}.log", command
        )
    return Cluster(root, cluster_id, nodes)


def start_cluster(size: int = 3, overrides: dict | None = None) -> Cluster:
    """Format and start `size` nodes concurrently; return once every node is registered.

    Retries with fresh ports and dirs when a node dies early (another process may have
    taken a port between the probe and the bind).
    """
    runnel = runnel_bin()
    failures = []
    for _ in range(START_ATTEMPTS):
        root = Path(tempfile.mkdtemp(prefix="runnel-cluster-"))
        cluster = _layout(runnel, root, size, dict(overrides or {}))
        try:
            cluster.start()
            cluster.wait_brokers(list(cluster.nodes))
            return cluster
        except AssertionError as error:
            failures.append(str(error))
            early_exit = any(
                n.process is not None and n.process.poll() is not None for n in cluster.nodes.values()
            )
            cluster.close()
            if not early_exit:
                break
    raise AssertionError("the cluster did not come up:\n" + "\n\n".join(failures))
