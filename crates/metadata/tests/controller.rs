//! The controller state machine without I/O: placement, election, fencing,
//! registration, controlled shutdown, and replay of what it produced.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::{check_invariants, Cluster};
use runnel_metadata::records::{ConfigResourceType, MetadataRecord};
use runnel_metadata::{
    elect_preferred_leaders, BrokerEpoch, BrokerRegistrationRequest, ControllerError,
    CreateTopicRequest, HeartbeatRequest, MetadataImage, TopicError,
};
use runnel_model::{BrokerId, LeaderEpoch, PartitionId, TopicName};
use uuid::Uuid;

fn three_brokers() -> Cluster {
    let mut cluster = Cluster::new();
    for id in 1..=3 {
        cluster.join(0, id, None);
    }
    cluster
}

fn distinct(brokers: &[BrokerId]) -> bool {
    brokers.iter().collect::<BTreeSet<_>>().len() == brokers.len()
}

#[test]
fn placement_spreads_leaders_evenly_with_rf1_and_rf3() {
    for rf in [1, 3] {
        let mut cluster = three_brokers();
        let topic = cluster.create_topic("orders", 6, rf);
        let partitions = cluster.partitions_of(topic);
        assert_eq!(partitions.len(), 6);
        for p in &partitions {
            assert_eq!(p.replicas.len(), rf as usize);
            assert!(distinct(&p.replicas));
            assert_eq!(p.isr, p.replicas);
            assert_eq!(p.leader, Some(p.replicas[0]), "first replica leads");
        }
        let counts = cluster.leader_counts();
        assert_eq!(counts.values().copied().collect::<Vec<_>>(), vec![2, 2, 2]);
        let mut replica_counts = BTreeMap::<BrokerId, usize>::new();
        for p in &partitions {
            for b in &p.replicas {
                *replica_counts.entry(*b).or_default() += 1;
            }
        }
        assert!(replica_counts.values().all(|&c| c == 2 * rf as usize));
    }
}

#[test]
fn placement_spreads_followers_evenly() {
    let mut cluster = Cluster::new();
    for id in 1..=4 {
        cluster.join(0, id, None);
    }
    let topic = cluster.create_topic("t", 8, 2);
    let mut followers = BTreeMap::<BrokerId, usize>::new();
    for p in cluster.partitions_of(topic) {
        *followers.entry(p.replicas[1]).or_default() += 1;
    }
    assert_eq!(followers.values().copied().collect::<Vec<_>>(), vec![2; 4]);
}

#[test]
fn placement_puts_replicas_on_distinct_racks() {
    let mut cluster = Cluster::new();
    // Two brokers on each of three racks, registered out of rack order.
    for (id, rack) in [(1, "a"), (2, "a"), (3, "b"), (4, "c"), (5, "b"), (6, "c")] {
        cluster.join(0, id, Some(rack));
    }
    let rack_of = |image: &MetadataImage, b: BrokerId| image.broker(b).and_then(|r| r.rack.clone());
    let topic = cluster.create_topic("t", 12, 3);
    for p in cluster.partitions_of(topic) {
        let racks: BTreeSet<_> = p
            .replicas
            .iter()
            .map(|&b| rack_of(&cluster.image, b))
            .collect();
        assert_eq!(racks.len(), 3, "{:?} spans every rack", p.replicas);
    }
    assert_eq!(
        cluster
            .leader_counts()
            .values()
            .copied()
            .collect::<Vec<_>>(),
        vec![2; 6]
    );
    // RF 2: two distinct racks per partition.
    let topic = cluster.create_topic("u", 6, 2);
    for p in cluster.partitions_of(topic) {
        let racks: BTreeSet<_> = p
            .replicas
            .iter()
            .map(|&b| rack_of(&cluster.image, b))
            .collect();
        assert_eq!(racks.len(), 2);
    }
}

