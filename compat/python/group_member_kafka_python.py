"""A consumer-group member process on kafka-python; protocol in groups.py.

kafka-python speaks only the classic group protocol; its assignors are range,
roundrobin and (eager) sticky, with no cooperative rebalancing.
"""

from __future__ import annotations

import queue
import sys
import threading
import time

from kafka import KafkaConsumer, TopicPartition
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.coordinator.assignors.range import RangePartitionAssignor
from kafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor
from kafka.coordinator.assignors.sticky.sticky_assignor import StickyPartitionAssignor
from kafka.structs import OffsetAndMetadata

from group_member_common import Emitter, commands_from_stdin, explicit_offsets, parse_options

ASSIGNORS = {
    "range": RangePartitionAssignor,
    "roundrobin": RoundRobinPartitionAssignor,
    "sticky": StickyPartitionAssignor,
}


def main() -> None:
    options = parse_options(sys.argv[1:])
    assert options["protocol"] == "classic", "kafka-python has no KIP-848 consumer protocol"
    topic = options["topic"]
    emit = Emitter()
    consumer = KafkaConsumer(
        bootstrap_servers=options["bootstrap"],
        group_id=options["group"],
        client_id=options["name"],
        group_instance_id=options["instance"] or None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=int(options["session_ms"]),
        heartbeat_interval_ms=int(options["heartbeat_ms"]),
        partition_assignment_strategy=[ASSIGNORS[options["strategy"]]],
    )
    positions: dict[int, int] = {}
    owned: set[int] = set()

    class Listener(ConsumerRebalanceListener):
        def on_partitions_revoked(self, revoked):
            for tp in revoked:
                owned.discard(tp.partition)
                positions.pop(tp.partition, None)
            emit.partitions("revoke", revoked)

        def on_partitions_assigned(self, assigned):
            owned.update(tp.partition for tp in assigned)
            emit.partitions("assign", assigned, -1)

    def commit(offsets: dict) -> None:
        if not offsets:
            return
        try:
            consumer.commit(offsets)
        except Exception as error:  # noqa: BLE001 - any refusal is reported, not fatal
            emit("commit-error", f"{type(error).__name__}:{error}".replace(" ", "_")[:300])
            return
        emit("commit", ",".join(f"{tp.partition}:{om.offset}" for tp, om in sorted(offsets.items())))

    def committed() -> None:
        items = []
        for p in range(int(options["partitions"])):
            answer = consumer.committed(TopicPartition(topic, p), metadata=True)
            if answer is None:
                items.append(f"{p}:-1:-")
            else:
                items.append(f"{p}:{answer.offset}:{answer.metadata or '-'}")
        emit("committed", ",".join(items))

    commands: queue.Queue[str] = queue.Queue()
    threading.Thread(target=commands_from_stdin, args=(commands,), daemon=True).start()
    consumer.subscribe([topic], listener=Listener())
    running = True
    while running:
        batches = consumer.poll(timeout_ms=100, max_records=500)
        read = {}
        for tp, records in sorted(batches.items()):
            for record in records:
                emit("record", tp.partition, record.offset, record.key.decode())
                positions[tp.partition] = record.offset + 1
                read[tp.partition] = record.offset + 1
        if read and options["commit"] == "batch":
            commit(
                {
                    TopicPartition(topic, p): OffsetAndMetadata(o, "", -1)
                    for p, o in read.items()
                    if p in owned
                }
            )
        while not commands.empty():
            command = commands.get().split()
            if command[0] == "close":
                running = False
                break
            if command[0] == "commit" and len(command) == 1:
                commit(
                    {
                        TopicPartition(topic, p): OffsetAndMetadata(o, "", -1)
                        for p, o in positions.items()
                        if p in owned
                    }
                )
            elif command[0] == "commit":
                commit(
                    {
                        TopicPartition(topic, p): OffsetAndMetadata(o, meta or "", -1)
                        for p, o, meta in explicit_offsets(command[1:])
                    }
                )
            elif command[0] == "committed":
                committed()
            elif command[0] == "seek":
                partition, offset = int(command[1]), int(command[2])
                consumer.seek(TopicPartition(topic, partition), offset)
                positions[partition] = offset
                emit("seeked", partition, offset)
            else:
                emit("error", "unknown_command", command[0])
    consumer.close()
    emit("closed")
    time.sleep(0.05)


if __name__ == "__main__":
    main()
