//! Unclean leader election: off by default, a partition whose ISR has no
//! live member stays leaderless; on (per topic, cluster-wide or by the
//! controller's default), a live replica outside the ISR leads it alone.

mod common;

use std::collections::BTreeMap;

use common::{check_invariants, Cluster};
use runnel_metadata::records::{ConfigRecord, ConfigResourceType, MetadataRecord};
use runnel_metadata::{ControllerConfig, UNCLEAN_LEADER_ELECTION_ENABLE};
use runnel_model::{BrokerId, LeaderEpoch, TopicName};
use uuid::Uuid;

fn ids(list: &[i32]) -> Vec<BrokerId> {
    list.iter().copied().map(BrokerId).collect()
}

/// Brokers 1 and 2, topic "t" with one partition [1, 2] whose ISR the
/// leader shrank to [1].
fn lagging_follower(config: ControllerConfig) -> (Cluster, Uuid) {
    let mut cluster = Cluster::with_config(config);
    cluster.join(0, 1, None);
    cluster.join(0, 2, None);
    let topic = cluster.create_topic_with("t", vec![ids(&[1, 2])]);
    let request = cluster.alter_request(topic, 0, &[1]);
    cluster.alter(request).expect("shrinks");
    (cluster, topic)
}

/// Broker 1 goes silent and is fenced at 9 s; broker 2 keeps heartbeating.
fn fence_leader(cluster: &mut Cluster) {
    cluster.heartbeat(8000, 2);
    cluster.tick(9000);
    assert!(!cluster.image.is_unfenced(BrokerId(1)));
}

#[test]
fn without_unclean_election_the_partition_waits_for_its_isr() {
    let (mut cluster, topic) = lagging_follower(ControllerConfig::default());
    fence_leader(&mut cluster);
    let state = cluster.partition(topic, 0);
    assert_eq!(state.leader, None);
    assert_eq!(state.isr, ids(&[1]), "the last ISR member stays");
    // Ticks do not change that.
    assert!(cluster.tick(9500).is_empty());
    assert_eq!(cluster.partition(topic, 0).leader, None);
    check_invariants(&cluster.image);
}

#[test]
fn unclean_election_elects_a_live_replica_outside_the_isr_when_the_leader_is_fenced() {
    let config = ControllerConfig {
        unclean_leader_election_enable: true,
        ..ControllerConfig::default()
    };
    let (mut cluster, topic) = lagging_follower(config);
    let before = cluster.partition(topic, 0);
    fence_leader(&mut cluster);
    let state = cluster.partition(topic, 0);
    assert_eq!(state.leader, Some(BrokerId(2)));
    assert_eq!(state.isr, ids(&[2]), "the unclean leader is the ISR");
    assert_eq!(state.leader_epoch, LeaderEpoch(before.leader_epoch.0 + 1));
    check_invariants(&cluster.image);
}

#[test]
fn a_topic_config_overrides_the_default_both_ways() {
    let config = ControllerConfig {
        unclean_leader_election_enable: true,
        ..ControllerConfig::default()
    };
    let (mut cluster, topic) = lagging_follower(config);
    let name = TopicName::new("t").expect("valid");
    let effects = cluster
        .controller
        .alter_topic_configs(
            &cluster.image,
            &name,
            &[(UNCLEAN_LEADER_ELECTION_ENABLE.into(), Some("false".into()))],
        )
        .expect("alter");
    cluster.commit(effects.records);
    assert!(!cluster
        .controller
        .unclean_leader_election_enabled(&cluster.image, topic));
    fence_leader(&mut cluster);
    assert_eq!(cluster.partition(topic, 0).leader, None);
}

#[test]
fn switching_unclean_election_on_elects_the_leaderless_partitions() {
    let (mut cluster, topic) = lagging_follower(ControllerConfig::default());
    fence_leader(&mut cluster);
    assert_eq!(cluster.partition(topic, 0).leader, None);
    let name = TopicName::new("t").expect("valid");
    let effects = cluster
        .controller
        .alter_topic_configs(
            &cluster.image,
            &name,
            &[(UNCLEAN_LEADER_ELECTION_ENABLE.into(), Some("true".into()))],
        )
        .expect("alter");
    assert_eq!(effects.response, Ok(()));
    cluster.commit(effects.records);
    let state = cluster.partition(topic, 0);
    assert_eq!((state.leader, state.isr), (Some(BrokerId(2)), ids(&[2])));
    check_invariants(&cluster.image);
}

#[test]
fn a_cluster_wide_default_set_later_is_acted_on_at_the_next_tick() {
    let (mut cluster, topic) = lagging_follower(ControllerConfig::default());
    fence_leader(&mut cluster);
    cluster.commit(vec![MetadataRecord::Config(ConfigRecord {
        resource_type: ConfigResourceType::Broker,
        resource_name: String::new(),
        key: UNCLEAN_LEADER_ELECTION_ENABLE.into(),
        value: Some("true".into()),
    })]);
    assert_eq!(cluster.partition(topic, 0).leader, None);
    let records = cluster.tick(9100);
    assert_eq!(records.len(), 1);
    assert_eq!(cluster.partition(topic, 0).leader, Some(BrokerId(2)));
    check_invariants(&cluster.image);
}

#[test]
fn a_replica_coming_back_is_elected_uncleanly_when_the_topic_allows_it() {
    let mut cluster = Cluster::new();
    cluster.join(0, 1, None);
    cluster.join(0, 2, None);
    let mut configs = BTreeMap::new();
    configs.insert(
        UNCLEAN_LEADER_ELECTION_ENABLE.to_string(),
        "true".to_string(),
    );
    let topic = cluster.create_topic_with_configs("t", vec![ids(&[1, 2])], configs);
    let request = cluster.alter_request(topic, 0, &[1]);
    cluster.alter(request).expect("shrinks");
    // Broker 2 is fenced first, then the leader: nobody may lead.
    cluster.heartbeat(5000, 1);
    cluster.tick(9000);
    cluster.tick(14_000);
    assert_eq!(cluster.image.unfenced_brokers().count(), 0);
    assert_eq!(cluster.partition(topic, 0).leader, None);
    assert_eq!(cluster.partition(topic, 0).isr, ids(&[1]));
    // Broker 2 returns first: it is elected although outside the ISR.
    cluster.heartbeat(14_500, 2);
    let state = cluster.partition(topic, 0);
    assert_eq!((state.leader, state.isr), (Some(BrokerId(2)), ids(&[2])));
    check_invariants(&cluster.image);
}
