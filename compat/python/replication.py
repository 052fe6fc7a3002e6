"""Helpers for the replication fault tests (test_replication.py).

Three parts, each usable alone (the log files on disk are batch_log.py's):

* **Views and waits.** `metadata_view` is one Metadata answer, reduced to plain data:
  brokers, controller, and per partition its leader, replicas and ISR. `wait_until`
  polls a probe until it holds, and fails with the last view it saw.
* **Numbered records.** `SequencedProducer` is an idempotent acks=all confluent-kafka
  producer in a thread, sending at a bounded rate. Record n goes to partition
  n % partitions with the per-partition sequence number s = n // partitions; its key is
  `b"P:S"`. Every acknowledgement is kept as an `Ack` (partition, offset, seq, wall-clock
  time). `read_stored` reads every partition from its beginning to its end offset, and
  `check_delivery` compares both: acknowledged, consumed, lost (acknowledged, not
  stored), duplicated (a seq stored twice), misplaced (stored elsewhere than its
  acknowledged offset), order kept (seqs increasing along the offsets).
* **Namespaces.** `ReplicatedNetnsCluster` is netns.NetnsCluster with extra broker
  settings; this file run as a script (`python replication.py '<json request>'`, see
  `_client_main`) is the client side in the hub namespace: metadata views, topic
  creation, the numbered producer (until stdin closes) and the reader.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from netns import NetnsCluster

PRODUCER_CONFIG = {
    "enable.idempotence": True,
    "acks": "all",
    "linger.ms": 5,
    # Long enough to ride out a failover or a restart of the whole cluster; a record
    # not acknowledged by then is a failure the tests report.
    "message.timeout.ms": 60_000,
    # A request to a node cut off by the network stalls rather than failing: give up
    # on it soon, so the idempotent producer can move on to the new leader.
    "request.timeout.ms": 5_000,
    "reconnect.backoff.max.ms": 500,
}
FLUSH_TIMEOUT_S = 60.0
READ_TIMEOUT_S = 60.0
ADMIN_TIMEOUT_S = 5.0
HUB_TIMEOUT_S = 30.0


# --- views and waits -------------------------------------------------------------


def metadata_view(bootstrap: str, topic: str, timeout_s: float = ADMIN_TIMEOUT_S) -> dict:
    """One Metadata answer as plain data:

        {"brokers": [ids], "controller": id,
         "partitions": {p: {"leader": id, "replicas": [ids], "isr": [ids], "error": text|None}}}

    with "error" instead of "partitions" when the topic is missing or failed.
    """
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap})
    metadata = admin.list_topics(topic, timeout=timeout_s)
    view: dict = {"brokers": sorted(metadata.brokers), "controller": metadata.controller_id}
    found = metadata.topics.get(topic)
    if found is None or found.error is not None:
        view["error"] = f"{topic}: {found.error if found is not None else 'not in metadata'}"
        return view
    view["partitions"] = {
        p: {
            "leader": info.leader,
            "replicas": list(info.replicas),
            "isr": sorted(info.isrs),
            "error": str(info.error) if info.error is not None else None,
        }
        for p, info in sorted(found.partitions.items())
    }
    return view


def partitions_of(view: dict) -> dict[int, dict]:
    """The partitions of a view, keyed by int (a view that went through JSON has str keys)."""
    return {int(p): state for p, state in view.get("partitions", {}).items()}


def fully_replicated(view: dict, partitions: int, nodes: list[int]) -> bool:
    """Every partition has a leader, all of `nodes` as replicas, and all of them in sync."""
    states = partitions_of(view)
    return len(states) == partitions and all(
        s["error"] is None
        and sorted(s["replicas"]) == sorted(nodes)
        and sorted(s["isr"]) == sorted(nodes)
        and s["leader"] in nodes
        for s in states.values()
    )


def wait_until(what: str, timeout_s: float, probe, context=lambda: "") -> tuple[float, object]:
    """Calls `probe()` (returning (done, observed)) until done; returns (seconds, observed).

    An exception from the probe counts as not done (it is what was observed). On timeout
    fails with the last observation and `context()` (node logs).
    """
    started = time.monotonic()
    observed: object = None
    while True:
        try:
            done, observed = probe()
        except Exception as error:  # noqa: BLE001 - retried until the deadline
            done, observed = False, error
        took = time.monotonic() - started
        if done:
            return took, observed
        if took > timeout_s:
            raise AssertionError(
                f"{what}: not within {timeout_s}s; last seen {observed!r}\n{context()}"
            )
        time.sleep(0.25)


# --- numbered records ------------------------------------------------------------


@dataclass(frozen=True)
class Ack:
    """One acknowledged record; `at` is the wall-clock time (time.time()) of the ack,
    None when the producer did not report it (the Java driver)."""

    partition: int
    # None when librdkafka reports a delivery without its offset.
    offset: int | None
    seq: int
    at: float | None = None


@dataclass(frozen=True)
class Stored:
    """One record as a consumer read it back; `seq` is None for a key that is not ours."""

    partition: int
    offset: int
    seq: int | None
    key: bytes | None


@dataclass
class ProduceSummary:
    sent: int
    acks: list[Ack]
    failed: list[str]
    unflushed: int
    errors: list[str]


def record_key(partition: int, seq: int) -> bytes:
    return f"{partition}:{seq}".encode()


def record_value(name: str, partition: int, seq: int) -> bytes:
    # ~100 bytes, so a few thousand records make real batches.
    return f"{name}-p{partition}-{seq:09d}-".encode().ljust(100, b".")


def parse_key(key: bytes | None) -> tuple[int, int] | None:
    try:
        partition, seq = key.decode().split(":")
        return int(partition), int(seq)
    except (AttributeError, UnicodeDecodeError, ValueError):
        return None


class SequencedProducer:
    """Numbered records to `topic`, about `rate_per_s` a second, from a thread.

    `start()` begins; `stop()` stops sending, flushes (bounded) and returns the summary.
    With `count`, sending ends by itself after that many records (`stop()` then waits
    for them). `on_ack` (optional) is called with each Ack from the producer's thread.
    """

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        partitions: int,
        rate_per_s: float,
        *,
        name: str = "python",
        count: int | None = None,
        config: dict | None = None,
        on_ack=None,
    ) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.partitions = partitions
        self.rate_per_s = rate_per_s
        self.name = name
        self.count = count
        self.config = {**PRODUCER_CONFIG, **(config or {})}
        self.on_ack = on_ack
        self.acks: list[Ack] = []
        self.failed: list[str] = []
        self.errors: list[str] = []
        self.sent = 0
        self.unflushed = 0
        self._stop = threading.Event()
        self._flush_timeout_s = FLUSH_TIMEOUT_S
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name=f"producer-{name}", daemon=True)

    def start(self) -> "SequencedProducer":
        self._thread.start()
        return self

    def acks_since(self, at: float, partitions: set[int] | None = None) -> int:
        """How many acks arrived after wall-clock time `at` (for `partitions`, or all)."""
        with self._lock:
            return sum(
                1 for a in self.acks if a.at >= at and (partitions is None or a.partition in partitions)
            )

    def stop(self, flush_timeout_s: float = FLUSH_TIMEOUT_S, *, abort: bool = False) -> ProduceSummary:
        """Stop sending (with `count`, only once it is reached, unless `abort`), flush at
        most `flush_timeout_s`, and return the summary."""
        self._flush_timeout_s = flush_timeout_s
        if self.count is None or abort:
            self._stop.set()
        self._thread.join(timeout=flush_timeout_s + 30)
        assert not self._thread.is_alive(), f"producer {self.name} did not finish"
        with self._lock:
            return ProduceSummary(
                self.sent, list(self.acks), list(self.failed), self.unflushed, list(self.errors)
            )

    def _on_delivery(self, error, message) -> None:
        parsed = parse_key(message.key())
        if error is not None:
            with self._lock:
                self.failed.append(f"{parsed}: {error}")
            return
        ack = Ack(message.partition(), message.offset(), parsed[1], time.time())
        with self._lock:
            self.acks.append(ack)
        if self.on_ack is not None:
            self.on_ack(ack)

    def _on_error(self, error) -> None:
        # Transport errors are expected while nodes die; fatal ones are not.
        if error.fatal():
            with self._lock:
                self.errors.append(f"fatal: {error}")

    def _run(self) -> None:
        from confluent_kafka import Producer

        try:
            producer = Producer(
                {"bootstrap.servers": self.bootstrap, "error_cb": self._on_error, **self.config}
            )
            started = time.monotonic()
            while not self._stop.is_set() and (self.count is None or self.sent < self.count):
                if self.sent >= (time.monotonic() - started) * self.rate_per_s:
                    producer.poll(0.005)
                    continue
                partition, seq = self.sent % self.partitions, self.sent // self.partitions
                try:
                    producer.produce(
                        self.topic,
                        key=record_key(partition, seq),
                        value=record_value(self.name, partition, seq),
                        partition=partition,
                        on_delivery=self._on_delivery,
                    )
                except BufferError:
                    producer.poll(0.05)
                    continue
                self.sent += 1
                producer.poll(0)
            self.unflushed = producer.flush(self._flush_timeout_s)
        except Exception as error:  # noqa: BLE001 - reported by stop()'s summary
            with self._lock:
                self.errors.append(f"producer thread: {type(error).__name__}: {error}")


def read_stored(bootstrap: str, topic: str, partitions: int, timeout_s: float = READ_TIMEOUT_S) -> list[Stored]:
    """Every record of every partition, from the log start to the end offset (high
    watermark) as the leader reports it when the read begins."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "replication-reader",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "enable.partition.eof": False,
            "auto.offset.reset": "earliest",
        }
    )
    deadline = time.monotonic() + timeout_s
    try:
        ends: dict[int, int] = {}
        for p in range(partitions):
            while p not in ends:
                try:
                    _, ends[p] = consumer.get_watermark_offsets(
                        TopicPartition(topic, p), timeout=5, cached=False
                    )
                except KafkaException as error:
                    assert time.monotonic() < deadline, f"{topic}[{p}]: no end offset: {error}"
                    time.sleep(0.5)
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
        positions = {p: -1 for p in range(partitions)}
        stored: list[Stored] = []
        errors: list[str] = []
        while any(positions[p] + 1 < ends[p] for p in range(partitions)):
            assert time.monotonic() < deadline, (
                f"{topic}: read up to {positions}, end offsets {ends}; errors {errors[-5:]}"
            )
            for message in consumer.consume(num_messages=1000, timeout=1.0):
                if message.error() is not None:
                    errors.append(str(message.error()))
                    continue
                parsed = parse_key(message.key())
                positions[message.partition()] = message.offset()
                stored.append(
                    Stored(
                        message.partition(),
                        message.offset(),
                        parsed[1] if parsed and parsed[0] == message.partition() else None,
                        message.key(),
                    )
                )
        return stored
    finally:
        consumer.close()


