//! Partition reassignment: start, completion by the ISR, cancel, the
//! leader moving off a removed replica, and Kafka's refusals.

mod common;

use common::{check_invariants, Cluster};
use runnel_metadata::{
    list_partition_reassignments, AlterPartitionError, MetadataImage, OngoingReassignment,
    PartitionResults, ReassignmentError,
};
use runnel_model::{BrokerId, PartitionId, TopicName};
use uuid::Uuid;

fn ids(list: &[i32]) -> Vec<BrokerId> {
    list.iter().copied().map(BrokerId).collect()
}

fn t() -> TopicName {
    TopicName::new("t").expect("valid")
}

/// Brokers 1 to 4; "t" has one partition [1, 2], led by 1.
fn cluster() -> (Cluster, Uuid) {
    let mut cluster = Cluster::new();
    for id in 1..=4 {
        cluster.join(0, id, None);
    }
    let topic = cluster.create_topic_with("t", vec![ids(&[1, 2])]);
    (cluster, topic)
}

fn reassign(
    cluster: &mut Cluster,
    target: Option<&[i32]>,
) -> PartitionResults<(), ReassignmentError> {
    let effects = cluster
        .controller
        .alter_partition_reassignments(&cluster.image, &[(t(), PartitionId(0), target.map(ids))])
        .expect("reassign");
    cluster.commit(effects.records);
    effects.response
}

fn ok(cluster: &mut Cluster, target: Option<&[i32]>) {
    let results = reassign(cluster, target);
    assert_eq!(results, vec![(t(), PartitionId(0), Ok(()))]);
    check_invariants(&cluster.image);
}

#[test]
fn a_move_adds_the_new_replicas_then_completes_when_they_join_the_isr() {
    let (mut cluster, topic) = cluster();
    ok(&mut cluster, Some(&[3, 2]));
    let state = cluster.partition(topic, 0);
    assert_eq!(state.replicas, ids(&[3, 2, 1]));
    assert_eq!(state.adding_replicas, ids(&[3]));
    assert_eq!(state.removing_replicas, ids(&[1]));
    assert_eq!(state.isr, ids(&[1, 2]), "the ISR waits for the new replica");
    assert_eq!(state.leader, Some(BrokerId(1)));
    assert_eq!(
        list_partition_reassignments(&cluster.image, None),
        vec![(
            t(),
            PartitionId(0),
            OngoingReassignment {
                replicas: ids(&[3, 2, 1]),
                adding_replicas: ids(&[3]),
                removing_replicas: ids(&[1]),
            }
        )]
    );
    // The leader, 1, brings 3 into the ISR: the reassignment completes,
    // 1 leaves, and 3 — the first eligible target replica — leads.
    let request = cluster.alter_request(topic, 0, &[1, 2, 3]);
    assert_eq!(
        cluster.alter(request),
        Err(AlterPartitionError::NewLeaderElected)
    );
    let done = cluster.partition(topic, 0);
    assert_eq!(done.replicas, ids(&[3, 2]));
    assert_eq!(done.isr, ids(&[2, 3]));
    assert_eq!(done.leader, Some(BrokerId(3)));
    assert_eq!(done.leader_epoch.0, state.leader_epoch.0 + 1);
    assert!(done.adding_replicas.is_empty() && done.removing_replicas.is_empty());
    assert!(list_partition_reassignments(&cluster.image, None).is_empty());
    check_invariants(&cluster.image);
    let replayed = MetadataImage::replay(&cluster.log).expect("replays");
    assert_eq!(replayed, cluster.image);
}

#[test]
fn adding_a_replica_completes_with_the_leader_kept() {
    let (mut cluster, topic) = cluster();
    ok(&mut cluster, Some(&[1, 2, 3]));
    let request = cluster.alter_request(topic, 0, &[1, 2]);
    cluster.alter(request).expect("a partial ISR change");
    assert!(cluster.partition(topic, 0).is_reassigning());
    let request = cluster.alter_request(topic, 0, &[1, 2, 3]);
    let done = cluster.alter(request).expect("completes");
    assert_eq!(done.replicas, ids(&[1, 2, 3]));
    assert_eq!(done.isr, ids(&[1, 2, 3]));
    assert_eq!(done.leader, Some(BrokerId(1)));
    assert!(!done.is_reassigning());
}

#[test]
fn removing_replicas_in_the_isr_completes_at_once_and_moves_the_leader() {
    let (mut cluster, topic) = cluster();
    let before = cluster.partition(topic, 0);
    ok(&mut cluster, Some(&[2]));
    let state = cluster.partition(topic, 0);
    assert_eq!(state.replicas, ids(&[2]));
    assert_eq!(state.isr, ids(&[2]));
    assert_eq!(state.leader, Some(BrokerId(2)));
    assert_eq!(state.leader_epoch.0, before.leader_epoch.0 + 1);
    assert!(!state.is_reassigning());
}