#[test]
fn create_topics_refuses_what_kafka_refuses() {
    let mut cluster = three_brokers();
    let rf_error = cluster.try_create_topic("t", 1, 4);
    assert!(matches!(
        rf_error[0].1,
        Err(TopicError::InvalidReplicationFactor(_))
    ));
    assert!(matches!(
        cluster.try_create_topic("t", 1, 0)[0].1,
        Err(TopicError::InvalidReplicationFactor(_))
    ));
    for bad in [0, -5, i32::MAX] {
        assert!(matches!(
            cluster.try_create_topic("t", bad, 1)[0].1,
            Err(TopicError::InvalidPartitions(_))
        ));
    }
    assert!(cluster
        .log
        .iter()
        .all(|r| !matches!(r, MetadataRecord::Topic(_))));
    cluster.create_topic("t", 1, 1);
    assert!(matches!(
        cluster.try_create_topic("t", 1, 1)[0].1,
        Err(TopicError::TopicAlreadyExists(_))
    ));
    // -1 takes the defaults (1 partition, RF 1).
    let created = cluster.try_create_topic("defaults", -1, -1);
    let created = created[0].1.as_ref().expect("created");
    assert_eq!((created.num_partitions, created.replication_factor), (1, 1));
}

#[test]
fn duplicate_names_in_one_request_are_invalid() {
    let cluster = three_brokers();
    let request = CreateTopicRequest {
        name: TopicName::new("dup").expect("valid"),
        num_partitions: 1,
        replication_factor: 1,
        configs: BTreeMap::new(),
        assignments: vec![],
    };
    let effects = cluster
        .controller
        .create_topics(
            &cluster.image,
            &[request.clone(), request],
            &mut Uuid::new_v4,
        )
        .expect("create_topics");
    assert!(effects.records.is_empty());
    assert!(effects
        .response
        .iter()
        .all(|(_, r)| matches!(r, Err(TopicError::InvalidRequest(_)))));
}

#[test]
fn fenced_brokers_get_no_replicas() {
    let mut cluster = three_brokers();
    cluster.heartbeat(8000, 1);
    cluster.heartbeat(8000, 2);
    cluster.tick(9000);
    assert!(!cluster.image.is_unfenced(BrokerId(3)));
    assert!(matches!(
        cluster.try_create_topic("t", 3, 3)[0].1,
        Err(TopicError::InvalidReplicationFactor(_))
    ));
    let topic = cluster.create_topic("t", 4, 2);
    for p in cluster.partitions_of(topic) {
        assert!(!p.replicas.contains(&BrokerId(3)));
    }
}

#[test]
fn fencing_after_session_timeout_moves_leadership_away() {
    let mut cluster = three_brokers();
    let topic = cluster.create_topic("orders", 6, 3);
    // Brokers 1 and 2 keep heartbeating; broker 3 goes silent after 0.
    cluster.heartbeat(5000, 1);
    cluster.heartbeat(5000, 2);
    assert!(cluster.tick(8999).is_empty(), "session not expired yet");
    let records = cluster.tick(9000);
    assert!(matches!(
        &records[0],
        MetadataRecord::FenceBroker(r) if r.broker_id == BrokerId(3)
    ));
    assert!(records[1..]
        .iter()
        .all(|r| matches!(r, MetadataRecord::PartitionChange(_))));
    assert!(!cluster.image.is_unfenced(BrokerId(3)));
    assert!(!cluster.leader_counts().contains_key(&BrokerId(3)));
    for p in cluster.partitions_of(topic) {
        assert!(!p.isr.contains(&BrokerId(3)), "left the ISR");
        if p.replicas[0] == BrokerId(3) {
            assert_eq!(p.leader_epoch, LeaderEpoch(1), "new leader, new epoch");
        }
    }
    check_invariants(&cluster.image);
    // The others are fenced too once their sessions run out.
    assert!(cluster.tick(13_999).is_empty());
    cluster.tick(14_000);
    assert_eq!(cluster.image.unfenced_brokers().count(), 0);
    check_invariants(&cluster.image);
}

#[test]
fn rf1_partition_has_no_leader_while_its_broker_is_fenced() {
    let mut cluster = three_brokers();
    let topic = cluster.create_topic("t", 3, 1);
    let on_3 = cluster
        .partitions_of(topic)
        .iter()
        .position(|p| p.replicas == [BrokerId(3)])
        .expect("one partition on broker 3");
    cluster.heartbeat(6000, 1);
    cluster.heartbeat(6000, 2);
    cluster.tick(9000);
    let state = &cluster.partitions_of(topic)[on_3];
    assert_eq!(state.leader, None);
    assert_eq!(state.isr, vec![BrokerId(3)], "the last ISR member stays");
    assert_eq!(state.leader_epoch, LeaderEpoch(1));
    // Broker 3 heartbeats again: unfenced, and it leads its partition again.
    let response = cluster.heartbeat(10_000, 3);
    assert!(!response.is_fenced);
    let state = &cluster.partitions_of(topic)[on_3];
    assert_eq!(state.leader, Some(BrokerId(3)));
    assert_eq!(state.leader_epoch, LeaderEpoch(2));
    check_invariants(&cluster.image);
}

