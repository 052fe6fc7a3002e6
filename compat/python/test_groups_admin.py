"""Consumer-group administration with each client's admin API.

For every client: a live group (two members of that client, each its own process) and
an empty group that only holds committed offsets; then list groups (with a state
filter where the client has one), describe them (state, members, their client ids and
assignments), list and alter committed offsets (metadata included), delete groups
(NON_EMPTY_GROUP while members remain), and commit to an unknown topic and to a
partition past the topic's end (UNKNOWN_TOPIC_OR_PARTITION, as Kafka answers). The
Java Admin also deletes offsets (OffsetDelete), which no other client here offers;
confluent-kafka and Java also describe a KIP-848 (`group.protocol=consumer`) group.
"""

from __future__ import annotations

import time

import pytest
from confluent_kafka import (
    ConsumerGroupState,
    ConsumerGroupTopicPartitions,
    ConsumerGroupType,
    KafkaError,
    KafkaException,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient
from kafka import KafkaConsumer
from kafka import TopicPartition as KpTopicPartition
from kafka.admin import KafkaAdminClient
from kafka.structs import OffsetAndMetadata

from group_scenarios import new_topic
from groups import (
    PARTITIONS,
    START_TIMEOUT_S,
    Fleet,
    produce,
    run_java,
    unique,
    wait_for_split,
)
from kafkajs_driver import driver as run_kafkajs

TIMEOUT_S = 60.0
RECORDS = 60  # ten per partition: a live group's members commit offset 10 everywhere
STRATEGY = {"confluent": "range", "kafka-python": "range", "kafkajs": "roundrobin", "java": "range"}


def live_group(fleet: Fleet, client: str, topic: str, protocol: str = "classic"):
    """Two members of `client` in a new group that have read and committed every record."""
    group = unique(f"live-{protocol}")
    members = [
        fleet.start(client, name, topic, group, protocol=protocol, strategy=STRATEGY[client])
        for name in ("a", "b")
    ]
    split = wait_for_split(fleet, members, f"{group}: a and b split the topic", START_TIMEOUT_S)
    fleet.wait(
        lambda: sum(len(m.reads()) for m in members) >= RECORDS
        and {p: o for m in members for p, o in m.last_committed().items()}
        == {p: RECORDS // PARTITIONS for p in range(PARTITIONS)},
        f"{group}: a and b read and commit every record",
    )
    return group, members, split


def wait_until(check, what: str, timeout: float = TIMEOUT_S):
    """Poll an admin view until it shows what is expected (group state changes are async)."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


# ---------------------------------------------------------------------------------
# confluent-kafka


def confluent_alter_error(admin: AdminClient, group: str, tp: TopicPartition):
    """The error code the broker gave for one committed offset, None when accepted."""
    future = admin.alter_consumer_group_offsets([ConsumerGroupTopicPartitions(group, [tp])])[group]
    try:
        result = future.result(timeout=TIMEOUT_S)
    except KafkaException as error:
        return error.args[0].code()
    errors = [t.error.code() for t in result.topic_partitions if t.error is not None]
    return errors[0] if errors else None


def confluent_offsets(admin: AdminClient, group: str, topic: str) -> dict[int, tuple[int, str]]:
    request = ConsumerGroupTopicPartitions(group, [TopicPartition(topic, p) for p in range(PARTITIONS)])
    result = admin.list_consumer_group_offsets([request])[group].result(timeout=TIMEOUT_S)
    return {
        tp.partition: (tp.offset, tp.metadata or "")
        for tp in result.topic_partitions
        if tp.offset >= 0
    }


def confluent_listed(admin: AdminClient, **filters) -> dict:
    result = admin.list_consumer_groups(request_timeout=TIMEOUT_S, **filters).result(timeout=TIMEOUT_S)
    assert not result.errors, result.errors
    return {g.group_id: g for g in result.valid}


def test_confluent_admin(group_broker, tmp_path):
    bootstrap = group_broker.bootstrap
    topic = new_topic(bootstrap, "groups-admin-confluent")
    produce(bootstrap, topic, "admin", RECORDS)
    admin = AdminClient({"bootstrap.servers": bootstrap})
    with Fleet(bootstrap, tmp_path) as fleet:
        live, members, split = live_group(fleet, "confluent", topic)
        modern, modern_members, modern_split = live_group(fleet, "confluent", topic, "consumer")
        empty, doomed = unique("empty"), unique("doomed")

        wanted = {p: (3 + p, f"meta-{p}") for p in range(PARTITIONS)}
        offsets = [TopicPartition(topic, p, o, metadata=m) for p, (o, m) in wanted.items()]
        result = admin.alter_consumer_group_offsets([ConsumerGroupTopicPartitions(empty, offsets)])
        assert all(tp.error is None for tp in result[empty].result(timeout=TIMEOUT_S).topic_partitions)
        assert confluent_alter_error(admin, doomed, TopicPartition(topic, 0, 1)) is None

        unknown_topic = TopicPartition(unique("no-such-topic"), 0, 5)
        past_the_end = TopicPartition(topic, PARTITIONS + 3, 5)
        for tp in (unknown_topic, past_the_end):
            assert confluent_alter_error(admin, empty, tp) == KafkaError.UNKNOWN_TOPIC_OR_PART, tp
        # A commit outside any generation is refused while the group has members.
        assert confluent_alter_error(admin, live, TopicPartition(topic, 0, 1)) == KafkaError.UNKNOWN_MEMBER_ID

        listed = confluent_listed(admin)
        assert listed[live].state == ConsumerGroupState.STABLE, listed[live]
        assert listed[modern].state == ConsumerGroupState.STABLE, listed[modern]
        assert listed[empty].state == ConsumerGroupState.EMPTY, listed[empty]
        assert listed[live].type == ConsumerGroupType.CLASSIC, listed[live]
        assert listed[modern].type == ConsumerGroupType.CONSUMER, listed[modern]
        stable = confluent_listed(admin, states={ConsumerGroupState.STABLE})
        assert {live, modern} <= set(stable) and empty not in stable
        empties = confluent_listed(admin, states={ConsumerGroupState.EMPTY})
        assert empty in empties and doomed in empties and live not in empties
        consumer_type = confluent_listed(admin, types={ConsumerGroupType.CONSUMER})
        assert modern in consumer_type and live not in consumer_type

        described = admin.describe_consumer_groups([live, modern, empty], request_timeout=TIMEOUT_S)
        for group, expected_split, assignor in ((live, split, "range"), (modern, modern_split, "uniform")):
            d = described[group].result(timeout=TIMEOUT_S)
            assert d.state == ConsumerGroupState.STABLE, d
            assert d.partition_assignor == assignor, d.partition_assignor
            assignments = {
                m.client_id: frozenset(tp.partition for tp in m.assignment.topic_partitions)
                for m in d.members
            }
            assert assignments == expected_split, (group, assignments)
        d = described[empty].result(timeout=TIMEOUT_S)
        assert d.state == ConsumerGroupState.EMPTY and not d.members, d

        assert confluent_offsets(admin, empty, topic) == wanted
        assert confluent_offsets(admin, live, topic) == {p: (10, "") for p in range(PARTITIONS)}

        futures = admin.delete_consumer_groups([live, doomed, unique("never-existed")], request_timeout=TIMEOUT_S)
        futures[doomed].result(timeout=TIMEOUT_S)
        outcomes = {}
        for group, future in futures.items():
            if group == doomed:
                continue
            with pytest.raises(KafkaException) as raised:
                future.result(timeout=TIMEOUT_S)
            outcomes[group] = raised.value.args[0].code()
        assert outcomes[live] == KafkaError.NON_EMPTY_GROUP, outcomes
        assert set(outcomes.values()) == {KafkaError.NON_EMPTY_GROUP, KafkaError.GROUP_ID_NOT_FOUND}
        assert doomed not in confluent_listed(admin)
        assert confluent_offsets(admin, doomed, topic) == {}

        for m in members + modern_members:
            m.close()
        wait_until(
            lambda: confluent_listed(admin).get(live)
            and confluent_listed(admin)[live].state == ConsumerGroupState.EMPTY,
            f"{live} becomes Empty once its members left",
        )
        admin.delete_consumer_groups([live], request_timeout=TIMEOUT_S)[live].result(timeout=TIMEOUT_S)
        assert live not in confluent_listed(admin)
    group_broker.assert_alive()


# ---------------------------------------------------------------------------------
# kafka-python


def kafka_python_commit_error(consumer: KafkaConsumer, tp: KpTopicPartition) -> str | None:
    """The error one commit got back, by name.

    kafka-python's synchronous commit retries UNKNOWN_TOPIC_OR_PARTITION (it deems it
    retriable) until its timeout and then reports only the timeout, so the asynchronous
    commit, which hands over the broker's answer, is driven here through the client.
    """
    future = consumer.commit_async({tp: OffsetAndMetadata(5, "", -1)})
    consumer._client.poll(future=future, timeout_ms=int(TIMEOUT_S * 1000))
    assert future.is_done, f"no answer to the commit of {tp}"
    return None if future.succeeded() else type(future.exception).__name__


def test_kafka_python_admin(group_broker, tmp_path):
    bootstrap = group_broker.bootstrap
    topic = new_topic(bootstrap, "groups-admin-kafka-python")
    produce(bootstrap, topic, "admin", RECORDS)
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="admin")
    with Fleet(bootstrap, tmp_path) as fleet:
        live, members, split = live_group(fleet, "kafka-python", topic)
        empty, doomed = unique("empty"), unique("doomed")
        wanted = {p: (3 + p, f"meta-{p}") for p in range(PARTITIONS)}
        for group, offsets in ((empty, wanted), (doomed, {0: (1, "")})):
            # kafka-python's admin cannot commit; a consumer outside any generation can.
            consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
            try:
                consumer.commit(
                    {KpTopicPartition(topic, p): OffsetAndMetadata(o, m, -1) for p, (o, m) in offsets.items()}
                )
                for tp in (KpTopicPartition(unique("no-such-topic"), 0), KpTopicPartition(topic, PARTITIONS + 3)):
                    assert kafka_python_commit_error(consumer, tp) == "UnknownTopicOrPartitionError"

            finally:
                consumer.close()

        listed = dict(admin.list_consumer_groups())
        assert listed[live] == "consumer", listed.get(live)
        assert empty in listed and doomed in listed

        got = admin.list_consumer_group_offsets(empty)
        assert {tp.partition: (om.offset, om.metadata) for tp, om in got.items() if tp.topic == topic} == wanted
        got = admin.list_consumer_group_offsets(live)
        assert {tp.partition: om.offset for tp, om in got.items()} == {p: 10 for p in range(PARTITIONS)}

        outcomes = dict(admin.delete_consumer_groups([live, doomed]))
        # kafka-python reports each group's error as the error class.
        assert outcomes[live].__name__ == "NonEmptyGroupError", outcomes
        assert outcomes[doomed].errno == 0, outcomes
        assert doomed not in dict(admin.list_consumer_groups())
        assert not admin.list_consumer_group_offsets(doomed)
        try:
            described = admin.describe_consumer_groups([live, empty])
        except ValueError as error:
            # kafka-python asks for authorized operations (DescribeGroups v3) and decodes
            # the bits; Kafka without an authorizer answers the group's operations (READ,
            # DESCRIBE, DELETE), never the "not requested" INT32_MIN.
            raise AssertionError(f"DescribeGroups v3 authorized_operations undecodable: {error}")
        by_id = {g.group: g for g in described}
        d = by_id[live]
        assert (d.state, d.protocol_type, d.protocol) == ("Stable", "consumer", "range"), d
        assignments = {
            m.client_id: frozenset(p for t, ps in m.member_assignment.assignment if t == topic for p in ps)
            for m in d.members
        }
        assert assignments == split, assignments
        assert by_id[empty].state == "Empty" and not by_id[empty].members, by_id[empty]

        for m in members:
            m.close()
    admin.close()
    group_broker.assert_alive()


# ---------------------------------------------------------------------------------
# kafkajs


def test_kafkajs_admin(group_broker, tmp_path):
    bootstrap = group_broker.bootstrap
    topic = new_topic(bootstrap, "groups-admin-kafkajs")
    produce(bootstrap, topic, "admin", RECORDS)
    with Fleet(bootstrap, tmp_path) as fleet:
        live, members, split = live_group(fleet, "kafkajs", topic)
        empty, doomed = unique("empty"), unique("doomed")

        # admin.setOffsets joins the group itself, so it needs the group empty: it
        # creates `empty`'s offsets, and is refused for the live group.
        wanted = {p: 3 + p for p in range(PARTITIONS)}
        items = [f"{p}:{o}" for p, o in wanted.items()]
        assert run_kafkajs("groups-set-offsets", bootstrap, empty, topic, *items) == ["set OK"]
        assert run_kafkajs("groups-set-offsets", bootstrap, doomed, topic, "0:1") == ["set OK"]
        refused = run_kafkajs("groups-set-offsets", bootstrap, live, topic, "0:1")
        assert refused != ["set OK"], refused
        lines = run_kafkajs(
            "groups-commit", bootstrap, empty, unique("no-such-topic"), "0:5"
        ) + run_kafkajs("groups-commit", bootstrap, empty, topic, f"{PARTITIONS + 3}:5")
        assert lines == ["committed 0 UNKNOWN_TOPIC_OR_PARTITION", f"committed {PARTITIONS + 3} UNKNOWN_TOPIC_OR_PARTITION"]
        assert run_kafkajs("groups-commit", bootstrap, live, topic, "0:1") == ["committed 0 UNKNOWN_MEMBER_ID"]

        listed = dict(line.split()[1:3] for line in run_kafkajs("groups-list", bootstrap))
        assert listed[live] == "consumer", listed.get(live)
        assert empty in listed and doomed in listed

        described = run_kafkajs("groups-describe", bootstrap, live, empty)
        groups = {line.split()[1]: line.split()[2:] for line in described if line.startswith("group ")}
        assert groups[live] == ["Stable", "consumer", "RoundRobinAssigner", "2"], described
        assert groups[empty][0] == "Empty" and groups[empty][-1] == "0", described
        assignments = {
            fields[3]: frozenset(int(p) for p in fields[4].split(","))
            for fields in (line.split() for line in described if line.startswith(f"member {live} "))
        }
        assert assignments == split, described

        offsets = {
            int(f[1]): int(f[2])
            for f in (line.split() for line in run_kafkajs("groups-offsets", bootstrap, empty, topic))
        }
        assert offsets == wanted
        offsets = {
            int(f[1]): int(f[2])
            for f in (line.split() for line in run_kafkajs("groups-offsets", bootstrap, live, topic))
        }
        assert offsets == {p: 10 for p in range(PARTITIONS)}

        assert run_kafkajs("groups-delete", bootstrap, live, doomed) == [
            f"deleted {live} NON_EMPTY_GROUP",
            f"deleted {doomed} OK",
        ]
        listed = dict(line.split()[1:3] for line in run_kafkajs("groups-list", bootstrap))
        assert doomed not in listed
        for m in members:
            m.close()
    group_broker.assert_alive()


# ---------------------------------------------------------------------------------
# Java Admin


def java_offsets(bootstrap: str, group: str) -> dict[int, tuple[int, str]]:
    return {
        int(f[2]): (int(f[3]), "" if f[4] == "-" else f[4])
        for f in (line.split() for line in run_java("offsets", bootstrap, group))
    }


def java_listed(bootstrap: str, *states: str) -> dict[str, tuple[str, str]]:
    return {f[1]: (f[2], f[3]) for f in (line.split() for line in run_java("list", bootstrap, *states))}


def test_java_admin(group_broker, tmp_path):
    bootstrap = group_broker.bootstrap
    topic = new_topic(bootstrap, "groups-admin-java")
    produce(bootstrap, topic, "admin", RECORDS)
    with Fleet(bootstrap, tmp_path) as fleet:
        live, members, split = live_group(fleet, "java", topic)
        modern, modern_members, modern_split = live_group(fleet, "java", topic, "consumer")
        empty, doomed = unique("empty"), unique("doomed")

        wanted = {p: (3 + p, f"meta-{p}") for p in range(PARTITIONS)}
        altered = run_java("alter", bootstrap, empty, topic, *(f"{p}:{o}:{m}" for p, (o, m) in wanted.items()))
        assert altered == [f"altered {p} OK" for p in range(PARTITIONS)]
        assert run_java("alter", bootstrap, doomed, topic, "0:1") == ["altered 0 OK"]
        assert run_java("alter", bootstrap, empty, unique("no-such-topic"), "0:5") == [
            "altered 0 UnknownTopicOrPartitionException"
        ]
        assert run_java("alter", bootstrap, empty, topic, f"{PARTITIONS + 3}:5") == [
            f"altered {PARTITIONS + 3} UnknownTopicOrPartitionException"
        ]
        assert run_java("alter", bootstrap, live, topic, "0:1") == ["altered 0 UnknownMemberIdException"]

        listed = java_listed(bootstrap)
        assert listed[live] == ("STABLE", "CLASSIC"), listed.get(live)
        assert listed[modern] == ("STABLE", "CONSUMER"), listed.get(modern)
        assert listed[empty][0] == "EMPTY", listed.get(empty)
        stable = java_listed(bootstrap, "Stable")
        assert {live, modern} <= set(stable) and empty not in stable
        empties = java_listed(bootstrap, "Empty")
        assert empty in empties and live not in empties

        described = run_java("describe", bootstrap, live, modern, empty)
        groups = {f[1]: f[2:] for f in (line.split() for line in described if line.startswith("group "))}
        assert groups[live] == ["STABLE", "CLASSIC", "range", "2"], described
        assert groups[modern] == ["STABLE", "CONSUMER", "uniform", "2"], described
        assert groups[empty][0] == "EMPTY" and groups[empty][-1] == "0", described
        members_by_group: dict[str, dict[str, frozenset[int]]] = {live: {}, modern: {}}
        current = None
        for line in described:
            fields = line.split()
            if fields[0] == "group":
                current = fields[1]
            elif fields[0] == "member" and current in members_by_group:
                members_by_group[current][fields[2]] = frozenset(int(p) for p in fields[4].split(","))
        assert members_by_group[live] == split, described
        assert members_by_group[modern] == modern_split, described

        assert java_offsets(bootstrap, empty) == wanted
        assert java_offsets(bootstrap, live) == {p: (10, "") for p in range(PARTITIONS)}

        # OffsetDelete: fine for an empty group; refused for a topic a live group consumes.
        assert run_java("delete-offsets", bootstrap, empty, topic, "0", "1") == [
            "deleted-offset 0 OK",
            "deleted-offset 1 OK",
        ]
        assert java_offsets(bootstrap, empty) == {p: wanted[p] for p in range(2, PARTITIONS)}
        assert run_java("delete-offsets", bootstrap, live, topic, "0") == [
            "deleted-offset 0 GroupSubscribedToTopicException"
        ]
        assert run_java("delete-offsets", bootstrap, empty, unique("no-such-topic"), "0") == [
            "deleted-offset 0 UnknownTopicOrPartitionException"
        ]

        never = unique("never-existed")
        assert run_java("delete", bootstrap, live, doomed, never) == [
            f"deleted {live} GroupNotEmptyException",
            f"deleted {doomed} OK",
            f"deleted {never} GroupIdNotFoundException",
        ]
        assert doomed not in java_listed(bootstrap)
        assert java_offsets(bootstrap, doomed) == {}
        for m in members + modern_members:
            m.close()
        wait_until(
            lambda: set(java_listed(bootstrap, "Empty")) >= {live, modern},
            "both live groups become Empty once their members left",
        )
    group_broker.assert_alive()
