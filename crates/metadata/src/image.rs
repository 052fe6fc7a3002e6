//! The immutable view of the cluster's metadata, built by replaying the
//! metadata log in order.
//!
//! An image is never changed once published: [`MetadataImage::apply`]
//! returns a new image and leaves the old one to the readers that hold it.
//! Replay checks each record against the image it applies to and refuses
//! one that would break an invariant (a leader outside the ISR, an epoch
//! that goes backwards, a partition of an unknown topic), so a corrupt or
//! misordered log is found at replay rather than served.
//!
//! Replaying the same records always gives an equal image: every map is
//! ordered and nothing depends on time or randomness.

use std::collections::BTreeMap;
use std::sync::Arc;

use runnel_model::{BrokerId, LeaderEpoch, PartitionId, TopicName};
use uuid::Uuid;

use crate::records::{
    ConfigRecord, ConfigResourceType, Endpoint, MetadataRecord, PartitionChangeRecord,
    PartitionRecord, ProducerIdsRecord, RegisterBrokerRecord, TopicRecord,
};
use crate::{BrokerEpoch, PartitionEpoch};

/// One broker as the last [`RegisterBrokerRecord`] and fencing left it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerRegistration {
    pub broker_id: BrokerId,
    pub incarnation_id: Uuid,
    pub broker_epoch: BrokerEpoch,
    pub endpoints: Vec<Endpoint>,
    pub rack: Option<String>,
    /// A fenced broker leads nothing and gets no new replicas.
    pub fenced: bool,
}

/// The replication state of one partition.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PartitionState {
    /// The assigned replicas; the first is the preferred leader.
    pub replicas: Vec<BrokerId>,
    /// The in-sync replicas: never empty, a subset of `replicas`.
    pub isr: Vec<BrokerId>,
    /// A member of `isr`, or none when no in-sync replica may lead.
    pub leader: Option<BrokerId>,
    pub leader_epoch: LeaderEpoch,
    pub partition_epoch: PartitionEpoch,
    /// Replicas a reassignment in progress is adding: a subset of
    /// `replicas`, disjoint from `removing_replicas`.
    #[serde(default)]
    pub adding_replicas: Vec<BrokerId>,
    /// Replicas a reassignment in progress is removing: a subset of
    /// `replicas`. The target of the reassignment is `replicas` without
    /// them.
    #[serde(default)]
    pub removing_replicas: Vec<BrokerId>,
}

impl PartitionState {
    /// Whether a reassignment is in progress.
    pub fn is_reassigning(&self) -> bool {
        !self.adding_replicas.is_empty() || !self.removing_replicas.is_empty()
    }

    /// Whether the state holds the invariants replay enforces.
    fn check(&self) -> Result<(), &'static str> {
        if self.replicas.is_empty() {
            return Err("no replicas");
        }
        if has_duplicates(&self.replicas) || has_duplicates(&self.isr) {
            return Err("a broker appears twice in the replicas or the ISR");
        }
        if self.isr.is_empty() {
            return Err("empty ISR");
        }
        if !self.isr.iter().all(|b| self.replicas.contains(b)) {
            return Err("an ISR member is not a replica");
        }
        if let Some(leader) = self.leader {
            if !self.isr.contains(&leader) {
                return Err("the leader is not in the ISR");
            }
        }
        if has_duplicates(&self.adding_replicas) || has_duplicates(&self.removing_replicas) {
            return Err("a broker appears twice in the adding or removing replicas");
        }
        let within = |brokers: &[BrokerId]| brokers.iter().all(|b| self.replicas.contains(b));
        if !within(&self.adding_replicas) || !within(&self.removing_replicas) {
            return Err("an adding or removing replica is not a replica");
        }
        if self
            .adding_replicas
            .iter()
            .any(|b| self.removing_replicas.contains(b))
        {
            return Err("a replica is both added and removed");
        }
        Ok(())
    }
}

fn has_duplicates(brokers: &[BrokerId]) -> bool {
    brokers
        .iter()
        .enumerate()
        .any(|(i, b)| brokers[..i].contains(b))
}

/// A topic and its partitions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicImage {
    pub name: TopicName,
    pub id: Uuid,
    /// Partitions `0..n`, by index.
    pub partitions: BTreeMap<PartitionId, PartitionState>,
}

