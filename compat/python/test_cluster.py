"""A 3-node runnel cluster (cluster.py) against confluent-kafka and the Java client.

Replication factor is 1: each partition lives on one node, so while a node is down
its partitions are unavailable and producers retry. The tests run in order on one
cluster and build on each other (the topics of the first ones are checked again after
the controller failover and after a restart of the whole cluster):

1. a 6-partition topic is spread over all three nodes, and every node alone answers
   the same metadata;
2. confluent-kafka (idempotent, bootstrapped from node 2 only) produces, a consumer
   group bootstrapped from node 3 only reads everything back; the Java client does
   the same on another topic through single nodes;
3. a node leading some partitions is SIGKILLed and restarted while an idempotent
   producer keeps sending: every record is acknowledged and stored exactly once;
4. the active controller is SIGKILLed: the survivors elect another within seconds,
   keep all metadata, create topics and serve the partitions they lead; the killed
   node comes back with its partitions and data;
5. the whole cluster is stopped (SIGTERM) and started: topics and records remain.

On any failure the assertion message ends with the tail of every node's log.
"""

from __future__ import annotations

import functools
import os
import subprocess
import threading
import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import NewTopic

from cluster import Cluster, start_cluster
from records import Record, generate, read_records, verify_consumed, write_records

NODES = (1, 2, 3)
PARTITIONS = 6
TIMEOUT_S = 60.0
# Fast failure detection keeps the module short; the heartbeat stays well inside it.
OVERRIDES = {"broker.session.timeout.ms": 4000, "broker.heartbeat.interval.ms": 500}
CONTROLLER_FAILOVER_LIMIT_S = 10.0
JAVA_DIR = Path(__file__).resolve().parent.parent / "java"
JAVA_TIMEOUT_S = 180

# What the tests created, for the later tests to check again: topic -> partition count,
# and the records each topic must hold.
TOPICS: dict[str, int] = {}
CONTENTS: dict[str, list[Record]] = {}


@pytest.fixture(scope="module")
def cluster():
    started = time.monotonic()
    running = start_cluster(len(NODES), OVERRIDES)
    print(f"\ncluster of {len(NODES)} up in {time.monotonic() - started:.1f}s: {running.bootstrap()}")
    try:
        yield running
    finally:
        running.close()


def with_logs(test):
    """Re-raise any failure of `test` with the tail of every node's log appended."""

    @functools.wraps(test)
    def wrapper(cluster: Cluster, *args, **kwargs):
        started = time.monotonic()
        try:
            test(cluster, *args, **kwargs)
        except Exception as error:
            raise AssertionError(f"{type(error).__name__}: {error}\n{cluster.log_tails()}") from error
        finally:
            print(f"{test.__name__}: {time.monotonic() - started:.1f}s")

    return wrapper


# --- helpers -------------------------------------------------------------------------


def create_topic(cluster: Cluster, via: tuple[int, ...], topic: str, partitions: int) -> dict[int, int]:
    """Create a topic through the nodes `via`; wait for a leader on every partition; return the leaders."""
    admin = cluster.admin(*via)
    futures = admin.create_topics(
        [NewTopic(topic, num_partitions=partitions, replication_factor=1)],
        operation_timeout=30,
        request_timeout=30,
    )
    futures[topic].result(timeout=TIMEOUT_S)
    TOPICS[topic] = partitions
    return wait_leaders(cluster, via, topic, partitions, lambda leaders: min(leaders.values()) >= 0)


def leaders_of(cluster: Cluster, via: tuple[int, ...], topic: str) -> dict[int, int]:
    metadata = cluster.admin(*via).list_topics(topic, timeout=10)
    found = metadata.topics.get(topic)
    if found is None or found.error is not None:
        return {}
    return {p: info.leader for p, info in found.partitions.items()}


def wait_leaders(cluster, via, topic, partitions, accept, timeout_s: float = 30.0) -> dict[int, int]:
    """Poll the metadata of `topic` through `via` until `accept(leaders)` holds."""
    deadline = time.monotonic() + timeout_s
    while True:
        leaders = leaders_of(cluster, via, topic)
        if len(leaders) == partitions and accept(leaders):
            return leaders
        assert time.monotonic() < deadline, (
            f"metadata of {topic} via nodes {via} never settled within {timeout_s}s: {leaders}"
        )
        time.sleep(0.2)


def new_producer(bootstrap: str, **extra) -> Producer:
    return Producer(
        {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "message.timeout.ms": 60_000,
            **extra,
        }
    )


