"""Records every client produces, the exchange format for non-Python drivers, and the checks.

Each record has a distinct key, a value of varied size (compressible text mixed with
binary bytes, a few large ones that span batches), one or two headers, an explicit
CreateTime timestamp `base_ts + i`, and the partition it is produced to (i % partitions).

Drivers written in other languages (Java, kafkajs) read and write records as lines of
tab-separated fields, bytes in base64, so that generation and verification live here
once:

    partition  offset  timestamp  timestamp_type  key  value  headers

`key`/`value` are base64 or `-` for null; `headers` is `name:value,...` with both parts
in base64 (empty when none); `timestamp_type` is 0 (CreateTime), 1 (LogAppendTime) or
-1 (unknown); `offset` is -1 for records not yet written.
"""

from __future__ import annotations

import base64
import random
import time
from dataclasses import dataclass
from pathlib import Path

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
RECORD_COUNT = 10_000
PARTITIONS = 3
TIMESTAMP_TYPE_CREATE = 0


@dataclass(frozen=True)
class Record:
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]
    timestamp: int
    partition: int
    offset: int = -1
    timestamp_type: int = -1


def generate(
    prefix: str,
    count: int = RECORD_COUNT,
    partitions: int = PARTITIONS,
    base_ts: int | None = None,
    forbidden: bytes = b"",
    seed: int = 7,
) -> list[Record]:
    """Deterministic records; `forbidden` bytes never appear in keys or values (kcat delimiters)."""
    rng = random.Random(seed)
    if base_ts is None:
        # A recent time, well inside any default retention.ms, rounded for readable logs.
        base_ts = (int(time.time() * 1000) // 1000) * 1000 - 3_600_000
    allowed = bytes(b for b in range(256) if b not in forbidden)
    words = [b"runnel", b"kafka", b"partition", b"offset", b"segment", b"batch", b"\x00\x01"]
    records = []
    for i in range(count):
        if i % 997 == 0:
            size = 20_000 + rng.randrange(10_000)  # large: crosses batch and fetch boundaries
        elif i % 10 == 0:
            size = rng.randrange(1, 8)  # tiny
        else:
            size = rng.randrange(16, 1500)
        parts = []
        length = 0
        while length < size:
            if rng.random() < 0.6:
                chunk = rng.choice(words)
            else:
                chunk = bytes(rng.choice(allowed) for _ in range(rng.randrange(1, 12)))
            chunk = bytes(b for b in chunk if b not in forbidden) or b"x"
            parts.append(chunk)
            length += len(chunk)
        value = b"".join(parts)[:size]
        key = f"{prefix}-key-{i:06d}".encode()
        headers = [("seq", str(i).encode())]
        if i % 2 == 0:
            headers.append(("blob", bytes([i % 256, 0, 255, (i * 7) % 256])))
        records.append(
            Record(
                key=key,
                value=value,
                headers=tuple(headers),
                timestamp=base_ts + i,
                partition=i % partitions,
            )
        )
    return records


def _b64(data: bytes | None) -> str:
    return "-" if data is None else base64.b64encode(data).decode()


def _unb64(text: str) -> bytes | None:
    return None if text == "-" else base64.b64decode(text)


def write_records(path: Path, records: list[Record]) -> None:
    with open(path, "w") as out:
        for r in records:
            headers = ",".join(
                f"{_b64(name.encode())}:{_b64(value)}" for name, value in r.headers
            )
            out.write(
                f"{r.partition}\t{r.offset}\t{r.timestamp}\t{r.timestamp_type}\t"
                f"{_b64(r.key)}\t{_b64(r.value)}\t{headers}\n"
            )


def read_records(path: Path) -> list[Record]:
    records = []
    with open(path) as lines:
        for line in lines:
            line = line.rstrip("\n")
            if not line:
                continue
            fields = line.split("\t")
            assert len(fields) == 7, f"malformed record line: {line[:200]!r}"
            partition, offset, timestamp, timestamp_type, key, value, headers = fields
            parsed_headers = []
            if headers:
                for pair in headers.split(","):
                    name, _, header_value = pair.partition(":")
                    parsed_headers.append((_unb64(name).decode(), _unb64(header_value)))
            records.append(
                Record(
                    key=_unb64(key),
                    value=_unb64(value),
                    headers=tuple(parsed_headers),
                    timestamp=int(timestamp),
                    partition=int(partition),
                    offset=int(offset),
                    timestamp_type=int(timestamp_type),
                )
            )
    return records


def verify_consumed(
    produced: list[Record],
    consumed: list[Record],
    *,
    partitions: int = PARTITIONS,
    check_partition: bool = True,
    check_timestamp: bool = True,
    check_timestamp_type: bool = True,
) -> dict[int, list[Record]]:
    """Every produced record came back once, byte-identical, in produce order per partition.

    Records are matched by key (keys are distinct). With `check_partition` each record
    must be in the partition it was produced to; otherwise (a client's own partitioner
    chose) only order within each partition is checked. Returns the consumed records
    per partition, ordered by offset.
    """
    by_key = {r.key: (i, r) for i, r in enumerate(produced)}
    assert len(by_key) == len(produced), "generator produced duplicate keys"
    per_partition: dict[int, list[Record]] = {p: [] for p in range(partitions)}
    for record in consumed:
        assert record.partition in per_partition, f"record from unknown partition {record.partition}"
        per_partition[record.partition].append(record)
    seen = set()
    problems = []
    for partition, records in per_partition.items():
        records.sort(key=lambda r: r.offset)
        offsets = [r.offset for r in records]
        if offsets != list(range(len(records))):
            problems.append(
                f"partition {partition}: offsets not 0..{len(records) - 1} contiguous: "
                f"first {offsets[:5]} ... last {offsets[-5:]}"
            )
        last_index = -1
        for record in records:
            if record.key not in by_key:
                problems.append(f"p{partition}@{record.offset}: unknown key {record.key[:40]!r}")
                continue
            index, expected = by_key[record.key]
            if record.key in seen:
                problems.append(f"p{partition}@{record.offset}: duplicate key {record.key!r}")
            seen.add(record.key)
            if index <= last_index:
                problems.append(
                    f"p{partition}@{record.offset}: out of order (record #{index} after #{last_index})"
                )
            last_index = index
            if check_partition and record.partition != expected.partition:
                problems.append(
                    f"{record.key!r}: partition {record.partition}, produced to {expected.partition}"
                )
            if record.value != expected.value:
                problems.append(
                    f"p{partition}@{record.offset} {record.key!r}: value differs "
                    f"(len {len(record.value or b'')} vs {len(expected.value or b'')})"
                )
            if list(record.headers) != list(expected.headers):
                problems.append(
                    f"p{partition}@{record.offset} {record.key!r}: headers {record.headers!r} "
                    f"!= {expected.headers!r}"
                )
            if check_timestamp and record.timestamp != expected.timestamp:
                problems.append(
                    f"p{partition}@{record.offset} {record.key!r}: timestamp {record.timestamp} "
                    f"!= {expected.timestamp}"
                )
            if check_timestamp_type and record.timestamp_type != TIMESTAMP_TYPE_CREATE:
                problems.append(
                    f"p{partition}@{record.offset}: timestamp type {record.timestamp_type}, "
                    "expected CreateTime (0)"
                )
        if len(problems) > 20:
            break
    missing = len(produced) - len(seen)
    if missing:
        problems.append(f"{missing} of {len(produced)} produced records were not consumed")
    assert not problems, f"{len(problems)} problem(s):\n" + "\n".join(problems[:20])
    return per_partition


def expected_offset_for_time(records: list[Record], target: int) -> int:
    """Kafka's ListOffsets by timestamp: the first offset whose timestamp >= target, else -1."""
    for record in records:
        if record.timestamp >= target:
            return record.offset
    return -1


def time_probes(per_partition: dict[int, list[Record]]) -> list[tuple[int, int, int]]:
    """(partition, target timestamp, expected offset) probes for every partition.

    One target is one millisecond before a middle record's timestamp (so it lies
    between two records of this partition and must resolve to the later one), one is
    the first record's exact timestamp, and one lies after every record (offset -1).
    """
    probes = []
    for partition, records in per_partition.items():
        assert records, f"partition {partition} received no records"
        middle = records[len(records) // 2]
        for target in (middle.timestamp - 1, records[0].timestamp, records[-1].timestamp + 10_000):
            probes.append((partition, target, expected_offset_for_time(records, target)))
    return probes


def unique_topic(client: str, codec: str) -> str:
    return f"compat-{client}-{codec}-{random.randrange(16**8):08x}"