/// Why a record does not apply to an image.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageError {
    #[error("topic {0} already exists")]
    TopicExists(String),
    #[error("unknown topic id {0}")]
    UnknownTopicId(Uuid),
    #[error("partition {1} of topic {0} is not the next partition")]
    PartitionNotNext(Uuid, PartitionId),
    #[error("unknown partition {1} of topic {0}")]
    UnknownPartition(Uuid, PartitionId),
    #[error("partition {1} of topic {0}: {2}")]
    InvalidPartitionState(Uuid, PartitionId, &'static str),
    #[error("partition {1} of topic {0}: {2}")]
    EpochNotIncreasing(Uuid, PartitionId, &'static str),
    #[error("unknown broker {0}")]
    UnknownBroker(BrokerId),
    #[error("broker {0} has epoch {1}, not {2}")]
    StaleBrokerEpoch(BrokerId, BrokerEpoch, BrokerEpoch),
    #[error("producer ids up to {0} are taken; a block ending at {1} goes backwards")]
    ProducerIdsNotIncreasing(i64, i64),
}

/// Configs of one resource: key to value.
pub type Configs = BTreeMap<String, String>;

/// The cluster's metadata at one point of the log.
///
/// Cloning is cheap where it matters: topics are shared behind `Arc`s, so
/// applying a record copies the maps' entries but not the partitions of
/// topics it does not touch.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MetadataImage {
    brokers: BTreeMap<BrokerId, BrokerRegistration>,
    /// The largest broker epoch ever registered; the next is larger.
    last_broker_epoch: BrokerEpoch,
    topics: BTreeMap<Uuid, Arc<TopicImage>>,
    topic_ids: BTreeMap<TopicName, Uuid>,
    configs: BTreeMap<(ConfigResourceType, String), Configs>,
    /// The first producer id no broker has been given.
    next_producer_id: i64,
}

