//! AlterPartition: the partition leader's ISR changes, every refusal in
//! Kafka's order, and what a success commits.

mod common;

use common::{check_invariants, Cluster};
use runnel_metadata::records::MetadataRecord;
use runnel_metadata::{AlterPartitionError, BrokerEpoch, ControllerError, PartitionEpoch};
use runnel_model::{BrokerId, LeaderEpoch, PartitionId};
use uuid::Uuid;

fn ids(list: &[i32]) -> Vec<BrokerId> {
    list.iter().copied().map(BrokerId).collect()
}

/// Three brokers, one RF-3 partition led by its first replica; broker 3
/// is fenced and back, so the ISR lacks it.
fn shrunk() -> (Cluster, Uuid) {
    let mut cluster = Cluster::new();
    for id in 1..=3 {
        cluster.join(0, id, None);
    }
    let topic = cluster.create_topic("t", 1, 3);
    let leader = cluster.partition(topic, 0).replicas[0];
    let other = (1..=3)
        .find(|b| BrokerId(*b) != leader)
        .expect("a follower");
    let isr: Vec<i32> = [leader.0, other].to_vec();
    let request = cluster.alter_request(topic, 0, &isr);
    cluster.alter(request).expect("shrinks");
    (cluster, topic)
}

#[test]
fn alter_partition_expands_the_isr_and_bumps_only_the_partition_epoch() {
    let (mut cluster, topic) = shrunk();
    let before = cluster.partition(topic, 0);
    assert_eq!(before.isr.len(), 2);
    assert_eq!(before.partition_epoch, PartitionEpoch(1));
    let all: Vec<i32> = before.replicas.iter().map(|b| b.0).collect();
    let log_len = cluster.log.len();
    let request = cluster.alter_request(topic, 0, &all);
    let answer = cluster.alter(request).expect("expands");
    assert_eq!(answer, cluster.partition(topic, 0), "the committed state");
    assert_eq!(answer.isr, before.replicas);
    assert_eq!(answer.leader, before.leader);
    assert_eq!(answer.leader_epoch, before.leader_epoch);
    assert_eq!(answer.partition_epoch, PartitionEpoch(2));
    assert!(matches!(
        &cluster.log[log_len..],
        [MetadataRecord::PartitionChange(r)] if r.replicas.is_none() && r.isr.is_some()
    ));
    check_invariants(&cluster.image);
}

#[test]
fn alter_partition_to_the_same_isr_succeeds_without_a_record() {
    let (mut cluster, topic) = shrunk();
    let state = cluster.partition(topic, 0);
    let isr: Vec<i32> = state.isr.iter().map(|b| b.0).collect();
    let log_len = cluster.log.len();
    let request = cluster.alter_request(topic, 0, &isr);
    assert_eq!(cluster.alter(request), Ok(state));
    assert_eq!(cluster.log.len(), log_len);
}

#[test]
fn alter_partition_from_a_stale_or_unknown_broker_is_refused_as_a_whole() {
    let (cluster, topic) = shrunk();
    let mut request = cluster.alter_request(topic, 0, &[1, 2, 3]);
    request.broker_epoch = BrokerEpoch(request.broker_epoch.0 - 1);
    assert!(matches!(
        cluster
            .controller
            .alter_partition(&cluster.image, request.clone()),
        Err(ControllerError::StaleBrokerEpoch { .. })
    ));
    request.broker_id = BrokerId(9);
    assert_eq!(
        cluster.controller.alter_partition(&cluster.image, request),
        Err(ControllerError::BrokerIdNotRegistered(BrokerId(9)))
    );
}

