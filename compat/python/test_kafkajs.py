"""kafkajs (a pure-JavaScript client) against runnel.

compat/js/driver.js moves records between files and the broker; the records are
generated and verified here. kafkajs's consumer always joins a group, which runnel
cannot serve yet, so the driver fetches through kafkajs's own Cluster/Broker protocol
layer instead (see the comment at the top of driver.js). kafkajs has no
IncrementalAlterConfigs: configs are altered with AlterConfigs.

scripts/test-all.sh runs `npm ci` in compat/js first.
"""

from __future__ import annotations

import pytest

from kafkajs_driver import driver, parse_batches
from records import (
    CODECS,
    PARTITIONS,
    generate,
    read_records,
    time_probes,
    unique_topic,
    verify_consumed,
    write_records,
)

# DescribeConfigs config_source values (KIP-226).
SOURCE_DYNAMIC_TOPIC = "1"
SOURCE_DEFAULT = "5"


@pytest.mark.parametrize("codec", CODECS)
def test_produce_consume_list_offsets(broker, codec, tmp_path):
    topic = unique_topic("kafkajs", codec)
    assert driver("create", broker.bootstrap, topic, str(PARTITIONS)) == [f"created {topic}"]
    produced = generate(topic)
    write_records(tmp_path / "in.tsv", produced)

    lines = driver(
        "produce", broker.bootstrap, topic, codec, str(tmp_path / "in.tsv"), str(tmp_path / "acked.tsv")
    )
    assert lines[-1] == f"produced {len(produced)}"

    lines = driver("consume", broker.bootstrap, topic, str(PARTITIONS), str(tmp_path / "out.tsv"))
    assert lines[-1] == f"consumed {len(produced)}"
    per_partition = verify_consumed(produced, read_records(tmp_path / "out.tsv"))
    # kafkajs's producer is not idempotent here: its batches carry producer id -1, and
    # the broker stores them as they came.
    batches = parse_batches(lines)
    assert batches and all(b.producer_id == -1 for b in batches), batches[:5]

    probes = time_probes(per_partition)
    targets = sorted({str(target) for _, target, _ in probes})
    answers = {}
    for line in driver("offsets", broker.bootstrap, topic, "earliest", "latest", *targets):
        _, partition, spec, offset = line.split()
        answers[(int(partition), spec)] = int(offset)
    for partition, records in per_partition.items():
        assert answers[(partition, "earliest")] == 0
        assert answers[(partition, "latest")] == len(records)
    for partition, target, expected in probes:
        # kafkajs's fetchTopicOffsetsByTimestamp answers the high watermark where the
        # broker answers -1 (no record at or after the timestamp).
        if expected == -1:
            expected = len(per_partition[partition])
        assert answers[(partition, str(target))] == expected, (
            f"offset for time {target} in partition {partition}"
        )
    broker.assert_alive()


def describe(broker, topic: str) -> list[str]:
    return driver("describe", broker.bootstrap, topic, "segment.bytes", "retention.ms")


def test_alter_and_describe_topic_config(broker):
    topic = unique_topic("kafkajs", "config")
    driver("create", broker.bootstrap, topic, str(PARTITIONS))
    before = describe(broker, topic)
    assert f"config segment.bytes 1073741824 {SOURCE_DEFAULT}" in before, before

    assert driver("alter", broker.bootstrap, topic, "retention.ms=1800000") == ["altered 1"]
    after = describe(broker, topic)
    assert f"config retention.ms 1800000 {SOURCE_DYNAMIC_TOPIC}" in after, after
    assert f"config segment.bytes 1073741824 {SOURCE_DEFAULT}" in after, after
    broker.assert_alive()
