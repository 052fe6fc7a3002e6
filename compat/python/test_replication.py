"""Replicated partitions (replication factor 3, min.insync.replicas 2) under faults.

Each test starts its own 3-node cluster (cluster.py, or in network namespaces for the
partition test), creates an RF=3 topic of three partitions with AdminClient, and runs
an idempotent acks=all producer (replication.SequencedProducer; the Java client in
one test) sending numbered records at a bounded rate while it breaks something:

* the leader of a partition is SIGKILLed and restarted, three times (and twice under
  the Java client);
* the leader is cut off from the others and the clients by a network partition;
* a follower is frozen (SIGSTOP) until it falls out of the ISR, thawed, caught up,
  and then the leader is killed so the caught-up follower may take over;
* every node is SIGKILLed at once and started again;
* the node coordinating a consumer group is SIGKILLed while the group commits.

Afterwards every partition is read from its beginning to its end offset and each test
prints `acknowledged=N consumed=M lost=L duplicated=D (...)`: an acknowledged record
must be stored exactly once, at the offset its acknowledgement named, in produce order.
Then the partition directories of all three nodes are parsed (Kafka's v2 record batch
headers) and compared: once every node holds every acknowledged offset, a batch at one
base offset must be the same batch (leader epoch, CRC, last offset delta) on every
node that holds it, and no node's leader epochs decrease along its log; so no two
nodes accepted different writes for one partition in one epoch.

The first tests check the checkers themselves: the log parser against the segment
files of a single-replica topic, and the delivery tally against made-up losses.

On any failure the message ends with the tail of every node's log.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import struct
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from batch_log import (
    EpochWitness,
    LogWatch,
    compare_replicas,
    missing_offsets,
    read_node_logs,
    read_partition_log,
)
from broker import start_broker, stop_broker
from cluster import Cluster, runnel_bin
from netns import namespaces_with_prefix
from replication import (
    cluster_starter,
    explained,
    producing,
    running,
    view,
    Ack,
    ProduceSummary,
    ReplicatedNetnsCluster,
    SequencedProducer,
    Stored,
    assert_delivered,
    check_delivery,
    fully_replicated,
    partitions_of,
    read_acks_file,
    read_stored,
    wait_until,
)

NODES = [1, 2, 3]
PARTITIONS = 3
REPLICATION_FACTOR = 3
MIN_INSYNC_REPLICAS = 2
RATE_PER_S = 300
OFFSETS_PARTITIONS = 3
OVERRIDES = {
    # A dead node is fenced (and leaves every ISR) within seconds.
    "broker.session.timeout.ms": 4000,
    "broker.heartbeat.interval.ms": 500,
    # A follower that stopped fetching leaves the ISR within seconds.
    "replica.lag.time.max.ms": 4000,
    # Topics are created by the test with three replicas, never by a client's
    # metadata request with the default one.
    "auto.create.topics.enable": "false",
    "offsets.topic.replication.factor": 3,
    "offsets.topic.num.partitions": OFFSETS_PARTITIONS,
    "group.initial.rebalance.delay.ms": 0,
    "group.min.session.timeout.ms": 1000,
}
# Time allowed for: a new leader and an ISR without a dead node (session timeout plus
# an election), a restarted node to catch up and rejoin every ISR, acks to resume.
FAILOVER_TIMEOUT_S = 20.0
REJOIN_TIMEOUT_S = 30.0
RESUME_TIMEOUT_S = 15.0
# How many acknowledgements show that acks=all writes go on with a replica missing.
ACKS_WHILE_DEGRADED = 50
JAVA_DIR = Path(__file__).resolve().parent.parent / "java"
JAVAC_TIMEOUT_S = 120
INTERNAL_OFFSETS_TOPIC = "__consumer_offsets"

pytestmark = pytest.mark.timeout(180)


# --- fixtures and helpers -----------------------------------------------------------


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


def wait_replicated(
    cluster: Cluster, topic: str, what: str, timeout_s: float = REJOIN_TIMEOUT_S, partitions: int = PARTITIONS
) -> float:
    """Wait until each node alone reports every partition of `topic` led, on all three
    nodes, all three in the ISR."""

    def probe():
        seen = {n: view(cluster, topic, [n]) for n in NODES}
        return all(fully_replicated(v, partitions, NODES) for v in seen.values()), seen

    took, _ = wait_until(what, timeout_s, probe, cluster.log_tails)
    return took


def wait_without(cluster: Cluster, topic: str, gone: int, what: str, timeout_s: float = FAILOVER_TIMEOUT_S):
    """Wait until the other nodes report every partition led by one of them, with `gone`
    out of every ISR (and the ISR still at least min.insync.replicas); return their view."""
    others = [n for n in NODES if n != gone]

    def probe():
        seen = view(cluster, topic, others)
        states = partitions_of(seen)
        done = len(states) == PARTITIONS and all(
            s["leader"] in others and gone not in s["isr"] and len(s["isr"]) >= MIN_INSYNC_REPLICAS
            for s in states.values()
        )
        return done, seen

    return wait_until(what, timeout_s, probe, cluster.log_tails)


def wait_acks(producer: SequencedProducer, since: float, what: str, context, partitions=None) -> float:
    """Wait until ACKS_WHILE_DEGRADED acknowledgements arrived after `since` (wall clock)."""
    took, _ = wait_until(
        what,
        RESUME_TIMEOUT_S,
        lambda: (
            (count := producer.acks_since(since, partitions)) >= ACKS_WHILE_DEGRADED,
            f"{count} acks",
        ),
        context,
    )
    return took


def create_topic(admin: AdminClient, topic: str) -> None:
    """An RF=3 topic with min.insync.replicas=2; its config is checked back."""
    new = NewTopic(
        topic,
        num_partitions=PARTITIONS,
        replication_factor=REPLICATION_FACTOR,
        config={"min.insync.replicas": str(MIN_INSYNC_REPLICAS)},
    )
    admin.create_topics([new], operation_timeout=30, request_timeout=30)[topic].result(timeout=40)
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
    configs = admin.describe_configs([resource], request_timeout=10)[resource].result(timeout=15)
    assert configs["min.insync.replicas"].value == str(MIN_INSYNC_REPLICAS), configs["min.insync.replicas"]


def create_replicated_topic(cluster: Cluster, topic: str) -> dict:
    """Create the topic and wait until every node reports it fully replicated."""
    admin = cluster.admin()
    create_topic(admin, topic)
    took = wait_replicated(cluster, topic, f"{topic}: every partition on all three nodes, in sync")
    seen = view(cluster, topic, NODES)
    print(f"{topic}: fully replicated {took:.1f}s after creation; {describe_partitions(seen)}")
    return seen


def describe_partitions(seen: dict) -> str:
    return "; ".join(
        f"p{p} leader {s['leader']} replicas {s['replicas']} isr {s['isr']}"
        for p, s in partitions_of(seen).items()
    )


def leader_of(cluster: Cluster, topic: str, partition: int) -> int:
    leader = partitions_of(view(cluster, topic, running(cluster)))[partition]["leader"]
    assert leader in NODES, f"{topic}[{partition}] has no leader: {leader}"
    return leader


def verify_stored(bootstrap: str, scenario: str, topic: str, summary: ProduceSummary, **options):
    stored = read_stored(bootstrap, topic, PARTITIONS)
    report = check_delivery(scenario, summary, stored, PARTITIONS)
    assert_delivered(report, **options)
    return report


def compare_node_logs(watch: LogWatch, acks: list[Ack], topic: str, kill, context) -> None:
    """Wait until every node's log holds every acknowledged offset of `topic`; stop the
    nodes (`kill()`); compare the copies of every partition of the watched topics, and
    check every batch ever seen under one epoch against the others."""
    wanted: dict[int, list[int]] = {}
    for ack in acks:
        if ack.offset is not None:  # delivered, offset not reported by librdkafka
            wanted.setdefault(ack.partition, []).append(ack.offset)

    def probe():
        missing = {}
        for node, logs in watch.read().items():
            for p, offsets in wanted.items():
                log = logs.get(f"{topic}-{p}")
                gaps = missing_offsets(log, offsets) if log is not None else offsets
                if gaps:
                    missing[(node, p)] = f"{len(gaps)} missing, first {gaps[:3]}"
        return not missing, missing

    took, _ = wait_until("every node holds every acknowledged offset", 20.0, probe, context)
    print(f"every node held all {len(acks)} acknowledged offsets {took:.1f}s after the producer stopped")
    kill()
    logs = watch.snapshot("at the end", live=False)
    comparison = compare_replicas(logs)
    print(comparison.line())
    print(watch.witness.line())
    assert comparison.partitions >= PARTITIONS, f"partition directories found: {logs}"
    assert comparison.batches_compared > 0, "no batch is held by two nodes"
    assert not comparison.problems, "\n".join(comparison.problems[:30])
    assert not watch.witness.problems, "\n".join(watch.witness.problems[:30])


def watch_cluster(cluster: Cluster, topics: list[str]) -> LogWatch:
    return LogWatch({n: node.data_dir for n, node in cluster.nodes.items()}, topics)


def compare_cluster_logs(cluster: Cluster, watch: LogWatch, acks: list[Ack], topic: str) -> None:
    def kill():
        for node in cluster.nodes.values():
            node.kill()

    compare_node_logs(watch, acks, topic, kill, cluster.log_tails)


def kill_leader_and_restart(cluster: Cluster, watch: LogWatch, topic: str, producer_acks_since, round_: int) -> None:
    """Kill the leader of partition 0; wait for a new leader and acks=all writes without
    it; start it again; wait until it is back in every ISR. The logs are snapshot while
    it is down and once it is back."""
    victim = leader_of(cluster, topic, 0)
    cluster.kill_node(victim)
    killed = time.monotonic()
    took, seen = wait_without(
        cluster, topic, victim, f"round {round_}: new leaders and ISRs without the killed node {victim}"
    )
    failed_over = time.time()
    print(f"round {round_}: killed leader {victim}; {took:.1f}s later {describe_partitions(seen)}")
    resumed = producer_acks_since(failed_over)
    watch.snapshot(f"round {round_}, node {victim} down")
    cluster.start(victim)
    rejoined = wait_replicated(cluster, topic, f"round {round_}: node {victim} back in every ISR")
    watch.snapshot(f"round {round_}, node {victim} back")
    print(
        f"round {round_}: acks resumed {resumed:.1f}s after the failover; node {victim} in every "
        f"ISR again {rejoined:.1f}s after its restart ({time.monotonic() - killed:.1f}s in all)"
    )


# --- the checkers ---------------------------------------------------------------


@pytest.fixture
def single_broker():
    """One single-node broker of its own (the parser test needs real segment files)."""
    broker = start_broker()
    try:
        yield broker
    finally:
        stop_broker(broker)


def test_log_parser_reads_single_replica_batches(single_broker, tmp_path):
    """The segment parser against a real single-replica partition: one batch per flush,
    offsets contiguous, CRC-32C valid, one epoch; a cut-off copy has a torn tail; and
    the replica comparison flags a changed epoch and a falling one."""
    broker = single_broker
    topic = f"replication-parser-{os.getpid()}"
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic].result(timeout=30)
    producer = Producer({"bootstrap.servers": broker.bootstrap, "enable.idempotence": True, "linger.ms": 50})
    sizes = [1, 5, 17, 40, 3]
    seq = 0
    for size in sizes:
        for _ in range(size):
            producer.produce(topic, key=f"0:{seq}".encode(), value=b"v" * (seq % 50), partition=0)
            seq += 1
        assert producer.flush(30) == 0
    partition_dir = next(broker.data_dir.rglob(f"{topic}-0"), None)
    assert partition_dir is not None, f"no {topic}-0 under {broker.data_dir}"

    log = read_partition_log(partition_dir, verify_crc=True)
    assert not log.problems, log.problems
    assert log.torn_tail_bytes == 0
    batches = log.batches
    print(f"{partition_dir}: {len(batches)} batches {[(b.base_offset, b.records_count) for b in batches]}")
    assert [b.records_count for b in batches] == sizes, batches
    assert [b.base_offset for b in batches] == [sum(sizes[:i]) for i in range(len(sizes))]
    assert all(b.last_offset_delta == b.records_count - 1 for b in batches)
    assert all(b.magic == 2 and b.leader_epoch == batches[0].leader_epoch >= 0 for b in batches)
    assert all(b.producer_id == batches[0].producer_id >= 0 for b in batches), "idempotent batches"
    assert [b.base_sequence for b in batches] == [b.base_offset for b in batches]

    # A copy cut off in the middle of its last batch: that batch is a torn tail.
    (segment,) = sorted(partition_dir.glob("*.log"))
    data = segment.read_bytes()
    torn_dir = tmp_path / "torn" / f"{topic}-0"
    torn_dir.mkdir(parents=True)
    cut = batches[-1].position + 30
    (torn_dir / segment.name).write_bytes(data[:cut])
    torn = read_partition_log(torn_dir, verify_crc=True)
    assert len(torn.batches) == len(batches) - 1 and torn.torn_tail_bytes == 30, torn
    assert not torn.problems, torn.problems

    # Copies on three "nodes": the same, one with another epoch in its third batch, one
    # whose epochs fall.
    def copy(node: int, epochs: dict[int, int]) -> Path:
        changed = bytearray(data)
        for index, epoch in epochs.items():
            struct.pack_into(">i", changed, batches[index].position + 12, epoch)
        directory = tmp_path / f"node-{node}" / f"{topic}-0"
        directory.mkdir(parents=True)
        (directory / segment.name).write_bytes(bytes(changed))
        return directory.parent

    first_epoch = batches[0].leader_epoch
    same = {n: read_node_logs(copy(n, {}), [topic]) for n in (1, 2)}
    clean = compare_replicas(same)
    assert clean.batches_compared == len(batches) and not clean.problems, clean
    differing = compare_replicas({**same, 3: read_node_logs(copy(3, {2: first_epoch + 7}), [topic])})
    assert any(f"offset {batches[2].base_offset}: batches differ" in p for p in differing.problems), differing
    falling = compare_replicas({4: read_node_logs(copy(4, {0: first_epoch + 5}), [topic])})
    assert any("leader epoch falls" in p for p in falling.problems), falling

    # The witness: the same batches seen twice agree; one seen again with another CRC
    # under the same epoch is a second writer. A live snapshot skips the last batch.
    witness = EpochWitness()
    witness.observe(same, "first look", live=True)
    assert witness.observed == 2 * (len(batches) - 1), witness.line()
    witness.observe(same, "second look", live=False)
    assert not witness.problems, witness.problems
    rewritten = bytearray(data)
    struct.pack_into(">I", rewritten, batches[1].position + 17, batches[1].crc ^ 1)
    other = tmp_path / "node-5" / f"{topic}-0"
    other.mkdir(parents=True)
    (other / segment.name).write_bytes(bytes(rewritten))
    witness.observe({5: read_node_logs(other.parent, [topic])}, "rewritten", live=False)
    assert len(witness.problems) == 1 and f"offset {batches[1].base_offset}:" in witness.problems[0], witness.problems
    print(witness.line())


def test_delivery_tally_counts_lost_duplicated_misplaced_and_reordered():
    acks = [Ack(0, 0, 0), Ack(0, 1, 1), Ack(0, 2, 2), Ack(1, 0, 0), Ack(1, 1, 1), Ack(2, 0, 0)]
    summary = ProduceSummary(sent=6, acks=acks, failed=[], unflushed=0, errors=[])
    stored = [
        Stored(0, 0, 0, b"0:0"),
        Stored(0, 1, 2, b"0:2"),  # seq 1 lost, seq 2 one offset early
        Stored(0, 2, 2, b"0:2"),  # and stored twice
        Stored(1, 0, 1, b"1:1"),  # partition 1 reordered: 1 before 0
        Stored(1, 1, 0, b"1:0"),
        Stored(2, 0, 0, b"2:0"),
    ]
    report = check_delivery("made up", summary, stored, PARTITIONS)
    tally = report.tallies
    assert tally[0].lost == [1] and tally[0].duplicated == [2], tally[0]
    assert [m[0] for m in tally[1].misplaced] == [0, 1] and not tally[1].order_kept, tally[1]
    assert not tally[2].lost and tally[2].order_kept and not tally[2].misplaced
    assert report.line().startswith("acknowledged=6 consumed=6 lost=1 duplicated=1 ")
    # The duplicate in partition 0 also breaks its order (seqs must strictly increase).
    assert tally[0].out_of_order == [(2, 2)], tally[0]
    assert len(report.problems()) == 5, report.problems()
    clean = check_delivery("clean", summary, [Stored(a.partition, a.offset, a.seq, None) for a in acks], PARTITIONS)
    assert not clean.problems(), clean.problems()


# --- faults under the Python client ------------------------------------------------


def test_leader_killed_repeatedly_loses_no_acknowledged_record(clusters):
    cluster = clusters()
    topic = "replicated-leader-kill"
    with explained(cluster):
        create_replicated_topic(cluster, topic)
        watch = watch_cluster(cluster, [topic])
        producer = SequencedProducer(cluster.bootstrap(), topic, PARTITIONS, RATE_PER_S)
        with producing(producer):
            wait_acks(producer, 0.0, "first acknowledgements", cluster.log_tails)
            for round_ in (1, 2, 3):
                kill_leader_and_restart(
                    cluster,
                    watch,
                    topic,
                    lambda since, r=round_: wait_acks(
                        producer, since, f"round {r}: acks=all writes with a node down", cluster.log_tails
                    ),
                    round_,
                )
            time.sleep(1.0)
            summary = producer.stop()
        wait_replicated(cluster, topic, "every ISR full after the last round")
        verify_stored(cluster.bootstrap(), "leader killed 3 times", topic, summary)
        compare_cluster_logs(cluster, watch, summary.acks, topic)


def test_leader_cut_off_by_network_partition_loses_no_acknowledged_record(tmp_path):
    """The leader of partition 0 is cut off (its veth down): the other two elect new
    leaders and shrink the ISRs, acks=all writes go on through them, and reconnected the
    old leader truncates what it alone took and rejoins every ISR."""
    topic = "replicated-netns-cut"
    netns = ReplicatedNetnsCluster(runnel_bin(), tmp_path, overrides=OVERRIDES)
    producer: subprocess.Popen | None = None
    try:
        try:
            netns.create_network()
        except AssertionError as error:
            raise AssertionError(
                "cannot build the test network (this test needs root and `ip netns`; "
                f"it is never skipped): {error}"
            ) from None
        netns.start_nodes()
        everyone = [n.node_id for n in netns.nodes]
        bootstrap = ",".join(n.bootstrap for n in netns.nodes)
        watch = LogWatch({n.node_id: n.data_dir for n in netns.nodes}, [topic])

        def node_view(node_ids):
            return netns.view(node_ids, topic)

        def context():
            return netns.logs()

        def all_listed():
            seen = netns.views(everyone, topic)
            return all(v.get("brokers") == everyone for v in seen.values()), seen

        def all_replicated():
            seen = netns.views(everyone, topic)
            return all(fully_replicated(v, PARTITIONS, everyone) for v in seen.values()), seen

        took, _ = wait_until(
            "every node lists all three brokers",
            45.0,
            all_listed,
            context,
        )
        print(f"\nnamespaced cluster formed in {took:.1f}s")
        created = netns.run_in_hub({
            "action": "create", "bootstrap": bootstrap, "topic": topic, "partitions": PARTITIONS,
            "replication_factor": REPLICATION_FACTOR,
            "config": {"min.insync.replicas": str(MIN_INSYNC_REPLICAS)},
        }, timeout_s=60)
        assert "error" not in created, f"{created}\n{context()}"
        took, seen = wait_until(
            "every node reports every partition fully replicated",
            REJOIN_TIMEOUT_S,
            all_replicated,
            context,
        )
        seen = node_view(everyone)
        print(f"{topic}: fully replicated after {took:.1f}s; {describe_partitions(seen)}")

        acks_path = tmp_path / "acks.tsv"
        request = {
            "action": "produce", "bootstrap": bootstrap, "topic": topic, "partitions": PARTITIONS,
            "rate_per_s": RATE_PER_S, "acks_path": str(acks_path), "name": "netns",
        }
        producer = subprocess.Popen(
            netns.hub_command(request), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True,
        )

        def acks_since(since: float) -> int:
            return sum(1 for a in read_acks_file(acks_path) if a.at >= since)

        wait_until("first acknowledgements", RESUME_TIMEOUT_S,
                   lambda: (acks_since(0) >= ACKS_WHILE_DEGRADED, acks_since(0)), context)
        cut = partitions_of(seen)[0]["leader"]
        others = [n for n in everyone if n != cut]
        netns.cut(cut)
        cut_at = time.monotonic()

        def failed_over():
            states = partitions_of(node_view(others))
            done = len(states) == PARTITIONS and all(
                s["leader"] in others and cut not in s["isr"] and len(s["isr"]) >= MIN_INSYNC_REPLICAS
                for s in states.values()
            )
            return done, states

        took, states = wait_until(
            f"nodes {others} lead every partition without node {cut}", FAILOVER_TIMEOUT_S, failed_over, context
        )
        after = time.time()
        print(f"cut off leader {cut}; {took:.1f}s later {states}")
        took, _ = wait_until(
            "acks=all writes while the old leader is cut off", RESUME_TIMEOUT_S,
            lambda: (acks_since(after) >= ACKS_WHILE_DEGRADED, acks_since(after)), context,
        )
        print(f"acks resumed {took:.1f}s after the failover")
        watch.snapshot(f"node {cut} cut off, new leaders elected")
        # Long enough for the cut-off node to notice it is alone, whatever it then does.
        time.sleep(max(0.0, 8.0 - (time.monotonic() - cut_at)))
        watch.snapshot(f"node {cut} cut off {time.monotonic() - cut_at:.0f}s")
        netns.reconnect(cut)
        took, _ = wait_until(
            f"node {cut} back in every ISR",
            REJOIN_TIMEOUT_S,
            all_replicated,
            context,
        )
        print(f"node {cut} in every ISR again {took:.1f}s after the reconnect")
        watch.snapshot(f"node {cut} reconnected")
        time.sleep(1.0)
        out, err = producer.communicate(input="", timeout=90)
        assert producer.returncode == 0, f"hub producer exit {producer.returncode}: {err[-3000:]}"
        result = json.loads(out)
        acks = read_acks_file(acks_path)
        failed = result["failed"] + ["(not shown)"] * (result["failed_count"] - len(result["failed"]))
        summary = ProduceSummary(result["sent"], acks, failed, result["unflushed"], result["errors"])
        assert len(acks) == result["acked"], f"acks file has {len(acks)} lines, producer says {result['acked']}"

        read = netns.run_in_hub({"action": "read", "bootstrap": bootstrap, "topic": topic, "partitions": PARTITIONS}, 90)
        assert "error" not in read, f"{read}\n{context()}"
        stored = [Stored(p, o, s, k.encode() if k else None) for p, o, s, k in read["stored"]]
        assert_delivered(check_delivery("leader cut off by the network", summary, stored, PARTITIONS))

        def kill():
            for node in netns.nodes:
                if node.process is not None and node.process.poll() is None:
                    node.process.kill()
                    node.process.wait()

        compare_node_logs(watch, acks, topic, kill, context)
    except Exception as error:
        raise AssertionError(f"{type(error).__name__}: {error}\n{netns.logs()}") from error
    finally:
        if producer is not None and producer.poll() is None:
            producer.kill()
            producer.wait()
        print(f"\nwhat each node said (changes only):\n{netns.timeline()}")
        errors = netns.destroy()
        leftovers = namespaces_with_prefix(netns.prefix)
        assert not errors and not leftovers, f"network not removed: errors {errors}, namespaces left {leftovers}"


def test_follower_out_of_sync_catches_up_and_takes_over(clusters):
    """A frozen follower leaves the ISR (replica.lag.time.max.ms) while it is still a
    registered broker; acks=all writes go on with two in sync; thawed, it catches up and
    rejoins; then the leader is killed and the caught-up follower may lead."""
    # A session long enough that the frozen node stays registered: it must leave the
    # ISR because it lags, not because it was fenced.
    session_ms, lag_ms = 10_000, 3_000
    cluster = clusters(**{"broker.session.timeout.ms": session_ms, "replica.lag.time.max.ms": lag_ms})
    topic = "replicated-follower-lag"
    with explained(cluster):
        seen = create_replicated_topic(cluster, topic)
        controller, _ = cluster.describe()
        states = partitions_of(seen)
        # A partition whose second replica (first in line after the leader) is not the
        # active controller: that follower is frozen, so the quorum is left alone.
        partition = next(
            (p for p, s in states.items() if s["replicas"][1] != controller and s["leader"] == s["replicas"][0]),
            None,
        )
        assert partition is not None, f"no partition to freeze a follower of: {states}, controller {controller}"
        leader, follower = states[partition]["leader"], states[partition]["replicas"][1]
        followed = {p for p, s in states.items() if s["leader"] != follower}
        others = [n for n in NODES if n != follower]
        print(f"freezing follower {follower} of partitions {sorted(followed)}; leader of {partition}: {leader}")
        watch = watch_cluster(cluster, [topic])

        producer = SequencedProducer(cluster.bootstrap(), topic, PARTITIONS, RATE_PER_S)
        with producing(producer):
            wait_acks(producer, 0.0, "first acknowledgements", cluster.log_tails)
            process = cluster.node(follower).process
            process.send_signal(signal.SIGSTOP)
            frozen = time.monotonic()
            try:

                def out_of_sync():
                    seen = view(cluster, topic, others)
                    states = partitions_of(seen)
                    done = all(follower not in states[p]["isr"] for p in followed) and follower in seen["brokers"]
                    return done, seen

                took, seen = wait_until(
                    f"frozen follower {follower} out of the ISR of {sorted(followed)} while still registered",
                    (session_ms - 2000) / 1000,
                    out_of_sync,
                    cluster.log_tails,
                )
                shrunk = time.time()
                print(f"follower {follower} left the ISRs {took:.1f}s after SIGSTOP: {describe_partitions(seen)}")
                took = wait_acks(
                    producer, shrunk, "acks=all writes with two replicas in sync", cluster.log_tails, followed
                )
                watch.snapshot(f"follower {follower} frozen")
                # Fall further behind, inside the session.
                time.sleep(max(0.0, (session_ms - 3000) / 1000 - (time.monotonic() - frozen)))
            finally:
                process.send_signal(signal.SIGCONT)
            print(f"follower {follower} frozen {time.monotonic() - frozen:.1f}s")
            rejoined = wait_replicated(cluster, topic, f"follower {follower} caught up, back in every ISR")
            print(f"follower {follower} in every ISR {rejoined:.1f}s after SIGCONT")
            watch.snapshot(f"follower {follower} caught up")

            leader = leader_of(cluster, topic, partition)
            cluster.kill_node(leader)
            took, seen = wait_without(
                cluster, topic, leader, f"new leaders without the killed leader {leader}",
                timeout_s=session_ms / 1000 + FAILOVER_TIMEOUT_S,
            )
            failed_over = time.time()
            new_leader = partitions_of(seen)[partition]["leader"]
            print(
                f"killed leader {leader}; {took:.1f}s later partition {partition} is led by {new_leader} "
                f"({'the caught-up follower' if new_leader == follower else 'the other replica'})"
            )
            wait_acks(producer, failed_over, "acks=all writes after the failover", cluster.log_tails)
            watch.snapshot(f"leader {leader} killed, {new_leader} leads")
            cluster.start(leader)
            wait_replicated(cluster, topic, f"node {leader} back in every ISR")
            summary = producer.stop()
        verify_stored(cluster.bootstrap(), "follower lagged, caught up, took over", topic, summary)
        compare_cluster_logs(cluster, watch, summary.acks, topic)


def test_whole_cluster_killed_and_restarted_while_producing(clusters):
    cluster = clusters()
    topic = "replicated-cluster-restart"
    with explained(cluster):
        create_replicated_topic(cluster, topic)
        watch = watch_cluster(cluster, [topic])
        producer = SequencedProducer(cluster.bootstrap(), topic, PARTITIONS, RATE_PER_S)
        with producing(producer):
            wait_acks(producer, 0.0, "first acknowledgements", cluster.log_tails)
            time.sleep(2.0)
            for node_id in NODES:
                cluster.kill_node(node_id)
            killed = time.monotonic()
            before = len(producer.acks)
            watch.snapshot("every node killed", live=False)
            time.sleep(1.0)
            cluster.start()
            cluster.wait_brokers(NODES, timeout_s=45.0)
            restarted = time.time()
            rejoined = wait_replicated(cluster, topic, "every partition fully replicated after the restart")
            print(
                f"all nodes killed with {before} acks; registered again {time.monotonic() - killed - rejoined:.1f}s "
                f"later, every ISR full {rejoined:.1f}s after that"
            )
            for p in range(PARTITIONS):
                wait_acks(producer, restarted, f"partition {p}: production resumes", cluster.log_tails, {p})
            watch.snapshot("after the restart")
            summary = producer.stop()
        verify_stored(cluster.bootstrap(), "whole cluster killed", topic, summary)
        compare_cluster_logs(cluster, watch, summary.acks, topic)


# --- the Java client -------------------------------------------------------------------


@pytest.fixture(scope="module")
def java_classes():
    """ReplicationProducer compiled into a temp dir (scripts/test-all.sh compiles only
    CompatDriver and CrashProducer), removed at the end of the module."""
    lib = JAVA_DIR / "lib"
    assert (lib / "kafka-clients.jar").exists(), (
        "compat/java/lib is missing: run `bash scripts/test-all.sh --install-only`"
    )
    out = Path(tempfile.mkdtemp(prefix="runnel-replication-java-"))
    try:
        result = subprocess.run(
            ["javac", "-Xlint:all", "-Werror", "-d", str(out), "-cp", f"{lib}/*",
             str(JAVA_DIR / "src" / "ReplicationProducer.java")],
            capture_output=True, text=True, timeout=JAVAC_TIMEOUT_S,
        )
        assert result.returncode == 0, f"javac ReplicationProducer.java failed:\n{result.stderr}"
        yield out
    finally:
        shutil.rmtree(out, ignore_errors=True)


def parse_java_output(text: str) -> ProduceSummary:
    acks, failed, last = [], [], ""
    for line in text.splitlines():
        fields = line.split(" ", 3)
        if fields[0] == "acked" and len(fields) == 4:
            acks.append(Ack(int(fields[1]), int(fields[2]), int(fields[3])))
        elif fields[0] == "failed":
            failed.append(line)
        elif line.startswith("sent="):
            last = line
    assert last, f"the Java producer printed no summary; last output:\n{text[-2000:]}"
    counts = dict(pair.split("=") for pair in last.split())
    assert int(counts["acked"]) == len(acks) and int(counts["failed"]) == len(failed), (last, len(acks))
    return ProduceSummary(int(counts["sent"]), acks, failed, 0, [])


def test_java_producer_survives_leader_kills(clusters, java_classes, tmp_path):
    """kafka-clients 3.9.1, idempotent and acks=all, produces for a fixed time while the
    leader of partition 0 is killed and restarted twice."""
    duration_s, rounds = 40, (1, 2)
    cluster = clusters()
    topic = "replicated-java-leader-kill"
    with explained(cluster):
        create_replicated_topic(cluster, topic)
        watch = watch_cluster(cluster, [topic])
        out_path, err_path = tmp_path / "java.out", tmp_path / "java.err"
        classpath = os.pathsep.join([str(java_classes), str(JAVA_DIR / "lib" / "*")])
        command = [
            "java", "-Xmx256m", "-XX:TieredStopAtLevel=1", "-cp", classpath, "ReplicationProducer",
            cluster.bootstrap(), topic, str(PARTITIONS), str(RATE_PER_S), str(duration_s),
        ]
        with open(out_path, "w") as out, open(err_path, "w") as err:
            java = subprocess.Popen(command, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        try:

            def acks_since(since: float) -> float:
                # The Java driver's lines carry no time: count lines since the mark.
                def count():
                    return out_path.read_text().count("\nacked ")

                mark = count()
                took, _ = wait_until(
                    "the Java producer's acks=all writes go on", RESUME_TIMEOUT_S,
                    lambda: ((n := count() - mark) >= ACKS_WHILE_DEGRADED, n), cluster.log_tails,
                )
                return took

            wait_until(
                "first acknowledgements of the Java producer", 30.0,
                lambda: (out_path.read_text().count("acked ") >= ACKS_WHILE_DEGRADED, err_path.read_text()[-500:]),
                cluster.log_tails,
            )
            for round_ in rounds:
                kill_leader_and_restart(cluster, watch, topic, acks_since, round_)
            assert java.poll() is None, (
                f"the Java producer ended (exit {java.poll()}) before the last restart: raise duration_s"
            )
            java.wait(timeout=duration_s + 120)
        finally:
            if java.poll() is None:
                java.kill()
                java.wait()
        assert java.returncode == 0, f"ReplicationProducer exit {java.returncode}:\n{err_path.read_text()[-4000:]}"
        summary = parse_java_output(out_path.read_text())
        wait_replicated(cluster, topic, "every ISR full after the Java producer ended")
        verify_stored(cluster.bootstrap(), "Java producer, leader killed twice", topic, summary)
        compare_cluster_logs(cluster, watch, summary.acks, topic)


def rdkafka_producer_command(bootstrap: str, topic: str, acked_path: Path) -> list[str]:
    """The rdkafka crate's idempotent producer (compat/rust/examples/crash_producer.rs),
    built if needed (quick when up to date)."""
    root = Path(__file__).resolve().parent.parent.parent
    target = Path(os.environ.get("CARGO_TARGET_DIR", root / "target"))
    build = subprocess.run(
        ["cargo", "build", "-q", "-p", "runnel-compat-rdkafka", "--example", "crash_producer"],
        cwd=root,
        env={**os.environ, "CARGO_TARGET_DIR": str(target)},
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert build.returncode == 0, f"building crash_producer failed:\n{build.stderr[-4000:]}"
    binary = target / "debug" / "examples" / "crash_producer"
    return [str(binary), bootstrap, topic, "rdkafka", str(acked_path), str(RATE_PER_S)]


def read_values(bootstrap: str, topic: str) -> dict[int, list[tuple[int, str]]]:
    """Every record's (offset, value) per partition, from the start to the end offsets."""
    consumer = Consumer({
        "bootstrap.servers": bootstrap, "group.id": "replication-values", "enable.auto.commit": False,
        "enable.partition.eof": False, "auto.offset.reset": "earliest",
    })
    try:
        ends = {}
        for p in range(PARTITIONS):
            _, ends[p] = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False)
        consumer.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
        stored: dict[int, list[tuple[int, str]]] = {p: [] for p in range(PARTITIONS)}
        positions = {p: -1 for p in range(PARTITIONS)}
        deadline = time.monotonic() + 60
        while any(positions[p] + 1 < ends[p] for p in range(PARTITIONS)):
            assert time.monotonic() < deadline, f"read up to {positions}, ends {ends}"
            for message in consumer.consume(num_messages=1000, timeout=1.0):
                if message.error() is not None:
                    continue
                positions[message.partition()] = message.offset()
                stored[message.partition()].append((message.offset(), message.value().decode()))
        return stored
    finally:
        consumer.close()


