"""A runnel cluster in Linux network namespaces, so a test can cut one node off.

Layout (everything made here and removed by `NetnsCluster.destroy`, nothing added to
the root namespace):

    <prefix>-hub   a bridge with <subnet>.254, where the test's clients run
    <prefix>-n<i>  node i's namespace: `lo` and `eth0` = <subnet>.<i>/24, a veth
                   whose other end, `h<i>`, is a port of the hub's bridge

Cutting node i off sets `h<i>` down in the hub: node i can then reach neither the
other nodes nor the clients, and nobody can reach it; setting `h<i>` up reconnects it.

Each node is a `runnel server` started with `ip netns exec <node namespace>`. Clients
run in the hub: the `runnel` CLI for admin views (a fresh CLI process asks its
bootstrap server only, so `describe(bootstrap=...)` is that one node's view), and
confluent-kafka for producing and consuming, through this file run as a script
(`python netns.py '<json request>'`, see `_client_main`).

Namespace names carry the prefix `rn<pid>`, so parallel runs never clash; leftovers of
the same names are deleted before setup.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from broker import log_tail, stop_process

KAFKA_PORT = 9092
CONTROLLER_PORT = 9093
STOP_GRACE_S = 15.0
IP_TIMEOUT_S = 10.0
CLI_TIMEOUT_S = 15.0


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Runs `ip ARGS`; a failure raises with ip's own message."""
    result = subprocess.run(
        ["ip", *args], capture_output=True, text=True, timeout=IP_TIMEOUT_S
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"`ip {' '.join(args)}` failed (exit {result.returncode}): "
            f"{result.stderr.strip()}"
        )
    return result


def namespaces_with_prefix(prefix: str) -> list[str]:
    """Names from `ip netns list` that belong to a run with this prefix."""
    listing = ip("netns", "list").stdout
    names = [line.split()[0] for line in listing.splitlines() if line.strip()]
    return [name for name in names if name.startswith(f"{prefix}-")]


