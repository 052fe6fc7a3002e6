"""Consumer groups on the classic protocol (JoinGroup/SyncGroup/Heartbeat) with real clients.

Every scenario in group_scenarios.py runs once per client, each member its own process
(confluent-kafka, kafka-python, kafkajs through compat/js/driver.js, the Java client
through compat/java/src/GroupDriver.java):

- three members split a 6-partition topic with no overlap (by their assignment
  callbacks and by the records each reads); one is SIGKILLed and its partitions move
  to the survivors within the session timeout, nothing lost, duplicates only past its
  last commit; a second group reads everything independently;
- seek and rewind; a restarted member resumes at the committed offsets, whose
  metadata strings round-trip;
- a static member (group.instance.id) restarts without a rebalance — not kafkajs,
  which has no static membership;
- cooperative-sticky keeps unaffected partitions assigned through rebalances —
  confluent-kafka and Java only: kafkajs and kafka-python have no cooperative assignor.
"""

from __future__ import annotations

import pytest

import group_scenarios as scenarios
from groups import CLIENTS

# kafkajs ships only its round-robin assignor; the others use range.
STRATEGY = {"confluent": "range", "kafka-python": "range", "kafkajs": "roundrobin", "java": "range"}


@pytest.mark.parametrize("client", CLIENTS)
def test_members_split_partitions_and_survive_a_killed_member(group_broker, client, tmp_path):
    scenarios.split_failover_and_second_group(
        group_broker.bootstrap, tmp_path, client, "classic", STRATEGY[client]
    )
    group_broker.assert_alive()


@pytest.mark.parametrize("client", CLIENTS)
def test_seek_rewind_and_resume_at_committed_offsets(group_broker, client, tmp_path):
    scenarios.commit_resume_and_seek(group_broker.bootstrap, tmp_path, client, "classic")
    group_broker.assert_alive()


@pytest.mark.parametrize("client", ["confluent", "kafka-python", "java"])
def test_static_member_restarts_without_rebalance(group_broker, client, tmp_path):
    scenarios.static_member_restart(group_broker.bootstrap, tmp_path, client, "classic")
    group_broker.assert_alive()


@pytest.mark.parametrize("client", ["confluent", "java"])
def test_cooperative_sticky_keeps_unaffected_partitions(group_broker, client, tmp_path):
    scenarios.incremental_rebalance_keeps_partitions(
        group_broker.bootstrap, tmp_path, client, "classic"
    )
    group_broker.assert_alive()
