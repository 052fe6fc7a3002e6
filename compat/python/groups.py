"""Consumer-group harness: member processes of every client, their event streams, the checks.

A *member* is one consumer process in a group, of any client: confluent-kafka
(group_member_confluent.py), kafka-python (group_member_kafka_python.py), kafkajs
(compat/js/driver.js `member`) or the Java client (compat/java/src/GroupDriver.java
`member`). Each is a real process, so a test can SIGKILL it. All four speak the same
line protocol, so every scenario is written once and run against each client.

Options are passed as `key=value` arguments:

    bootstrap topic group name partitions
    commit=batch|manual     batch: commit synchronously after every processed batch;
                            manual: only when told to (`commit` below)
    protocol=classic|consumer     group.protocol (KIP-848 is `consumer`)
    strategy=range|roundrobin|cooperative-sticky|sticky   classic assignor
    session_ms, heartbeat_ms      classic session.timeout.ms / heartbeat.interval.ms
    instance=ID             group.instance.id (static membership), empty for none

Commands, one per line on the member's stdin (EOF means `close`):

    commit                  commit the next offset of every owned partition consumed from
    commit P:O[:META] ...   commit exactly these offsets (and metadata strings)
    committed               report the group's committed offsets for every partition
    seek P O                move the position of an owned partition
    close                   close the consumer cleanly and exit 0

Events, one per line on stdout, each `<wall-clock ms> <kind> <args>`:

    assign P,P|- GEN        partitions added by the assignment callback (GEN -1 if the
                            client does not expose the generation)
    revoke P,P|-  /  lost P,P|-
    record P O KEY
    commit P:O,...          after the broker acknowledged the commit
    commit-error TEXT       a commit the broker refused (member carries on)
    committed P:O:META,...  answer to `committed` (O -1: none, META `-`: empty or null)
    seeked P O
    closed

Wall-clock times from different processes are comparable (one machine, one clock),
which lets the checks order one member's revocation before another's assignment.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import Producer

HERE = Path(__file__).resolve().parent
JS_DIR = HERE.parent / "js"
JAVA_DIR = HERE.parent / "java"

PARTITIONS = 6
ALL_PARTITIONS = frozenset(range(PARTITIONS))
CLIENTS = ["confluent", "kafka-python", "kafkajs", "java"]

# Classic members ask for this session timeout (group.min.session.timeout.ms is lowered
# below it); KIP-848 members get the broker's group.consumer.session.timeout.ms.
CLASSIC_SESSION_MS = 4000
CLASSIC_HEARTBEAT_MS = 500
CONSUMER_SESSION_MS = 6000
CONSUMER_HEARTBEAT_MS = 500
# Kafka starts the rebalance that moves a dead member's partitions when its session
# expires; survivors learn of it on their next heartbeat and rejoin. Allowance on top
# of the session timeout for that heartbeat, the join/sync round and a loaded CI box.
TAKEOVER_SLACK_MS = 4000

GROUP_BROKER_OVERRIDES = {
    "group.initial.rebalance.delay.ms": 0,
    "group.min.session.timeout.ms": 1000,
    "group.consumer.min.session.timeout.ms": 1000,
    "group.consumer.session.timeout.ms": CONSUMER_SESSION_MS,
    "group.consumer.heartbeat.interval.ms": CONSUMER_HEARTBEAT_MS,
    "offsets.topic.num.partitions": 5,
}

WAIT_S = 60.0
START_TIMEOUT_S = 45.0
CLOSE_TIMEOUT_S = 30.0
JAVAC_TIMEOUT_S = 120


def now_ms() -> int:
    return int(time.time() * 1000)


def parse_partitions(text: str) -> frozenset[int]:
    return frozenset() if text in ("-", "") else frozenset(int(p) for p in text.split(","))


@dataclass(frozen=True)
class Event:
    member: str
    t_ms: int
    kind: str
    args: tuple[str, ...]

    @property
    def partitions(self) -> frozenset[int]:
        assert self.kind in ("assign", "revoke", "lost"), self
        return parse_partitions(self.args[0])


@dataclass(frozen=True)
class Read:
    """One record as a member saw it."""

    member: str
    t_ms: int
    partition: int
    offset: int
    key: str


# ---------------------------------------------------------------------------------
# Java driver: compiled once per session into a temp dir (scripts/test-all.sh only
# compiles CompatDriver and CrashProducer).

_java_classes: Path | None = None
_java_lock = threading.Lock()


def java_classes() -> Path:
    global _java_classes
    with _java_lock:
        if _java_classes is None:
            source = JAVA_DIR / "src" / "GroupDriver.java"
            out = Path(tempfile.mkdtemp(prefix="runnel-group-driver-"))
            lib = JAVA_DIR / "lib"
            assert (lib / "kafka-clients.jar").exists(), (
                "compat/java/lib is missing: run `bash scripts/test-all.sh --install-only`"
            )
            result = subprocess.run(
                ["javac", "-Xlint:all", "-Werror", "-d", str(out), "-cp", f"{lib}/*", str(source)],
                capture_output=True,
                text=True,
                timeout=JAVAC_TIMEOUT_S,
            )
            assert result.returncode == 0, f"javac GroupDriver.java failed:\n{result.stderr}"
            _java_classes = out
        return _java_classes


def java_command(*args: str) -> list[str]:
    classpath = os.pathsep.join([str(java_classes()), str(JAVA_DIR / "lib" / "*")])
    # A small heap and the client JIT only: three or four JVMs share two cores.
    return ["java", "-Xmx256m", "-XX:TieredStopAtLevel=1", "-cp", classpath, "GroupDriver", *args]


def run_java(*args: str, timeout: float = 120) -> list[str]:
    """Run a one-shot GroupDriver command; assert exit 0 and return its stdout lines."""
    result = subprocess.run(java_command(*args), capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, (
        f"GroupDriver {args[0]} exited {result.returncode}:\n{result.stdout[-3000:]}\n"
        f"{result.stderr[-5000:]}"
    )
    return result.stdout.splitlines()


def member_command(client: str, options: dict[str, str]) -> tuple[list[str], Path]:
    """The argv that starts a member of `client`, and its working directory."""
    pairs = [f"{k}={v}" for k, v in options.items()]
    if client == "confluent":
        return [sys.executable, str(HERE / "group_member_confluent.py"), *pairs], HERE
    if client == "kafka-python":
        return [sys.executable, str(HERE / "group_member_kafka_python.py"), *pairs], HERE
    if client == "kafkajs":
        assert (JS_DIR / "node_modules" / "kafkajs").is_dir(), "run npm ci in compat/js"
        return ["node", str(JS_DIR / "driver.js"), "member", *pairs], JS_DIR
    if client == "java":
        return java_command("member", *pairs), HERE
    raise AssertionError(f"unknown client {client}")


# ---------------------------------------------------------------------------------
# Member processes.


class Member:
    """One member process; its events are collected by a reader thread."""

    def __init__(self, fleet: Fleet, client: str, name: str, options: dict[str, str]) -> None:
        self.fleet = fleet
        self.client = client
        self.name = name
        self.options = options
        self.events: list[Event] = []
        self.exited_at: int | None = None
        self.killed_at: int | None = None
        self.stderr_path = fleet.workdir / f"{name}.stderr"
        argv, cwd = member_command(client, options)
        with open(self.stderr_path, "wb") as stderr:
            self.process = subprocess.Popen(
                argv,
                cwd=cwd,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
                bufsize=1,
            )
        self.started_at = now_ms()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            fields = line.split()
            if len(fields) < 2 or not fields[0].isdigit():
                continue  # a client's own chatter on stdout
            event = Event(self.name, int(fields[0]), fields[1], tuple(fields[2:]))
            with self.fleet.changed:
                self.events.append(event)
                self.fleet.changed.notify_all()
        with self.fleet.changed:
            self.exited_at = now_ms()
            self.fleet.changed.notify_all()

    # -- state derived from the events (call with or without the fleet lock) --

    def snapshot(self) -> list[Event]:
        with self.fleet.changed:
            return list(self.events)

    def owned(self) -> frozenset[int]:
        """Partitions assigned and not since revoked or lost; nothing once the process is gone."""
        if self.killed_at is not None or self.exited_at is not None:
            return frozenset()
        owned: set[int] = set()
        for event in self.snapshot():
            if event.kind == "assign":
                owned |= event.partitions
            elif event.kind in ("revoke", "lost"):
                owned -= event.partitions
        return frozenset(owned)

    def reads(self) -> list[Read]:
        return [
            Read(self.name, e.t_ms, int(e.args[0]), int(e.args[1]), e.args[2])
            for e in self.snapshot()
            if e.kind == "record"
        ]

    def commits(self) -> list[tuple[int, dict[int, int]]]:
        found = []
        for event in self.snapshot():
            if event.kind == "commit":
                offsets = {}
                for item in event.args[0].split(","):
                    partition, offset = item.split(":")[:2]
                    offsets[int(partition)] = int(offset)
                found.append((event.t_ms, offsets))
        return found

    def last_committed(self) -> dict[int, int]:
        merged: dict[int, int] = {}
        for _, offsets in self.commits():
            merged.update(offsets)
        return merged

    def generation(self) -> int:
        generations = [int(e.args[1]) for e in self.snapshot() if e.kind == "assign"]
        return generations[-1] if generations else -1

    def count(self, *kinds: str) -> int:
        return sum(1 for e in self.snapshot() if e.kind in kinds)

    # -- control --

    def send(self, command: str) -> None:
        assert self.process.poll() is None, f"{self.name} exited: {self.stderr_tail()}"
        assert self.process.stdin is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()

    def wait(self, predicate, what: str, timeout: float = WAIT_S):
        return self.fleet.wait(predicate, f"{self.name}: {what}", timeout)

    def request(self, command: str, kind: str, timeout: float = WAIT_S) -> Event:
        """Send a command and wait for the next event of `kind` (or commit-error)."""
        before = len(self.snapshot())
        self.send(command)

        def answered():
            for event in self.snapshot()[before:]:
                if event.kind in (kind, "commit-error"):
                    return event
            return None

        return self.wait(answered, f"answer to {command!r}", timeout)

    def kill(self) -> int:
        """SIGKILL the process (a crash: no LeaveGroup, no commit) and return the time."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)
        with self.fleet.changed:
            self.killed_at = now_ms()
            self.fleet.changed.notify_all()
        return self.killed_at

    def close(self, timeout: float = CLOSE_TIMEOUT_S) -> None:
        """Close cleanly (LeaveGroup or its KIP-848 equivalent) and wait for exit 0."""
        self.send("close")
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{self.name} did not close in {timeout}s:\n{self.stderr_tail()}")
        self._reader.join(timeout=5)
        assert code == 0, f"{self.name} exited {code}:\n{self.stderr_tail()}"
        assert self.count("closed") == 1, f"{self.name} exited without `closed`"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def crashed(self) -> bool:
        """The process ended without being told to: neither killed nor closed."""
        return self.exited_at is not None and self.killed_at is None and self.process.poll() not in (None, 0)

    def stderr_tail(self, chars: int = 3000) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def describe(self) -> str:
        events = self.snapshot()
        interesting = [e for e in events if e.kind != "record"][-12:]
        return (
            f"{self.name} ({self.client}, exit={self.process.poll()}): owned={sorted(self.owned())} "
            f"records={sum(1 for e in events if e.kind == 'record')} "
            f"events={[(e.t_ms, e.kind, *e.args) for e in interesting]}\n"
            f"  stderr: {self.stderr_tail(1500)!r}"
        )