impl MetadataImage {
    /// Replays `records` in order onto an empty image.
    pub fn replay<'a>(
        records: impl IntoIterator<Item = &'a MetadataRecord>,
    ) -> Result<MetadataImage, ImageError> {
        let mut image = MetadataImage::default();
        for record in records {
            image.apply_in_place(record)?;
        }
        Ok(image)
    }

    /// The image after `records`, applied in order; `self` is left as it
    /// was. A record that does not apply is skipped and reported with its
    /// position: replicas of the log skip the same records, so they still
    /// agree, and one bad record does not stop the metadata.
    pub fn apply_batch(
        &self,
        records: &[MetadataRecord],
    ) -> (MetadataImage, Vec<(usize, ImageError)>) {
        let mut next = self.clone();
        let mut errors = Vec::new();
        for (i, record) in records.iter().enumerate() {
            if let Err(e) = next.apply_in_place(record) {
                errors.push((i, e));
            }
        }
        (next, errors)
    }

    /// The image after `record`; `self` is left as it was.
    pub fn apply(&self, record: &MetadataRecord) -> Result<MetadataImage, ImageError> {
        let mut next = self.clone();
        next.apply_in_place(record)?;
        Ok(next)
    }

    /// Applies `record` to an image nobody else sees yet. Checks come
    /// before changes, so on error the image is unchanged.
    pub(crate) fn apply_in_place(&mut self, record: &MetadataRecord) -> Result<(), ImageError> {
        match record {
            MetadataRecord::Topic(r) => self.apply_topic(r),
            MetadataRecord::Partition(r) => self.apply_partition(r),
            MetadataRecord::PartitionChange(r) => self.apply_partition_change(r),
            MetadataRecord::RegisterBroker(r) => self.apply_register_broker(r),
            MetadataRecord::FenceBroker(r) => self.set_fenced(r.broker_id, r.broker_epoch, true),
            MetadataRecord::UnfenceBroker(r) => self.set_fenced(r.broker_id, r.broker_epoch, false),
            MetadataRecord::RemoveTopic(r) => {
                let topic = self
                    .topics
                    .remove(&r.topic_id)
                    .ok_or(ImageError::UnknownTopicId(r.topic_id))?;
                self.topic_ids.remove(&topic.name);
                self.configs
                    .remove(&(ConfigResourceType::Topic, topic.name.to_string()));
                Ok(())
            }
            MetadataRecord::Config(r) => {
                self.apply_config(r);
                Ok(())
            }
            MetadataRecord::ProducerIds(r) => {
                if r.next_producer_id <= self.next_producer_id {
                    return Err(ImageError::ProducerIdsNotIncreasing(
                        self.next_producer_id,
                        r.next_producer_id,
                    ));
                }
                self.next_producer_id = r.next_producer_id;
                Ok(())
            }
        }
    }

    fn apply_topic(&mut self, r: &TopicRecord) -> Result<(), ImageError> {
        if self.topic_ids.contains_key(&r.name) || self.topics.contains_key(&r.topic_id) {
            return Err(ImageError::TopicExists(r.name.to_string()));
        }
        self.topic_ids.insert(r.name.clone(), r.topic_id);
        self.topics.insert(
            r.topic_id,
            Arc::new(TopicImage {
                name: r.name.clone(),
                id: r.topic_id,
                partitions: BTreeMap::new(),
            }),
        );
        Ok(())
    }

    fn apply_partition(&mut self, r: &PartitionRecord) -> Result<(), ImageError> {
        let state = PartitionState {
            replicas: r.replicas.clone(),
            isr: r.isr.clone(),
            leader: r.leader,
            leader_epoch: r.leader_epoch,
            partition_epoch: r.partition_epoch,
            adding_replicas: r.adding_replicas.clone(),
            removing_replicas: r.removing_replicas.clone(),
        };
        state
            .check()
            .map_err(|why| ImageError::InvalidPartitionState(r.topic_id, r.partition, why))?;
        self.check_brokers_known(&state.replicas)?;
        let topic = self
            .topics
            .get_mut(&r.topic_id)
            .ok_or(ImageError::UnknownTopicId(r.topic_id))?;
        let next = i32::try_from(topic.partitions.len()).unwrap_or(i32::MAX);
        if r.partition != PartitionId(next) {
            return Err(ImageError::PartitionNotNext(r.topic_id, r.partition));
        }
        Arc::make_mut(topic).partitions.insert(r.partition, state);
        Ok(())
    }

    fn apply_partition_change(&mut self, r: &PartitionChangeRecord) -> Result<(), ImageError> {
        let old = self
            .partition(r.topic_id, r.partition)
            .ok_or(ImageError::UnknownPartition(r.topic_id, r.partition))?;
        let new = PartitionState {
            replicas: r.replicas.clone().unwrap_or_else(|| old.replicas.clone()),
            isr: r.isr.clone().unwrap_or_else(|| old.isr.clone()),
            leader: r.leader,
            leader_epoch: r.leader_epoch,
            partition_epoch: r.partition_epoch,
            adding_replicas: r
                .adding_replicas
                .clone()
                .unwrap_or_else(|| old.adding_replicas.clone()),
            removing_replicas: r
                .removing_replicas
                .clone()
                .unwrap_or_else(|| old.removing_replicas.clone()),
        };
        let epoch_error = |why| ImageError::EpochNotIncreasing(r.topic_id, r.partition, why);
        if new.partition_epoch <= old.partition_epoch {
            return Err(epoch_error("partition epoch does not grow"));
        }
        if new.leader != old.leader && new.leader_epoch <= old.leader_epoch {
            return Err(epoch_error("leader changed without a new leader epoch"));
        }
        if new.leader_epoch < old.leader_epoch {
            return Err(epoch_error("leader epoch goes backwards"));
        }
        new.check()
            .map_err(|why| ImageError::InvalidPartitionState(r.topic_id, r.partition, why))?;
        self.check_brokers_known(&new.replicas)?;
        if let Some(topic) = self.topics.get_mut(&r.topic_id) {
            Arc::make_mut(topic).partitions.insert(r.partition, new);
        }
        Ok(())
    }

    fn apply_register_broker(&mut self, r: &RegisterBrokerRecord) -> Result<(), ImageError> {
        if let Some(old) = self.brokers.get(&r.broker_id) {
            if r.broker_epoch <= old.broker_epoch {
                return Err(ImageError::StaleBrokerEpoch(
                    r.broker_id,
                    old.broker_epoch,
                    r.broker_epoch,
                ));
            }
        }
        self.last_broker_epoch = self.last_broker_epoch.max(r.broker_epoch);
        self.brokers.insert(
            r.broker_id,
            BrokerRegistration {
                broker_id: r.broker_id,
                incarnation_id: r.incarnation_id,
                broker_epoch: r.broker_epoch,
                endpoints: r.endpoints.clone(),
                rack: r.rack.clone(),
                fenced: r.fenced,
            },
        );
        Ok(())
    }

    fn set_fenced(
        &mut self,
        broker_id: BrokerId,
        epoch: BrokerEpoch,
        fenced: bool,
    ) -> Result<(), ImageError> {
        let broker = self
            .brokers
            .get_mut(&broker_id)
            .ok_or(ImageError::UnknownBroker(broker_id))?;
        if broker.broker_epoch != epoch {
            return Err(ImageError::StaleBrokerEpoch(
                broker_id,
                broker.broker_epoch,
                epoch,
            ));
        }
        broker.fenced = fenced;
        Ok(())
    }

    fn apply_config(&mut self, r: &ConfigRecord) {
        let resource = (r.resource_type, r.resource_name.clone());
        match &r.value {
            Some(value) => {
                self.configs
                    .entry(resource)
                    .or_default()
                    .insert(r.key.clone(), value.clone());
            }
            None => {
                if let Some(configs) = self.configs.get_mut(&resource) {
                    configs.remove(&r.key);
                    if configs.is_empty() {
                        self.configs.remove(&resource);
                    }
                }
            }
        }
    }

    fn check_brokers_known(&self, brokers: &[BrokerId]) -> Result<(), ImageError> {
        match brokers.iter().find(|b| !self.brokers.contains_key(b)) {
            Some(&unknown) => Err(ImageError::UnknownBroker(unknown)),
            None => Ok(()),
        }
    }

    /// Every registered broker, fenced or not, by id.
    pub fn brokers(&self) -> impl Iterator<Item = &BrokerRegistration> {
        self.brokers.values()
    }

    /// One broker's registration.
    pub fn broker(&self, id: BrokerId) -> Option<&BrokerRegistration> {
        self.brokers.get(&id)
    }

    /// The brokers that may lead and get new replicas, by id.
    pub fn unfenced_brokers(&self) -> impl Iterator<Item = &BrokerRegistration> {
        self.brokers.values().filter(|b| !b.fenced)
    }

    /// Whether `id` is registered and not fenced.
    pub fn is_unfenced(&self, id: BrokerId) -> bool {
        self.brokers.get(&id).is_some_and(|b| !b.fenced)
    }

    /// The largest broker epoch registered so far.
    pub fn last_broker_epoch(&self) -> BrokerEpoch {
        self.last_broker_epoch
    }

    /// Every topic, by id.
    pub fn topics(&self) -> impl Iterator<Item = &TopicImage> {
        self.topics.values().map(|t| &**t)
    }

    /// A topic by name.
    pub fn topic_by_name(&self, name: &TopicName) -> Option<&TopicImage> {
        self.topic_ids
            .get(name)
            .and_then(|id| self.topics.get(id))
            .map(|t| &**t)
    }

    /// A topic by id.
    pub fn topic_by_id(&self, id: Uuid) -> Option<&TopicImage> {
        self.topics.get(&id).map(|t| &**t)
    }

    /// One partition's state.
    pub fn partition(&self, topic_id: Uuid, partition: PartitionId) -> Option<&PartitionState> {
        self.topics
            .get(&topic_id)
            .and_then(|t| t.partitions.get(&partition))
    }

    /// Every partition of every topic, as (topic id, partition, state).
    pub fn partitions(&self) -> impl Iterator<Item = (Uuid, PartitionId, &PartitionState)> {
        self.topics
            .values()
            .flat_map(|t| t.partitions.iter().map(move |(p, s)| (t.id, *p, s)))
    }

    /// Records that replay onto an empty image into one equal to this:
    /// the form of a snapshot of the metadata log (brokers, then topics
    /// with their partitions, then configs).
    pub fn to_records(&self) -> Vec<MetadataRecord> {
        let brokers = self.brokers.values().map(|b| {
            MetadataRecord::RegisterBroker(RegisterBrokerRecord {
                broker_id: b.broker_id,
                incarnation_id: b.incarnation_id,
                broker_epoch: b.broker_epoch,
                endpoints: b.endpoints.clone(),
                rack: b.rack.clone(),
                fenced: b.fenced,
            })
        });
        let topics = self.topics.values().flat_map(|t| {
            let topic = MetadataRecord::Topic(TopicRecord {
                name: t.name.clone(),
                topic_id: t.id,
            });
            let partitions = t.partitions.iter().map(|(p, s)| {
                MetadataRecord::Partition(PartitionRecord {
                    topic_id: t.id,
                    partition: *p,
                    replicas: s.replicas.clone(),
                    isr: s.isr.clone(),
                    leader: s.leader,
                    leader_epoch: s.leader_epoch,
                    partition_epoch: s.partition_epoch,
                    adding_replicas: s.adding_replicas.clone(),
                    removing_replicas: s.removing_replicas.clone(),
                })
            });
            std::iter::once(topic).chain(partitions)
        });
        let configs = self.configs.iter().flat_map(|((kind, name), configs)| {
            configs.iter().map(|(key, value)| {
                MetadataRecord::Config(ConfigRecord {
                    resource_type: *kind,
                    resource_name: name.clone(),
                    key: key.clone(),
                    value: Some(value.clone()),
                })
            })
        });
        let producer_ids =
            (self.next_producer_id > 0).then_some(MetadataRecord::ProducerIds(ProducerIdsRecord {
                broker_id: BrokerId(-1),
                next_producer_id: self.next_producer_id,
            }));
        brokers
            .chain(topics)
            .chain(configs)
            .chain(producer_ids)
            .collect()
    }

    /// The first producer id not yet given to any broker.
    pub fn next_producer_id(&self) -> i64 {
        self.next_producer_id
    }

    /// The configs set on one resource (empty if none).
    pub fn configs(&self, resource_type: ConfigResourceType, name: &str) -> Option<&Configs> {
        self.configs.get(&(resource_type, name.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::{FenceBrokerRecord, RemoveTopicRecord};

    fn register(id: i32, epoch: i64) -> MetadataRecord {
        MetadataRecord::RegisterBroker(RegisterBrokerRecord {
            broker_id: BrokerId(id),
            incarnation_id: Uuid::from_u128(id as u128),
            broker_epoch: BrokerEpoch(epoch),
            endpoints: vec![],
            rack: None,
            fenced: false,
        })
    }

    fn topic(name: &str, id: u128) -> MetadataRecord {
        MetadataRecord::Topic(TopicRecord {
            name: TopicName::new(name).expect("valid"),
            topic_id: Uuid::from_u128(id),
        })
    }

    fn partition(id: u128, p: i32, replicas: &[i32], leader: Option<i32>) -> MetadataRecord {
        let replicas: Vec<BrokerId> = replicas.iter().copied().map(BrokerId).collect();
        MetadataRecord::Partition(PartitionRecord {
            topic_id: Uuid::from_u128(id),
            partition: PartitionId(p),
            isr: replicas.clone(),
            replicas,
            leader: leader.map(BrokerId),
            leader_epoch: LeaderEpoch(0),
            partition_epoch: PartitionEpoch(0),
            adding_replicas: vec![],
            removing_replicas: vec![],
        })
    }

    #[test]
    fn replay_builds_topics_partitions_and_brokers() {
        let log = vec![
            register(1, 1),
            register(2, 2),
            topic("orders", 7),
            partition(7, 0, &[1, 2], Some(1)),
            partition(7, 1, &[2, 1], Some(2)),
        ];
        let image = MetadataImage::replay(&log).expect("replays");
        let orders = image
            .topic_by_name(&TopicName::new("orders").expect("valid"))
            .expect("exists");
        assert_eq!(orders.partitions.len(), 2);
        assert_eq!(image.topic_by_id(Uuid::from_u128(7)), Some(orders));
        assert_eq!(image.last_broker_epoch(), BrokerEpoch(2));
        assert_eq!(image, MetadataImage::replay(&log).expect("replays"));
    }

    #[test]
    fn apply_leaves_the_old_image_unchanged() {
        let before = MetadataImage::replay(&[register(1, 1)]).expect("replays");
        let after = before.apply(&topic("t", 1)).expect("applies");
        assert_eq!(before.topics().count(), 0);
        assert_eq!(after.topics().count(), 1);
    }

    #[test]
    fn replay_refuses_records_that_break_invariants() {
        let base = MetadataImage::replay(&[register(1, 1), topic("t", 1)]).expect("replays");
        // A partition of an unknown topic, skipping an index, with a leader
        // outside its ISR, or on an unknown broker.
        assert!(base.apply(&partition(9, 0, &[1], Some(1))).is_err());
        assert!(base.apply(&partition(1, 1, &[1], Some(1))).is_err());
        assert!(base.apply(&partition(1, 0, &[1], Some(2))).is_err());
        assert!(base.apply(&partition(1, 0, &[2], None)).is_err());
        assert!(base.apply(&topic("t", 2)).is_err());
        let with_partition = base
            .apply(&partition(1, 0, &[1], Some(1)))
            .expect("applies");
        let change = |leader: Option<i32>, leader_epoch, partition_epoch| {
            MetadataRecord::PartitionChange(PartitionChangeRecord {
                topic_id: Uuid::from_u128(1),
                partition: PartitionId(0),
                leader: leader.map(BrokerId),
                isr: None,
                replicas: None,
                leader_epoch: LeaderEpoch(leader_epoch),
                partition_epoch: PartitionEpoch(partition_epoch),
                adding_replicas: None,
                removing_replicas: None,
            })
        };
        assert!(with_partition.apply(&change(None, 0, 1)).is_err());
        assert!(with_partition.apply(&change(None, 1, 0)).is_err());
        assert!(with_partition.apply(&change(None, 1, 1)).is_ok());
        // A stale epoch does not fence the current registration.
        let fence = MetadataRecord::FenceBroker(FenceBrokerRecord {
            broker_id: BrokerId(1),
            broker_epoch: BrokerEpoch(0),
        });
        assert!(base.apply(&fence).is_err());
        assert!(base.apply(&register(1, 1)).is_err());
    }

    #[test]
    fn replay_refuses_inconsistent_reassignments() {
        let base = MetadataImage::replay(&[register(1, 1), register(2, 2), topic("t", 1)])
            .expect("replays")
            .apply(&partition(1, 0, &[1, 2], Some(1)))
            .expect("applies");
        let reassign = |adding: &[i32], removing: &[i32]| {
            MetadataRecord::PartitionChange(PartitionChangeRecord {
                topic_id: Uuid::from_u128(1),
                partition: PartitionId(0),
                leader: Some(BrokerId(1)),
                isr: None,
                replicas: None,
                leader_epoch: LeaderEpoch(0),
                partition_epoch: PartitionEpoch(1),
                adding_replicas: Some(adding.iter().copied().map(BrokerId).collect()),
                removing_replicas: Some(removing.iter().copied().map(BrokerId).collect()),
            })
        };
        assert!(base.apply(&reassign(&[2], &[1])).is_ok());
        assert!(base.apply(&reassign(&[3], &[])).is_err(), "not a replica");
        assert!(base.apply(&reassign(&[], &[3])).is_err(), "not a replica");
        assert!(base.apply(&reassign(&[2], &[2])).is_err(), "both");
        assert!(base.apply(&reassign(&[2, 2], &[])).is_err(), "twice");
        let reassigning = base.apply(&reassign(&[2], &[1])).expect("applies");
        let restored = MetadataImage::replay(&reassigning.to_records()).expect("replays");
        assert_eq!(restored, reassigning);
    }

    #[test]
    fn removing_a_topic_removes_its_configs() {
        let set = MetadataRecord::Config(ConfigRecord {
            resource_type: ConfigResourceType::Topic,
            resource_name: "t".into(),
            key: "retention.ms".into(),
            value: Some("1000".into()),
        });
        let image = MetadataImage::replay(&[register(1, 1), topic("t", 1), set]).expect("ok");
        assert_eq!(
            image
                .configs(ConfigResourceType::Topic, "t")
                .and_then(|c| c.get("retention.ms"))
                .map(String::as_str),
            Some("1000")
        );
        let removed = image
            .apply(&MetadataRecord::RemoveTopic(RemoveTopicRecord {
                topic_id: Uuid::from_u128(1),
            }))
            .expect("applies");
        assert!(removed.configs(ConfigResourceType::Topic, "t").is_none());
        assert!(removed
            .topic_by_name(&TopicName::new("t").expect("valid"))
            .is_none());
    }
}
