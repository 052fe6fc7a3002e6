//! Automatic leader rebalance: once per
//! `leader.imbalance.check.interval.seconds`, leaderships move back to
//! preferred replicas of brokers whose imbalance exceeds
//! `leader.imbalance.per.broker.percentage`.

mod common;

use common::{check_invariants, Cluster};
use runnel_metadata::{ControllerConfig, ElectionType};
use runnel_model::{BrokerId, PartitionId, TopicName};
use uuid::Uuid;

fn ids(list: &[i32]) -> Vec<BrokerId> {
    list.iter().copied().map(BrokerId).collect()
}

fn config(percentage: i32) -> ControllerConfig {
    ControllerConfig {
        leader_imbalance_check_interval_seconds: 10,
        leader_imbalance_per_broker_percentage: percentage,
        ..ControllerConfig::default()
    }
}

/// Brokers 1 and 2; "t" has 4 partitions [1, 2], all led by 2 after
/// broker 1 was fenced at 9 s (the first tick, so the first check is due
/// at 19 s) and came back. Broker 1 rejoins the ISR of the partitions in
/// `rejoined`, and leads those in `led` again.
fn imbalanced(config: ControllerConfig, rejoined: &[i32], led: &[i32]) -> (Cluster, Uuid) {
    let mut cluster = Cluster::with_config(config);
    cluster.join(0, 1, None);
    cluster.join(0, 2, None);
    let topic = cluster.create_topic_with("t", vec![ids(&[1, 2]); 4]);
    cluster.heartbeat(5000, 2);
    cluster.tick(9000);
    cluster.heartbeat(9500, 1);
    for &p in rejoined {
        let request = cluster.alter_request(topic, p, &[2, 1]);
        cluster.alter(request).expect("rejoins");
    }
    let led: Vec<(TopicName, PartitionId)> = led
        .iter()
        .map(|&p| (TopicName::new("t").expect("valid"), PartitionId(p)))
        .collect();
    let effects = cluster
        .controller
        .elect_leaders(&cluster.image, ElectionType::Preferred, Some(&led))
        .expect("elect");
    assert!(effects.response.iter().all(|r| r.2.is_ok()));
    cluster.commit(effects.records);
    cluster.heartbeat(15_000, 1);
    cluster.heartbeat(15_000, 2);
    (cluster, topic)
}

fn leaders(cluster: &Cluster, topic: Uuid) -> Vec<Option<BrokerId>> {
    cluster
        .partitions_of(topic)
        .iter()
        .map(|p| p.leader)
        .collect()
}

#[test]
fn rebalance_waits_for_the_interval_then_moves_leaders_back() {
    let (mut cluster, topic) = imbalanced(config(10), &[0, 1, 2, 3], &[]);
    assert_eq!(leaders(&cluster, topic), vec![Some(BrokerId(2)); 4]);
    assert!(cluster.tick(18_999).is_empty(), "not due yet");
    assert_eq!(
        cluster.controller.next_deadline(&cluster.image),
        Some(19_000)
    );
    assert_eq!(cluster.tick(19_000).len(), 4);
    assert_eq!(leaders(&cluster, topic), vec![Some(BrokerId(1)); 4]);
    check_invariants(&cluster.image);
}

#[test]
fn rebalance_skips_partitions_whose_preferred_leader_is_not_in_the_isr_until_the_next_interval() {
    let (mut cluster, topic) = imbalanced(config(10), &[0, 1], &[]);
    assert_eq!(cluster.tick(19_000).len(), 2);
    assert_eq!(
        leaders(&cluster, topic),
        vec![
            Some(BrokerId(1)),
            Some(BrokerId(1)),
            Some(BrokerId(2)),
            Some(BrokerId(2))
        ]
    );
    // Broker 1 catches up on partition 2; nothing moves before 29 s.
    let request = cluster.alter_request(topic, 2, &[2, 1]);
    cluster.alter(request).expect("rejoins");
    assert!(cluster.tick(19_500).is_empty());
    cluster.heartbeat(22_000, 1);
    cluster.heartbeat(22_000, 2);
    assert!(cluster.tick(28_999).is_empty());
    assert_eq!(cluster.tick(29_000).len(), 1);
    assert_eq!(cluster.partition(topic, 2).leader, Some(BrokerId(1)));
}

#[test]
fn rebalance_needs_more_than_the_percentage_led_elsewhere() {
    // Broker 1 leads 2 of its 4 preferred partitions: 50 % elsewhere.
    let (mut at_50, _) = imbalanced(config(50), &[0, 1, 2, 3], &[0, 1]);
    assert!(at_50.tick(19_000).is_empty(), "50 % is not above 50 %");
    let (mut at_49, topic) = imbalanced(config(49), &[0, 1, 2, 3], &[0, 1]);
    assert_eq!(at_49.tick(19_000).len(), 2);
    assert_eq!(leaders(&at_49, topic), vec![Some(BrokerId(1)); 4]);
}

#[test]
fn rebalance_can_be_switched_off() {
    let off = ControllerConfig {
        auto_leader_rebalance_enable: false,
        ..config(10)
    };
    let (mut cluster, topic) = imbalanced(off, &[0, 1, 2, 3], &[]);
    assert!(cluster.tick(19_000).is_empty());
    assert!(cluster.tick(23_000).is_empty());
    assert_eq!(
        cluster.controller.next_deadline(&cluster.image),
        Some(24_000)
    );
    assert_eq!(leaders(&cluster, topic), vec![Some(BrokerId(2)); 4]);
}