def produce(bootstrap: str, topic: str, records: list[Record]) -> dict[bytes, tuple[int, int]]:
    """Produce every record to its partition; return key -> (partition, offset) as acknowledged."""
    producer = new_producer(bootstrap, **{"compression.type": "lz4"})
    acked: dict[bytes, tuple[int, int]] = {}
    errors: list[str] = []

    def on_delivery(error, message):
        if error is not None:
            errors.append(f"{message.key()!r}: {error}")
        else:
            acked[message.key()] = (message.partition(), message.offset())

    for record in records:
        while True:
            try:
                producer.produce(
                    topic,
                    value=record.value,
                    key=record.key,
                    partition=record.partition,
                    timestamp=record.timestamp,
                    headers=list(record.headers),
                    on_delivery=on_delivery,
                )
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
    remaining = producer.flush(TIMEOUT_S)
    assert remaining == 0, f"{remaining} records still undelivered after {TIMEOUT_S}s"
    assert not errors, f"{len(errors)} delivery errors, first: {errors[:3]}"
    assert len(acked) == len(records), f"{len(acked)} of {len(records)} acknowledged"
    return acked


def to_record(message) -> Record:
    if message.error() is not None:
        raise KafkaException(message.error())
    timestamp_type, timestamp = message.timestamp()
    return Record(
        key=message.key(),
        value=message.value(),
        headers=tuple(message.headers() or ()),
        timestamp=timestamp,
        partition=message.partition(),
        offset=message.offset(),
        # confluent-kafka numbers timestamp types from 1, Kafka's wire from 0.
        timestamp_type=timestamp_type - 1,
    )


def consume_group(bootstrap: str, topic: str, group: str, count: int) -> list[Record]:
    """Subscribe in consumer group `group`, read `count` records, commit them, return them."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "enable.partition.eof": False,
        }
    )
    try:
        consumer.subscribe([topic])
        records: list[Record] = []
        deadline = time.monotonic() + TIMEOUT_S
        while len(records) < count:
            assert time.monotonic() < deadline, f"group {group} read {len(records)} of {count}"
            records += [to_record(m) for m in consumer.consume(num_messages=1000, timeout=1.0)]
        # Anything beyond `count` would be a duplicate: give it a moment to show up.
        extra_deadline = time.monotonic() + 1.0
        while time.monotonic() < extra_deadline:
            records += [to_record(m) for m in consumer.consume(num_messages=1000, timeout=0.2)]
        consumer.commit(asynchronous=False)
        committed = consumer.committed(
            [TopicPartition(topic, p) for p in range(PARTITIONS)], timeout=10
        )
        ends = {}
        for r in records:
            ends[r.partition] = max(ends.get(r.partition, 0), r.offset + 1)
        assert {tp.partition: tp.offset for tp in committed if tp.offset >= 0} == ends, (
            f"committed offsets {committed} != consumed ends {ends}"
        )
        return records
    finally:
        consumer.close()


def consume_assigned(bootstrap: str, topic: str, partitions: list[int]) -> list[Record]:
    """Read `partitions` of `topic` from offset 0 to their current end, without a group."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "cluster-unused-group",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "enable.partition.eof": False,
            "auto.offset.reset": "error",
        }
    )
    try:
        ends = {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False)[1]
            for p in partitions
        }
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        counts = {p: 0 for p in partitions}
        records: list[Record] = []
        deadline = time.monotonic() + TIMEOUT_S
        while any(counts[p] < ends[p] for p in partitions):
            assert time.monotonic() < deadline, f"{topic}: consumed {counts}, expected {ends}"
            for message in consumer.consume(num_messages=1000, timeout=1.0):
                records.append(to_record(message))
                counts[message.partition()] += 1
        return records
    finally:
        consumer.close()


def end_offsets(bootstrap: str, topic: str, partitions: int) -> dict[int, int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "cluster-unused-group"})
    try:
        return {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False)[1]
            for p in range(partitions)
        }
    finally:
        consumer.close()


def java(*args: str) -> list[str]:
    """Run compat/java's CompatDriver; assert exit 0 and return its stdout lines."""
    classes = JAVA_DIR / "classes"
    assert (classes / "CompatDriver.class").exists(), (
        "compat/java/classes/CompatDriver.class is missing: run scripts/test-all.sh"
    )
    classpath = os.pathsep.join([str(classes), str(JAVA_DIR / "lib" / "*")])
    result = subprocess.run(
        ["java", "-cp", classpath, "CompatDriver", *args],
        capture_output=True,
        text=True,
        timeout=JAVA_TIMEOUT_S,
    )
    assert result.returncode == 0, (
        f"CompatDriver {args[0]} exited {result.returncode}:\n{result.stdout[-2000:]}\n"
        f"{result.stderr[-4000:]}"
    )
    return result.stdout.splitlines()