class Fleet:
    """Every member process one test started; all are stopped however the test ends."""

    def __init__(self, bootstrap: str, workdir: Path) -> None:
        self.bootstrap = bootstrap
        self.workdir = workdir
        self.members: list[Member] = []
        self.changed = threading.Condition()

    def __enter__(self) -> Fleet:
        return self

    def __exit__(self, *exc) -> None:
        for member in self.members:
            member.stop()

    def start(
        self,
        client: str,
        name: str,
        topic: str,
        group: str,
        *,
        commit: str = "batch",
        protocol: str = "classic",
        strategy: str = "range",
        session_ms: int = CLASSIC_SESSION_MS,
        instance: str = "",
    ) -> Member:
        options = {
            "bootstrap": self.bootstrap,
            "topic": topic,
            "group": group,
            "name": name,
            "partitions": str(PARTITIONS),
            "commit": commit,
            "protocol": protocol,
            "strategy": strategy,
            "session_ms": str(session_ms),
            "heartbeat_ms": str(CLASSIC_HEARTBEAT_MS),
            "instance": instance,
        }
        member = Member(self, client, name, options)
        self.members.append(member)
        return member

    def wait(self, predicate, what: str, timeout: float = WAIT_S):
        """Wait until predicate() is truthy (re-checked on every event) and return it."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                result = predicate()
                if result:
                    return result
                crashed = [m for m in self.members if m.crashed()]
                remaining = deadline - time.monotonic()
                if remaining <= 0 or crashed:
                    state = "\n".join(m.describe() for m in self.members)
                    why = f"{[m.name for m in crashed]} exited" if crashed else f"timed out after {timeout}s"
                    raise AssertionError(f"{why} waiting for {what}\n{state}")
                self.changed.wait(min(remaining, 0.5))


def wait_for_split(
    fleet: Fleet, members: list[Member], what: str, timeout: float = WAIT_S
) -> dict[str, frozenset[int]]:
    """Wait until `members` own every partition between them, disjointly and evenly."""
    share = PARTITIONS // len(members)

    def split():
        owned = {m.name: m.owned() for m in members}
        sets = list(owned.values())
        if frozenset().union(*sets) != ALL_PARTITIONS or sum(map(len, sets)) != PARTITIONS:
            return None
        if any(len(s) not in (share, share + 1) for s in sets):
            return None
        return owned

    return fleet.wait(split, what, timeout)


def wait_for_reads(fleet: Fleet, members: list[Member], produced: dict, what: str,
                   timeout: float = WAIT_S) -> None:
    """Wait until `members` together have read every (partition, offset) in `produced`."""
    def done():
        seen = {(r.partition, r.offset) for m in members for r in m.reads()}
        return all(position in seen for position in produced)

    fleet.wait(done, what, timeout)


# ---------------------------------------------------------------------------------
# Records.


def produce(bootstrap: str, topic: str, tag: str, count: int, start: int = 0) -> dict:
    """Produce `count` small keyed records, record i to partition i % PARTITIONS.

    Returns {(partition, offset): key} as acknowledged by the broker.
    """
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5})
    acked: dict[tuple[int, int], str] = {}
    errors: list[str] = []

    def on_delivery(error, message):
        if error is not None:
            errors.append(str(error))
        else:
            acked[(message.partition(), message.offset())] = message.key().decode()

    for i in range(start, start + count):
        key = f"{tag}-{i:06d}"
        producer.produce(
            topic,
            key=key.encode(),
            value=f"value of {key} ".encode() * (1 + i % 5),
            partition=i % PARTITIONS,
            on_delivery=on_delivery,
        )
        producer.poll(0)
    remaining = producer.flush(WAIT_S)
    assert remaining == 0 and not errors, f"{remaining} undelivered, errors {errors[:3]}"
    assert len(acked) == count
    return acked


# ---------------------------------------------------------------------------------
# Checks.


def ownership_intervals(member: Member) -> dict[int, list[tuple[int, int]]]:
    """Per partition, the [from, to) wall-clock intervals this member owned it."""
    intervals: dict[int, list[tuple[int, int]]] = defaultdict(list)
    since: dict[int, int] = {}
    for event in member.snapshot():
        if event.kind == "assign":
            for p in event.partitions:
                since.setdefault(p, event.t_ms)
        elif event.kind in ("revoke", "lost"):
            for p in event.partitions:
                if p in since:
                    intervals[p].append((since.pop(p), event.t_ms))
    end = member.killed_at or member.exited_at or now_ms()
    for p, start in since.items():
        intervals[p].append((start, end))
    return intervals


def assert_no_shared_ownership(members: list[Member]) -> None:
    """No partition was ever owned by two members at once (as their callbacks report)."""
    per_partition: dict[int, list[tuple[int, int, str]]] = defaultdict(list)
    for member in members:
        for p, spans in ownership_intervals(member).items():
            per_partition[p].extend((start, end, member.name) for start, end in spans)
    problems = []
    for p, spans in sorted(per_partition.items()):
        spans.sort()
        for (s1, e1, m1), (s2, e2, m2) in zip(spans, spans[1:]):
            if s2 < e1:
                problems.append(f"partition {p}: {m1} owned it [{s1}, {e1}) and {m2} from {s2}")
    assert not problems, "\n".join(problems)


def assert_reads_within_ownership(member: Member) -> None:
    """Every record a member read came from a partition it owned at that moment."""
    owned: set[int] = set()
    for event in member.snapshot():
        if event.kind == "assign":
            owned |= event.partitions
        elif event.kind in ("revoke", "lost"):
            owned -= event.partitions
        elif event.kind == "record":
            p = int(event.args[0])
            assert p in owned, f"{member.name} read p{p}@{event.args[1]} owning only {sorted(owned)}"


def assert_delivery(produced: dict, members: list[Member]) -> dict[tuple[int, int], list[Read]]:
    """At-least-once for a group: every produced record read, duplicates never committed.

    Every (partition, offset) produced was read, with the key produced there. A record
    read a second time must lie at or after every offset committed for its partition
    before that second read: a member that starts from the committed offset never goes
    back past it. Returns the duplicated positions and their reads.
    """
    reads: dict[tuple[int, int], list[Read]] = defaultdict(list)
    for member in members:
        for read in member.reads():
            reads[(read.partition, read.offset)].append(read)
    commits = sorted(
        (t, p, o) for member in members for t, offsets in member.commits() for p, o in offsets.items()
    )
    problems = []
    for position, key in sorted(produced.items()):
        if position not in reads:
            problems.append(f"p{position[0]}@{position[1]} ({key}) was never read")
    for position, found in sorted(reads.items()):
        if position not in produced:
            problems.append(f"p{position[0]}@{position[1]} read but never produced")
            continue
        for read in found:
            if read.key != produced[position]:
                problems.append(f"p{position[0]}@{position[1]}: key {read.key}, produced {produced[position]}")
    duplicates = {pos: sorted(found, key=lambda r: r.t_ms) for pos, found in reads.items() if len(found) > 1}
    for (p, o), found in sorted(duplicates.items()):
        for again in found[1:]:
            committed = max((c_o for t, c_p, c_o in commits if c_p == p and t < again.t_ms), default=0)
            if o < committed:
                problems.append(
                    f"p{p}@{o} read again by {again.member} at {again.t_ms} though offset "
                    f"{committed} was committed before (first read by {found[0].member})"
                )
    assert not problems, (
        f"{len(problems)} problem(s):\n" + "\n".join(problems[:25]) + "\n" + timelines(members)
    )
    return duplicates


def timelines(members: list[Member]) -> str:
    """Each member's events other than records, and its reads as offset ranges per partition."""
    lines = []
    for member in members:
        lines.append(f"-- {member.name} (killed at {member.killed_at}, exited at {member.exited_at})")
        run: list[Read] = []

        def flush():
            if run:
                lines.append(f"   {run[0].t_ms} read p{run[0].partition} {run[0].offset}..{run[-1].offset}")
                run.clear()

        for event in member.snapshot():
            if event.kind == "record":
                read = Read(member.name, event.t_ms, int(event.args[0]), int(event.args[1]), event.args[2])
                if run and (read.partition != run[-1].partition or read.offset != run[-1].offset + 1):
                    flush()
                run.append(read)
            else:
                flush()
                lines.append(f"   {event.t_ms} {event.kind} {' '.join(event.args)}")
        flush()
    return "\n".join(lines)