#[test]
fn registration_is_idempotent_per_incarnation() {
    let mut cluster = Cluster::new();
    let first = cluster.register_as(0, 1, 77, None);
    let log_len = cluster.log.len();
    assert_eq!(cluster.register_as(100, 1, 77, None), first, "a retry");
    assert_eq!(cluster.log.len(), log_len, "no new record");
    assert!(
        cluster
            .image
            .broker(BrokerId(1))
            .expect("registered")
            .fenced
    );
    cluster.heartbeat(100, 1);
    // A new incarnation while the old session lives is refused...
    let request = BrokerRegistrationRequest {
        broker_id: BrokerId(1),
        incarnation_id: Uuid::from_u128(78),
        endpoints: vec![],
        rack: None,
    };
    let refused = cluster
        .controller
        .register_broker(5000, &cluster.image, request.clone());
    assert_eq!(
        refused,
        Err(ControllerError::DuplicateBrokerRegistration(BrokerId(1)))
    );
    // ...and accepted once it has expired: fenced, with a larger epoch.
    let second = cluster
        .controller
        .register_broker(9100, &cluster.image, request)
        .expect("registers");
    cluster.commit(second.records);
    assert!(second.response > first);
    let broker = cluster.image.broker(BrokerId(1)).expect("registered");
    assert!(broker.fenced);
    assert_eq!(broker.broker_epoch, second.response);
    // The old incarnation's epoch is stale now.
    let stale = cluster.controller.heartbeat(
        9200,
        &cluster.image,
        HeartbeatRequest {
            broker_id: BrokerId(1),
            broker_epoch: first,
            want_fence: false,
            want_shut_down: false,
        },
    );
    assert!(matches!(
        stale,
        Err(ControllerError::StaleBrokerEpoch { .. })
    ));
    let unknown = cluster.controller.heartbeat(
        9200,
        &cluster.image,
        HeartbeatRequest {
            broker_id: BrokerId(9),
            broker_epoch: BrokerEpoch(1),
            want_fence: false,
            want_shut_down: false,
        },
    );
    assert_eq!(
        unknown,
        Err(ControllerError::BrokerIdNotRegistered(BrokerId(9)))
    );
}

#[test]
fn controlled_shutdown_moves_leadership_before_fencing() {
    let mut cluster = three_brokers();
    let topic = cluster.create_topic("t", 6, 3);
    let before = cluster.log.len();
    let response = cluster.heartbeat_with(1000, 1, true);
    assert!(response.should_shut_down && response.is_fenced);
    let records = &cluster.log[before..];
    let fence_at = records
        .iter()
        .position(|r| matches!(r, MetadataRecord::FenceBroker(_)))
        .expect("fenced");
    assert_eq!(fence_at, records.len() - 1, "fencing comes last");
    assert!(fence_at >= 2, "leaderships moved first");
    assert!(!cluster.leader_counts().contains_key(&BrokerId(1)));
    for p in cluster.partitions_of(topic) {
        assert!(!p.isr.contains(&BrokerId(1)));
    }
    // It stays fenced while it heartbeats until it stops.
    assert!(cluster.heartbeat(2000, 1).is_fenced);
    check_invariants(&cluster.image);
}

