"""Apache Kafka's Java client (kafka-clients 3.9.1) against runnel.

compat/java/src/CompatDriver.java moves records between files and the broker; the
records are generated and verified here. The producer runs with the client's default
settings (idempotence on, acks=all) besides compression and serializers; the consumer
has no group.id (assign + seek); the AdminClient creates the topic, lists offsets and
alters (IncrementalAlterConfigs) and describes configs.

scripts/test-all.sh fetches the jars into compat/java/lib and compiles the driver into
compat/java/classes.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from kafkajs_driver import record_batches
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

JAVA_DIR = Path(__file__).resolve().parent.parent / "java"
TIMEOUT_S = 180


def driver(*args: str) -> list[str]:
    """Run the driver; assert exit 0 and return its stdout lines."""
    classes = JAVA_DIR / "classes"
    assert (classes / "CompatDriver.class").exists(), (
        "compat/java/classes/CompatDriver.class is missing: run scripts/test-all.sh"
    )
    classpath = os.pathsep.join([str(classes), str(JAVA_DIR / "lib" / "*")])
    result = subprocess.run(
        ["java", "-cp", classpath, "CompatDriver", *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    assert result.returncode == 0, (
        f"CompatDriver {args[0]} exited {result.returncode}:\n{result.stdout[-2000:]}\n"
        f"{result.stderr[-4000:]}"
    )
    return result.stdout.splitlines()


def list_offsets(bootstrap: str, topic: str, specs: list[tuple[int, str]]) -> dict:
    lines = driver("offsets", bootstrap, topic, *(f"{p}:{s}" for p, s in specs))
    answers = {}
    for line in lines:
        if line.startswith("offset "):
            _, partition, spec, offset = line.split()
            answers[(int(partition), spec)] = int(offset)
    return answers


@pytest.mark.parametrize("codec", CODECS)
def test_produce_consume_list_offsets(broker, codec, tmp_path):
    topic = unique_topic("java", codec)
    assert driver("create", broker.bootstrap, topic, str(PARTITIONS)) == [f"created {topic}"]
    produced = generate(topic)
    write_records(tmp_path / "in.tsv", produced)

    lines = driver(
        "produce", broker.bootstrap, topic, codec, str(tmp_path / "in.tsv"), str(tmp_path / "acked.tsv")
    )
    assert lines[-1] == f"produced {len(produced)}"
    acked = read_records(tmp_path / "acked.tsv")
    assert [(r.partition, r.key) for r in acked] == [(r.partition, r.key) for r in produced]
    assert all(r.offset >= 0 for r in acked)

    lines = driver("consume", broker.bootstrap, topic, str(PARTITIONS), str(tmp_path / "out.tsv"))
    assert lines[-1] == f"consumed {len(produced)}"
    per_partition = verify_consumed(produced, read_records(tmp_path / "out.tsv"))
    # The offsets acknowledged to the producer are where the records were found.
    found = {r.key: r.offset for records in per_partition.values() for r in records}
    assert all(found[r.key] == r.offset for r in acked), "acknowledged offsets differ from stored"

    # Idempotence is on by default: every stored batch carries the producer id the
    # broker handed out (InitProducerId), and per partition the base sequence of each
    # batch equals its base offset (one producer session, both counted from 0).
    # kafkajs decodes the batch headers, which the Java consumer does not expose.
    batches = record_batches(broker.bootstrap, topic, PARTITIONS, tmp_path / "batches.tsv")
    assert batches, "no record batches fetched"
    assert len({b.producer_id for b in batches}) == 1 and batches[0].producer_id >= 0, batches[:5]
    assert all(b.producer_epoch >= 0 for b in batches), batches[:5]
    assert all(b.base_sequence == b.base_offset for b in batches), [
        b for b in batches if b.base_sequence != b.base_offset
    ][:5]

    specs = [(p, s) for p in range(PARTITIONS) for s in ("earliest", "latest")]
    probes = time_probes(per_partition)
    specs += [(p, str(target)) for p, target, _ in probes]
    answers = list_offsets(broker.bootstrap, topic, specs)
    for partition, records in per_partition.items():
        assert answers[(partition, "earliest")] == 0
        assert answers[(partition, "latest")] == len(records)
    for partition, target, expected in probes:
        assert answers[(partition, str(target))] == expected, (
            f"offset for time {target} in partition {partition}"
        )
    broker.assert_alive()


def test_alter_and_describe_topic_config(broker):
    topic = unique_topic("java", "config")
    driver("create", broker.bootstrap, topic, str(PARTITIONS))
    names = ("segment.bytes", "retention.ms")
    before = driver("describe", broker.bootstrap, topic, *names)
    assert "config segment.bytes 1073741824 DEFAULT_CONFIG" in before, before

    assert driver("alter", broker.bootstrap, topic, "retention.ms=5400000") == ["altered 1"]
    after = driver("describe", broker.bootstrap, topic, *names)
    assert "config retention.ms 5400000 DYNAMIC_TOPIC_CONFIG" in after, after
    assert "config segment.bytes 1073741824 DEFAULT_CONFIG" in after, after
    broker.assert_alive()
