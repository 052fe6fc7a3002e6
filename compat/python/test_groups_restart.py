"""A broker restart keeps every group's committed offsets.

Groups of every kind commit offsets (with metadata): groups that only hold offsets
committed by an admin client, a classic group whose member read and committed
everything, a KIP-848 group likewise, and a deleted group. The broker is stopped
cleanly and started on the same data dir, then more offsets change and it is
SIGKILLed and started again (so the coordinator replays __consumer_offsets without a
clean shutdown). After each start every group's offsets are exactly as committed, the
deleted group stays deleted, and a member of the classic group resumes where it left.
"""

from __future__ import annotations

import time

from confluent_kafka import ConsumerGroupTopicPartitions, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

from broker import restart_broker
from group_scenarios import new_topic
from groups import (
    ALL_PARTITIONS,
    PARTITIONS,
    START_TIMEOUT_S,
    Fleet,
    assert_read_once_in_order,
    first_reads_after,
    produce,
    unique,
    wait_for_reads,
)

TIMEOUT_S = 60.0


def offsets_of(admin: AdminClient, group: str, topic: str) -> dict[int, tuple[int, str]]:
    request = ConsumerGroupTopicPartitions(group, [TopicPartition(topic, p) for p in range(PARTITIONS)])
    result = admin.list_consumer_group_offsets([request])[group].result(timeout=TIMEOUT_S)
    return {tp.partition: (tp.offset, tp.metadata or "") for tp in result.topic_partitions if tp.offset >= 0}


def commit(admin: AdminClient, group: str, topic: str, offsets: dict[int, tuple[int, str]]) -> None:
    request = ConsumerGroupTopicPartitions(
        group, [TopicPartition(topic, p, o, metadata=m) for p, (o, m) in offsets.items()]
    )
    result = admin.alter_consumer_group_offsets([request])[group].result(timeout=TIMEOUT_S)
    assert all(tp.error is None for tp in result.topic_partitions), result


def all_offsets_after_restart(bootstrap: str, groups: list[str], topic: str) -> dict:
    """Every group's offsets, retrying while the coordinator is still loading."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        try:
            return {g: offsets_of(admin, g, topic) for g in groups}
        except KafkaException as error:
            assert time.monotonic() < deadline, f"offsets unreadable after restart: {error}"
            time.sleep(0.5)


def test_restart_keeps_committed_offsets(group_broker, tmp_path):
    bootstrap = group_broker.bootstrap
    topic = new_topic(bootstrap, "groups-restart")
    first = produce(bootstrap, topic, "first", 120)
    admin = AdminClient({"bootstrap.servers": bootstrap})
    plain = {unique(f"plain-{i}"): {p: (i + p, f"m{i}-{p}") for p in range(PARTITIONS)} for i in range(8)}
    for group, offsets in plain.items():
        commit(admin, group, topic, offsets)
    deleted = unique("deleted")
    commit(admin, deleted, topic, {0: (5, "gone")})
    admin.delete_consumer_groups([deleted])[deleted].result(timeout=TIMEOUT_S)

    with Fleet(bootstrap, tmp_path) as fleet:
        classic, modern = unique("classic"), unique("modern")
        for name, group, protocol in (("c1", classic, "classic"), ("m1", modern, "consumer")):
            member = fleet.start("confluent", name, topic, group, protocol=protocol)
            wait_for_reads(fleet, [member], first, f"{name} reads every record")
            fleet.wait(
                lambda: member.last_committed() == {p: 20 for p in range(PARTITIONS)},
                f"{name} commits every record",
            )
            member.close()

        expected = {**plain, classic: {p: (20, "") for p in range(PARTITIONS)},
                    modern: {p: (20, "") for p in range(PARTITIONS)}, deleted: {}}
        groups = list(expected)
        assert all_offsets_after_restart(bootstrap, groups, topic) == expected

        restart_broker(group_broker)
        assert all_offsets_after_restart(bootstrap, groups, topic) == expected, "after a clean restart"

        # Changes after the clean start live only in the log the crashed broker replays.
        changed = next(iter(plain))
        expected[changed] = {p: (100 + p, f"changed-{p}") for p in range(PARTITIONS)}
        commit(AdminClient({"bootstrap.servers": bootstrap}), changed, topic, expected[changed])
        restart_broker(group_broker, kill=True)
        assert all_offsets_after_restart(bootstrap, groups, topic) == expected, "after SIGKILL and restart"

        admin = AdminClient({"bootstrap.servers": bootstrap})  # kept alive while its future runs
        listed = admin.list_consumer_groups().result(timeout=TIMEOUT_S)
        assert not listed.errors, listed.errors
        names = {g.group_id for g in listed.valid}
        assert set(plain) | {classic, modern} <= names and deleted not in names

        second = produce(bootstrap, topic, "second", 60, start=120)
        c2 = fleet.start("confluent", "c2", topic, classic)
        fleet.wait(lambda: c2.owned() == ALL_PARTITIONS, "c2 joins the classic group", START_TIMEOUT_S)
        wait_for_reads(fleet, [c2], second, "c2 reads the records produced after the restarts")
        assert_read_once_in_order(second, c2)
        assert {p: r.offset for p, r in first_reads_after([c2], 0).items()} == {p: 20 for p in range(PARTITIONS)}
        c2.close()
    group_broker.assert_alive()
