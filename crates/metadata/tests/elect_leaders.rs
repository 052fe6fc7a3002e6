//! ElectLeaders: preferred and unclean elections asked by an
//! administrator, with Kafka's per-partition answers.

mod common;

use common::{check_invariants, Cluster};
use runnel_metadata::{ElectLeadersError, ElectionType, PartitionResults};
use runnel_model::{BrokerId, PartitionId, TopicName};
use uuid::Uuid;

fn ids(list: &[i32]) -> Vec<BrokerId> {
    list.iter().copied().map(BrokerId).collect()
}

fn name(topic: &str) -> TopicName {
    TopicName::new(topic).expect("valid")
}

fn elect(
    cluster: &mut Cluster,
    election_type: ElectionType,
    partitions: Option<&[(TopicName, PartitionId)]>,
) -> PartitionResults<(), ElectLeadersError> {
    let effects = cluster
        .controller
        .elect_leaders(&cluster.image, election_type, partitions)
        .expect("elect_leaders");
    cluster.commit(effects.records);
    effects.response
}

/// Three brokers, "t" with partitions [1,2,3], [2,3,1], [3,1,2]; broker 3
/// was fenced (leaving every ISR) and is back, unfenced.
fn preferred_3_deposed() -> (Cluster, Uuid) {
    let mut cluster = Cluster::new();
    for id in 1..=3 {
        cluster.join(0, id, None);
    }
    let topic =
        cluster.create_topic_with("t", vec![ids(&[1, 2, 3]), ids(&[2, 3, 1]), ids(&[3, 1, 2])]);
    cluster.heartbeat(5000, 1);
    cluster.heartbeat(5000, 2);
    cluster.tick(9000);
    cluster.heartbeat(9500, 3);
    assert_eq!(cluster.partition(topic, 2).leader, Some(BrokerId(1)));
    (cluster, topic)
}

#[test]
fn preferred_election_needs_the_preferred_replica_in_the_isr() {
    let (mut cluster, topic) = preferred_3_deposed();
    let p2 = [(name("t"), PartitionId(2))];
    assert_eq!(
        elect(&mut cluster, ElectionType::Preferred, Some(&p2)),
        vec![(
            name("t"),
            PartitionId(2),
            Err(ElectLeadersError::PreferredLeaderNotAvailable)
        )]
    );
    // Asked for every partition, the one that cannot move is reported and
    // those already led by their preferred replica are not.
    assert_eq!(
        elect(&mut cluster, ElectionType::Preferred, None),
        vec![(
            name("t"),
            PartitionId(2),
            Err(ElectLeadersError::PreferredLeaderNotAvailable)
        )]
    );
    // Broker 3 rejoins every ISR; now the election moves partition 2.
    for p in 0..3 {
        let request = cluster.alter_request(topic, p, &[1, 2, 3]);
        cluster.alter(request).expect("rejoins");
    }
    let before = cluster.partition(topic, 2);
    assert_eq!(
        elect(&mut cluster, ElectionType::Preferred, None),
        vec![(name("t"), PartitionId(2), Ok(()))]
    );
    let after = cluster.partition(topic, 2);
    assert_eq!(after.leader, Some(BrokerId(3)));
    assert_eq!(after.leader_epoch.0, before.leader_epoch.0 + 1);
    assert!(elect(&mut cluster, ElectionType::Preferred, None).is_empty());
    check_invariants(&cluster.image);
}

#[test]
fn elections_report_needless_and_unknown_partitions() {
    let (mut cluster, _) = preferred_3_deposed();
    let asked = [
        (name("t"), PartitionId(0)),
        (name("t"), PartitionId(9)),
        (name("missing"), PartitionId(0)),
    ];
    for election_type in [ElectionType::Preferred, ElectionType::Unclean] {
        let log_len = cluster.log.len();
        let results = elect(&mut cluster, election_type, Some(&asked));
        assert_eq!(
            results.into_iter().map(|r| r.2).collect::<Vec<_>>(),
            vec![
                Err(ElectLeadersError::ElectionNotNeeded),
                Err(ElectLeadersError::UnknownTopicOrPartition),
                Err(ElectLeadersError::UnknownTopicOrPartition),
            ]
        );
        assert_eq!(cluster.log.len(), log_len);
    }
}

/// Brokers 1 and 2, "t" = [1, 2] with ISR [1]; broker 1 fenced.
fn leaderless() -> (Cluster, Uuid) {
    let mut cluster = Cluster::new();
    cluster.join(0, 1, None);
    cluster.join(0, 2, None);
    let topic = cluster.create_topic_with("t", vec![ids(&[1, 2])]);
    let request = cluster.alter_request(topic, 0, &[1]);
    cluster.alter(request).expect("shrinks");
    cluster.heartbeat(8000, 2);
    cluster.tick(9000);
    assert_eq!(cluster.partition(topic, 0).leader, None);
    (cluster, topic)
}

#[test]
fn unclean_election_asked_for_elects_a_live_replica_whatever_the_topic_config() {
    let (mut cluster, topic) = leaderless();
    assert!(!cluster
        .controller
        .unclean_leader_election_enabled(&cluster.image, topic));
    assert_eq!(
        elect(&mut cluster, ElectionType::Unclean, None),
        vec![(name("t"), PartitionId(0), Ok(()))]
    );
    let state = cluster.partition(topic, 0);
    assert_eq!((state.leader, state.isr), (Some(BrokerId(2)), ids(&[2])));
    assert!(elect(&mut cluster, ElectionType::Unclean, None).is_empty());
    check_invariants(&cluster.image);
}

#[test]
fn unclean_election_without_a_live_replica_is_not_available() {
    let (mut cluster, topic) = leaderless();
    cluster.tick(17_000); // broker 2 fenced too
    assert_eq!(cluster.image.unfenced_brokers().count(), 0);
    let p0 = [(name("t"), PartitionId(0))];
    assert_eq!(
        elect(&mut cluster, ElectionType::Unclean, Some(&p0)),
        vec![(
            name("t"),
            PartitionId(0),
            Err(ElectLeadersError::EligibleLeadersNotAvailable)
        )]
    );
    assert_eq!(
        elect(&mut cluster, ElectionType::Preferred, Some(&p0)),
        vec![(
            name("t"),
            PartitionId(0),
            Err(ElectLeadersError::PreferredLeaderNotAvailable)
        )]
    );
    assert_eq!(cluster.partition(topic, 0).leader, None);
}
