"""confluent-kafka (a current librdkafka) against runnel.

Per codec: create a 3-partition topic with the AdminClient, produce 10 000 keyed
records with headers and explicit timestamps, consume every partition from offset 0
by manual assignment (no consumer group: runnel has no group coordinator yet), list
offsets by time; then alter and describe topic configs.
"""

from __future__ import annotations

import time

import pytest
from confluent_kafka import (
    TIMESTAMP_CREATE_TIME,
    TIMESTAMP_LOG_APPEND_TIME,
    Consumer,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
    ResourceType,
)

from records import (
    CODECS,
    PARTITIONS,
    Record,
    generate,
    time_probes,
    unique_topic,
    verify_consumed,
)
from topics import create_topic

TIMEOUT_S = 60.0

# confluent-kafka numbers timestamp types from 1; Kafka's wire numbering starts at 0.
KAFKA_TIMESTAMP_TYPE = {TIMESTAMP_CREATE_TIME: 0, TIMESTAMP_LOG_APPEND_TIME: 1}


def admin_client(bootstrap: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap})


def produce(bootstrap: str, topic: str, codec: str, records: list[Record]) -> None:
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "compression.type": codec,
            "linger.ms": 5,
            "acks": "all",
        }
    )
    errors = []
    delivered = []

    def on_delivery(error, message):
        if error is not None:
            errors.append(str(error))
        else:
            delivered.append((message.partition(), message.offset()))

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
    assert len(delivered) == len(records)


def new_consumer(bootstrap: str) -> Consumer:
    # group.id is required by confluent-kafka's Consumer even for assign(); with
    # auto-commit and offset storing off, and explicit start offsets, no coordinator
    # request is needed to fetch.
    return Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "compat-unused-group",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "enable.partition.eof": False,
            "auto.offset.reset": "error",
        }
    )


def consume_all(bootstrap: str, topic: str, partitions: int = PARTITIONS) -> list[Record]:
    consumer = new_consumer(bootstrap)
    try:
        ends = {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in range(partitions)
        }
        consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        counts = {p: 0 for p in range(partitions)}
        records = []
        deadline = time.monotonic() + TIMEOUT_S
        while any(counts[p] < ends[p] for p in counts):
            assert time.monotonic() < deadline, f"consumed {counts}, expected {ends}"
            for message in consumer.consume(num_messages=1000, timeout=1.0):
                if message.error() is not None:
                    raise KafkaException(message.error())
                timestamp_type, timestamp = message.timestamp()
                records.append(
                    Record(
                        key=message.key(),
                        value=message.value(),
                        headers=tuple(message.headers() or ()),
                        timestamp=timestamp,
                        partition=message.partition(),
                        offset=message.offset(),
                        timestamp_type=KAFKA_TIMESTAMP_TYPE.get(timestamp_type, -1),
                    )
                )
                counts[message.partition()] += 1
        return records
    finally:
        consumer.close()


@pytest.mark.parametrize("codec", CODECS)
def test_produce_consume_list_offsets(broker, codec):
    topic = unique_topic("confluent", codec)
    create_topic(broker.bootstrap, topic)
    produced = generate(topic)
    produce(broker.bootstrap, topic, codec, produced)

    per_partition = verify_consumed(produced, consume_all(broker.bootstrap, topic))

    consumer = new_consumer(broker.bootstrap)
    try:
        for partition, records in per_partition.items():
            low, high = consumer.get_watermark_offsets(
                TopicPartition(topic, partition), timeout=10, cached=False
            )
            assert (low, high) == (0, len(records)), f"watermarks of partition {partition}"
        # One partition per request: a ListOffsets request names each partition once.
        for partition, target, expected in time_probes(per_partition):
            (answer,) = consumer.offsets_for_times(
                [TopicPartition(topic, partition, target)], timeout=10
            )
            assert answer.error is None, f"p{partition} ts {target}: {answer.error}"
            assert (answer.partition, answer.offset) == (partition, expected), (
                f"offset for time {target} in partition {partition}"
            )
    finally:
        consumer.close()
    broker.assert_alive()


def describe(admin: AdminClient, resource: ConfigResource) -> dict[str, ConfigEntry]:
    return admin.describe_configs([resource])[resource].result(timeout=TIMEOUT_S)


def test_alter_and_describe_topic_config(broker):
    topic = unique_topic("confluent", "config")
    create_topic(broker.bootstrap, topic)
    admin = admin_client(broker.bootstrap)

    before = describe(admin, ConfigResource(ResourceType.TOPIC, topic))
    segment_bytes = before["segment.bytes"]
    assert segment_bytes.value == "1073741824"
    assert segment_bytes.source == ConfigSource.DEFAULT_CONFIG.value, segment_bytes
    assert segment_bytes.is_default

    alter = ConfigResource(
        ResourceType.TOPIC,
        topic,
        incremental_configs=[
            ConfigEntry("retention.ms", "3600000", incremental_operation=AlterConfigOpType.SET)
        ],
    )
    admin.incremental_alter_configs([alter])[alter].result(timeout=TIMEOUT_S)

    after = describe(admin, ConfigResource(ResourceType.TOPIC, topic))
    retention = after["retention.ms"]
    assert retention.value == "3600000"
    assert retention.source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value, retention
    assert not retention.is_default
    assert after["segment.bytes"].value == "1073741824"
    broker.assert_alive()
