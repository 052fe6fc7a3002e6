//! A controller and the image it works on, with records "committed" at once.
#![allow(dead_code)]

use std::collections::BTreeMap;

use runnel_metadata::records::Endpoint;
use runnel_metadata::{
    AlterPartitionError, AlterPartitionRequest, BrokerEpoch, BrokerRegistrationRequest, Controller,
    ControllerConfig, CreateTopicRequest, HeartbeatRequest, HeartbeatResponse, MetadataImage,
    MetadataRecord, Millis, PartitionState,
};
use runnel_model::{BrokerId, PartitionId, TopicName};
use uuid::Uuid;

pub struct Cluster {
    pub image: MetadataImage,
    pub controller: Controller,
    /// Every record committed so far, in order.
    pub log: Vec<MetadataRecord>,
    next_id: u128,
}

impl Cluster {
    pub fn new() -> Cluster {
        Cluster::with_config(ControllerConfig::default())
    }

    pub fn with_config(config: ControllerConfig) -> Cluster {
        Cluster {
            image: MetadataImage::default(),
            controller: Controller::new(config),
            log: Vec::new(),
            next_id: 1,
        }
    }

    pub fn commit(&mut self, records: Vec<MetadataRecord>) -> Vec<MetadataRecord> {
        for record in &records {
            self.image = self.image.apply(record).expect("controller records apply");
            self.log.push(record.clone());
        }
        records
    }

    pub fn register_as(
        &mut self,
        now: Millis,
        id: i32,
        incarnation: u128,
        rack: Option<&str>,
    ) -> BrokerEpoch {
        let request = BrokerRegistrationRequest {
            broker_id: BrokerId(id),
            incarnation_id: Uuid::from_u128(incarnation),
            endpoints: vec![Endpoint {
                name: "PLAINTEXT".into(),
                host: "localhost".into(),
                port: 9092 + id as u16,
                security_protocol: "PLAINTEXT".into(),
            }],
            rack: rack.map(str::to_string),
        };
        let effects = self
            .controller
            .register_broker(now, &self.image, request)
            .expect("registers");
        self.commit(effects.records);
        effects.response
    }

    /// Registers broker `id` and unfences it with a first heartbeat.
    pub fn join(&mut self, now: Millis, id: i32, rack: Option<&str>) -> BrokerEpoch {
        let epoch = self.register_as(now, id, 1000 + id as u128, rack);
        let response = self.heartbeat(now, id);
        assert!(!response.is_fenced);
        epoch
    }

    pub fn heartbeat(&mut self, now: Millis, id: i32) -> HeartbeatResponse {
        self.heartbeat_with(now, id, false)
    }

    pub fn heartbeat_with(
        &mut self,
        now: Millis,
        id: i32,
        want_shut_down: bool,
    ) -> HeartbeatResponse {
        let broker_epoch = self
            .image
            .broker(BrokerId(id))
            .expect("registered")
            .broker_epoch;
        let effects = self
            .controller
            .heartbeat(
                now,
                &self.image,
                HeartbeatRequest {
                    broker_id: BrokerId(id),
                    broker_epoch,
                    want_fence: false,
                    want_shut_down,
                },
            )
            .expect("heartbeat accepted");
        self.commit(effects.records);
        effects.response
    }

    pub fn tick(&mut self, now: Millis) -> Vec<MetadataRecord> {
        let records = self.controller.tick(now, &self.image).expect("tick");
        self.commit(records)
    }

    pub fn create_topic(&mut self, name: &str, partitions: i32, rf: i16) -> Uuid {
        let effects = self.try_create_topic(name, partitions, rf);
        let (_, result) = &effects[0];
        result.as_ref().expect("created").topic_id
    }

    pub fn try_create_topic(
        &mut self,
        name: &str,
        partitions: i32,
        rf: i16,
    ) -> runnel_metadata::TopicResults<runnel_metadata::CreatedTopic> {
        let request = CreateTopicRequest {
            name: TopicName::new(name).expect("valid name"),
            num_partitions: partitions,
            replication_factor: rf,
            configs: BTreeMap::new(),
            assignments: vec![],
        };
        let mut next_id = self.next_id;
        let effects = self
            .controller
            .create_topics(&self.image, &[request], &mut || {
                next_id += 1;
                Uuid::from_u128(next_id)
            })
            .expect("create_topics");
        self.next_id = next_id;
        self.commit(effects.records);
        effects.response
    }

