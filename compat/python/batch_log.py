"""Partition logs on disk: Kafka's v2 record batch headers, read from the segment
files of each node, and the checks across the copies of one partition.

`read_partition_log` parses a partition directory's `*.log` segments, header only
(the records are not decoded); `compare_replicas` checks the copies of each partition
on several nodes against each other at one moment; `EpochWitness` (fed by `LogWatch`
snapshots) checks every batch ever seen under one leader epoch, also the ones a node
later truncated.

The v2 record batch header, as Kafka writes it (offsets from the batch's first byte):

    0  baseOffset            int64     27  baseTimestamp    int64
    8  batchLength           int32     35  maxTimestamp     int64
    12 partitionLeaderEpoch  int32     43  producerId       int64
    16 magic (2)             int8      51  producerEpoch    int16
    17 crc (CRC-32C of 21..) uint32    53  baseSequence     int32
    21 attributes            int16     57  recordsCount     int32
    23 lastOffsetDelta       int32     61  records...

A batch takes 12 + batchLength bytes; the next one starts right after it.
"""

from __future__ import annotations

import bisect
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path

BATCH_HEADER = struct.Struct(">qiibIhiqqqhii")
BATCH_HEADER_SIZE = BATCH_HEADER.size  # 61
LOG_OVERHEAD = 12  # baseOffset + batchLength
PARTITION_DIR = re.compile(r"^(?P<topic>.+)-(?P<partition>\d+)$")


@dataclass(frozen=True)
class Batch:
    """A record batch header as it lies in a segment file."""

    base_offset: int
    batch_length: int
    leader_epoch: int
    magic: int
    crc: int
    attributes: int
    last_offset_delta: int
    base_timestamp: int
    max_timestamp: int
    producer_id: int
    producer_epoch: int
    base_sequence: int
    records_count: int
    segment: str
    position: int

    @property
    def last_offset(self) -> int:
        return self.base_offset + self.last_offset_delta

    @property
    def identity(self) -> tuple[int, int, int]:
        """What two copies of one batch share: (leader epoch, CRC, last offset delta)."""
        return self.leader_epoch, self.crc, self.last_offset_delta


@dataclass
class PartitionLog:
    """The batches of one partition directory, segment after segment."""

    batches: list[Batch]
    # Bytes after the last whole batch of the last segment (a torn write).
    torn_tail_bytes: int = 0
    problems: list[str] = field(default_factory=list)


def _crc32c_table() -> list[int]:
    table = []
    for n in range(256):
        crc = n
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_CRC32C_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli), as the v2 batch's crc field; pure Python, for small logs."""
    crc = 0xFFFFFFFF
    table = _CRC32C_TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def read_segment(path: Path, *, verify_crc: bool = False) -> tuple[list[Batch], int, list[str]]:
    """(batches, bytes after the last whole batch, problems) of one `.log` segment."""
    data = path.read_bytes()
    batches: list[Batch] = []
    problems: list[str] = []
    position = 0
    while position + LOG_OVERHEAD <= len(data):
        base_offset, batch_length = struct.unpack_from(">qi", data, position)
        size = LOG_OVERHEAD + batch_length
        if batch_length <= 0 and base_offset == 0 and not any(data[position:]):
            break  # zero padding (a preallocated segment): the end of what was written
        if batch_length < BATCH_HEADER_SIZE - LOG_OVERHEAD or position + size > len(data):
            break  # a batch cut short: a torn tail
        fields = BATCH_HEADER.unpack_from(data, position)
        batch = Batch(*fields, segment=path.name, position=position)
        if batch.magic != 2:
            problems.append(f"{path.name}@{position}: magic {batch.magic}, expected 2")
        if verify_crc:
            computed = crc32c(data[position + 21 : position + size])
            if computed != batch.crc:
                problems.append(
                    f"{path.name}@{position}: crc {batch.crc:#010x}, computed {computed:#010x}"
                )
        batches.append(batch)
        position += size
    tail = len(data) - position
    if tail and not any(data[position:]):
        tail = 0
    return batches, tail, problems