def assert_read_once_in_order(produced: dict, member: Member) -> None:
    """A sole member of its group that never rebalanced read each record exactly once, in order."""
    reads = member.reads()
    positions = [(r.partition, r.offset) for r in reads]
    assert len(positions) == len(set(positions)), (
        f"{member.name} read {len(positions) - len(set(positions))} records twice"
    )
    assert set(positions) == set(produced), (
        f"{member.name}: {len(set(produced) - set(positions))} missing, "
        f"{len(set(positions) - set(produced))} unexpected"
    )
    for read in reads:
        assert read.key == produced[(read.partition, read.offset)], read
    for p in range(PARTITIONS):
        offsets = [r.offset for r in reads if r.partition == p]
        assert offsets == sorted(offsets), f"{member.name}: p{p} out of order"


def first_reads_after(members: list[Member], t_ms: int) -> dict[int, Read]:
    """The first record read of each partition after `t_ms`, by any of `members`."""
    first: dict[int, Read] = {}
    for read in sorted((r for m in members for r in m.reads()), key=lambda r: r.t_ms):
        if read.t_ms > t_ms and read.partition not in first:
            first[read.partition] = read
    return first


def parse_committed(event: Event) -> dict[int, tuple[int, str]]:
    """`committed P:O:META,...` as {partition: (offset, metadata)}; `-` metadata is ''."""
    answer = {}
    for item in event.args[0].split(","):
        partition, offset, metadata = item.split(":", 2)
        answer[int(partition)] = (int(offset), "" if metadata == "-" else metadata)
    return answer


def unique(prefix: str) -> str:
    return f"{prefix}-{os.getpid()}-{now_ms() % 10**8}"
