"""Crash test: idempotent producers keep sending while the broker is SIGKILLed and restarted.

Two producers run as their own processes, each with idempotence on and acks=all:
the rdkafka crate (compat/rust/examples/crash_producer.rs) and Apache Kafka's Java
client (compat/java/src/CrashProducer.java). Each sends keyed records with unique
values `<producer>-<sequence>` to a 3-partition topic and appends every record the
broker acknowledged to its own file (partition, offset, value) as the delivery
report arrives.

Meanwhile the broker is killed with SIGKILL at random moments (0.2-2 s after it is
ready) and restarted on the same port and data dir, at least RESTARTS_MIN times
within CHAOS_BUDGET_S; now and then it is killed again while still recovering.
Segments roll every second, so kills also land around rolls. Then the producers
stop and deliver what is in flight, the broker is stopped cleanly and started once
more, and every partition is read from the beginning.

What must hold: every acknowledged record is in the log exactly once, at the
partition and offset it was acknowledged with; per producer and partition the
sequence numbers in the log only increase; no value appears twice. Records that
were sent but never acknowledged may or may not be there: they are counted, not
judged. SIGKILL is a process crash, not a power cut — the page cache survives —
so a single node with acks=all must lose nothing even without fsync.

The random schedule is printed; CRASH_SEED=<n> replays it (the moments of the kills,
not what the broker was doing at them).
"""

from __future__ import annotations

import os
import random
import re
import shutil
import signal
import subprocess
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from broker import free_port, port_accepts

ROOT = Path(__file__).resolve().parent.parent.parent
JAVA_DIR = ROOT / "compat" / "java"

TOPIC = "crash"
PARTITIONS = 3
# Segments roll every second, so kills also land around rolls, index writes and
# producer-state snapshots, and recovery sees many segments, not one.
TOPIC_CONFIG = {"segment.ms": "1000"}
# Records a second per producer; CRASH_RATE_PER_S and CRASH_RESTARTS raise the load
# and the number of kills for a longer hunt by hand.
RATE_PER_S = int(os.environ.get("CRASH_RATE_PER_S", 1000))
RESTARTS_MIN = 20
RESTARTS_TARGET = max(int(os.environ.get("CRASH_RESTARTS", 25)), RESTARTS_MIN)
CHAOS_BUDGET_S = max(90.0, RESTARTS_TARGET * 3.0)
UPTIME_S = (0.2, 2.0)
DOWNTIME_S = (0.0, 0.3)
STARTUP_KILL_CHANCE = 0.25
STARTUP_KILL_AFTER_S = (0.0, 0.15)
ACKED_MIN = 1000
FIRST_ACK_TIMEOUT_S = 30.0
GRACE_S = 3.0
PRODUCER_EXIT_TIMEOUT_S = 75.0
READY_TIMEOUT_S = 20.0
STOP_GRACE_S = 10.0
CONSUME_TIMEOUT_S = 60.0
BUILD_TIMEOUT_S = 300
SAMPLES = 10
VALUE_PATTERN = re.compile(r"^(?P<producer>[a-z]+)-(?P<sequence>\d{9})$")