def test_rdkafka_crate_producer_survives_leader_kills(clusters, tmp_path):
    """The rdkafka crate (librdkafka from Rust), idempotent and acks=all, produces while
    the leader of partition 0 is killed and restarted twice: every acknowledged record
    is stored once, at the offset its ack named, in the order it was sent."""
    cluster = clusters()
    topic = "replicated-rdkafka-leader-kill"
    with explained(cluster):
        create_replicated_topic(cluster, topic)
        watch = watch_cluster(cluster, [topic])
        acked_path, err_path = tmp_path / "rdkafka.acked", tmp_path / "rdkafka.err"
        acked_path.touch()
        command = rdkafka_producer_command(cluster.bootstrap(), topic, acked_path)
        with open(err_path, "w") as err:
            producer = subprocess.Popen(
                command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, text=True
            )
        try:

            def acks_since(since: float) -> float:
                def count():
                    return acked_path.read_text().count("\n")

                mark = count()
                took, _ = wait_until(
                    "the rdkafka producer's acks=all writes go on", RESUME_TIMEOUT_S,
                    lambda: ((n := count() - mark) >= ACKS_WHILE_DEGRADED, n), cluster.log_tails,
                )
                return took

            wait_until(
                "first acknowledgements of the rdkafka producer", 30.0,
                lambda: (acked_path.read_text().count("\n") >= ACKS_WHILE_DEGRADED, err_path.read_text()[-500:]),
                cluster.log_tails,
            )
            for round_ in (1, 2):
                kill_leader_and_restart(cluster, watch, topic, acks_since, round_)
            assert producer.poll() is None, f"the rdkafka producer ended early: {err_path.read_text()[-2000:]}"
            summary_line, _ = producer.communicate(input="", timeout=120)
        finally:
            if producer.poll() is None:
                producer.kill()
                producer.wait()
        assert producer.returncode == 0, f"crash_producer exit {producer.returncode}:\n{err_path.read_text()[-4000:]}"
        counts = dict(pair.split("=") for pair in summary_line.split()[1:])
        acked = [line.split("\t") for line in acked_path.read_text().splitlines()]
        assert int(counts["acked"]) == len(acked) and int(counts["failed"]) == 0, (summary_line, len(acked))
        assert int(counts["sent"]) == len(acked), f"not every record was acknowledged: {summary_line}"
        wait_replicated(cluster, topic, "every ISR full after the rdkafka producer ended")
        stored = read_values(cluster.bootstrap(), topic)
        at = {(p, offset): value for p, records in stored.items() for offset, value in records}
        lost = [(p, o, v) for p, o, v in acked if at.get((int(p), int(o))) != v]
        counted: dict[str, int] = {}
        for records in stored.values():
            for _, value in records:
                counted[value] = counted.get(value, 0) + 1
        duplicated = sorted(v for v, n in counted.items() if n > 1)
        unordered = [
            p for p, records in stored.items()
            if [v for _, v in records] != sorted(v for _, v in records)
        ]
        consumed = sum(len(r) for r in stored.values())
        print(f"acknowledged={len(acked)} consumed={consumed} lost={len(lost)} duplicated={len(duplicated)} "
              f"(rdkafka crate producer, leader killed twice: out of order in {len(unordered)} partitions)")
        assert not lost, f"acknowledged but not stored at their offsets: {lost[:10]}"
        assert not duplicated, f"stored twice: {duplicated[:10]}"
        assert not unordered, f"out of order in partitions {unordered}"
        assert consumed == len(acked), "a record was stored that was never acknowledged"
        compare_cluster_logs(
            cluster, watch, [Ack(int(p), int(o), i) for i, (p, o, _) in enumerate(acked)], topic
        )