@dataclass
class PartitionTally:
    partition: int
    acknowledged: int = 0
    consumed: int = 0
    lost: list[int] = field(default_factory=list)
    duplicated: list[int] = field(default_factory=list)
    misplaced: list[tuple[int, int, list[int]]] = field(default_factory=list)
    out_of_order: list[tuple[int, int]] = field(default_factory=list)
    unacknowledged: list[int] = field(default_factory=list)
    foreign: list[int] = field(default_factory=list)

    @property
    def order_kept(self) -> bool:
        return not self.out_of_order


@dataclass
class DeliveryReport:
    scenario: str
    tallies: dict[int, PartitionTally]
    summary: ProduceSummary

    def total(self, name: str) -> int:
        return sum(
            value if isinstance(value := getattr(t, name), int) else len(value)
            for t in self.tallies.values()
        )

    def line(self) -> str:
        kept = sum(t.order_kept for t in self.tallies.values())
        return (
            f"acknowledged={self.total('acknowledged')} consumed={self.total('consumed')} "
            f"lost={self.total('lost')} duplicated={self.total('duplicated')} "
            f"({self.scenario}: sent {self.summary.sent}, failed {len(self.summary.failed)}, "
            f"unflushed {self.summary.unflushed}, misplaced {self.total('misplaced')}, "
            f"order kept in {kept}/{len(self.tallies)} partitions)"
        )

    def problems(self, *, every_record_acknowledged: bool = True) -> list[str]:
        """What is wrong; with `every_record_acknowledged` also any record the producer
        sent but did not get acknowledged (the scenario leaves it time enough)."""
        s = self.summary
        problems = [f"producer error: {e}" for e in s.errors]
        if every_record_acknowledged:
            if s.failed:
                problems.append(f"{len(s.failed)} deliveries failed, first: {s.failed[:5]}")
            if s.unflushed:
                problems.append(f"{s.unflushed} records never delivered")
            if len(s.acks) != s.sent:
                problems.append(f"{len(s.acks)} of {s.sent} sent records acknowledged")
        for p, t in self.tallies.items():
            if t.lost:
                problems.append(f"partition {p}: {len(t.lost)} acknowledged seqs lost, first {t.lost[:10]}")
            if t.duplicated:
                problems.append(f"partition {p}: {len(t.duplicated)} seqs stored twice, first {t.duplicated[:10]}")
            if t.misplaced:
                problems.append(
                    f"partition {p}: {len(t.misplaced)} seqs stored elsewhere than acknowledged "
                    f"(seq, acked offset, stored offsets): {t.misplaced[:5]}"
                )
            if t.out_of_order:
                problems.append(
                    f"partition {p}: seqs out of order at (offset, seq) {t.out_of_order[:5]}"
                )
            if t.foreign:
                problems.append(f"partition {p}: records not of this producer at offsets {t.foreign[:5]}")
            if every_record_acknowledged and t.unacknowledged and not s.failed and not s.unflushed:
                problems.append(
                    f"partition {p}: {len(t.unacknowledged)} stored seqs never acknowledged, "
                    f"first {t.unacknowledged[:10]}"
                )
        return problems