def controller_via_metadata(cluster: Cluster, node_id: int) -> int:
    """The controller id node `node_id` alone reports in Metadata (-1 when it cannot answer)."""
    try:
        return cluster.admin(node_id).list_topics(timeout=2).controller_id
    except KafkaException:
        return -1


# --- tests -------------------------------------------------------------------------


@with_logs
def test_partitions_spread_over_all_nodes(cluster):
    topic = "cluster-spread"
    leaders = create_topic(cluster, NODES, topic, PARTITIONS)
    print(f"{topic} leaders: {leaders}")
    assert set(leaders.values()) == set(NODES), f"leaders {leaders} do not cover nodes {NODES}"

    controller, brokers = cluster.describe()
    assert brokers == list(NODES) and controller in NODES, (controller, brokers)
    for node_id in NODES:
        metadata = cluster.admin(node_id).list_topics(topic, timeout=10)
        alone = {p: info.leader for p, info in metadata.topics[topic].partitions.items()}
        assert alone == leaders, f"node {node_id} alone reports leaders {alone}, expected {leaders}"
        assert sorted(metadata.brokers) == list(NODES), f"node {node_id}: brokers {metadata.brokers}"
        assert metadata.controller_id == controller, (
            f"node {node_id}: controller {metadata.controller_id}, DescribeCluster says {controller}"
        )
        assert cluster.describe(node_id) == (controller, list(NODES)), f"DescribeCluster via {node_id}"


@with_logs
def test_produce_consume_through_single_nodes(cluster, tmp_path):
    # confluent-kafka: produce through node 2 only, a consumer group through node 3 only.
    topic = "cluster-confluent"
    create_topic(cluster, (1,), topic, PARTITIONS)
    produced = generate(topic, count=3000, partitions=PARTITIONS)
    acked = produce(cluster.bootstrap(2), topic, produced)
    consumed = consume_group(cluster.bootstrap(3), topic, "cluster-group", len(produced))
    per_partition = verify_consumed(produced, consumed, partitions=PARTITIONS)
    found = {r.key: (r.partition, r.offset) for rs in per_partition.values() for r in rs}
    assert found == acked, "records are not where their acknowledgements said"
    CONTENTS[topic] = produced
    print(f"{topic}: produced, acked and consumed {len(consumed)}")

    # The Java client: create and produce through node 1, consume through node 2.
    topic = "cluster-java"
    assert java("create", cluster.bootstrap(1), topic, str(PARTITIONS)) == [f"created {topic}"]
    TOPICS[topic] = PARTITIONS
    produced = generate(topic, count=3000, partitions=PARTITIONS, seed=11)
    write_records(tmp_path / "in.tsv", produced)
    lines = java(
        "produce", cluster.bootstrap(1), topic, "zstd", str(tmp_path / "in.tsv"), str(tmp_path / "acked.tsv")
    )
    assert lines[-1] == f"produced {len(produced)}", lines[-5:]
    acked_java = read_records(tmp_path / "acked.tsv")
    lines = java("consume", cluster.bootstrap(2), topic, str(PARTITIONS), str(tmp_path / "out.tsv"))
    assert lines[-1] == f"consumed {len(produced)}", lines[-5:]
    per_partition = verify_consumed(produced, read_records(tmp_path / "out.tsv"), partitions=PARTITIONS)
    found = {r.key: (r.partition, r.offset) for rs in per_partition.values() for r in rs}
    assert all(found[r.key] == (r.partition, r.offset) for r in acked_java), (
        "Java: acknowledged offsets differ from stored"
    )
    CONTENTS[topic] = produced
    print(f"{topic}: Java produced and consumed {len(produced)}")