@dataclass
class Node:
    """One `runnel server` in its own namespace."""

    node_id: int
    namespace: str
    address: str
    data_dir: Path
    log_path: Path
    process: subprocess.Popen | None = None

    @property
    def bootstrap(self) -> str:
        return f"{self.address}:{KAFKA_PORT}"

    def log_tail(self, lines: int = 40) -> str:
        return log_tail(self.log_path, lines)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL once STOP_GRACE_S have passed."""
        stop_process(self.process, STOP_GRACE_S)


@dataclass
class NetnsCluster:
    """The namespaces, the bridge and veths, and the runnel nodes of one test."""

    runnel: str
    work_dir: Path
    nodes_count: int = 3
    prefix: str = field(default_factory=lambda: f"rn{os.getpid()}")
    nodes: list[Node] = field(default_factory=list)
    # Every view `describe` got: (seconds since start, bootstrap, view).
    observed: list[tuple[float, str, dict]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.started = time.monotonic()
        # 10.213.x.0/24 is private and unlikely to be in use; it only exists inside
        # these namespaces anyway.
        self.subnet = f"10.213.{os.getpid() % 200}"
        self.hub = f"{self.prefix}-hub"
        self.cluster_id = (
            base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        )
        for i in range(1, self.nodes_count + 1):
            self.nodes.append(
                Node(
                    node_id=i,
                    namespace=f"{self.prefix}-n{i}",
                    address=f"{self.subnet}.{i}",
                    data_dir=self.work_dir / f"node{i}",
                    log_path=self.work_dir / f"node{i}.log",
                )
            )

    # --- network ---------------------------------------------------------

    def namespaces(self) -> list[str]:
        return [self.hub] + [node.namespace for node in self.nodes]

    def create_network(self) -> None:
        """The hub with its bridge and one veth per node; every link up."""
        for name in namespaces_with_prefix(self.prefix):
            ip("netns", "del", name, check=False)
        for name in self.namespaces():
            ip("netns", "add", name)
        hub = ["-n", self.hub]
        ip(*hub, "link", "set", "lo", "up")
        ip(*hub, "link", "add", "br0", "type", "bridge")
        ip(*hub, "addr", "add", f"{self.subnet}.254/24", "dev", "br0")
        ip(*hub, "link", "set", "br0", "up")
        for node in self.nodes:
            port = self.hub_port(node.node_id)
            ip(*hub, "link", "add", port, "type", "veth", "peer", "name", "eth0",
               "netns", node.namespace)
            ip(*hub, "link", "set", port, "master", "br0")
            ip(*hub, "link", "set", port, "up")
            inside = ["-n", node.namespace]
            ip(*inside, "link", "set", "lo", "up")
            ip(*inside, "addr", "add", f"{node.address}/24", "dev", "eth0")
            ip(*inside, "link", "set", "eth0", "up")

    def hub_port(self, node_id: int) -> str:
        """The hub's end of node `node_id`'s veth."""
        return f"h{node_id}"

    def cut(self, node_id: int) -> None:
        self.mark(f"cut node {node_id}")
        ip("-n", self.hub, "link", "set", self.hub_port(node_id), "down")

    def reconnect(self, node_id: int) -> None:
        self.mark(f"reconnect node {node_id}")
        ip("-n", self.hub, "link", "set", self.hub_port(node_id), "up")

    def delete_network(self) -> list[str]:
        """Deletes every namespace of this run (their links go with them); returns
        the error messages of deletions that failed."""
        errors = []
        for name in self.namespaces():
            result = ip("netns", "del", name, check=False)
            if result.returncode != 0 and name in namespaces_with_prefix(self.prefix):
                errors.append(f"{name}: {result.stderr.strip()}")
        return errors

    # --- nodes -----------------------------------------------------------

    def voters(self) -> str:
        return ",".join(
            f"{node.node_id}@{node.address}:{CONTROLLER_PORT}" for node in self.nodes
        )

    def format_node(self, node: Node) -> None:
        """Gives the node's data directory the cluster's identity, as `runnel format
        --data-dir D --node-id N --cluster-id C` would: the same meta.properties. It
        is written here so this test needs no more of the CLI than the server and
        the admin commands."""
        node.data_dir.mkdir(parents=True)
        (node.data_dir / "meta.properties").write_text(
            f"version=1\nnode.id={node.node_id}\ncluster.id={self.cluster_id}\n"
        )

    def server_command(self, node: Node) -> list[str]:
        a = node.address
        overrides = {
            "process.roles": "broker,controller",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "controller.quorum.voters": self.voters(),
            "broker.session.timeout.ms": "3000",
            "broker.heartbeat.interval.ms": "500",
        }
        command = [
            "ip", "netns", "exec", node.namespace, self.runnel, "server",
            "--data-dir", str(node.data_dir),
            "--node-id", str(node.node_id),
            "--listeners", f"PLAINTEXT://{a}:{KAFKA_PORT},CONTROLLER://{a}:{CONTROLLER_PORT}",
            "--advertised-listeners", f"PLAINTEXT://{a}:{KAFKA_PORT}",
        ]
        for key, value in overrides.items():
            command += ["--override", f"{key}={value}"]
        return command

    def start_nodes(self) -> None:
        """Starts every node at once: each waits for a quorum before it serves."""
        for node in self.nodes:
            self.format_node(node)
        for node in self.nodes:
            with open(node.log_path, "wb") as log:
                # `ip netns exec` execs the command, so this is runnel's own pid.
                node.process = subprocess.Popen(
                    self.server_command(node),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    env={
                        **os.environ,
                        "RUST_LOG": os.environ.get("RUST_LOG", "info"),
                        "NO_COLOR": "1",
                    },
                )

    def stop_nodes(self) -> None:
        for node in self.nodes:
            if node.process is not None and node.process.poll() is None:
                node.process.send_signal(signal.SIGTERM)
        for node in self.nodes:
            node.stop()

    def dead_nodes(self) -> list[str]:
        return [
            f"node {node.node_id} exited with {node.process.returncode}"
            for node in self.nodes
            if node.process is not None and node.process.poll() is not None
        ]

    def logs(self, lines: int = 40) -> str:
        return "\n".join(
            f"--- node {node.node_id} ({node.address}) log tail ---\n{node.log_tail(lines)}"
            for node in self.nodes
        )

    def destroy(self) -> list[str]:
        """Stops every node, then deletes the network; returns what failed."""
        self.stop_nodes()
        return self.delete_network()

    # --- clients in the hub ----------------------------------------------

    def cli(self, bootstrap: str, *args: str, namespace: str | None = None) -> subprocess.CompletedProcess:
        """`runnel -b BOOTSTRAP -o json ARGS` in the hub (or `namespace`)."""
        command = [
            "ip", "netns", "exec", namespace or self.hub, self.runnel,
            "-b", bootstrap, "-o", "json", "--timeout-ms", "5000", *args,
        ]
        try:
            return subprocess.run(
                command, capture_output=True, text=True, timeout=CLI_TIMEOUT_S
            )
        except subprocess.TimeoutExpired as error:
            return subprocess.CompletedProcess(command, -1, "", f"timed out: {error}")

    def describe(self, bootstrap: str, topic: str | None = None,
                 namespace: str | None = None) -> dict:
        """One node's view: {"brokers": [ids], "controller": id, "leaders":
        {partition: leader}, "replicas": {partition: [ids]}} (leaders only with a
        topic), or {"error": text} when that node did not answer. Kept in
        `observed`."""
        view = self._describe(bootstrap, topic, namespace)
        self.observed.append((time.monotonic() - self.started, bootstrap, view))
        return view

    def timeline(self) -> str:
        """Each bootstrap's views, only where they changed."""
        last: dict[str, str] = {}
        lines = []
        for at, bootstrap, view in self.observed:
            shown = {k: v for k, v in view.items() if k != "replicas"}
            text = json.dumps(shown, sort_keys=True)
            if last.get(bootstrap) != text:
                last[bootstrap] = text
                lines.append(f"{at:7.2f}s {bootstrap}: {text}")
        return "\n".join(lines)

    def mark(self, event: str) -> None:
        """Notes an event (a cut, a reconnect) in the timeline."""
        self.observed.append((time.monotonic() - self.started, "event", {"event": event}))

    def _describe(self, bootstrap: str, topic: str | None, namespace: str | None) -> dict:
        result = self.cli(bootstrap, "cluster", "describe", namespace=namespace)
        if result.returncode != 0:
            return {"error": f"cluster describe: {result.stderr.strip()}"}
        cluster = json.loads(result.stdout)
        view = {
            "brokers": sorted(b["id"] for b in cluster["brokers"]),
            "controller": cluster["controller"],
        }
        if topic is None:
            return view
        result = self.cli(bootstrap, "topics", "describe", topic, namespace=namespace)
        if result.returncode != 0:
            return {**view, "error": f"topics describe: {result.stderr.strip()}"}
        (described,) = json.loads(result.stdout)
        view["leaders"] = {p["partition"]: p["leader"] for p in described["partitions"]}
        view["replicas"] = {p["partition"]: p["replicas"] for p in described["partitions"]}
        return view

    def client(self, request: dict, timeout_s: float = 40.0,
               namespace: str | None = None) -> dict:
        """Runs one confluent-kafka request (see `_client_main`) in the hub (or
        `namespace`)."""
        command = [
            "ip", "netns", "exec", namespace or self.hub, sys.executable,
            str(Path(__file__).resolve()), json.dumps(request),
        ]
        try:
            result = subprocess.run(
                command, capture_output=True, text=True, timeout=timeout_s
            )
        except subprocess.TimeoutExpired as error:
            return {"error": f"client timed out after {timeout_s}s: {error}"}
        if result.returncode != 0:
            return {"error": f"client exit {result.returncode}: {result.stderr[-3000:]}"}
        return json.loads(result.stdout)