def read_partition_log(directory: Path, *, verify_crc: bool = False) -> PartitionLog:
    """Every batch of a partition directory's segments (`<base offset>.log`, in offset
    order). A torn tail is tolerated in the last segment only; elsewhere it is a problem."""
    segments = sorted(directory.glob("*.log"), key=lambda p: p.name)
    log = PartitionLog([])
    for index, segment in enumerate(segments):
        batches, tail, problems = read_segment(segment, verify_crc=verify_crc)
        log.batches += batches
        log.problems += problems
        if tail and index == len(segments) - 1:
            log.torn_tail_bytes = tail
        elif tail:
            log.problems.append(f"{segment.name}: {tail} bytes after the last whole batch")
    return log


def read_node_logs(data_dir: Path, topics: list[str], *, verify_crc: bool = False) -> dict[str, PartitionLog]:
    """The partition logs of `topics` in one node's data dir, keyed by directory name
    (`<topic>-<partition>`)."""
    logs = {}
    if not data_dir.is_dir():
        return logs
    for directory in sorted(data_dir.iterdir()):
        match = PARTITION_DIR.match(directory.name)
        if directory.is_dir() and match and match["topic"] in topics:
            logs[directory.name] = read_partition_log(directory, verify_crc=verify_crc)
    return logs


@dataclass
class ReplicaComparison:
    partitions: int = 0
    batches: int = 0
    # Base offsets held by two or more nodes, each compared across them.
    batches_compared: int = 0
    problems: list[str] = field(default_factory=list)

    def line(self) -> str:
        return (
            f"compared {self.batches_compared} batches held by two or more nodes "
            f"({self.batches} batch copies, {self.partitions} partitions): "
            f"{len(self.problems)} problem(s)"
        )


def _check_one_log(node: int, name: str, log: PartitionLog, problems: list[str]) -> None:
    """Within one node's log: offsets increase, epochs never decrease, and no producer
    batch (producer id, epoch, base sequence) is written twice."""
    problems += [f"node {node} {name}: {p}" for p in log.problems]
    previous: Batch | None = None
    written: dict[tuple[int, int, int], int] = {}
    for batch in log.batches:
        if previous is not None:
            if batch.base_offset <= previous.last_offset:
                problems.append(
                    f"node {node} {name}: batch at {batch.base_offset} overlaps or precedes the "
                    f"previous one ({previous.base_offset}..{previous.last_offset})"
                )
            if batch.leader_epoch < previous.leader_epoch:
                problems.append(
                    f"node {node} {name}: leader epoch falls from {previous.leader_epoch} "
                    f"(offset {previous.base_offset}) to {batch.leader_epoch} (offset {batch.base_offset})"
                )
        if batch.producer_id >= 0 and batch.base_sequence >= 0:
            key = (batch.producer_id, batch.producer_epoch, batch.base_sequence)
            if key in written:
                problems.append(
                    f"node {node} {name}: producer {key} written twice, at offsets "
                    f"{written[key]} and {batch.base_offset}"
                )
            written[key] = batch.base_offset
        previous = batch


def compare_replicas(logs: dict[int, dict[str, PartitionLog]]) -> ReplicaComparison:
    """Check each partition's copies (node id -> directory name -> log) against each other.

    For every base offset present on two or more nodes the batches there must have the
    same (leader epoch, CRC, last offset delta); a node that holds the offset inside a
    batch with another base offset holds a different batch (a misaligned copy). Each
    log alone must have increasing offsets and never-decreasing leader epochs.
    """
    result = ReplicaComparison()
    names = sorted({name for per_node in logs.values() for name in per_node})
    result.partitions = len(names)
    for name in names:
        copies = {node: per_node[name] for node, per_node in logs.items() if name in per_node}
        for node, log in copies.items():
            _check_one_log(node, name, log, result.problems)
            result.batches += len(log.batches)
        by_base = {node: {b.base_offset: b for b in log.batches} for node, log in copies.items()}
        starts = {node: sorted(bases) for node, bases in by_base.items()}
        every_base = sorted({base for bases in by_base.values() for base in bases})
        for base in every_base:
            holders = {node: bases[base] for node, bases in by_base.items() if base in bases}
            if len(holders) >= 2:
                result.batches_compared += 1
                identities = {node: b.identity for node, b in holders.items()}
                if len(set(identities.values())) > 1:
                    result.problems.append(
                        f"{name} offset {base}: batches differ across nodes, "
                        f"(leader epoch, crc, last offset delta) = {identities}"
                    )
            for node, bases in starts.items():
                if base in by_base[node]:
                    continue
                at = bisect.bisect_right(bases, base) - 1
                if at >= 0 and by_base[node][bases[at]].last_offset >= base:
                    covering = by_base[node][bases[at]]
                    result.problems.append(
                        f"{name} offset {base}: node {node} holds it inside its batch "
                        f"{covering.base_offset}..{covering.last_offset} (epoch {covering.leader_epoch}), "
                        f"other nodes start a batch there: misaligned copies"
                    )
    return result