#[test]
fn preferred_leader_election_returns_leadership_to_the_first_replica() {
    let mut cluster = three_brokers();
    let topic = cluster.create_topic("t", 3, 3);
    cluster.heartbeat(5000, 1);
    cluster.heartbeat(5000, 2);
    cluster.tick(9000); // broker 3 fenced, leaves every ISR
    let _ = cluster.heartbeat(9500, 3); // unfenced again, but out of the ISRs
    assert!(elect_preferred_leaders(&cluster.image, None).is_empty());
    // Put 3 back in the ISRs the way AlterPartition will (issue 7).
    let rejoin: Vec<MetadataRecord> = cluster
        .image
        .partitions()
        .map(|(topic_id, partition, state)| {
            MetadataRecord::PartitionChange(runnel_metadata::records::PartitionChangeRecord {
                topic_id,
                partition,
                leader: state.leader,
                isr: Some(state.replicas.clone()),
                replicas: None,
                leader_epoch: state.leader_epoch,
                partition_epoch: runnel_metadata::PartitionEpoch(state.partition_epoch.0 + 1),
                adding_replicas: None,
                removing_replicas: None,
            })
        })
        .collect();
    cluster.commit(rejoin);
    let elections = elect_preferred_leaders(&cluster.image, None);
    assert_eq!(elections.len(), 1, "only the partition 3 prefers");
    cluster.commit(elections.into_iter().map(Into::into).collect());
    for p in cluster.partitions_of(topic) {
        assert_eq!(p.leader, Some(p.replicas[0]));
    }
    let only_other = [(topic, PartitionId(0))];
    assert!(elect_preferred_leaders(&cluster.image, Some(&only_other)).is_empty());
}

#[test]
fn create_partitions_places_the_new_ones_and_delete_removes_the_topic() {
    let mut cluster = three_brokers();
    let topic = cluster.create_topic("t", 3, 2);
    let name = TopicName::new("t").expect("valid");
    let effects = cluster
        .controller
        .create_partitions(&cluster.image, &[(name.clone(), 6)])
        .expect("create_partitions");
    assert_eq!(effects.response[0].1, Ok(()));
    cluster.commit(effects.records);
    let partitions = cluster.partitions_of(topic);
    assert_eq!(partitions.len(), 6);
    assert!(partitions
        .iter()
        .all(|p| p.replicas.len() == 2 && distinct(&p.replicas)));
    assert_eq!(
        cluster
            .leader_counts()
            .values()
            .copied()
            .collect::<Vec<_>>(),
        vec![2, 2, 2]
    );
    for (count, expected) in [(6, "already has 6"), (2, "higher than the requested 2")] {
        let effects = cluster
            .controller
            .create_partitions(&cluster.image, &[(name.clone(), count)])
            .expect("create_partitions");
        match &effects.response[0].1 {
            Err(TopicError::InvalidPartitions(message)) => assert!(message.contains(expected)),
            other => panic!("{other:?}"),
        }
    }
    let effects = cluster
        .controller
        .alter_topic_configs(
            &cluster.image,
            &name,
            &[("retention.ms".into(), Some("1".into()))],
        )
        .expect("alter");
    cluster.commit(effects.records);
    assert!(cluster
        .image
        .configs(ConfigResourceType::Topic, "t")
        .is_some());
    let missing = TopicName::new("missing").expect("valid");
    let effects = cluster
        .controller
        .delete_topics(&cluster.image, &[name.clone(), missing])
        .expect("delete");
    assert_eq!(effects.response[0].1, Ok(topic));
    assert!(matches!(
        effects.response[1].1,
        Err(TopicError::UnknownTopicOrPartition(_))
    ));
    cluster.commit(effects.records);
    assert!(cluster.image.topic_by_name(&name).is_none());
    assert!(cluster
        .image
        .configs(ConfigResourceType::Topic, "t")
        .is_none());
}

#[test]
fn replaying_the_log_gives_the_image_the_controller_computed() {
    let mut cluster = three_brokers();
    cluster.create_topic("a", 4, 3);
    cluster.create_topic("b", 2, 1);
    cluster.heartbeat(5000, 1);
    cluster.heartbeat(5000, 2);
    cluster.tick(9000);
    cluster.heartbeat(9500, 3);
    cluster.heartbeat_with(9600, 2, true);
    let replayed = MetadataImage::replay(&cluster.log).expect("replays");
    assert_eq!(replayed, cluster.image);
    // The same through the byte encoding.
    let decoded: Vec<MetadataRecord> = cluster
        .log
        .iter()
        .map(|r| MetadataRecord::decode(&r.encode()).expect("decodes"))
        .collect();
    assert_eq!(
        MetadataImage::replay(&decoded).expect("replays"),
        cluster.image
    );
}

#[test]
fn a_new_controller_gives_known_brokers_a_full_session() {
    let mut cluster = three_brokers();
    cluster.create_topic("t", 3, 1);
    // Failover: a fresh controller on the same image at t = 20 s.
    cluster.controller = runnel_metadata::Controller::new(Default::default());
    assert!(cluster.tick(20_000).is_empty());
    assert_eq!(
        cluster.controller.next_deadline(&cluster.image),
        Some(29_000)
    );
    assert!(!cluster.tick(29_000).is_empty());
}