#[test]
fn alter_partition_refusals_follow_kafkas_checks() {
    let (cluster, topic) = shrunk();
    let state = cluster.partition(topic, 0);
    let leader = state.leader.expect("led");
    let follower = state
        .isr
        .iter()
        .copied()
        .find(|b| *b != leader)
        .expect("follower");
    let all: Vec<i32> = state.replicas.iter().map(|b| b.0).collect();
    let refused = |change: &dyn Fn(&mut runnel_metadata::AlterPartitionRequest)| {
        let mut request = cluster.alter_request(topic, 0, &all);
        change(&mut request);
        let effects = cluster
            .controller
            .alter_partition(&cluster.image, request)
            .expect("answered per partition");
        assert!(effects.records.is_empty());
        effects.response.expect_err("refused")
    };
    assert_eq!(
        refused(&|r| r.topic_id = Uuid::from_u128(999)),
        AlterPartitionError::UnknownTopicId(Uuid::from_u128(999))
    );
    assert!(matches!(
        refused(&|r| r.partition = PartitionId(5)),
        AlterPartitionError::UnknownTopicOrPartition(_, PartitionId(5))
    ));
    assert!(matches!(
        refused(&|r| r.leader_epoch = LeaderEpoch(r.leader_epoch.0 + 1)),
        AlterPartitionError::NotController(_)
    ));
    assert!(matches!(
        refused(&|r| r.partition_epoch = PartitionEpoch(r.partition_epoch.0 + 1)),
        AlterPartitionError::NotController(_)
    ));
    assert!(matches!(
        refused(&|r| r.leader_epoch = LeaderEpoch(r.leader_epoch.0 - 1)),
        AlterPartitionError::FencedLeaderEpoch { .. }
    ));
    // A follower asking, with its own valid broker epoch.
    let follower_epoch = cluster
        .image
        .broker(follower)
        .expect("registered")
        .broker_epoch;
    assert!(matches!(
        refused(&|r| {
            r.broker_id = follower;
            r.broker_epoch = follower_epoch;
        }),
        AlterPartitionError::InvalidRequest(_)
    ));
    assert!(matches!(
        refused(&|r| r.partition_epoch = PartitionEpoch(r.partition_epoch.0 - 1)),
        AlterPartitionError::InvalidUpdateVersion { .. }
    ));
    for bad in [
        vec![],
        vec![leader, leader],
        vec![leader, BrokerId(7)],
        vec![follower],
    ] {
        assert!(
            matches!(
                refused(&|r| r.new_isr = bad.clone()),
                AlterPartitionError::InvalidRequest(_)
            ),
            "{bad:?} accepted"
        );
    }
    // The FENCED_LEADER_EPOCH check comes before the leader check.
    assert!(matches!(
        refused(&|r| {
            r.broker_id = follower;
            r.broker_epoch = follower_epoch;
            r.leader_epoch = LeaderEpoch(r.leader_epoch.0 - 1);
        }),
        AlterPartitionError::FencedLeaderEpoch { .. }
    ));
}

#[test]
fn alter_partition_refuses_fenced_and_shut_down_brokers_but_allows_shrinking() {
    let mut cluster = Cluster::new();
    for id in 1..=3 {
        cluster.join(0, id, None);
    }
    let topic = cluster.create_topic_with("t", vec![ids(&[1, 2, 3])]);
    // Broker 3 goes silent and is fenced: it leaves the ISR.
    cluster.heartbeat(8000, 1);
    cluster.heartbeat(8000, 2);
    cluster.tick(9000);
    assert_eq!(cluster.partition(topic, 0).isr, ids(&[1, 2]));
    let request = cluster.alter_request(topic, 0, &[1, 2, 3]);
    assert_eq!(
        cluster.alter(request),
        Err(AlterPartitionError::IneligibleReplica(
            BrokerId(3),
            "fenced".into()
        ))
    );
    // Broker 2 shuts down: fenced for good, it may not rejoin either.
    cluster.heartbeat_with(8500, 2, true);
    assert_eq!(cluster.partition(topic, 0).isr, ids(&[1]));
    let request = cluster.alter_request(topic, 0, &[1, 2]);
    assert!(matches!(
        cluster.alter(request),
        Err(AlterPartitionError::IneligibleReplica(BrokerId(2), _))
    ));
    // Broker 3 returns; it rejoins, then the leader shrinks the ISR again.
    cluster.heartbeat(9500, 3);
    let request = cluster.alter_request(topic, 0, &[1, 3]);
    assert_eq!(cluster.alter(request).expect("rejoins").isr, ids(&[1, 3]));
    let request = cluster.alter_request(topic, 0, &[1]);
    assert_eq!(cluster.alter(request).expect("shrinks").isr, ids(&[1]));
    check_invariants(&cluster.image);
}
