//! Random sequences of registrations, heartbeats, time passing, topic
//! operations, elections, AlterPartition requests (valid, stale or
//! invalid) and reassignments keep the metadata's invariants: no fenced
//! leader, leader ∈ ISR ⊆ replicas, a non-empty ISR, adding and removing
//! replicas disjoint within the replicas, epochs that only grow, and a log
//! (and a snapshot) that replays into the image the controller worked on.

mod common;

use std::collections::BTreeMap;

use common::{check_invariants, Cluster};
use proptest::prelude::*;
use runnel_metadata::{
    elect_preferred_leaders, AlterPartitionRequest, BrokerEpoch, BrokerRegistrationRequest,
    ControllerError, ElectionType, HeartbeatRequest, MetadataImage, PartitionEpoch,
    UNCLEAN_LEADER_ELECTION_ENABLE,
};
use runnel_model::{BrokerId, LeaderEpoch, PartitionId, TopicName};
use uuid::Uuid;

#[derive(Debug, Clone)]
enum Op {
    Register {
        broker: i32,
        incarnation: u128,
    },
    Heartbeat {
        broker: i32,
        want_fence: bool,
    },
    Shutdown {
        broker: i32,
    },
    Advance {
        ms: i64,
    },
    Tick,
    CreateTopic {
        partitions: i32,
        rf: i16,
    },
    CreatePartitions {
        topic: usize,
        extra: i32,
    },
    DeleteTopic {
        topic: usize,
    },
    PreferredElection,
    /// An AlterPartition from the leader of a partition: the ISR is the
    /// leader (if `with_leader`), the replicas picked by `members` (a bit
    /// mask over the replica list) and broker 9 (no replica) if
    /// `stranger`, at the current epochs unless `stale`.
    AlterIsr {
        partition: usize,
        members: u8,
        with_leader: bool,
        stranger: bool,
        stale: bool,
    },
    /// Reassign a partition to the registered brokers picked by `members`
    /// (a bit mask over them by id, rotated by `rotate`; empty is
    /// invalid), plus broker 9 (unregistered) if `stranger`; or cancel.
    Reassign {
        partition: usize,
        target: Option<(u8, usize, bool)>,
    },
    ElectLeaders {
        unclean: bool,
    },
    SetUnclean {
        topic: usize,
        on: bool,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => (0..5i32, 0..3u128).prop_map(|(broker, incarnation)| Op::Register { broker, incarnation }),
        4 => (0..5i32, proptest::bool::weighted(0.1))
            .prop_map(|(broker, want_fence)| Op::Heartbeat { broker, want_fence }),
        1 => (0..5i32).prop_map(|broker| Op::Shutdown { broker }),
        3 => (0..7000i64).prop_map(|ms| Op::Advance { ms }),
        2 => Just(Op::Tick),
        2 => (1..6i32, 1..4i16).prop_map(|(partitions, rf)| Op::CreateTopic { partitions, rf }),
        1 => (0..4usize, 0..3i32).prop_map(|(topic, extra)| Op::CreatePartitions { topic, extra }),
        1 => (0..4usize).prop_map(|topic| Op::DeleteTopic { topic }),
        1 => Just(Op::PreferredElection),
        6 => (
            0..64usize,
            0..32u8,
            proptest::bool::weighted(0.95),
            proptest::bool::weighted(0.05),
            proptest::bool::weighted(0.1),
        )
            .prop_map(|(partition, members, with_leader, stranger, stale)| Op::AlterIsr {
                partition,
                members,
                with_leader,
                stranger,
                stale,
            }),
        3 => (
            0..64usize,
            proptest::option::weighted(
                0.8,
                (0..32u8, 0..5usize, proptest::bool::weighted(0.05)),
            ),
        )
            .prop_map(|(partition, target)| Op::Reassign { partition, target }),
        1 => proptest::bool::ANY.prop_map(|unclean| Op::ElectLeaders { unclean }),
        1 => (0..4usize, proptest::bool::ANY).prop_map(|(topic, on)| Op::SetUnclean { topic, on }),
    ]
}

struct World {
    cluster: Cluster,
    now: i64,
    topics_created: u32,
    /// The highest epochs seen per partition and per broker.
    partition_epochs: BTreeMap<(Uuid, PartitionId), (LeaderEpoch, PartitionEpoch)>,
    broker_epochs: BTreeMap<BrokerId, BrokerEpoch>,
}