@with_logs
def test_node_killed_and_restarted_while_producing(cluster):
    topic = "cluster-restart"
    leaders = create_topic(cluster, NODES, topic, PARTITIONS)
    controller, _ = cluster.describe()
    candidates = sorted({n for n in leaders.values() if n != controller}) or sorted(set(leaders.values()))
    victim = candidates[0]
    print(f"{topic} leaders {leaders}; controller {controller}; killing node {victim}")

    total, budget_s, rate = 20_000, 20.0, 1500
    producer = new_producer(cluster.bootstrap())
    acked: dict[int, tuple[int, int]] = {}
    failed: list[str] = []
    sent = 0

    def on_delivery(error, message):
        seq = int(message.key())
        if error is not None:
            failed.append(f"{seq}: {error}")
        else:
            acked[seq] = (message.partition(), message.offset())

    def send():
        nonlocal sent
        started = time.monotonic()
        while sent < total and time.monotonic() - started < budget_s:
            # Paced: about `rate` records a second, so the kill lands mid-stream.
            ahead = sent / rate - (time.monotonic() - started)
            if ahead > 0:
                producer.poll(min(ahead, 0.05))
                continue
            try:
                producer.produce(
                    topic,
                    key=f"{sent:06d}".encode(),
                    value=f"value-{sent}".encode(),
                    partition=sent % PARTITIONS,
                    on_delivery=on_delivery,
                )
                sent += 1
            except BufferError:
                producer.poll(0.05)
            producer.poll(0)

    sender = threading.Thread(target=send, name="cluster-producer")
    started = time.monotonic()
    sender.start()
    try:
        time.sleep(4.0)
        cluster.kill_node(victim)
        killed_at = time.monotonic() - started
        time.sleep(2.0)
        cluster.start(victim)
        print(f"killed node {victim} at {killed_at:.1f}s, back at {time.monotonic() - started:.1f}s")
    finally:
        sender.join(timeout=budget_s + 10)
    assert not sender.is_alive(), "the producer thread did not finish"
    remaining = producer.flush(90)
    elapsed = time.monotonic() - started
    cluster.wait_brokers(list(NODES))
    # The restarted node leads its partitions again.
    wait_leaders(cluster, NODES, topic, PARTITIONS, lambda now: now == leaders)

    records = consume_assigned(cluster.bootstrap(), topic, list(range(PARTITIONS)))
    seen: dict[int, list[tuple[int, int]]] = {}
    for r in records:
        seen.setdefault(int(r.key), []).append((r.partition, r.offset))
    duplicates = sum(len(v) - 1 for v in seen.values())
    lost = sorted(s for s in acked if s not in seen)
    misplaced = sorted(s for s, where in acked.items() if s in seen and seen[s] != [where])
    unacked_stored = sorted(s for s in seen if s not in acked)
    print(
        f"{topic}: sent {sent} acked {len(acked)} failed {len(failed)} unflushed {remaining} "
        f"consumed {len(records)} duplicates {duplicates} lost {len(lost)} in {elapsed:.1f}s"
    )
    assert remaining == 0, f"{remaining} records never delivered"
    assert not failed, f"{len(failed)} delivery failures, first: {failed[:5]}"
    assert len(acked) == sent, f"acked {len(acked)} of {sent}"
    assert duplicates == 0, f"{duplicates} duplicates: {[s for s, v in seen.items() if len(v) > 1][:10]}"
    assert not lost, f"{len(lost)} acknowledged records lost, first: {lost[:10]}"
    assert not misplaced, "stored elsewhere than acknowledged: " + str(
        [(s, acked[s], seen[s]) for s in misplaced[:10]]
    )
    assert not unacked_stored, f"stored but never acknowledged: {unacked_stored[:10]}"
    for partition in range(PARTITIONS):
        order = [int(r.key) for r in sorted(records, key=lambda r: r.offset) if r.partition == partition]
        assert order == sorted(order), f"partition {partition} out of produce order"
        assert [r.offset for r in records if r.partition == partition] == list(range(len(order))), (
            f"partition {partition}: offsets not contiguous from 0"
        )
    assert sent >= 5000, f"only {sent} records sent: the kill did not land mid-stream"