def check_delivery(scenario: str, summary: ProduceSummary, stored: list[Stored], partitions: int) -> DeliveryReport:
    """Tally, per partition, what was acknowledged against what is stored."""
    tallies = {p: PartitionTally(p) for p in range(partitions)}
    acked: dict[tuple[int, int], int] = {}
    for ack in summary.acks:
        acked[(ack.partition, ack.seq)] = ack.offset
        tallies[ack.partition].acknowledged += 1
    by_partition: dict[int, list[Stored]] = {p: [] for p in range(partitions)}
    stored_at: dict[tuple[int, int], list[int]] = {}
    for record in stored:
        by_partition.setdefault(record.partition, []).append(record)
        tallies.setdefault(record.partition, PartitionTally(record.partition))
    for p, records in by_partition.items():
        tally = tallies[p]
        records.sort(key=lambda r: r.offset)
        tally.consumed = len(records)
        where: dict[int, list[int]] = {}
        last_seq = -1
        for record in records:
            if record.seq is None:
                tally.foreign.append(record.offset)
                continue
            where.setdefault(record.seq, []).append(record.offset)
            if record.seq <= last_seq:
                tally.out_of_order.append((record.offset, record.seq))
            last_seq = max(last_seq, record.seq)
        tally.duplicated = sorted(seq for seq, offsets in where.items() if len(offsets) > 1)
        tally.unacknowledged = sorted(seq for seq in where if (p, seq) not in acked)
        for seq, offsets in where.items():
            stored_at[(p, seq)] = offsets
    for (p, seq), offset in sorted(acked.items()):
        offsets = stored_at.get((p, seq))
        if not offsets:
            tallies[p].lost.append(seq)
        elif offset is not None and offset not in offsets:
            # librdkafka reports some deliveries without an offset (a record
            # it infers was persisted from the acks of later ones); those are
            # checked by being stored exactly once, like any other.
            tallies[p].misplaced.append((seq, offset, offsets))
    return DeliveryReport(scenario, tallies, summary)