impl World {
    fn topic_name(&self, index: usize) -> Option<TopicName> {
        let mut names: Vec<TopicName> = self
            .cluster
            .image
            .topics()
            .map(|t| t.name.clone())
            .collect();
        names.sort();
        names.get(index).cloned()
    }

    /// The `index`-th partition of the cluster (modulo their number).
    fn nth_partition(&self, index: usize) -> Option<(Uuid, PartitionId, TopicName)> {
        let image = &self.cluster.image;
        let count = image.partitions().count();
        if count == 0 {
            return None;
        }
        let (topic_id, partition, _) = image.partitions().nth(index % count)?;
        let name = image.topic_by_id(topic_id)?.name.clone();
        Some((topic_id, partition, name))
    }

    fn alter_isr(&mut self, op: Op) {
        let Op::AlterIsr {
            partition,
            members,
            with_leader,
            stranger,
            stale,
        } = op
        else {
            return;
        };
        let Some((topic_id, partition, _)) = self.nth_partition(partition) else {
            return;
        };
        let image = &self.cluster.image;
        let Some(state) = image.partition(topic_id, partition) else {
            return;
        };
        let Some(leader) = state.leader else {
            return;
        };
        let Some(registration) = image.broker(leader) else {
            return;
        };
        let mut new_isr: Vec<BrokerId> = Vec::new();
        if with_leader {
            new_isr.push(leader);
        }
        new_isr.extend(
            state
                .replicas
                .iter()
                .enumerate()
                .filter(|(i, b)| members & (1 << (i % 8)) != 0 && **b != leader)
                .map(|(_, b)| *b),
        );
        if stranger {
            new_isr.push(BrokerId(9));
        }
        let back = i32::from(stale);
        let request = AlterPartitionRequest {
            broker_id: leader,
            broker_epoch: registration.broker_epoch,
            topic_id,
            partition,
            leader_epoch: LeaderEpoch(state.leader_epoch.0 - back),
            partition_epoch: PartitionEpoch(state.partition_epoch.0 - back),
            new_isr,
        };
        let effects = self
            .cluster
            .controller
            .alter_partition(&self.cluster.image, request)
            .expect("the leader's current broker epoch");
        if effects.response.is_err() {
            let changed = matches!(
                effects.response,
                Err(runnel_metadata::AlterPartitionError::NewLeaderElected)
            );
            assert_eq!(
                changed,
                !effects.records.is_empty(),
                "{:?}",
                effects.response
            );
        }
        if let Ok(state) = &effects.response {
            let committed = self.cluster.commit(effects.records);
            let image = &self.cluster.image;
            assert_eq!(
                image.partition(topic_id, partition),
                Some(state),
                "{committed:?}"
            );
        } else {
            self.cluster.commit(effects.records);
        }
    }

