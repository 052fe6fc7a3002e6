"""Partition reassignment (KIP-455), leader elections (KIP-183/460) and automatic
leader rebalancing, through real clients against a real cluster.

Each test starts its own 3-node cluster (cluster.py; each node broker and controller)
and creates its topics with confluent-kafka's AdminClient:

* a 4th, broker-only node joins a running cluster; the Java AdminClient (kafka-clients
  3.9.1) moves two partitions onto it (one move drops the leader, one a follower) while
  an idempotent acks=all producer sends numbered records; the moves finish, the replica
  sets and ISRs are the targets, the dropped replicas' directories go, and every
  acknowledged record is stored exactly once, in order, on every replica alike;
* the errors of AlterPartitionReassignments (unknown broker, a broker twice, unknown
  topic or partition, cancelling what is not moving) and a real cancel of a move that
  cannot finish (its new replica is down);
* ElectLeaders (confluent-kafka, then the Java client) moves leadership back to the
  preferred replica after a restart, and answers ELECTION_NOT_NEEDED once it is there;
  with `auto.leader.rebalance.enable=false` nothing moves it back by itself;
* with `auto.leader.rebalance.enable=true` the controller does it by itself within a
  few `leader.imbalance.check.interval.seconds`.

On any failure the message ends with the tail of every node's log.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from confluent_kafka import ElectionType, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from batch_log import compare_replicas, missing_offsets, read_node_logs
from broker import free_port
from cluster import Cluster, Node, _format, runnel_bin
from replication import (
    cluster_starter,
    explained,
    producing,
    running,
    view,
    Ack,
    SequencedProducer,
    assert_delivered,
    check_delivery,
    partitions_of,
    read_stored,
    wait_until,
)

NODES = [1, 2, 3]
NEW_NODE = 4
PARTITIONS = 3
REPLICATION_FACTOR = 3
MIN_INSYNC_REPLICAS = 2
RATE_PER_S = 300
# As test_replication.OVERRIDES, without the consumer-group settings.
OVERRIDES = {
    "broker.session.timeout.ms": 4000,
    "broker.heartbeat.interval.ms": 500,
    "replica.lag.time.max.ms": 4000,
    "auto.create.topics.enable": "false",
}
# The smallest interval broker_defs.rs allows (at_least(1)).
IMBALANCE_CHECK_INTERVAL_S = 1
FAILOVER_TIMEOUT_S = 20.0
REJOIN_TIMEOUT_S = 30.0
REASSIGN_TIMEOUT_S = 45.0
# How many acknowledgements show that acks=all writes go on.
ACKS_WANTED = 50
ACKS_BEFORE_MOVE = 1000
JAVA_DIR = Path(__file__).resolve().parent.parent / "java"
JAVAC_TIMEOUT_S = 120
JAVA_TIMEOUT_S = 90

pytestmark = pytest.mark.timeout(150)


# --- fixtures ---------------------------------------------------------------------


@pytest.fixture(autouse=True)
def timed(request):
    started = time.monotonic()
    yield
    print(f"\n{request.node.name}: {time.monotonic() - started:.1f}s")


@pytest.fixture
def clusters():
    """Starts 3-node clusters (OVERRIDES plus the test's own); all closed at the end."""
    with cluster_starter(OVERRIDES) as start:
        yield start


@pytest.fixture(scope="module")
def java_classes():
    """ReassignmentDriver compiled into a temp dir, removed at the end of the module."""
    lib = JAVA_DIR / "lib"
    assert (lib / "kafka-clients.jar").exists(), (
        "compat/java/lib is missing: run `bash scripts/test-all.sh --install-only`"
    )
    out = Path(tempfile.mkdtemp(prefix="runnel-reassignment-java-"))
    try:
        result = subprocess.run(
            ["javac", "-Xlint:all", "-Werror", "-d", str(out), "-cp", f"{lib}/*",
             str(JAVA_DIR / "src" / "ReassignmentDriver.java")],
            capture_output=True, text=True, timeout=JAVAC_TIMEOUT_S,
        )
        assert result.returncode == 0, f"javac ReassignmentDriver.java failed:\n{result.stderr}"
        yield out
    finally:
        shutil.rmtree(out, ignore_errors=True)


class JavaAdmin:
    """The Java AdminClient through ReassignmentDriver (one JVM per call)."""

    def __init__(self, classes: Path) -> None:
        self.classpath = os.pathsep.join([str(classes), str(JAVA_DIR / "lib" / "*")])

    def run(self, *args: str, ok_exits: tuple[int, ...] = (0,)) -> list[str]:
        command = ["java", "-Xmx256m", "-XX:TieredStopAtLevel=1", "-cp", self.classpath,
                   "ReassignmentDriver", *args]
        result = subprocess.run(command, capture_output=True, text=True, timeout=JAVA_TIMEOUT_S)
        assert result.returncode in ok_exits, (
            f"ReassignmentDriver {' '.join(args)} exited {result.returncode}:\n"
            f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )
        return result.stdout.splitlines()

    def reassign(self, bootstrap: str, targets: dict[tuple[str, int], list[int] | None]) -> dict:
        """One alterPartitionReassignments call; (topic, partition) -> "OK" or
        "ExceptionClass message". A target of None cancels."""
        return self._answers(self.run("reassign", bootstrap, *reassign_specs(targets)), targets)

    def reassign_and_await(self, bootstrap: str, targets: dict, timeout_s: float) -> tuple[dict, float, list[dict]]:
        """`reassign`, then (in the same client, at once) the driver's await-none: (answers, seconds
        until the listing was empty, every distinct non-empty listing seen)."""
        lines = self.run(
            "reassign", bootstrap, "--await", str(int(timeout_s * 1000)), *reassign_specs(targets),
            ok_exits=(0, 1),
        )
        return (self._answers(lines, targets), *awaited(lines, timeout_s))

    @staticmethod
    def _answers(lines: list[str], targets: dict) -> dict:
        answers = {}
        for line in lines:
            if line.startswith("reassign "):
                _, topic, p, outcome = line.split(" ", 3)
                answers[(topic, int(p))] = outcome
        assert set(answers) == set(targets), f"answers {answers} for {targets}"
        return answers

    def ongoing(self, bootstrap: str) -> dict:
        """listPartitionReassignments: (topic, partition) -> (replicas, adding, removing)."""
        lines = self.run("list", bootstrap)
        found = parse_ongoing(lines)
        assert lines[-1] == f"listed {len(found)}", lines
        return found

    def describe(self, bootstrap: str, topic: str) -> dict:
        """describeTopics: partition -> {"leader", "replicas", "isr"} (lists in the order given)."""
        described = {}
        for line in self.run("describe", bootstrap, topic):
            if line.startswith("partition "):
                _, p, leader, replicas, isr = line.split()
                described[int(p)] = {"leader": int(leader), "replicas": brokers(replicas), "isr": brokers(isr)}
        return described

    def elect(self, bootstrap: str, election: str, topic: str, partitions: list[int]) -> dict:
        answers = {}
        for line in self.run("elect", bootstrap, election, topic, *map(str, partitions)):
            if line.startswith("elect "):
                _, _, p, outcome = line.split(" ", 3)
                answers[int(p)] = outcome
        return answers


def reassign_specs(targets: dict[tuple[str, int], list[int] | None]) -> list[str]:
    return [
        f"{topic}:{p}=" + ("cancel" if replicas is None else ",".join(map(str, replicas)))
        for (topic, p), replicas in targets.items()
    ]


def awaited(lines: list[str], timeout_s: float) -> tuple[float, list[dict]]:
    """The driver's await-none output: (seconds until the listing was empty, every
    distinct non-empty listing seen on the way)."""
    assert lines and lines[-1].startswith("none "), (
        f"reassignments still listed after {timeout_s}s:\n" + "\n".join(lines[-20:])
    )
    listings: list[dict] = []
    for line in lines:
        if line.startswith("poll "):
            listings.append({})
        elif line.startswith("ongoing "):
            listings[-1].update(parse_ongoing([line]))
    return int(lines[-1].split()[1]) / 1000, [listing for listing in listings if listing]


def brokers(text: str) -> list[int]:
    return [] if text == "-" else [int(b) for b in text.split(",")]


def parse_ongoing(lines: list[str]) -> dict:
    found = {}
    for line in lines:
        if line.startswith("ongoing "):
            _, topic, p, replicas, adding, removing = line.split()
            found[(topic, int(p))] = (brokers(replicas), brokers(adding), brokers(removing))
    return found


@pytest.fixture
def java_admin(java_classes) -> JavaAdmin:
    return JavaAdmin(java_classes)


# --- helpers ----------------------------------------------------------------------


def describe_partitions(seen: dict) -> str:
    return "; ".join(
        f"p{p} leader {s['leader']} replicas {s['replicas']} isr {s['isr']}"
        for p, s in partitions_of(seen).items()
    )


def wait_views(cluster: Cluster, topic: str, what: str, holds, via: list[int] | None = None,
               timeout_s: float = REJOIN_TIMEOUT_S) -> tuple[float, dict]:
    """Wait until every node of `via` (default: the running ones), asked alone, answers
    a view of `topic` for which `holds(partition states)` is true; returns (seconds,
    the views)."""

    def probe():
        seen = {n: view(cluster, topic, [n]) for n in (via or running(cluster))}
        return all(holds(partitions_of(v)) for v in seen.values()), seen

    return wait_until(what, timeout_s, probe, cluster.log_tails)


def in_sync(states: dict, partitions: int = PARTITIONS) -> bool:
    """Every partition led, without error, every replica in the ISR."""
    return len(states) == partitions and all(
        s["error"] is None and s["leader"] in s["replicas"] and sorted(s["isr"]) == sorted(s["replicas"])
        for s in states.values()
    )


def led_by_preferred(states: dict, partitions: int = PARTITIONS) -> bool:
    return in_sync(states, partitions) and all(s["leader"] == s["replicas"][0] for s in states.values())


def create_topic(cluster: Cluster, topic: str, *, partitions: int = PARTITIONS,
                 assignment: list[list[int]] | None = None) -> dict:
    """An RF=3 topic (or one of the given replica assignment) with min.insync.replicas=2,
    checked back; waits until every node reports every partition in sync."""
    admin = cluster.admin()
    config = {"min.insync.replicas": str(MIN_INSYNC_REPLICAS)}
    if assignment is None:
        new = NewTopic(topic, num_partitions=partitions, replication_factor=REPLICATION_FACTOR, config=config)
    else:
        new = NewTopic(topic, num_partitions=len(assignment), replica_assignment=assignment, config=config)
    admin.create_topics([new], operation_timeout=30, request_timeout=30)[topic].result(timeout=40)
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
    configs = admin.describe_configs([resource], request_timeout=10)[resource].result(timeout=15)
    assert configs["min.insync.replicas"].value == str(MIN_INSYNC_REPLICAS), configs["min.insync.replicas"]
    count = len(assignment) if assignment is not None else partitions
    took, seen = wait_views(cluster, topic, f"{topic}: every partition in sync", lambda s: in_sync(s, count))
    first = next(iter(seen.values()))
    print(f"{topic}: in sync {took:.1f}s after creation; {describe_partitions(first)}")
    return partitions_of(first)


def add_broker(cluster: Cluster, node_id: int) -> Node:
    """Format and start a broker-only node (`process.roles=broker`) joining `cluster`:
    the cluster's id and quorum voters, its own client port, no CONTROLLER listener.
    It is added to `cluster.nodes`, so `cluster.close()` stops it and removes its dir."""
    runnel = runnel_bin()
    first = cluster.node(NODES[0]).command
    voters = next(
        arg.split("=", 1)[1] for arg in first if arg.startswith("controller.quorum.voters=")
    )
    overrides = {}
    for flag, arg in zip(first, first[1:]):
        key, _, value = arg.partition("=")
        if flag == "--override" and key not in ("process.roles", "controller.quorum.voters"):
            overrides[key] = value
    taken = {p for n in cluster.nodes.values() for p in (n.port, n.controller_port)}
    port = free_port()
    while port in taken:
        port = free_port()
    data_dir = cluster.root / f"node-{node_id}"
    _format(runnel, data_dir, node_id, cluster.cluster_id)
    command = [
        runnel, "server",
        "--data-dir", str(data_dir),
        "--node-id", str(node_id),
        "--listeners", f"PLAINTEXT://127.0.0.1:{port}",
        "--advertised-listeners", f"PLAINTEXT://127.0.0.1:{port}",
    ]
    settings = {
        **overrides,
        "process.roles": "broker",
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "controller.quorum.voters": voters,
    }
    for key, value in settings.items():
        command += ["--override", f"{key}={value}"]
    # A broker-only node has no controller port; Node keeps one for the voters' sake.
    node = Node(node_id, port, 0, data_dir, cluster.root / f"node-{node_id}.log", command)
    cluster.nodes[node_id] = node
    cluster.start(node_id)
    return node


def partition_dirs(node: Node, topic: str, partition: int) -> list[str]:
    """The node's directories of one partition: its log, and any copy being deleted
    (`<topic>-<partition>.<unique>-delete`)."""
    name = f"{topic}-{partition}"
    if not node.data_dir.is_dir():
        return []
    return sorted(
        d.name for d in node.data_dir.iterdir() if d.is_dir() and (d.name == name or d.name.startswith(name + "."))
    )


def acks_after(producer: SequencedProducer, since: float, what: str, context) -> float:
    took, _ = wait_until(
        what, FAILOVER_TIMEOUT_S,
        lambda: ((n := producer.acks_since(since)) >= ACKS_WANTED, f"{n} acks"),
        context,
    )
    return took


def check_listing(listing: dict, moves: dict[tuple[str, int], tuple[list[int], list[int]]]) -> None:
    """An ongoing reassignment, as listed, is a move the test started, with KIP-455's
    replicas (target, then the removing ones), adding and removing replicas."""
    for key, (replicas, adding, removing) in listing.items():
        assert key in moves, f"listed a reassignment nobody started: {key} {listing[key]}"
        current, target = moves[key]
        want_removing = [b for b in current if b not in target]
        want_adding = [b for b in target if b not in current]
        assert (replicas, sorted(adding), sorted(removing)) == (
            target + want_removing, sorted(want_adding), sorted(want_removing)
        ), f"{key}: listed replicas {replicas} adding {adding} removing {removing} for {current} -> {target}"


# --- reassignment onto a new node -------------------------------------------------


def test_reassignment_moves_a_partition_onto_a_new_node_while_producing(clusters, java_admin):
    """A broker-only node 4 joins; partition 0 moves onto it, dropping its leader, and
    partition 1, dropping a follower, while an acks=all producer keeps sending. The
    moves finish (listPartitionReassignments empties); every node reports the target
    replicas, all in the ISR, partition 0 led by someone else than the dropped leader
    and partition 1 still by its leader; writes go on; the dropped replicas' directories
    are deleted; every acknowledged record is stored once, in order, and node 4's copies
    hold the same batches as the other replicas."""
    cluster = clusters()
    topic = "reassign-onto-new-node"
    with explained(cluster):
        before = create_topic(cluster, topic)
        producer = SequencedProducer(cluster.bootstrap(), topic, PARTITIONS, RATE_PER_S)
        with producing(producer):
            # Some data first, so that the new replica has something to catch up on.
            wait_until(
                f"{ACKS_BEFORE_MOVE} acknowledgements", 30.0,
                lambda: ((n := producer.acks_since(0.0)) >= ACKS_BEFORE_MOVE, f"{n} acks"),
                cluster.log_tails,
            )

            node = add_broker(cluster, NEW_NODE)
            took, _ = wait_until(
                f"node {NEW_NODE} in DescribeCluster and in every node's Metadata", 30.0,
                lambda: (
                    cluster.describe()[1] == NODES + [NEW_NODE]
                    and all(NEW_NODE in view(cluster, topic, [n])["brokers"] for n in NODES + [NEW_NODE]),
                    cluster.describe(),
                ),
                cluster.log_tails,
            )
            print(f"node {NEW_NODE} (broker only, {node.bootstrap}) registered {took:.1f}s after its start")

            p0, p1 = before[0], before[1]
            dropped_leader = p0["leader"]
            follower = next(b for b in reversed(p1["replicas"]) if b != p1["leader"])
            moves = {
                (topic, 0): (p0["replicas"], [NEW_NODE] + [b for b in p0["replicas"] if b != dropped_leader]),
                (topic, 1): (p1["replicas"], [b for b in p1["replicas"] if b != follower] + [NEW_NODE]),
            }
            targets = {key: target for key, (_, target) in moves.items()}
            print(f"moving p0 {p0['replicas']} -> {targets[(topic, 0)]} (drops leader {dropped_leader}), "
                  f"p1 {p1['replicas']} -> {targets[(topic, 1)]} (drops follower {follower})")
            answers, took, listings = java_admin.reassign_and_await(
                cluster.bootstrap(), targets, REASSIGN_TIMEOUT_S
            )
            assert answers == {key: "OK" for key in targets}, answers
            for listing in listings:
                check_listing(listing, moves)
            print(f"listPartitionReassignments empty {took:.1f}s after the request; "
                  f"listings on the way: {listings}")

            def moved(states: dict) -> bool:
                s0, s1, s2 = states.get(0), states.get(1), states.get(2)
                return (
                    in_sync(states)
                    and s0["replicas"] == targets[(topic, 0)]
                    and s0["leader"] != dropped_leader
                    and s1["replicas"] == targets[(topic, 1)]
                    and s1["leader"] == p1["leader"]
                    and s2["replicas"] == before[2]["replicas"]
                )

            took, seen = wait_views(cluster, topic, "every node reports the moved replicas", moved)
            after = partitions_of(seen[NEW_NODE])
            print(f"moved, as every node reports {took:.1f}s after the listing emptied: "
                  f"{describe_partitions(seen[NEW_NODE])}")
            described = java_admin.describe(cluster.bootstrap(), topic)
            for p, state in after.items():
                got = described[p]
                assert (got["leader"], got["replicas"], sorted(got["isr"])) == (
                    state["leader"], state["replicas"], state["isr"]
                ), f"p{p}: Java describeTopics {got}, Metadata {state}"
            moved_at = time.time()
            took = acks_after(producer, moved_at, "acks=all writes after the moves", cluster.log_tails)
            print(f"{ACKS_WANTED} acks {took:.1f}s after the moves (partition 0 now led by {after[0]['leader']})")

            gone = {dropped_leader: 0, follower: 1}
            took, _ = wait_until(
                "the dropped replicas' partition directories deleted", 20.0,
                lambda: (
                    not any(partition_dirs(cluster.node(n), topic, p) for n, p in gone.items())
                    and all(partition_dirs(node, topic, p) == [f"{topic}-{p}"] for p in (0, 1)),
                    {(n, p): partition_dirs(cluster.node(n), topic, p) for n, p in gone.items()},
                ),
                cluster.log_tails,
            )
            print(f"dropped replicas' directories gone {took:.1f}s after the moves were reported")
            summary = producer.stop()
        stored = read_stored(cluster.bootstrap(), topic, PARTITIONS)
        report = check_delivery("partitions 0 and 1 moved onto a new node", summary, stored, PARTITIONS)
        assert_delivered(report)
        compare_target_replicas(cluster, topic, summary.acks, {p: s["replicas"] for p, s in after.items()})


def compare_target_replicas(cluster: Cluster, topic: str, acks: list[Ack], replicas: dict[int, list[int]]) -> None:
    """Wait until every replica of each partition holds every acknowledged offset; stop
    the nodes; the copies must hold the same batches (batch_log.compare_replicas)."""
    wanted: dict[int, list[int]] = {}
    for ack in acks:
        if ack.offset is not None:
            wanted.setdefault(ack.partition, []).append(ack.offset)

    def logs():
        return {n: read_node_logs(node.data_dir, [topic]) for n, node in cluster.nodes.items()}

    def probe():
        missing = {}
        held = logs()
        for p, offsets in wanted.items():
            for n in replicas[p]:
                log = held[n].get(f"{topic}-{p}")
                gaps = missing_offsets(log, offsets) if log is not None else offsets
                if gaps:
                    missing[(n, p)] = f"{len(gaps)} missing, first {gaps[:3]}"
        return not missing, missing

    wait_until("every replica holds every acknowledged offset", 20.0, probe, cluster.log_tails)
    for node in cluster.nodes.values():
        node.kill()
    held = logs()
    unexpected = {
        (n, name) for n, per_node in held.items() for name in per_node
        if n not in replicas[int(name.rsplit("-", 1)[1])]
    }
    assert not unexpected, f"partition directories on nodes that are no replicas: {sorted(unexpected)}"
    comparison = compare_replicas(held)
    print(comparison.line())
    assert comparison.partitions == PARTITIONS, f"partition directories found: {held}"
    assert comparison.batches_compared > 0, "no batch is held by two nodes"
    assert not comparison.problems, "\n".join(comparison.problems[:30])


# --- errors and cancel --------------------------------------------------------------


def test_reassignment_errors_and_cancel(clusters, java_admin):
    """Through the Java AdminClient, in one request: a target with an unregistered
    broker or a broker twice is InvalidReplicaAssignmentException; an unknown topic or
    partition UnknownTopicOrPartitionException. Cancelling a partition that is not
    moving is NoReassignmentInProgressException. None of it starts a reassignment. Then
    a move onto a node that is down stays listed (adding it) until it is cancelled,
    which restores the replicas and ISR."""
    cluster = clusters()
    topic = "reassign-errors"
    with explained(cluster):
        create_topic(cluster, topic, assignment=[[1, 2], [2, 3]])
        bootstrap = cluster.bootstrap()
        assert java_admin.ongoing(bootstrap) == {}, "a reassignment listed before any was asked for"

        answers = java_admin.reassign(bootstrap, {
            (topic, 0): [1, 2, 99],
            (topic, 1): [2, 2, 3],
            (topic, 7): [1, 2],
            ("no-such-topic", 0): [1, 2],
        })
        print(f"refused: {answers}")
        assert answers[(topic, 0)].startswith("InvalidReplicaAssignmentException "), answers
        assert answers[(topic, 1)].startswith("InvalidReplicaAssignmentException "), answers
        assert answers[(topic, 7)].startswith("UnknownTopicOrPartitionException "), answers
        assert answers[("no-such-topic", 0)].startswith("UnknownTopicOrPartitionException "), answers

        answers = java_admin.reassign(bootstrap, {(topic, 0): None, (topic, 1): None})
        print(f"cancelled without a reassignment: {answers}")
        assert all(a.startswith("NoReassignmentInProgressException ") for a in answers.values()), answers
        assert java_admin.ongoing(bootstrap) == {}, "a refused request left a reassignment listed"
        unchanged = partitions_of(view(cluster, topic, NODES))
        assert [unchanged[0]["replicas"], unchanged[1]["replicas"]] == [[1, 2], [2, 3]], unchanged

        # Node 3 down: a move adding it cannot finish until it is cancelled.
        assert cluster.stop_node(3) == 0, cluster.node(3).log_tail()
        survivors = cluster.bootstrap(1, 2)
        wait_until(
            "node 3 fenced", FAILOVER_TIMEOUT_S,
            lambda: ((brokers := view(cluster, topic, [1, 2])["brokers"]) == [1, 2], brokers),
            cluster.log_tails,
        )
        answers = java_admin.reassign(survivors, {(topic, 0): [1, 2, 3]})
        assert answers == {(topic, 0): "OK"}, answers
        ongoing = java_admin.ongoing(survivors)
        print(f"moving p0 onto stopped node 3: {ongoing}")
        assert ongoing == {(topic, 0): ([1, 2, 3], [3], [])}, ongoing
        _, seen = wait_views(
            cluster, topic, "p0 replicas [1, 2, 3] (3 adding), ISR [1, 2]",
            lambda s: s[0]["replicas"] == [1, 2, 3] and s[0]["isr"] == [1, 2], via=[1, 2],
        )
        answers = java_admin.reassign(survivors, {(topic, 0): None})
        assert answers == {(topic, 0): "OK"}, answers
        assert java_admin.ongoing(survivors) == {}, "the cancelled reassignment is still listed"
        _, seen = wait_views(
            cluster, topic, "p0 back to replicas [1, 2], ISR [1, 2]",
            lambda s: s[0]["replicas"] == [1, 2] and s[0]["isr"] == [1, 2] and s[0]["leader"] in (1, 2),
            via=[1, 2],
        )
        print(f"after the cancel: {describe_partitions(seen[1])}")
        answers = java_admin.reassign(survivors, {(topic, 0): None})
        assert answers[(topic, 0)].startswith("NoReassignmentInProgressException "), answers


# --- leader elections ----------------------------------------------------------------


def restart_and_rejoin(cluster: Cluster, topic: str, victim: int, while_down=lambda: None) -> float:
    """SIGTERM `victim` (controlled shutdown); wait until the others lead every partition
    without it; call `while_down()`; start it again; wait until it is back in every ISR.
    Returns the wall-clock time (time.time()) its return to the ISRs was first seen."""
    others = [n for n in NODES if n != victim]
    assert cluster.stop_node(victim) == 0, cluster.node(victim).log_tail()
    took, seen = wait_views(
        cluster, topic, f"partitions led without node {victim}",
        lambda s: len(s) == PARTITIONS and all(x["leader"] in others and victim not in x["isr"] for x in s.values()),
        via=others, timeout_s=FAILOVER_TIMEOUT_S,
    )
    print(f"node {victim} stopped; {took:.1f}s later {describe_partitions(seen[others[0]])}")
    while_down()
    cluster.start(victim)
    took, seen = wait_views(
        cluster, topic, f"node {victim} back in every ISR",
        lambda s: in_sync(s), via=[others[0]],
    )
    rejoined = time.time()
    print(f"node {victim} back in every ISR {took:.1f}s after its start: {describe_partitions(seen[others[0]])}")
    return rejoined


def election_error(error) -> int | None:
    """The error code of one partition's elect_leaders result: the documented
    KafkaException, or (as confluent-kafka 2.16.1 gives) the KafkaError itself."""
    if error is None:
        return None
    error = error.args[0] if isinstance(error, KafkaException) else error
    assert isinstance(error, KafkaError), f"not an error: {error!r}"
    return error.code()


def test_elect_leaders_moves_leadership_back_to_the_preferred_replica(clusters, java_admin):
    """While the preferred leader of partition 0 is down, a preferred election answers
    PREFERRED_LEADER_NOT_AVAILABLE. With automatic rebalancing off, the restarted node
    stays a follower; confluent-kafka's elect_leaders(PREFERRED) makes it leader again
    (every node then reports it) and a second election — confluent-kafka's and the Java
    client's — answers ELECTION_NOT_NEEDED (an unknown partition UNKNOWN_TOPIC_OR_PARTITION,
    an unclean election of a led partition ELECTION_NOT_NEEDED); acks=all writes go
    through the elected leader."""
    cluster = clusters(**{"auto.leader.rebalance.enable": "false"})
    topic = "elect-preferred"
    with explained(cluster):
        create_topic(cluster, topic)
        _, seen = wait_views(cluster, topic, "every partition led by its preferred replica", led_by_preferred)
        preferred = partitions_of(seen[1])[0]["replicas"][0]
        tp = TopicPartition(topic, 0)

        def elect_while_down():
            survivors = AdminClient({"bootstrap.servers": cluster.bootstrap()})
            (error,) = survivors.elect_leaders(ElectionType.PREFERRED, [tp]).result(timeout=70).values()
            print(f"elect_leaders(PREFERRED, {topic}[0]) with node {preferred} down: {error}")
            assert election_error(error) == KafkaError.PREFERRED_LEADER_NOT_AVAILABLE, error

        restart_and_rejoin(cluster, topic, preferred, elect_while_down)
        # Nothing moves it back by itself: it stays a follower for a few seconds.
        time.sleep(3)
        states = partitions_of(view(cluster, topic, NODES))
        assert states[0]["leader"] != preferred and preferred in states[0]["isr"], states[0]

        admin = AdminClient({"bootstrap.servers": cluster.bootstrap()})
        result = admin.elect_leaders(ElectionType.PREFERRED, [tp]).result(timeout=70)
        print(f"elect_leaders(PREFERRED, {topic}[0]): {result}")
        assert list(result.values()) == [None], result
        took, seen = wait_views(
            cluster, topic, f"node {preferred} leads {topic}[0] again",
            lambda s: s[0]["leader"] == preferred and in_sync(s), timeout_s=10.0,
        )
        print(f"every node reports leader {preferred} {took:.1f}s after the election: "
              f"{describe_partitions(seen[preferred])}")

        again = admin.elect_leaders(ElectionType.PREFERRED, [tp]).result(timeout=70)
        (error,) = again.values()
        assert election_error(error) == KafkaError.ELECTION_NOT_NEEDED, again
        java = java_admin.elect(cluster.bootstrap(), "PREFERRED", topic, [0, 7])
        print(f"second election: confluent-kafka {error}, Java {java}")
        assert java[0].startswith("ElectionNotNeededException "), java
        assert java[7].startswith("UnknownTopicOrPartitionException "), java
        # An unclean election where the leader is alive is not needed either.
        java = java_admin.elect(cluster.bootstrap(), "UNCLEAN", topic, [1])
        print(f"unclean election with a live leader: Java {java}")
        assert java[1].startswith("ElectionNotNeededException "), java

        producer = SequencedProducer(cluster.bootstrap(), topic, PARTITIONS, 1500, count=600)
        with producing(producer):
            summary = producer.stop()
        stored = read_stored(cluster.bootstrap(), topic, PARTITIONS)
        assert_delivered(check_delivery("after the preferred election", summary, stored, PARTITIONS))


def test_automatic_leader_rebalance_restores_preferred_leaders(clusters):
    """With auto.leader.rebalance.enable=true, the smallest check interval and a 0%
    threshold, a restarted node (whose leaderships its controlled shutdown moved away)
    leads its preferred partitions again within three check intervals of rejoining
    their ISRs, without any admin call."""
    cluster = clusters(**{
        "auto.leader.rebalance.enable": "true",
        "leader.imbalance.check.interval.seconds": IMBALANCE_CHECK_INTERVAL_S,
        "leader.imbalance.per.broker.percentage": 0,
    })
    topic = "auto-rebalance"
    with explained(cluster):
        create_topic(cluster, topic)
        _, seen = wait_views(cluster, topic, "every partition led by its preferred replica", led_by_preferred)
        victim = partitions_of(seen[1])[0]["replicas"][0]
        led = sorted(p for p, s in partitions_of(seen[1]).items() if s["replicas"][0] == victim)
        print(f"node {victim} is the preferred leader of partitions {led}")
        rejoined = restart_and_rejoin(cluster, topic, victim)
        bound_s = 3 * IMBALANCE_CHECK_INTERVAL_S
        took, seen = wait_views(
            cluster, topic, f"every partition led by its preferred replica again within {bound_s}s",
            led_by_preferred, timeout_s=bound_s + 10,
        )
        since_rejoin = time.time() - rejoined
        print(f"preferred leaders restored {since_rejoin:.1f}s after node {victim} was seen back in "
              f"every ISR: {describe_partitions(seen[victim])}")
        assert since_rejoin <= bound_s, (
            f"leaderships moved back {since_rejoin:.1f}s after the rejoin, more than three "
            f"check intervals ({bound_s}s)\n{cluster.log_tails()}"
        )