#[test]
fn manual_assignments_are_checked_and_their_first_live_replica_leads() {
    let mut cluster = three_brokers();
    let ids = |list: &[i32]| list.iter().map(|b| BrokerId(*b)).collect::<Vec<_>>();
    let request = |assignments: Vec<Vec<BrokerId>>| CreateTopicRequest {
        name: TopicName::new("assigned").expect("valid"),
        num_partitions: -1,
        replication_factor: -1,
        configs: BTreeMap::new(),
        assignments,
    };
    let refused = |assignments: Vec<Vec<BrokerId>>| {
        let effects = cluster
            .controller
            .create_topics(&cluster.image, &[request(assignments)], &mut Uuid::new_v4)
            .expect("create_topics");
        assert!(effects.records.is_empty());
        effects.response[0].1.clone()
    };
    for bad in [
        vec![ids(&[1]), ids(&[])],
        vec![ids(&[1, 2]), ids(&[3])],
        vec![ids(&[1, 1])],
        vec![ids(&[1, 9])],
    ] {
        assert!(
            matches!(
                refused(bad.clone()),
                Err(TopicError::InvalidReplicaAssignment(_))
            ),
            "{bad:?} accepted"
        );
    }
    let mut both = request(vec![ids(&[1])]);
    both.num_partitions = 1;
    let effects = cluster
        .controller
        .create_topics(&cluster.image, &[both], &mut Uuid::new_v4)
        .expect("create_topics");
    assert!(matches!(
        effects.response[0].1,
        Err(TopicError::InvalidRequest(_))
    ));

    // Broker 2 fenced: partition 0 ([2, 3]) is led by 3, partition 1 by 1.
    cluster.heartbeat(8000, 1);
    cluster.heartbeat(8000, 3);
    cluster.tick(9000);
    assert!(!cluster.image.is_unfenced(BrokerId(2)));
    let effects = cluster
        .controller
        .create_topics(
            &cluster.image,
            &[request(vec![ids(&[2, 3]), ids(&[1, 2])])],
            &mut Uuid::new_v4,
        )
        .expect("create_topics");
    let created = effects.response[0].1.clone().expect("created");
    assert_eq!((created.num_partitions, created.replication_factor), (2, 2));
    cluster.commit(effects.records);
    let states = cluster.partitions_of(created.topic_id);
    assert_eq!(states[0].replicas, ids(&[2, 3]));
    assert_eq!(states[0].leader, Some(BrokerId(3)));
    assert_eq!(states[1].leader, Some(BrokerId(1)));
}

#[test]
fn producer_id_blocks_never_overlap_and_survive_a_snapshot() {
    let mut cluster = three_brokers();
    let epoch = |cluster: &Cluster, id: i32| {
        cluster
            .image
            .broker(BrokerId(id))
            .expect("registered")
            .broker_epoch
    };
    let mut blocks = Vec::new();
    for id in [1, 2, 1, 3] {
        let effects = cluster
            .controller
            .allocate_producer_ids(&cluster.image, BrokerId(id), epoch(&cluster, id))
            .expect("allocated");
        blocks.push(effects.response);
        cluster.commit(effects.records);
    }
    for pair in blocks.windows(2) {
        assert_eq!(pair[0].0 + pair[0].1, pair[1].0, "{blocks:?}");
    }
    assert_eq!(blocks[0].0, 0);
    let stale = cluster.controller.allocate_producer_ids(
        &cluster.image,
        BrokerId(1),
        BrokerEpoch(epoch(&cluster, 1).0 - 1),
    );
    assert!(matches!(
        stale,
        Err(ControllerError::StaleBrokerEpoch { .. })
    ));
    let unknown =
        cluster
            .controller
            .allocate_producer_ids(&cluster.image, BrokerId(7), BrokerEpoch(1));
    assert!(matches!(
        unknown,
        Err(ControllerError::BrokerIdNotRegistered(_))
    ));

    let restored = MetadataImage::replay(&cluster.image.to_records()).expect("replays");
    assert_eq!(restored.next_producer_id(), 4000);
    assert_eq!(restored, cluster.image);
}