def assert_delivered(report: DeliveryReport, *, every_record_acknowledged: bool = True) -> None:
    """Print the report's line; fail on any lost, duplicated, misplaced or reordered record."""
    print(report.line())
    problems = report.problems(every_record_acknowledged=every_record_acknowledged)
    assert not problems, f"{report.scenario}: {len(problems)} problem(s):\n" + "\n".join(problems)
    assert report.total("acknowledged") > 0, f"{report.scenario}: nothing was acknowledged"


# --- test scaffolding shared by the replication test modules --------------------


@contextmanager
def cluster_starter(base_overrides: dict, size: int = 3):
    """Yields `start(**overrides)`, which starts a `size`-node cluster with
    `base_overrides` plus its own; every cluster started is closed at the end,
    with any node added to it."""
    from cluster import start_cluster

    started = []

    def start(**overrides):
        begun = time.monotonic()
        cluster = start_cluster(size, {**base_overrides, **overrides})
        started.append(cluster)
        print(f"\ncluster up in {time.monotonic() - begun:.1f}s: {cluster.bootstrap()}")
        return cluster

    try:
        yield start
    finally:
        for cluster in started:
            cluster.close()


@contextmanager
def explained(cluster):
    """Re-raise any failure with the tail of every node's log appended."""
    try:
        yield
    except Exception as error:
        raise AssertionError(f"{type(error).__name__}: {error}\n{cluster.log_tails()}") from error


