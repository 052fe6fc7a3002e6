"""Topic creation through confluent-kafka's AdminClient (CreateTopics).

Used by the confluent-kafka tests and by the kcat tests: kcat has no admin API, so
its topics are created here and kcat then only produces, consumes, queries and lists.
"""

from __future__ import annotations

import time

from confluent_kafka.admin import AdminClient, NewTopic

from records import PARTITIONS

TIMEOUT_S = 60.0


def create_topic(bootstrap: str, topic: str, partitions: int = PARTITIONS) -> None:
    """Create a topic and wait until its metadata shows every partition with a leader."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics(
        [NewTopic(topic, num_partitions=partitions, replication_factor=1)],
        operation_timeout=30,
        request_timeout=30,
    )
    futures[topic].result(timeout=TIMEOUT_S)
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        metadata = admin.list_topics(topic, timeout=10)
        found = metadata.topics.get(topic)
        if found is not None and found.error is None and len(found.partitions) == partitions:
            if all(p.leader >= 0 for p in found.partitions.values()):
                return
        assert time.monotonic() < deadline, f"metadata for {topic} never settled: {found}"
        time.sleep(0.2)