    fn step(&mut self, op: Op) {
        let now = self.now;
        let cluster = &mut self.cluster;
        match op {
            Op::Register {
                broker,
                incarnation,
            } => {
                let request = BrokerRegistrationRequest {
                    broker_id: BrokerId(broker),
                    incarnation_id: Uuid::from_u128(100 * broker as u128 + incarnation + 1),
                    endpoints: vec![],
                    rack: Some(format!("rack-{}", broker % 2)),
                };
                match cluster
                    .controller
                    .register_broker(now, &cluster.image, request)
                {
                    Ok(effects) => {
                        cluster.commit(effects.records);
                    }
                    Err(ControllerError::DuplicateBrokerRegistration(_)) => {}
                    Err(other) => panic!("registration failed: {other}"),
                }
            }
            Op::Heartbeat { broker, want_fence } => self.heartbeat(broker, want_fence, false),
            Op::Shutdown { broker } => self.heartbeat(broker, false, true),
            Op::Advance { ms } => self.now += ms,
            Op::Tick => {
                self.cluster.tick(now);
            }
            Op::CreateTopic { partitions, rf } => {
                self.topics_created += 1;
                let name = format!("topic-{}", self.topics_created);
                let _ = self.cluster.try_create_topic(&name, partitions, rf);
            }
            Op::CreatePartitions { topic, extra } => {
                if let Some(name) = self.topic_name(topic) {
                    let image = &self.cluster.image;
                    let current = image.topic_by_name(&name).map_or(0, |t| t.partitions.len());
                    let effects = self
                        .cluster
                        .controller
                        .create_partitions(image, &[(name, current as i32 + extra)])
                        .expect("create_partitions");
                    self.cluster.commit(effects.records);
                }
            }
            Op::DeleteTopic { topic } => {
                if let Some(name) = self.topic_name(topic) {
                    let effects = self
                        .cluster
                        .controller
                        .delete_topics(&self.cluster.image, &[name])
                        .expect("delete_topics");
                    self.cluster.commit(effects.records);
                }
            }
            Op::PreferredElection => {
                let records = elect_preferred_leaders(&self.cluster.image, None);
                self.cluster
                    .commit(records.into_iter().map(Into::into).collect());
            }
            op @ Op::AlterIsr { .. } => self.alter_isr(op),
            Op::Reassign { partition, target } => {
                if let Some((_, partition, name)) = self.nth_partition(partition) {
                    let registered: Vec<BrokerId> =
                        self.cluster.image.brokers().map(|b| b.broker_id).collect();
                    let target = target.map(|(members, rotate, stranger)| {
                        let mut target: Vec<BrokerId> = registered
                            .iter()
                            .enumerate()
                            .filter(|(i, _)| members & (1 << (i % 8)) != 0)
                            .map(|(_, b)| *b)
                            .collect();
                        if !target.is_empty() {
                            let by = rotate % target.len();
                            target.rotate_left(by);
                        }
                        if stranger {
                            target.push(BrokerId(9));
                        }
                        target
                    });
                    let effects = self
                        .cluster
                        .controller
                        .alter_partition_reassignments(
                            &self.cluster.image,
                            &[(name, partition, target)],
                        )
                        .expect("reassign");
                    if effects.response[0].2.is_err() {
                        assert!(effects.records.is_empty());
                    }
                    self.cluster.commit(effects.records);
                }
            }
            Op::ElectLeaders { unclean } => {
                let election_type = if unclean {
                    ElectionType::Unclean
                } else {
                    ElectionType::Preferred
                };
                let effects = self
                    .cluster
                    .controller
                    .elect_leaders(&self.cluster.image, election_type, None)
                    .expect("elect_leaders");
                let elected = effects.response.iter().filter(|r| r.2.is_ok()).count();
                assert_eq!(elected, effects.records.len());
                self.cluster.commit(effects.records);
            }
            Op::SetUnclean { topic, on } => {
                if let Some(name) = self.topic_name(topic) {
                    let value = Some(on.to_string());
                    let effects = self
                        .cluster
                        .controller
                        .alter_topic_configs(
                            &self.cluster.image,
                            &name,
                            &[(UNCLEAN_LEADER_ELECTION_ENABLE.to_string(), value)],
                        )
                        .expect("alter_topic_configs");
                    self.cluster.commit(effects.records);
                }
            }
        }
    }

    fn heartbeat(&mut self, broker: i32, want_fence: bool, want_shut_down: bool) {
        let cluster = &mut self.cluster;
        let Some(registration) = cluster.image.broker(BrokerId(broker)) else {
            return;
        };
        let request = HeartbeatRequest {
            broker_id: BrokerId(broker),
            broker_epoch: registration.broker_epoch,
            want_fence,
            want_shut_down,
        };
        let effects = cluster
            .controller
            .heartbeat(self.now, &cluster.image, request)
            .expect("heartbeat with the current epoch");
        cluster.commit(effects.records);
    }

    fn check(&mut self) {
        let image = &self.cluster.image;
        check_invariants(image);
        for (topic, partition, state) in image.partitions() {
            let now = (state.leader_epoch, state.partition_epoch);
            if let Some(before) = self.partition_epochs.insert((topic, partition), now) {
                assert!(now.0 >= before.0 && now.1 >= before.1, "epochs went back");
            }
        }
        for broker in image.brokers() {
            if let Some(before) = self
                .broker_epochs
                .insert(broker.broker_id, broker.broker_epoch)
            {
                assert!(broker.broker_epoch >= before, "broker epoch went back");
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn random_operations_keep_the_invariants(ops in proptest::collection::vec(op(), 1..80)) {
        let mut world = World {
            cluster: Cluster::new(),
            now: 0,
            topics_created: 0,
            partition_epochs: BTreeMap::new(),
            broker_epochs: BTreeMap::new(),
        };
        for op in ops {
            world.step(op);
            world.check();
        }
        let replayed = MetadataImage::replay(&world.cluster.log).expect("log replays");
        prop_assert_eq!(&replayed, &world.cluster.image);
        let from_snapshot = MetadataImage::replay(&world.cluster.image.to_records())
            .expect("a snapshot replays");
        prop_assert_eq!(from_snapshot, world.cluster.image);
    }
}