@with_logs
def test_active_controller_killed(cluster):
    controller, brokers = cluster.describe()
    assert brokers == list(NODES), brokers
    survivors = tuple(n for n in NODES if n != controller)
    before = {topic: leaders_of(cluster, NODES, topic) for topic in TOPICS}
    ends_before = {topic: end_offsets(cluster.bootstrap(), topic, n) for topic, n in TOPICS.items()}

    cluster.kill_node(controller)
    killed = time.monotonic()
    reported: dict[int, int] = {}
    while time.monotonic() - killed < 30.0:
        reported = {n: controller_via_metadata(cluster, n) for n in survivors}
        if len(set(reported.values())) == 1 and reported[survivors[0]] in survivors:
            break
        time.sleep(0.2)
    failover_s = time.monotonic() - killed
    print(f"killed controller {controller}; survivors report {reported} after {failover_s:.2f}s")
    new_controller = reported[survivors[0]]
    assert new_controller in survivors and set(reported.values()) == {new_controller}, (
        f"no new controller among {survivors} within 30s: {reported}"
    )
    assert failover_s < CONTROLLER_FAILOVER_LIMIT_S, (
        f"new controller after {failover_s:.2f}s (limit {CONTROLLER_FAILOVER_LIMIT_S}s)"
    )
    for node_id in survivors:
        assert cluster.describe(node_id)[0] == new_controller, f"DescribeCluster via {node_id}"

    # The dead node leaves the broker list once its session expires.
    cluster.wait_brokers(list(survivors), via=survivors, timeout_s=30.0)
    print(f"node {controller} fenced {time.monotonic() - killed:.1f}s after the kill")

    # All metadata created before is still there.
    metadata = cluster.admin(*survivors).list_topics(timeout=10)
    for topic, partitions in TOPICS.items():
        assert topic in metadata.topics, f"{topic} missing after the failover"
        assert len(metadata.topics[topic].partitions) == partitions, f"{topic} partitions"

    # A new topic created through one survivor lands on the live nodes and serves records.
    topic = "cluster-after-failover"
    leaders = create_topic(cluster, survivors[:1], topic, 4)
    assert set(leaders.values()) <= set(survivors), f"{topic} placed on a dead node: {leaders}"
    produced = generate(topic, count=400, partitions=4, seed=3)
    produce(cluster.bootstrap(*survivors), topic, produced)
    verify_consumed(
        produced, consume_assigned(cluster.bootstrap(*survivors), topic, list(range(4))), partitions=4
    )
    CONTENTS[topic] = produced

    # Partitions of an older topic that the killed node does not lead still work.
    topic = "cluster-spread"
    live = [p for p, leader in before[topic].items() if leader != controller]
    assert live, f"{topic}: every partition on node {controller}"
    produced = [
        r for r in generate(topic, count=600, partitions=PARTITIONS, seed=5) if r.partition in live
    ]
    produce(cluster.bootstrap(*survivors), topic, produced)
    consumed = consume_assigned(cluster.bootstrap(*survivors), topic, live)
    verify_consumed(produced, consumed, partitions=PARTITIONS)
    CONTENTS[topic] = produced
    print(f"while node {controller} was down: {len(produced)} records through partitions {live}")

    # The killed node comes back, leads its partitions again, its data intact.
    cluster.start(controller)
    cluster.wait_brokers(list(NODES), timeout_s=30.0)
    print(f"node {controller} listed again {time.monotonic() - killed:.1f}s after the kill")
    for old_topic, leaders in before.items():
        wait_leaders(cluster, NODES, old_topic, TOPICS[old_topic], lambda now, then=leaders: now == then)
        ends = end_offsets(cluster.bootstrap(), old_topic, TOPICS[old_topic])
        for p, leader in leaders.items():
            if leader == controller:
                assert ends[p] == ends_before[old_topic][p], (
                    f"{old_topic}[{p}] on node {controller}: end {ends[p]}, "
                    f"before {ends_before[old_topic][p]}"
                )


@with_logs
def test_whole_cluster_restart_keeps_topics_and_records(cluster):
    ends_before = {topic: end_offsets(cluster.bootstrap(), topic, n) for topic, n in TOPICS.items()}
    stopping = time.monotonic()
    cluster.stop_all()
    codes = {n: cluster.node(n).process.returncode for n in NODES}
    print(f"all nodes stopped in {time.monotonic() - stopping:.1f}s, exit codes {codes}")
    assert all(code == 0 for code in codes.values()), f"exit codes after SIGTERM: {codes}"

    starting = time.monotonic()
    cluster.start()
    cluster.wait_brokers(list(NODES))
    print(f"all nodes back in {time.monotonic() - starting:.1f}s")

    metadata = cluster.admin().list_topics(timeout=10)
    for topic, partitions in TOPICS.items():
        assert topic in metadata.topics, f"{topic} missing after the restart"
        wait_leaders(cluster, NODES, topic, partitions, lambda leaders: min(leaders.values()) >= 0)
        assert end_offsets(cluster.bootstrap(), topic, partitions) == ends_before[topic], topic

    topic = "cluster-confluent"
    produced = CONTENTS[topic]
    consumed = consume_group(cluster.bootstrap(1), topic, "cluster-group-after-restart", len(produced))
    verify_consumed(produced, consumed, partitions=PARTITIONS)
    print(f"{topic}: {len(consumed)} records read again by a fresh group")
    for topic, produced in CONTENTS.items():
        if topic == "cluster-confluent":
            continue
        partitions = sorted({r.partition for r in produced})
        consumed = consume_assigned(cluster.bootstrap(), topic, partitions)
        verify_consumed(produced, consumed, partitions=TOPICS[topic])
        print(f"{topic}: {len(consumed)} records read again")