#[test]
fn reordering_the_replicas_changes_no_leader() {
    let (mut cluster, topic) = cluster();
    ok(&mut cluster, Some(&[2, 1]));
    let state = cluster.partition(topic, 0);
    assert_eq!(state.replicas, ids(&[2, 1]));
    assert_eq!(state.leader, Some(BrokerId(1)));
    assert!(!state.is_reassigning());
    // The same target again: nothing to do.
    let log_len = cluster.log.len();
    ok(&mut cluster, Some(&[2, 1]));
    assert_eq!(cluster.log.len(), log_len);
}

#[test]
fn cancel_reverts_to_the_original_replicas() {
    let (mut cluster, topic) = cluster();
    let original = cluster.partition(topic, 0);
    ok(&mut cluster, Some(&[3, 4]));
    let request = cluster.alter_request(topic, 0, &[1, 2, 3]);
    cluster.alter(request).expect("3 joins");
    assert_eq!(cluster.partition(topic, 0).replicas, ids(&[3, 4, 1, 2]));
    ok(&mut cluster, None);
    let reverted = cluster.partition(topic, 0);
    assert_eq!(reverted.replicas, original.replicas);
    assert_eq!(reverted.isr, ids(&[1, 2]), "the added replica left the ISR");
    assert_eq!(reverted.leader, Some(BrokerId(1)));
    assert!(!reverted.is_reassigning());
    assert_eq!(
        reassign(&mut cluster, None),
        vec![(
            t(),
            PartitionId(0),
            Err(ReassignmentError::NoReassignmentInProgress)
        )]
    );
}

#[test]
fn cancel_that_would_need_an_unclean_election_is_refused() {
    let (mut cluster, topic) = cluster();
    ok(&mut cluster, Some(&[3, 4]));
    let request = cluster.alter_request(topic, 0, &[1, 3]);
    cluster.alter(request).expect("1 shrinks to itself and 3");
    // Broker 1 is fenced: 3 leads; only added replicas are in the ISR.
    for id in 2..=4 {
        cluster.heartbeat(5000, id);
    }
    cluster.tick(9000);
    let state = cluster.partition(topic, 0);
    assert_eq!(
        (state.leader, state.isr.clone()),
        (Some(BrokerId(3)), ids(&[3]))
    );
    assert!(matches!(
        reassign(&mut cluster, None)[0].2,
        Err(ReassignmentError::InvalidReplicaAssignment(_))
    ));
    assert_eq!(cluster.partition(topic, 0), state);
}

#[test]
fn invalid_targets_and_unknown_partitions_are_refused() {
    let (mut cluster, _) = cluster();
    for bad in [&[][..], &[3, 3], &[1, 9]] {
        assert!(
            matches!(
                reassign(&mut cluster, Some(bad))[0].2,
                Err(ReassignmentError::InvalidReplicaAssignment(_))
            ),
            "{bad:?} accepted"
        );
    }
    let effects = cluster
        .controller
        .alter_partition_reassignments(
            &cluster.image,
            &[
                (t(), PartitionId(1), Some(ids(&[1]))),
                (
                    TopicName::new("missing").expect("valid"),
                    PartitionId(0),
                    None,
                ),
            ],
        )
        .expect("reassign");
    assert!(effects.records.is_empty());
    assert!(effects
        .response
        .iter()
        .all(|r| r.2 == Err(ReassignmentError::UnknownTopicOrPartition)));
}

#[test]
fn list_reports_only_the_partitions_asked_that_are_reassigning() {
    let (mut cluster, _) = cluster();
    let other = cluster.create_topic_with("u", vec![ids(&[1]), ids(&[2])]);
    let effects = cluster
        .controller
        .alter_partition_reassignments(
            &cluster.image,
            &[(
                TopicName::new("u").expect("valid"),
                PartitionId(1),
                Some(ids(&[3])),
            )],
        )
        .expect("reassign");
    cluster.commit(effects.records);
    assert!(cluster.partition(other, 1).is_reassigning());
    let u = TopicName::new("u").expect("valid");
    let asked = [
        (u.clone(), PartitionId(0)),
        (u.clone(), PartitionId(1)),
        (u.clone(), PartitionId(7)),
        (t(), PartitionId(0)),
    ];
    let listed = list_partition_reassignments(&cluster.image, Some(&asked));
    assert_eq!(listed.len(), 1);
    assert_eq!((listed[0].0.clone(), listed[0].1), (u, PartitionId(1)));
    assert_eq!(listed[0].2.adding_replicas, ids(&[3]));
    assert_eq!(listed[0].2.removing_replicas, ids(&[2]));
}

#[test]
fn a_reassigning_partition_survives_a_snapshot() {
    let (mut cluster, _) = cluster();
    ok(&mut cluster, Some(&[3, 4]));
    let restored = MetadataImage::replay(&cluster.image.to_records()).expect("replays");
    assert_eq!(restored, cluster.image);
}