    /// Creates a topic with the replicas of each partition given.
    pub fn create_topic_with(&mut self, name: &str, assignments: Vec<Vec<BrokerId>>) -> Uuid {
        self.create_topic_with_configs(name, assignments, BTreeMap::new())
    }

    /// Creates a topic with the replicas given and topic configs.
    pub fn create_topic_with_configs(
        &mut self,
        name: &str,
        assignments: Vec<Vec<BrokerId>>,
        configs: BTreeMap<String, String>,
    ) -> Uuid {
        let request = CreateTopicRequest {
            name: TopicName::new(name).expect("valid name"),
            num_partitions: -1,
            replication_factor: -1,
            configs,
            assignments,
        };
        let mut next_id = self.next_id;
        let effects = self
            .controller
            .create_topics(&self.image, &[request], &mut || {
                next_id += 1;
                Uuid::from_u128(next_id)
            })
            .expect("create_topics");
        self.next_id = next_id;
        self.commit(effects.records);
        effects.response[0].1.as_ref().expect("created").topic_id
    }

    pub fn partitions_of(&self, topic_id: Uuid) -> Vec<PartitionState> {
        self.image
            .topic_by_id(topic_id)
            .expect("topic")
            .partitions
            .values()
            .cloned()
            .collect()
    }

    /// One partition's state.
    pub fn partition(&self, topic_id: Uuid, partition: i32) -> PartitionState {
        self.image
            .partition(topic_id, PartitionId(partition))
            .expect("partition")
            .clone()
    }

    /// An AlterPartition from the partition's current leader, at its
    /// current epochs, asking for `new_isr`.
    pub fn alter_request(
        &self,
        topic_id: Uuid,
        partition: i32,
        new_isr: &[i32],
    ) -> AlterPartitionRequest {
        let state = self.partition(topic_id, partition);
        let leader = state.leader.expect("a leader");
        AlterPartitionRequest {
            broker_id: leader,
            broker_epoch: self.image.broker(leader).expect("registered").broker_epoch,
            topic_id,
            partition: PartitionId(partition),
            leader_epoch: state.leader_epoch,
            partition_epoch: state.partition_epoch,
            new_isr: new_isr.iter().copied().map(BrokerId).collect(),
        }
    }

    /// Submits an AlterPartition and commits what it produced.
    pub fn alter(
        &mut self,
        request: AlterPartitionRequest,
    ) -> Result<PartitionState, AlterPartitionError> {
        let effects = self
            .controller
            .alter_partition(&self.image, request)
            .expect("not a stale broker");
        self.commit(effects.records);
        effects.response
    }

    /// How many partitions (of every topic) each broker leads.
    pub fn leader_counts(&self) -> BTreeMap<BrokerId, usize> {
        let mut counts = BTreeMap::new();
        for (_, _, state) in self.image.partitions() {
            if let Some(leader) = state.leader {
                *counts.entry(leader).or_default() += 1;
            }
        }
        counts
    }
}

/// The invariants every image the controller produces keeps.
pub fn check_invariants(image: &MetadataImage) {
    for (topic, partition, state) in image.partitions() {
        let at = format!("{topic}-{partition}");
        assert!(!state.isr.is_empty(), "{at}: empty ISR");
        assert!(
            state.isr.iter().all(|b| state.replicas.contains(b)),
            "{at}: ISR not within replicas"
        );
        if let Some(leader) = state.leader {
            assert!(state.isr.contains(&leader), "{at}: leader outside the ISR");
            assert!(image.is_unfenced(leader), "{at}: fenced leader {leader}");
        }
        for b in state.adding_replicas.iter().chain(&state.removing_replicas) {
            assert!(
                state.replicas.contains(b),
                "{at}: {b} reassigned but not a replica"
            );
        }
        assert!(
            !state
                .adding_replicas
                .iter()
                .any(|b| state.removing_replicas.contains(b)),
            "{at}: a replica both added and removed"
        );
    }
}
