"""Consumer groups on the KIP-848 protocol (ConsumerGroupHeartbeat), group.protocol=consumer.

The scenarios of test_groups_classic.py where they mean something for KIP-848, with the
two clients that speak it: confluent-kafka (librdkafka 2.x) and the Java client. The
broker owns the session timeout (group.consumer.session.timeout.ms, lowered for the
test), the heartbeat interval and the assignor; rebalances are incremental by design.
Static membership restarts through a static leave (epoch -2), see
group_scenarios.static_member_restart.
"""

from __future__ import annotations

import pytest

import group_scenarios as scenarios

KIP_848_CLIENTS = ["confluent", "java"]


@pytest.mark.parametrize("client", KIP_848_CLIENTS)
def test_members_split_partitions_and_survive_a_killed_member(group_broker, client, tmp_path):
    scenarios.split_failover_and_second_group(group_broker.bootstrap, tmp_path, client, "consumer")
    group_broker.assert_alive()


@pytest.mark.parametrize("client", KIP_848_CLIENTS)
def test_seek_rewind_and_resume_at_committed_offsets(group_broker, client, tmp_path):
    scenarios.commit_resume_and_seek(group_broker.bootstrap, tmp_path, client, "consumer")
    group_broker.assert_alive()


@pytest.mark.parametrize("client", KIP_848_CLIENTS)
def test_static_member_restarts_without_rebalance(group_broker, client, tmp_path):
    scenarios.static_member_restart(group_broker.bootstrap, tmp_path, client, "consumer")
    group_broker.assert_alive()


@pytest.mark.parametrize("client", KIP_848_CLIENTS)
def test_rebalance_keeps_unaffected_partitions(group_broker, client, tmp_path):
    scenarios.incremental_rebalance_keeps_partitions(
        group_broker.bootstrap, tmp_path, client, "consumer"
    )
    group_broker.assert_alive()