@contextmanager
def producing(producer: SequencedProducer):
    """Start `producer`; if the block fails, stop it without waiting long for a flush.
    On success the block itself calls `producer.stop()` for the summary."""
    producer.start()
    try:
        yield producer
    except BaseException:
        producer.stop(flush_timeout_s=5.0, abort=True)
        raise


def view(cluster, topic: str, via: list[int]) -> dict:
    """What the nodes `via` say of `topic` (see `metadata_view`)."""
    return metadata_view(cluster.bootstrap(*via), topic)


def running(cluster) -> list[int]:
    """The ids of the cluster's nodes whose process is up."""
    return [n for n, node in cluster.nodes.items() if node.running()]


# --- namespaces --------------------------------------------------------------------


@dataclass
class ReplicatedNetnsCluster(NetnsCluster):
    """netns.NetnsCluster whose nodes also get `overrides` (replacing a base setting of
    the same name)."""

    overrides: dict = field(default_factory=dict)

    def server_command(self, node) -> list[str]:
        base = super().server_command(node)
        command: list[str] = []
        i = 0
        while i < len(base):
            if base[i] == "--override" and base[i + 1].split("=", 1)[0] in self.overrides:
                i += 2
                continue
            command.append(base[i])
            i += 1
        for key, value in self.overrides.items():
            command += ["--override", f"{key}={value}"]
        return command

    def hub_command(self, request: dict, namespace: str | None = None) -> list[str]:
        return [
            "ip", "netns", "exec", namespace or self.hub, sys.executable,
            str(Path(__file__).resolve()), json.dumps(request),
        ]

    def run_in_hub(self, request: dict, timeout_s: float = HUB_TIMEOUT_S) -> dict:
        """One request (see `_client_main`) run to its end in the hub; its JSON answer,
        or {"error": text}."""
        command = self.hub_command(request)
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired as error:
            return {"error": f"timed out after {timeout_s}s: {error}"}
        if result.returncode != 0:
            return {"error": f"exit {result.returncode}: {result.stderr[-3000:]}"}
        return json.loads(result.stdout)

    def view(self, node_ids: list[int], topic: str) -> dict:
        """Metadata for `topic` as the given nodes (bootstrapped together) answer it."""
        bootstrap = ",".join(n.bootstrap for n in self.nodes if n.node_id in node_ids)
        return self.run_in_hub({"action": "metadata", "bootstrap": bootstrap, "topic": topic})

    def views(self, node_ids: list[int], topic: str) -> dict[int, dict]:
        """Each given node's own answer (one hub process asks them one after another)."""
        bootstraps = {n.node_id: n.bootstrap for n in self.nodes if n.node_id in node_ids}
        answer = self.run_in_hub({"action": "views", "bootstraps": bootstraps, "topic": topic})
        if "error" in answer:
            return {i: answer for i in node_ids}
        return {int(i): v for i, v in answer.items()}