class RestartableBroker:
    """One runnel broker on a fixed port and data dir, started and killed many times.

    Every incarnation appends to the same log file, after a `=== start N` marker, so
    the log shows what each one said before it was killed.
    """

    def __init__(self, workdir: Path) -> None:
        runnel = os.environ.get("RUNNEL_BIN")
        assert runnel, (
            "RUNNEL_BIN is not set: build with `cargo build -p runnel-cli` and export its path"
        )
        assert os.access(runnel, os.X_OK), f"RUNNEL_BIN={runnel} is not an executable file"
        self.binary = runnel
        self.port = free_port()
        self.data_dir = workdir / "data"
        self.data_dir.mkdir()
        self.log_path = workdir / "broker.log"
        self.process: subprocess.Popen | None = None
        self.starts = 0

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def spawn(self) -> None:
        """Start the process without waiting for it to be ready."""
        self.starts += 1
        with open(self.log_path, "ab") as log:
            log.write(f"\n=== start {self.starts} at {time.time():.3f}\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                [
                    self.binary,
                    "server",
                    "--data-dir",
                    str(self.data_dir),
                    "--listeners",
                    f"PLAINTEXT://{self.bootstrap}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

    def start(self) -> None:
        """Start and wait until the port accepts; retry if the process dies early."""
        failures = []
        for _ in range(3):
            self.spawn()
            deadline = time.monotonic() + READY_TIMEOUT_S
            while time.monotonic() < deadline and self.process.poll() is None:
                if port_accepts(self.port):
                    return
                time.sleep(0.02)
            failures.append(f"start {self.starts}: exit={self.process.poll()}")
            self.kill()
            time.sleep(0.5)
        raise AssertionError(f"broker did not become ready: {failures}\n{self.log_tail()}")

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as in a process crash."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        """SIGTERM: a clean shutdown, SIGKILL if it takes too long."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                raise AssertionError(f"broker ignored SIGTERM for {STOP_GRACE_S}s")

    def assert_alive(self) -> None:
        code = self.process.poll() if self.process else None
        assert code is None, f"broker exited with {code} on its own:\n{self.log_tail()}"

    def log_tail(self, lines: int = 80) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError as error:
            return f"(no broker log: {error})"
        return "\n".join(text.splitlines()[-lines:])


@dataclass
class Producer:
    """A producer process; it sends until its stdin closes, then delivers and exits."""

    name: str
    command: list[str]
    acked_path: Path
    out_path: Path
    err_path: Path
    process: subprocess.Popen | None = None

    def start(self) -> None:
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.process = subprocess.Popen(
                self.command, stdin=subprocess.PIPE, stdout=out, stderr=err
            )

    def assert_running(self) -> None:
        code = self.process.poll()
        assert code is None, f"{self.name} producer exited with {code}:\n{self.stderr_tail()}"

    def request_stop(self) -> None:
        if self.process is not None and self.process.stdin and not self.process.stdin.closed:
            self.process.stdin.close()

    def wait(self, timeout: float) -> int:
        return self.process.wait(timeout=max(timeout, 0.1))

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def summary(self) -> dict[str, int]:
        """The `sent=... acked=... failed=...` fields of the producer's last line."""
        text = self.out_path.read_text(errors="replace")
        return {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", text)}

    def stderr_tail(self, lines: int = 30) -> str:
        text = self.err_path.read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])


def rdkafka_command(bootstrap: str, acked_path: Path) -> list[str]:
    """Build the rdkafka crash producer (quick when up to date) and return its command."""
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    build = subprocess.run(
        ["cargo", "build", "-q", "-p", "runnel-compat-rdkafka", "--example", "crash_producer"],
        cwd=ROOT,
        env={**os.environ, "CARGO_TARGET_DIR": str(target)},
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_S,
    )
    assert build.returncode == 0, f"building crash_producer failed:\n{build.stderr[-4000:]}"
    binary = target / "debug" / "examples" / "crash_producer"
    return [str(binary), bootstrap, TOPIC, "rdkafka", str(acked_path), str(RATE_PER_S)]


def java_command(bootstrap: str, acked_path: Path) -> list[str]:
    classes = JAVA_DIR / "classes"
    assert (classes / "CrashProducer.class").exists(), (
        "compat/java/classes/CrashProducer.class is missing: run scripts/test-all.sh --install-only"
    )
    classpath = os.pathsep.join([str(classes), str(JAVA_DIR / "lib" / "*")])
    return [
        "java",
        "-cp",
        classpath,
        "CrashProducer",
        bootstrap,
        TOPIC,
        "java",
        str(acked_path),
        str(RATE_PER_S),
    ]


def create_topic(bootstrap: str) -> None:
    """Create the topic and wait until every partition has a leader."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    topic = NewTopic(TOPIC, num_partitions=PARTITIONS, replication_factor=1, config=TOPIC_CONFIG)
    admin.create_topics([topic], operation_timeout=30, request_timeout=30)[TOPIC].result(timeout=60)
    deadline = time.monotonic() + 60
    while True:
        found = admin.list_topics(TOPIC, timeout=10).topics.get(TOPIC)
        if found is not None and found.error is None and len(found.partitions) == PARTITIONS:
            if all(p.leader >= 0 for p in found.partitions.values()):
                return
        assert time.monotonic() < deadline, f"metadata for {TOPIC} never settled: {found}"
        time.sleep(0.2)


def read_acked(path: Path) -> list[tuple[int, int, str]]:
    """(partition, offset, value) per complete line of a producer's acknowledged file."""
    acked = []
    for line in path.read_text().splitlines(keepends=True):
        if not line.endswith("\n"):
            break
        partition, offset, value = line.rstrip("\n").split("\t")
        acked.append((int(partition), int(offset), value))
    return acked