# --- the client side, run in the hub as `python netns.py '<request>'` -------------


def _produce(request: dict) -> dict:
    """{"bootstrap", "topic", "records": {partition: [values]}} -> {"delivered":
    {partition: [offsets]}, "errors": [text]}."""
    from confluent_kafka import Producer

    config = {
        "bootstrap.servers": request["bootstrap"],
        "acks": "all",
        "message.timeout.ms": int(request.get("timeout_ms", 15000)),
    }
    if "retries" in request:
        config["retries"] = int(request["retries"])
    producer = Producer(config)
    delivered: dict[str, list[int]] = {}
    errors: list[str] = []

    def report(error, message):
        if error is not None:
            errors.append(f"partition {message.partition()}: {error}")
        else:
            delivered.setdefault(str(message.partition()), []).append(message.offset())

    for partition, values in request["records"].items():
        for value in values:
            producer.produce(request["topic"], value=value.encode(),
                             partition=int(partition), on_delivery=report)
    left = producer.flush(request.get("timeout_ms", 15000) / 1000 + 5)
    if left:
        errors.append(f"{left} records still undelivered")
    return {"delivered": delivered, "errors": errors}


def _consume(request: dict) -> dict:
    """{"bootstrap", "topic", "expect": {partition: count}} -> {"records":
    {partition: [values]}}: every partition read from its beginning until it has
    `count` records or `timeout_ms` passed."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    consumer = Consumer({
        "bootstrap.servers": request["bootstrap"],
        "group.id": f"netns-{os.getpid()}",
        "enable.auto.commit": False,
        "enable.partition.eof": False,
    })
    expect = {int(p): n for p, n in request["expect"].items()}
    consumer.assign([
        TopicPartition(request["topic"], p, OFFSET_BEGINNING) for p in expect
    ])
    records: dict[int, list[str]] = {p: [] for p in expect}
    errors: list[str] = []
    deadline = time.monotonic() + request.get("timeout_ms", 20000) / 1000
    while time.monotonic() < deadline and any(
        len(records[p]) < n for p, n in expect.items()
    ):
        message = consumer.poll(0.5)
        if message is None:
            continue
        if message.error() is not None:
            errors.append(str(message.error()))
            continue
        records[message.partition()].append(message.value().decode())
    consumer.close()
    return {"records": {str(p): v for p, v in records.items()}, "errors": errors[-10:]}


def _produce_error_code(request: dict) -> dict:
    """{"host", "port", "topic", "partition"} -> {"error_code": n}: one Produce v3
    request with null records, written by hand so that no client library retries
    or hides the broker's answer. A leader would refuse the null records some
    other way; a node that does not lead answers NOT_LEADER_OR_FOLLOWER (6)."""
    import socket
    import struct

    def string(text: str) -> bytes:
        data = text.encode()
        return struct.pack(">h", len(data)) + data

    body = (
        struct.pack(">hhi", 0, 3, 7) + string("netns-test")  # header v1
        + struct.pack(">h", -1)                              # transactional id: null
        + struct.pack(">hi", 1, 5000)                        # acks, timeout
        + struct.pack(">i", 1) + string(request["topic"])    # one topic
        + struct.pack(">i", 1) + struct.pack(">i", int(request["partition"]))
        + struct.pack(">i", -1)                              # records: null
    )
    with socket.create_connection((request["host"], int(request["port"])), timeout=10) as sock:
        sock.sendall(struct.pack(">i", len(body)) + body)
        size = struct.unpack(">i", _read_exact(sock, 4))[0]
        reply = _read_exact(sock, size)
    correlation_id, topics = struct.unpack(">ii", reply[:8])
    name_len = struct.unpack(">h", reply[8:10])[0]
    at = 10 + name_len
    partitions, index, error_code = struct.unpack(">iih", reply[at:at + 10])
    assert (correlation_id, topics, partitions) == (7, 1, 1), reply
    return {"partition": index, "error_code": error_code}


def _read_exact(sock, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("the broker closed the connection")
        data += chunk
    return data


def _client_main(argv: list[str]) -> int:
    request = json.loads(argv[1])
    actions = {"produce": _produce, "consume": _consume, "produce_error_code": _produce_error_code}
    print(json.dumps(actions[request["action"]](request)))
    return 0


if __name__ == "__main__":
    sys.exit(_client_main(sys.argv))