def read_acks_file(path: Path) -> list[Ack]:
    """Acks written by the hub producer: `partition offset seq at` per complete line."""
    acks = []
    if not path.exists():
        return acks
    for line in path.read_text().splitlines():
        fields = line.split("\t")
        if len(fields) == 4:
            offset = None if fields[1] == "None" else int(fields[1])
            acks.append(Ack(int(fields[0]), offset, int(fields[2]), float(fields[3])))
    return acks


# --- the client side, run in the hub as `python replication.py '<request>'` ----------


def _hub_metadata(request: dict) -> dict:
    try:
        return metadata_view(request["bootstrap"], request["topic"])
    except Exception as error:  # noqa: BLE001 - the caller retries
        return {"error": f"{type(error).__name__}: {error}"}


def _hub_views(request: dict) -> dict:
    return {
        node: _hub_metadata({"bootstrap": bootstrap, "topic": request["topic"]})
        for node, bootstrap in request["bootstraps"].items()
    }


def _hub_create(request: dict) -> dict:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": request["bootstrap"]})
    topic = NewTopic(
        request["topic"],
        num_partitions=int(request["partitions"]),
        replication_factor=int(request["replication_factor"]),
        config=request.get("config", {}),
    )
    try:
        admin.create_topics([topic], operation_timeout=30, request_timeout=30)[request["topic"]].result(
            timeout=40
        )
    except Exception as error:  # noqa: BLE001 - reported to the test
        return {"error": f"create {request['topic']}: {error}"}
    return {"created": request["topic"]}


def _hub_produce(request: dict) -> dict:
    """Numbered records until stdin closes; each ack appended to `acks_path` as
    `partition offset seq at` (tab-separated, flushed per line); then the summary."""
    out = open(request["acks_path"], "a", buffering=1)

    def write(ack: Ack) -> None:
        out.write(f"{ack.partition}\t{ack.offset}\t{ack.seq}\t{ack.at}\n")

    producer = SequencedProducer(
        request["bootstrap"],
        request["topic"],
        int(request["partitions"]),
        float(request["rate_per_s"]),
        name=request.get("name", "hub"),
        on_ack=write,
    ).start()
    sys.stdin.read()
    summary = producer.stop()
    out.close()
    return {
        "sent": summary.sent,
        "acked": len(summary.acks),
        "failed": summary.failed[:20],
        "failed_count": len(summary.failed),
        "unflushed": summary.unflushed,
        "errors": summary.errors,
    }


def _hub_read(request: dict) -> dict:
    stored = read_stored(request["bootstrap"], request["topic"], int(request["partitions"]))
    return {
        "stored": [
            [s.partition, s.offset, s.seq, s.key.decode(errors="replace") if s.key else None]
            for s in stored
        ]
    }


def _client_main(argv: list[str]) -> int:
    request = json.loads(argv[1])
    actions = {
        "metadata": _hub_metadata,
        "views": _hub_views,
        "create": _hub_create,
        "produce": _hub_produce,
        "read": _hub_read,
    }
    print(json.dumps(actions[request["action"]](request)))
    return 0


if __name__ == "__main__":
    # Run in a namespace's hub: the modules next to this file are importable.
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    sys.exit(_client_main(sys.argv))