def consume_all(bootstrap: str) -> list[tuple[int, int, str]]:
    """(partition, offset, value) of every record in the topic, in log order per partition."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            # Required by the client even for assign(); nothing is committed.
            "group.id": "crash-test-unused-group",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "enable.partition.eof": False,
            "fetch.max.bytes": 8 * 1024 * 1024,
        }
    )
    try:
        ends = {}
        for partition in range(PARTITIONS):
            low, high = consumer.get_watermark_offsets(
                TopicPartition(TOPIC, partition), timeout=10, cached=False
            )
            assert low == 0, f"partition {partition} starts at {low}, not 0"
            ends[partition] = high
        consumer.assign([TopicPartition(TOPIC, p, 0) for p in range(PARTITIONS)])
        records = []
        positions = {p: 0 for p in range(PARTITIONS)}
        deadline = time.monotonic() + CONSUME_TIMEOUT_S
        while any(positions[p] < ends[p] for p in range(PARTITIONS)):
            assert time.monotonic() < deadline, f"consumed up to {positions}, ends {ends}"
            for message in consumer.consume(num_messages=10_000, timeout=1.0):
                assert message.error() is None, f"consume error: {message.error()}"
                partition, offset = message.partition(), message.offset()
                records.append((partition, offset, message.value().decode()))
                positions[partition] = offset + 1
        return records
    finally:
        consumer.close()


@dataclass
class Verdict:
    acknowledged: int = 0
    found: int = 0
    lost: int = 0
    misplaced: int = 0
    duplicated: int = 0
    out_of_order: int = 0
    unacknowledged_present: int = 0
    foreign: int = 0
    samples: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))

    def sample(self, kind: str, text: str) -> None:
        if len(self.samples[kind]) < SAMPLES:
            self.samples[kind].append(text)


def verify(acked: list[tuple[int, int, str]], log: list[tuple[int, int, str]]) -> Verdict:
    verdict = Verdict()
    in_log: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for partition, offset, value in log:
        in_log[value].append((partition, offset))
    for value, places in in_log.items():
        if len(places) > 1:
            verdict.duplicated += len(places) - 1
            verdict.sample("duplicated", f"{value} at {places}")

    acked_at: dict[str, tuple[int, int]] = {}
    for partition, offset, value in acked:
        if value in acked_at:
            verdict.duplicated += 1
            verdict.sample("duplicated", f"{value} acknowledged twice")
            continue
        acked_at[value] = (partition, offset)
    verdict.acknowledged = len(acked_at)
    for value, place in acked_at.items():
        places = in_log.get(value)
        if not places:
            verdict.lost += 1
            verdict.sample("lost", f"{value} acknowledged at {place}")
            continue
        verdict.found += 1
        if place not in places:
            verdict.misplaced += 1
            verdict.sample("misplaced", f"{value} acknowledged at {place}, in log at {places}")
    verdict.unacknowledged_present = sum(1 for value in in_log if value not in acked_at)

    last: dict[tuple[str, int], tuple[int, int]] = {}
    for partition, offset, value in log:
        match = VALUE_PATTERN.match(value)
        if match is None:
            verdict.foreign += 1
            verdict.sample("foreign", f"{value!r} at {(partition, offset)}")
            continue
        stream = (match["producer"], partition)
        sequence = int(match["sequence"])
        previous = last.get(stream)
        if previous is not None and sequence <= previous[0]:
            verdict.out_of_order += 1
            verdict.sample(
                "out_of_order",
                f"{match['producer']} partition {partition}: {sequence} at offset {offset} "
                f"after {previous[0]} at offset {previous[1]}",
            )
        last[stream] = (sequence, offset)
    return verdict


def wait_for_first_acks(producers: list[Producer], broker: RestartableBroker) -> None:
    deadline = time.monotonic() + FIRST_ACK_TIMEOUT_S
    while not all(p.acked_path.exists() and p.acked_path.stat().st_size > 0 for p in producers):
        tails = "\n".join(f"{p.name}: {p.stderr_tail()}" for p in producers)
        assert time.monotonic() < deadline, f"a producer acknowledged nothing in time:\n{tails}"
        for producer in producers:
            producer.assert_running()
        broker.assert_alive()
        time.sleep(0.1)


def kill_and_restart(
    broker: RestartableBroker, producers: list[Producer], rng: random.Random
) -> tuple[int, int]:
    """SIGKILL the broker at random moments and restart it.

    Now and then the restarted broker is killed again while it is still starting
    (recovering its logs), before it serves anyone. Returns the restarts that
    reached serving and the kills during startup.
    """
    restarts = startup_kills = 0
    deadline = time.monotonic() + CHAOS_BUDGET_S
    while restarts < RESTARTS_TARGET and time.monotonic() < deadline:
        time.sleep(rng.uniform(*UPTIME_S))
        broker.assert_alive()
        for producer in producers:
            producer.assert_running()
        broker.kill()
        time.sleep(rng.uniform(*DOWNTIME_S))
        if rng.random() < STARTUP_KILL_CHANCE:
            broker.spawn()
            time.sleep(rng.uniform(*STARTUP_KILL_AFTER_S))
            broker.kill()
            startup_kills += 1
        broker.start()
        restarts += 1
    return restarts, startup_kills


@dataclass
class Run:
    """What one scenario did: kills, seconds per phase, and the log read at the end."""

    restarts: int = 0
    startup_kills: int = 0
    phases: dict[str, float] = field(default_factory=dict)
    log: list[tuple[int, int, str]] = field(default_factory=list)


def run_under_kills(
    broker: RestartableBroker, producers: list[Producer], rng: random.Random, run: Run
) -> None:
    """The whole scenario, recorded into `run` as it goes."""
    mark = time.monotonic()

    def phase(name: str) -> None:
        nonlocal mark
        now = time.monotonic()
        run.phases[name] = now - mark
        mark = now

    broker.start()
    create_topic(broker.bootstrap)
    for producer in producers:
        producer.start()
    wait_for_first_acks(producers, broker)
    phase("setup")

    run.restarts, run.startup_kills = kill_and_restart(broker, producers, rng)
    phase("kills")

    # Let the producers catch up with the broker up, then stop them; each delivers
    # what it has in flight before it exits.
    time.sleep(GRACE_S)
    for producer in producers:
        producer.request_stop()
    exit_deadline = time.monotonic() + PRODUCER_EXIT_TIMEOUT_S
    for producer in producers:
        code = producer.wait(exit_deadline - time.monotonic())
        assert code == 0, f"{producer.name} producer exited with {code}:\n{producer.stderr_tail()}"
    broker.assert_alive()
    phase("drain")

    broker.stop()
    broker.start()
    run.log = consume_all(broker.bootstrap)
    broker.stop()
    phase("read")


def test_acknowledged_records_survive_broker_kills(tmp_path, capsys):
    seed = int(os.environ.get("CRASH_SEED", random.randrange(1 << 32)))
    broker = RestartableBroker(tmp_path)
    producers = [
        Producer(
            name,
            command(broker.bootstrap, tmp_path / f"{name}.acked"),
            tmp_path / f"{name}.acked",
            tmp_path / f"{name}.out",
            tmp_path / f"{name}.err",
        )
        for name, command in (("rdkafka", rdkafka_command), ("java", java_command))
    ]
    run = Run()
    try:
        run_under_kills(broker, producers, random.Random(seed), run)
    except BaseException:
        print(f"crash test seed={seed}; broker log tail:\n{broker.log_tail()}")
        for producer in producers:
            if producer.err_path.exists():
                print(f"--- {producer.name} stderr ---\n{producer.stderr_tail()}")
        raise
    finally:
        for producer in producers:
            producer.request_stop()
            producer.kill()
        broker.kill()

    acked = [record for p in producers for record in read_acked(p.acked_path)]
    verdict = verify(acked, run.log)
    summaries = {p.name: p.summary() for p in producers}
    sent = sum(s.get("sent", 0) for s in summaries.values())
    failed = sum(s.get("failed", 0) for s in summaries.values())
    with capsys.disabled():
        print(
            f"\ncrash test: restarts={run.restarts} acknowledged={verdict.acknowledged} "
            f"found={verdict.found} lost={verdict.lost} duplicated={verdict.duplicated} "
            f"out_of_order={verdict.out_of_order} misplaced={verdict.misplaced} "
            f"sent={sent} failed={failed} "
            f"unacknowledged_present={verdict.unacknowledged_present} seed={seed}"
        )
        print(
            f"  kills during startup={run.startup_kills} "
            + " ".join(f"{name}={took:.1f}s" for name, took in run.phases.items())
        )
        for name, summary in summaries.items():
            print(f"  {name}: {summary}")
    evidence = "\n".join(
        f"{kind}: " + "; ".join(samples) for kind, samples in verdict.samples.items()
    )
    problems = (
        verdict.lost,
        verdict.duplicated,
        verdict.out_of_order,
        verdict.misplaced,
        verdict.foreign,
    )
    assert problems == (0, 0, 0, 0, 0), (
        f"lost, duplicated, out_of_order, misplaced, foreign = {problems} (seed {seed}; "
        f"files in {tmp_path})\n{evidence}"
    )
    assert run.restarts >= RESTARTS_MIN, f"only {run.restarts} restarts in {CHAOS_BUDGET_S}s"
    assert verdict.acknowledged >= ACKED_MIN, f"only {verdict.acknowledged} records acknowledged"
    # The data dir is evidence only when something failed.
    shutil.rmtree(broker.data_dir, ignore_errors=True)
