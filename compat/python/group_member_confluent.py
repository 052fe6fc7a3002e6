"""A consumer-group member process on confluent-kafka (librdkafka); protocol in groups.py."""

from __future__ import annotations

import os
import queue
import sys
import threading
import time

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from group_member_common import Emitter, commands_from_stdin, explicit_offsets, parse_options


def main() -> None:
    options = parse_options(sys.argv[1:])
    topic = options["topic"]
    emit = Emitter()
    config = {
        "bootstrap.servers": options["bootstrap"],
        "group.id": options["group"],
        "client.id": options["name"],
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "enable.partition.eof": False,
    }
    if options["protocol"] == "consumer":
        # KIP-848: the broker owns the session timeout, heartbeat interval and assignor.
        config["group.protocol"] = "consumer"
    else:
        config["session.timeout.ms"] = int(options["session_ms"])
        config["heartbeat.interval.ms"] = int(options["heartbeat_ms"])
        config["partition.assignment.strategy"] = options["strategy"]
    if options["instance"]:
        config["group.instance.id"] = options["instance"]
    if os.environ.get("COMPAT_RDKAFKA_DEBUG"):
        # For diagnosis: librdkafka's debug contexts (e.g. cgrp,fetch), logged to stderr.
        config["debug"] = os.environ["COMPAT_RDKAFKA_DEBUG"]
    consumer = Consumer(config)
    positions: dict[int, int] = {}
    owned: set[int] = set()

    def on_assign(_consumer, partitions):
        owned.update(tp.partition for tp in partitions)
        emit.partitions("assign", partitions, -1)

    def on_revoke(_consumer, partitions):
        for tp in partitions:
            owned.discard(tp.partition)
            positions.pop(tp.partition, None)
        emit.partitions("revoke", partitions)

    def on_lost(_consumer, partitions):
        for tp in partitions:
            owned.discard(tp.partition)
            positions.pop(tp.partition, None)
        emit.partitions("lost", partitions)

    def commit(offsets: list[TopicPartition]) -> None:
        if not offsets:
            return
        try:
            results = consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as error:
            emit("commit-error", str(error.args[0]).replace(" ", "_"))
            return
        failed = [tp for tp in results if tp.error is not None]
        if failed:
            emit("commit-error", ",".join(f"{tp.partition}:{tp.error.name()}" for tp in failed))
            return
        emit("commit", ",".join(f"{tp.partition}:{tp.offset}" for tp in results))

    def committed() -> None:
        answer = consumer.committed(
            [TopicPartition(topic, p) for p in range(int(options["partitions"]))], timeout=30
        )
        emit(
            "committed",
            ",".join(f"{tp.partition}:{tp.offset if tp.offset >= 0 else -1}:{tp.metadata or '-'}" for tp in answer),
        )

    commands: queue.Queue[str] = queue.Queue()
    threading.Thread(target=commands_from_stdin, args=(commands,), daemon=True).start()
    consumer.subscribe([topic], on_assign=on_assign, on_revoke=on_revoke, on_lost=on_lost)
    running = True
    while running:
        messages = consumer.consume(num_messages=500, timeout=0.1)
        read = {}
        for message in messages:
            if message.error() is not None:
                if message.error().code() != KafkaError._PARTITION_EOF:
                    emit("error", str(message.error()).replace(" ", "_"))
                continue
            partition, offset = message.partition(), message.offset()
            emit("record", partition, offset, message.key().decode())
            positions[partition] = offset + 1
            read[partition] = offset + 1
        if read and options["commit"] == "batch":
            commit([TopicPartition(topic, p, o) for p, o in sorted(read.items()) if p in owned])
        while not commands.empty():
            command = commands.get().split()
            if command[0] == "close":
                running = False
                break
            if command[0] == "commit" and len(command) == 1:
                commit([TopicPartition(topic, p, o) for p, o in sorted(positions.items()) if p in owned])
            elif command[0] == "commit":
                commit(
                    [
                        TopicPartition(topic, p, o, metadata=meta)
                        if meta is not None
                        else TopicPartition(topic, p, o)
                        for p, o, meta in explicit_offsets(command[1:])
                    ]
                )
            elif command[0] == "committed":
                committed()
            elif command[0] == "seek":
                partition, offset = int(command[1]), int(command[2])
                consumer.seek(TopicPartition(topic, partition, offset))
                positions[partition] = offset
                emit("seeked", partition, offset)
            else:
                emit("error", "unknown_command", command[0])
    consumer.close()
    emit("closed")
    time.sleep(0.05)


if __name__ == "__main__":
    main()