@dataclass
class EpochWitness:
    """Every batch seen in any snapshot of any node's logs, by (partition, leader epoch).

    One leader writes a partition in one epoch and never rewrites what it wrote, and
    followers copy its batches as they are: so all batches ever seen under one epoch at
    one base offset are the same batch, wherever and whenever they were seen, even if
    a node truncated them later. Two nodes accepting writes for one partition in one
    epoch show up as two different batches (or overlapping ones) under that epoch.

    Snapshots of running nodes skip the last batch of each partition, which may be
    half written.
    """

    snapshots: int = 0
    observed: int = 0
    # (partition dir, epoch) -> base offset -> (identity, last offset, where first seen)
    seen: dict[tuple[str, int], dict[int, tuple[tuple[int, int, int], int, str]]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    _bases: dict[tuple[str, int], list[int]] = field(default_factory=dict, repr=False)

    def observe(self, logs: dict[int, dict[str, PartitionLog]], label: str, *, live: bool) -> None:
        self.snapshots += 1
        for node, per_node in logs.items():
            for name, log in per_node.items():
                batches = log.batches[:-1] if live else log.batches
                for batch in batches:
                    self._add(name, batch, f"node {node} {label}")

    def _add(self, name: str, batch: Batch, where: str) -> None:
        self.observed += 1
        bucket = self.seen.setdefault((name, batch.leader_epoch), {})
        known = bucket.get(batch.base_offset)
        if known is not None:
            if known[0] != batch.identity:
                self.problems.append(
                    f"{name} epoch {batch.leader_epoch} offset {batch.base_offset}: {known[2]} saw "
                    f"(epoch, crc, last offset delta) {known[0]}, {where} {batch.identity}"
                )
            return
        bases = self._bases.setdefault((name, batch.leader_epoch), [])
        at = bisect.bisect_left(bases, batch.base_offset)
        # Batches of one epoch do not overlap: only the neighbours can.
        for base in bases[max(0, at - 1) : at + 1]:
            _, last, first_where = bucket[base]
            if base <= batch.last_offset and batch.base_offset <= last:
                self.problems.append(
                    f"{name} epoch {batch.leader_epoch}: {where} has a batch {batch.base_offset}.."
                    f"{batch.last_offset}, {first_where} one {base}..{last}: two writers in one epoch"
                )
                break
        bases.insert(at, batch.base_offset)
        bucket[batch.base_offset] = (batch.identity, batch.last_offset, where)

    def line(self) -> str:
        batches = sum(len(b) for b in self.seen.values())
        return (
            f"epoch witness: {self.snapshots} snapshots, {self.observed} batch sightings of "
            f"{batches} distinct batches in {len(self.seen)} (partition, epoch) pairs: "
            f"{len(self.problems)} problem(s)"
        )


class LogWatch:
    """Snapshots of the logs of `topics` in every node's data dir, into one EpochWitness."""

    def __init__(self, data_dirs: dict[int, Path], topics: list[str]) -> None:
        self.data_dirs = data_dirs
        self.topics = topics
        self.witness = EpochWitness()

    def read(self) -> dict[int, dict[str, PartitionLog]]:
        return {node: read_node_logs(d, self.topics) for node, d in self.data_dirs.items()}

    def snapshot(self, label: str, *, live: bool = True) -> dict[int, dict[str, PartitionLog]]:
        logs = self.read()
        self.witness.observe(logs, label, live=live)
        return logs


def missing_offsets(log: PartitionLog, offsets: list[int]) -> list[int]:
    """Which of `offsets` no batch of `log` covers."""
    bases = [b.base_offset for b in log.batches]
    missing = []
    for offset in offsets:
        at = bisect.bisect_right(bases, offset) - 1
        if at < 0 or log.batches[at].last_offset < offset:
            missing.append(offset)
    return missing
