"""Group commit benchmark: acknowledged writes per second with fsync before
every acknowledgement (`flush.messages=1`) against the default policy, for
1, 4 and 16 concurrent producers writing to one partition.

The load generator is librdkafka (confluent-kafka), one process and one
connection per producer, acks=all, one message per request
(`linger.ms=0`, `max.in.flight=1`), so every acknowledgement waits for its
own write: without group commit, fsync-per-ack throughput could not grow with
the number of producers.

Usage: RUNNEL_BIN=target/release/runnel .venv/bin/python bench/group_commit.py
"""

import multiprocessing
import os
import socket
import subprocess
import sys
import tempfile
import time

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

SECONDS = float(os.environ.get("BENCH_SECONDS", "5"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def produce_for(bootstrap, topic, seconds, out):
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "acks": "all",
            "linger.ms": 0,
            "max.in.flight.requests.per.connection": 1,
            "enable.idempotence": False,
        }
    )
    acked = 0

    def on_delivery(err, _msg):
        nonlocal acked
        if err is None:
            acked += 1

    value = b"x" * 100
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        producer.produce(topic, value=value, partition=0, on_delivery=on_delivery)
        producer.flush()
    out.put(acked)


def run(bootstrap, topic, producers):
    out = multiprocessing.Queue()
    procs = [
        multiprocessing.Process(target=produce_for, args=(bootstrap, topic, SECONDS, out))
        for _ in range(producers)
    ]
    for p in procs:
        p.start()
    total = sum(out.get() for _ in procs)
    for p in procs:
        p.join()
    return total / SECONDS


def main():
    binary = os.environ.get("RUNNEL_BIN", "target/release/runnel")
    port = free_port()
    bootstrap = f"127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as data:
        broker = subprocess.Popen(
            [binary, "server", "--data-dir", data, "--listeners", f"PLAINTEXT://{bootstrap}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            for _ in range(200):
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                    break
                except OSError:
                    time.sleep(0.05)
            admin = AdminClient({"bootstrap.servers": bootstrap})
            topics = {
                "fsync": {"flush.messages": "1"},
                "pagecache": {},
            }
            for f in admin.create_topics(
                [NewTopic(name, 1, 1, config=config) for name, config in topics.items()]
            ).values():
                f.result()
            print(f"| producers | fsync per ack (msgs/s) | page cache (msgs/s) |")
            print(f"|---|---|---|")
            for producers in (1, 4, 16):
                fsync = run(bootstrap, "fsync", producers)
                cache = run(bootstrap, "pagecache", producers)
                print(f"| {producers} | {fsync:,.0f} | {cache:,.0f} |", flush=True)
        finally:
            broker.terminate()
            broker.wait(timeout=20)


if __name__ == "__main__":
    sys.exit(main())
