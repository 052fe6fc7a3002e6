"""kcat (Debian's kcat 1.7.1 on librdkafka 2.0.2, an old client) against runnel.

kcat has no admin API: it cannot create topics or alter configs. Each topic is
created with confluent-kafka's AdminClient (topics.create_topic); kcat then produces
(keyed, with headers, in each codec, partitioned by librdkafka's default key-hash
partitioner), consumes every partition, queries offsets by time (-Q) and starts a
consume at a timestamp (-o s@ts), and lists metadata (-L).

kcat's producer takes no per-message timestamp, so librdkafka stamps CreateTime at
produce time; timestamps are checked to lie within the produce run, and offsets by
time are checked against the timestamps kcat reads back.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time

import pytest

from records import (
    CODECS,
    PARTITIONS,
    Record,
    expected_offset_for_time,
    generate,
    time_probes,
    unique_topic,
    verify_consumed,
)
from topics import create_topic

KCAT = shutil.which("kcat") or "kcat"
TIMEOUT_S = 120
MESSAGE_DELIMITER = b"\n"
KEY_DELIMITER = b"\x1f"
# Fixed-width fields, then key and value by their printed lengths, then headers.
CONSUME_FORMAT = "P%p O%o T%T K%K S%S|%k%s|%h\n"
CONSUME_HEAD = re.compile(rb"P(\d+) O(\d+) T(-?\d+) K(-?\d+) S(-?\d+)\|")


def kcat(broker, *args: str, stdin: bytes | None = None) -> bytes:
    result = subprocess.run(
        [KCAT, "-b", broker.bootstrap, *args],
        input=stdin,
        capture_output=True,
        timeout=TIMEOUT_S,
    )
    assert result.returncode == 0, (
        f"kcat {' '.join(args)} exited {result.returncode}: {result.stderr.decode(errors='replace')[-2000:]}"
    )
    return result.stdout


def parse_consumed(output: bytes) -> list[Record]:
    records = []
    position = 0
    while position < len(output):
        head = CONSUME_HEAD.match(output, position)
        assert head, f"unparseable kcat output at byte {position}: {output[position:position + 80]!r}"
        partition, offset, timestamp, key_len, value_len = (int(g) for g in head.groups())
        position = head.end()
        key = None if key_len < 0 else output[position : position + key_len]
        position += max(key_len, 0)
        value = None if value_len < 0 else output[position : position + value_len]
        position += max(value_len, 0)
        assert output[position : position + 1] == b"|", f"bad separator at byte {position}"
        end = output.index(b"\n", position)
        header_text = output[position + 1 : end].decode()
        position = end + 1
        headers = []
        if header_text:
            for pair in header_text.split(","):
                name, _, header_value = pair.partition("=")
                headers.append((name, header_value.encode()))
        records.append(
            Record(
                key=key,
                value=value,
                headers=tuple(headers),
                timestamp=timestamp,
                partition=partition,
                offset=offset,
            )
        )
    return records


def query_offsets(broker, topic: str, queries: list[tuple[int, int]]) -> dict[tuple[int, int], int]:
    """kcat -Q: {(partition, timestamp): offset}; timestamp -2 is earliest, -1 latest.

    One kcat run asks at most one timestamp per partition (librdkafka's
    offsets_for_times takes a partition list), so queries go in rounds.
    """
    pattern = re.compile(rf"^{re.escape(topic)} \[(\d+)\] offset (-?\d+)$")
    pending = list(queries)
    result = {}
    while pending:
        round_, seen = [], set()
        for query in pending:
            if query[0] not in seen:
                seen.add(query[0])
                round_.append(query)
        pending = [q for q in pending if q not in round_]
        args = ["-Q"]
        for partition, timestamp in round_:
            args += ["-t", f"{topic}:{partition}:{timestamp}"]
        output = kcat(broker, *args).decode()
        offsets = {}
        for line in output.splitlines():
            match = pattern.match(line.strip())
            if match:
                offsets[int(match.group(1))] = int(match.group(2))
        for partition, timestamp in round_:
            assert partition in offsets, f"kcat -Q printed no offset for partition {partition}: {output!r}"
            result[(partition, timestamp)] = offsets[partition]
    return result


@pytest.mark.parametrize("codec", CODECS)
def test_produce_consume_query(broker, codec):
    topic = unique_topic("kcat", codec)
    create_topic(broker.bootstrap, topic)
    headers = (("source", b"kcat"), ("codec", codec.encode()))
    produced = [
        Record(key=r.key, value=r.value, headers=headers, timestamp=-1, partition=-1)
        for r in generate(topic, forbidden=MESSAGE_DELIMITER + KEY_DELIMITER)
    ]
    payload = b"".join(r.key + KEY_DELIMITER + r.value + MESSAGE_DELIMITER for r in produced)

    started_ms = int(time.time() * 1000)
    kcat(
        broker,
        "-P",
        "-t",
        topic,
        "-z",
        codec,
        "-K",
        "\\x1f",
        "-H",
        "source=kcat",
        "-H",
        f"codec={codec}",
        stdin=payload,
    )
    finished_ms = int(time.time() * 1000)

    consumed = []
    for partition in range(PARTITIONS):
        output = kcat(
            broker, "-C", "-t", topic, "-p", str(partition), "-o", "beginning", "-e",
            "-f", CONSUME_FORMAT,
        )
        consumed += parse_consumed(output)
    # The partition was chosen by librdkafka's key hash: check order within each partition.
    per_partition = verify_consumed(
        produced,
        consumed,
        check_partition=False,
        check_timestamp=False,
        check_timestamp_type=False,
    )
    for partition, records in per_partition.items():
        assert len(records) > 1000, f"partition {partition} got only {len(records)} records"
        for record in records:
            assert started_ms - 1000 <= record.timestamp <= finished_ms + 1000, (
                f"p{partition}@{record.offset}: timestamp {record.timestamp} outside the produce run"
            )

    ends = query_offsets(broker, topic, [(p, t) for p in range(PARTITIONS) for t in (-2, -1)])
    for partition, records in per_partition.items():
        assert ends[(partition, -2)] == 0, f"earliest offset of partition {partition}"
        assert ends[(partition, -1)] == len(records), f"latest offset of partition {partition}"

    probes = time_probes(per_partition)
    answers = query_offsets(broker, topic, [(p, t) for p, t, _ in probes])
    for partition, target, expected in probes:
        assert answers[(partition, target)] == expected, (
            f"kcat -Q offset for time {target} in partition {partition}"
        )

    # -o s@<ts>: start consuming at the first record whose timestamp is >= ts.
    for partition, records in per_partition.items():
        target = records[len(records) // 3].timestamp
        output = kcat(
            broker, "-C", "-t", topic, "-p", str(partition), "-o", f"s@{target}", "-c", "1",
            "-e", "-f", CONSUME_FORMAT,
        )
        (first,) = parse_consumed(output)
        assert first.offset == expected_offset_for_time(records, target)
    broker.assert_alive()


def test_metadata_list(broker):
    topic = unique_topic("kcat", "metadata")
    create_topic(broker.bootstrap, topic)
    metadata = json.loads(kcat(broker, "-L", "-J", "-t", topic))
    brokers = {b["id"]: b["name"] for b in metadata["brokers"]}
    (listed,) = [t for t in metadata["topics"] if t["topic"] == topic]
    assert "error" not in listed or not listed["error"], listed
    partitions = sorted(listed["partitions"], key=lambda p: p["partition"])
    assert [p["partition"] for p in partitions] == list(range(PARTITIONS))
    if broker.kind == "runnel":
        assert brokers == {0: broker.bootstrap}
    for partition in partitions:
        assert partition["leader"] in brokers
        assert [r["id"] for r in partition["replicas"]] == [partition["leader"]]
        assert [r["id"] for r in partition["isrs"]] == [partition["leader"]]