# --- consumer groups -------------------------------------------------------------------


def coordinator_of(admin: AdminClient, group: str) -> int:
    described = admin.describe_consumer_groups([group], request_timeout=5)[group].result(timeout=10)
    assert described.coordinator is not None, described
    return described.coordinator.id


def committed_offsets(admin: AdminClient, group: str, topic: str) -> dict[int, int]:
    request = ConsumerGroupTopicPartitions(group, [TopicPartition(topic, p) for p in range(PARTITIONS)])
    result = admin.list_consumer_group_offsets([request], request_timeout=5)[group].result(timeout=10)
    return {tp.partition: tp.offset for tp in result.topic_partitions if tp.offset >= 0}


class GroupReader:
    """One confluent-kafka member of `group`: reads, remembers what it read, commits its
    positions explicitly (retrying while the coordinator moves)."""

    def __init__(self, bootstrap: str, group: str, topic: str) -> None:
        self.topic = topic
        self.consumer = Consumer({
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 10_000,
            "heartbeat.interval.ms": 1000,
        })
        self.consumer.subscribe([topic])
        self.read: list[tuple[int, int]] = []
        self.positions: dict[int, int] = {}
        self.committed: dict[int, int] = {}
        # Reads of an offset below this member's own position, with the commit then in force.
        self.reread: list[tuple[int, int, int]] = []
        self.commit_errors: list[str] = []

    def read_until(self, total: int, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while len(self.read) < total:
            assert time.monotonic() < deadline, f"read {len(self.read)} of {total}; commit errors {self.commit_errors[-3:]}"
            for message in self.consumer.consume(num_messages=100, timeout=0.5):
                if message.error() is not None:
                    continue
                p, offset = message.partition(), message.offset()
                if offset < self.positions.get(p, 0):
                    self.reread.append((p, offset, self.committed.get(p, 0)))
                self.positions[p] = offset + 1
                self.read.append((p, offset))

    def commit(self, timeout_s: float) -> dict[int, int]:
        """Commit every position; retry until the coordinator accepts; return what was committed."""
        wanted = dict(self.positions)
        offsets = [TopicPartition(self.topic, p, o) for p, o in sorted(wanted.items())]
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                result = self.consumer.commit(offsets=offsets, asynchronous=False)
                errors = [f"{tp.partition}: {tp.error}" for tp in result if tp.error is not None]
                if not errors:
                    self.committed = wanted
                    return wanted
                self.commit_errors.append(", ".join(errors))
            except KafkaException as error:
                self.commit_errors.append(str(error))
            assert time.monotonic() < deadline, f"no commit accepted within {timeout_s}s: {self.commit_errors[-5:]}"
            # Keep the member alive (heartbeats, rebalances) between attempts.
            self.consumer.poll(0.5)

    def close(self) -> None:
        self.consumer.close()


def test_consumer_group_survives_its_coordinator_killed(clusters):
    """Offsets committed before the group's coordinator dies are there on the new one
    (__consumer_offsets is replicated); the member goes on reading and committing
    through it; after the restart a new member resumes at the last commit."""
    cluster = clusters()
    topic, group, total = "replicated-group", "replicated-group-g1", 3000
    with explained(cluster):
        create_replicated_topic(cluster, topic)
        watch = watch_cluster(cluster, [topic, INTERNAL_OFFSETS_TOPIC])
        producer = SequencedProducer(cluster.bootstrap(), topic, PARTITIONS, 1500, count=total)
        with producing(producer):
            summary = producer.stop()
        assert len(summary.acks) == total and not summary.failed, (len(summary.acks), summary.failed[:3])

        first = GroupReader(cluster.bootstrap(), group, topic)
        second = None
        try:
            first.read_until(600, 60.0)
            before = first.commit(30.0)
            admin = cluster.admin()
            wait_replicated(
                cluster, INTERNAL_OFFSETS_TOPIC, f"{INTERNAL_OFFSETS_TOPIC} fully replicated",
                partitions=OFFSETS_PARTITIONS,
            )
            coordinator = coordinator_of(admin, group)
            assert committed_offsets(admin, group, topic) == before
            survivors = [n for n in NODES if n != coordinator]
            print(f"group {group}: coordinator {coordinator}; committed {before}")

            cluster.kill_node(coordinator)
            killed = time.monotonic()
            survivors_admin = cluster.admin(*survivors)
            # First wait, through metadata alone, until the dead node leads no
            # partition of __consumer_offsets: librdkafka 2.x's admin client can
            # abort the process (rd_kafka_enq_once_del_source_return assertion)
            # when DescribeGroups is retried against a coordinator that refuses
            # connections.
            wait_until(
                f"{INTERNAL_OFFSETS_TOPIC} led by survivors only", FAILOVER_TIMEOUT_S,
                lambda: (
                    all(
                        s["leader"] in survivors
                        for s in partitions_of(view(cluster, INTERNAL_OFFSETS_TOPIC, survivors)).values()
                    ),
                    None,
                ),
                cluster.log_tails,
            )
            took, moved = wait_until(
                f"a new coordinator for {group} among {survivors}", FAILOVER_TIMEOUT_S,
                lambda: ((c := coordinator_of(survivors_admin, group)) in survivors, c), cluster.log_tails,
            )
            print(f"coordinator moved to {moved} {took:.1f}s after node {coordinator} was killed")
            watch.snapshot(f"coordinator {coordinator} killed")
            # The new coordinator has the commits made through the dead one.
            assert committed_offsets(survivors_admin, group, topic) == before, "commits lost with the coordinator"

            first.read_until(1800, 60.0)
            after = first.commit(30.0)
            assert coordinator_of(survivors_admin, group) == moved
            assert committed_offsets(survivors_admin, group, topic) == after
            print(f"read {len(first.read)} in all; committed {after} through node {moved} "
                  f"({time.monotonic() - killed:.1f}s after the kill); commit retries: {first.commit_errors[:3]}")
            bad = [(p, o, c) for p, o, c in first.reread if o < c]
            assert not bad, f"re-read below the committed offset (partition, offset, committed): {bad[:10]}"
            first.close()
            first = None

            cluster.start(coordinator)
            wait_replicated(cluster, topic, f"node {coordinator} back in every ISR of {topic}")
            wait_replicated(
                cluster, INTERNAL_OFFSETS_TOPIC, f"node {coordinator} back in every ISR of offsets",
                partitions=OFFSETS_PARTITIONS,
            )
            watch.snapshot(f"node {coordinator} back")
            for node_id in NODES:
                got = committed_offsets(cluster.admin(node_id), group, topic)
                assert got == after, f"via node {node_id}: committed {got}, expected {after}"

            second = GroupReader(cluster.bootstrap(), group, topic)
            second.read_until(total - sum(after.values()), 60.0)
            starts = {}
            for p, offset in second.read:
                starts.setdefault(p, offset)
            ends = {p: total // PARTITIONS for p in range(PARTITIONS)}
            resumable = {p: after.get(p, 0) for p in range(PARTITIONS) if after.get(p, 0) < ends[p]}
            assert {p: starts.get(p) for p in resumable} == resumable, (
                f"the new member started at {starts}, committed {after}"
            )
            assert all(offset >= after.get(p, 0) for p, offset in second.read), "re-read committed records"
            everything = {(a.partition, a.offset) for a in summary.acks}
            assert set(second.read) | {r for r in everything if r[1] < after.get(r[0], 0)} == everything
            print(f"the new member resumed at {starts} and read the remaining {len(second.read)}")
        finally:
            for reader in (first, second):
                if reader is not None:
                    reader.close()
        compare_cluster_logs(cluster, watch, summary.acks, topic)
