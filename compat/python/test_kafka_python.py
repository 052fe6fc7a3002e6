"""kafka-python (a pure-Python client) against runnel.

Per codec: create a 3-partition topic with KafkaAdminClient, produce 10 000 keyed
records with headers and explicit timestamps, consume every partition from offset 0
(group_id=None: assign + seek, no coordinator), list offsets by time; then alter
(AlterConfigs: kafka-python 2.x has no IncrementalAlterConfigs) and describe topic
configs.
"""

from __future__ import annotations

import time

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient, NewTopic

from records import (
    CODECS,
    PARTITIONS,
    Record,
    generate,
    time_probes,
    unique_topic,
    verify_consumed,
)

TIMEOUT_S = 60.0
# DescribeConfigs config_source values (KIP-226).
SOURCE_DYNAMIC_TOPIC = 1
SOURCE_DEFAULT = 5


def admin_client(bootstrap: str) -> KafkaAdminClient:
    return KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30_000)


def create_topic(bootstrap: str, topic: str, partitions: int = PARTITIONS) -> None:
    admin = admin_client(bootstrap)
    try:
        response = admin.create_topics(
            [NewTopic(topic, num_partitions=partitions, replication_factor=1)],
            timeout_ms=30_000,
        )
        errors = [(t[0], t[1]) for t in response.topic_errors if t[1] != 0]
        assert not errors, f"CreateTopics errors: {response.topic_errors}"
    finally:
        admin.close()


def new_consumer(bootstrap: str) -> KafkaConsumer:
    return KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="none",
        request_timeout_ms=30_000,
    )


def produce(bootstrap: str, topic: str, codec: str, records: list[Record]) -> None:
    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        compression_type=None if codec == "none" else codec,
        acks="all",
        linger_ms=5,
    )
    try:
        futures = [
            producer.send(
                topic,
                value=record.value,
                key=record.key,
                headers=list(record.headers),
                partition=record.partition,
                timestamp_ms=record.timestamp,
            )
            for record in records
        ]
        producer.flush(timeout=TIMEOUT_S)
        for record, future in zip(records, futures):
            metadata = future.get(timeout=TIMEOUT_S)
            assert metadata.partition == record.partition
    finally:
        producer.close(timeout=10)


def consume_all(bootstrap: str, topic: str, partitions: int = PARTITIONS) -> list[Record]:
    consumer = new_consumer(bootstrap)
    try:
        assignment = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(assignment)
        for tp in assignment:
            consumer.seek(tp, 0)
        ends = consumer.end_offsets(assignment)
        counts = {tp: 0 for tp in assignment}
        records = []
        deadline = time.monotonic() + TIMEOUT_S
        while any(counts[tp] < ends[tp] for tp in assignment):
            assert time.monotonic() < deadline, f"consumed {counts}, expected {ends}"
            for tp, messages in consumer.poll(timeout_ms=1000, max_records=2000).items():
                for m in messages:
                    records.append(
                        Record(
                            key=m.key,
                            value=m.value,
                            headers=tuple((name, value) for name, value in m.headers),
                            timestamp=m.timestamp,
                            partition=m.partition,
                            offset=m.offset,
                            timestamp_type=m.timestamp_type,
                        )
                    )
                counts[tp] += len(messages)
        return records
    finally:
        consumer.close(autocommit=False)


@pytest.mark.parametrize("codec", CODECS)
def test_produce_consume_list_offsets(broker, codec):
    topic = unique_topic("kafka-python", codec)
    create_topic(broker.bootstrap, topic)
    produced = generate(topic)
    produce(broker.bootstrap, topic, codec, produced)

    per_partition = verify_consumed(produced, consume_all(broker.bootstrap, topic))

    consumer = new_consumer(broker.bootstrap)
    try:
        assignment = [TopicPartition(topic, p) for p in per_partition]
        assert consumer.beginning_offsets(assignment) == {tp: 0 for tp in assignment}
        assert consumer.end_offsets(assignment) == {
            tp: len(per_partition[tp.partition]) for tp in assignment
        }
        for partition, target, expected in time_probes(per_partition):
            tp = TopicPartition(topic, partition)
            answer = consumer.offsets_for_times({tp: target})[tp]
            found = -1 if answer is None else answer.offset
            assert found == expected, f"offset for time {target} in partition {partition}"
    finally:
        consumer.close(autocommit=False)
    broker.assert_alive()


def describe_topic(admin: KafkaAdminClient, topic: str) -> dict[str, tuple[str, int]]:
    """{config name: (value, source)} from DescribeConfigs."""
    responses = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    assert len(responses) == 1
    (resource,) = responses[0].resources
    error_code, error_message, _type, name, entries = resource[:5]
    assert error_code == 0, f"DescribeConfigs {name}: {error_code} {error_message}"
    # v1+ entries: (name, value, read_only, config_source, is_sensitive, synonyms)
    return {entry[0]: (entry[1], entry[3]) for entry in entries}


def test_alter_and_describe_topic_config(broker):
    topic = unique_topic("kafka-python", "config")
    create_topic(broker.bootstrap, topic)
    admin = admin_client(broker.bootstrap)
    try:
        before = describe_topic(admin, topic)
        assert before["segment.bytes"] == ("1073741824", SOURCE_DEFAULT)

        response = admin.alter_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic, configs={"retention.ms": "7200000"})]
        )
        for resource in response.resources:
            assert resource[0] == 0, f"AlterConfigs: {resource}"

        after = describe_topic(admin, topic)
        assert after["retention.ms"] == ("7200000", SOURCE_DYNAMIC_TOPIC)
        assert after["segment.bytes"] == ("1073741824", SOURCE_DEFAULT)
    finally:
        admin.close()
    broker.assert_alive()
