//! The controller's topic operations: CreateTopics, CreatePartitions,
//! DeleteTopics and config changes, each answered per topic as Kafka does.

use std::collections::{BTreeMap, BTreeSet};

use runnel_model::{BrokerId, LeaderEpoch, PartitionId, TopicName};
use uuid::Uuid;

use crate::controller::{Batch, Controller, ControllerError, Effects};
use crate::image::{ImageError, MetadataImage, TopicImage};
use crate::placement::{PlacementError, Placer, UsableBroker};
use crate::records::{
    ConfigRecord, ConfigResourceType, MetadataRecord, PartitionRecord, RemoveTopicRecord,
    TopicRecord,
};
use crate::PartitionEpoch;

/// The most partitions one topic may have. Kafka has no such limit, but a
/// request for two billion partitions must not make the controller try.
pub const MAX_PARTITIONS_PER_TOPIC: i32 = 100_000;

/// One topic of a CreateTopics request.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CreateTopicRequest {
    pub name: TopicName,
    /// -1 for `num.partitions`.
    pub num_partitions: i32,
    /// -1 for `default.replication.factor`.
    pub replication_factor: i16,
    /// Topic-level config overrides, already validated by the caller.
    pub configs: BTreeMap<String, String>,
    /// Replicas chosen by the client for partitions `0..n` (Kafka's
    /// `assignments`); empty to let the controller place them. When set,
    /// `num_partitions` and `replication_factor` must be -1.
    #[serde(default)]
    pub assignments: Vec<Vec<BrokerId>>,
}

/// One topic of a CreatePartitions request.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NewPartitions {
    pub name: TopicName,
    /// The partition count wanted.
    pub count: i32,
    /// Replicas for each new partition, or empty to let the controller
    /// place them.
    #[serde(default)]
    pub assignments: Vec<Vec<BrokerId>>,
}

/// A topic CreateTopics created.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CreatedTopic {
    pub topic_id: Uuid,
    pub num_partitions: i32,
    pub replication_factor: i16,
}

/// Why one topic of a request failed; the names are Kafka's error codes,
/// the messages what clients see.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum TopicError {
    #[error("topic {0} already exists")]
    TopicAlreadyExists(TopicName),
    #[error("{0}")]
    InvalidPartitions(String),
    #[error("{0}")]
    InvalidReplicationFactor(String),
    #[error("{0}")]
    InvalidReplicaAssignment(String),
    #[error("topic {0} appears more than once in the request")]
    InvalidRequest(TopicName),
    #[error("this server does not host topic {0}")]
    UnknownTopicOrPartition(TopicName),
    #[error("no unused topic id could be generated")]
    TopicIdGeneration,
}

/// The per-topic answers of a request, in request order.
pub type TopicResults<T> = Vec<(TopicName, Result<T, TopicError>)>;

fn usable_brokers(image: &MetadataImage) -> Placer {
    Placer::new(image.unfenced_brokers().map(|b| UsableBroker {
        id: b.broker_id,
        rack: b.rack.clone(),
    }))
}

fn placement_error(error: PlacementError) -> TopicError {
    match error {
        PlacementError::ReplicationFactorTooSmall(_) => {
            TopicError::InvalidReplicationFactor("replication factor must be larger than 0".into())
        }
        PlacementError::NotEnoughBrokers {
            replication_factor,
            brokers,
        } => TopicError::InvalidReplicationFactor(format!(
            "Unable to replicate the partition {replication_factor} time(s): the target \
             replication factor of {replication_factor} cannot be reached because only \
             {brokers} broker(s) are registered."
        )),
    }
}

/// Where a topic's placement starts: derived from its random id, so the
/// leaders of many one-partition topics spread over the brokers.
fn placement_start(topic_id: Uuid) -> u64 {
    let bits = topic_id.as_u128();
    (bits as u64) ^ ((bits >> 64) as u64)
}

/// The records creating partitions `first..` with the given replicas; every
/// replica starts in the ISR and the first one leads.
fn partition_records(
    topic_id: Uuid,
    first: u32,
    assignments: Vec<Vec<BrokerId>>,
) -> Vec<MetadataRecord> {
    (first..)
        .zip(assignments)
        .map(|(p, replicas)| {
            MetadataRecord::Partition(PartitionRecord {
                topic_id,
                partition: PartitionId(i32::try_from(p).unwrap_or(i32::MAX)),
                isr: replicas.clone(),
                leader: replicas.first().copied(),
                replicas,
                leader_epoch: LeaderEpoch(0),
                partition_epoch: PartitionEpoch(0),
                adding_replicas: vec![],
                removing_replicas: vec![],
            })
        })
        .collect()
}

impl Controller {
    /// Creates topics, placing their replicas on the unfenced brokers.
    /// `new_topic_id` supplies random ids (`Uuid::new_v4` in production);
    /// an id that is nil or taken is drawn again.
    pub fn create_topics(
        &self,
        image: &MetadataImage,
        requests: &[CreateTopicRequest],
        new_topic_id: &mut dyn FnMut() -> Uuid,
    ) -> Result<Effects<TopicResults<CreatedTopic>>, ControllerError> {
        let mut seen = BTreeMap::<&TopicName, usize>::new();
        for request in requests {
            *seen.entry(&request.name).or_default() += 1;
        }
        let placer = usable_brokers(image);
        let mut batch = Batch::new(image);
        let mut results = Vec::with_capacity(requests.len());
        for request in requests {
            let result = if seen.get(&request.name).copied().unwrap_or(0) > 1 {
                Err(TopicError::InvalidRequest(request.name.clone()))
            } else {
                self.create_topic(&mut batch, &placer, request, new_topic_id)?
            };
            results.push((request.name.clone(), result));
        }
        Ok(batch.finish(results))
    }

    fn create_topic(
        &self,
        batch: &mut Batch,
        placer: &Placer,
        request: &CreateTopicRequest,
        new_topic_id: &mut dyn FnMut() -> Uuid,
    ) -> Result<Result<CreatedTopic, TopicError>, ControllerError> {
        if batch.image.topic_by_name(&request.name).is_some() {
            return Ok(Err(TopicError::TopicAlreadyExists(request.name.clone())));
        }
        if !request.assignments.is_empty() {
            return self.create_assigned_topic(batch, request, new_topic_id);
        }
        let num_partitions = match request.num_partitions {
            -1 => self.config.num_partitions,
            n => n,
        };
        if !(1..=MAX_PARTITIONS_PER_TOPIC).contains(&num_partitions) {
            return Ok(Err(TopicError::InvalidPartitions(format!(
                "Number of partitions was set to an invalid non-positive value or above \
                 {MAX_PARTITIONS_PER_TOPIC}: {num_partitions}."
            ))));
        }
        let replication_factor = match request.replication_factor {
            -1 => self.config.default_replication_factor,
            rf => rf,
        };
        let Some(topic_id) = (0..8)
            .map(|_| new_topic_id())
            .find(|id| !id.is_nil() && batch.image.topic_by_id(*id).is_none())
        else {
            return Ok(Err(TopicError::TopicIdGeneration));
        };
        let count = u32::try_from(num_partitions).unwrap_or(0);
        let assignments = match placer.place(
            placement_start(topic_id),
            0,
            count,
            i32::from(replication_factor),
        ) {
            Ok(assignments) => assignments,
            Err(error) => return Ok(Err(placement_error(error))),
        };
        push_topic(
            batch,
            request,
            topic_id,
            partition_records(topic_id, 0, assignments),
        )?;
        Ok(Ok(CreatedTopic {
            topic_id,
            num_partitions,
            replication_factor,
        }))
    }

    /// CreateTopics with the client's own replica assignment: every
    /// partition listed in order, the same number of distinct, registered
    /// brokers for each. The first unfenced replica leads.
    fn create_assigned_topic(
        &self,
        batch: &mut Batch,
        request: &CreateTopicRequest,
        new_topic_id: &mut dyn FnMut() -> Uuid,
    ) -> Result<Result<CreatedTopic, TopicError>, ControllerError> {
        let invalid = |why: String| Ok(Err(TopicError::InvalidReplicaAssignment(why)));
        if request.num_partitions != -1 || request.replication_factor != -1 {
            return Ok(Err(TopicError::InvalidRequest(request.name.clone())));
        }
        let Ok(num_partitions) = i32::try_from(request.assignments.len()) else {
            return invalid("too many partitions".into());
        };
        if num_partitions > MAX_PARTITIONS_PER_TOPIC {
            return Ok(Err(TopicError::InvalidPartitions(format!(
                "Topic may have at most {MAX_PARTITIONS_PER_TOPIC} partitions, not {num_partitions}."
            ))));
        }
        let replication = request.assignments[0].len();
        if let Err(why) = check_assignments(&batch.image, &request.assignments, 0, replication) {
            return invalid(why);
        }
        let Some(topic_id) = (0..8)
            .map(|_| new_topic_id())
            .find(|id| !id.is_nil() && batch.image.topic_by_id(*id).is_none())
        else {
            return Ok(Err(TopicError::TopicIdGeneration));
        };
        let records = assigned_partition_records(&batch.image, topic_id, 0, &request.assignments);
        push_topic(batch, request, topic_id, records)?;
        Ok(Ok(CreatedTopic {
            topic_id,
            num_partitions,
            replication_factor: i16::try_from(replication).unwrap_or(i16::MAX),
        }))
    }

    /// Grows topics to the given partition counts, placing the new
    /// partitions with the topic's replication factor as CreateTopics
    /// would have placed them.
    pub fn create_partitions(
        &self,
        image: &MetadataImage,
        requests: &[(TopicName, i32)],
    ) -> Result<Effects<TopicResults<()>>, ControllerError> {
        let requests: Vec<NewPartitions> = requests
            .iter()
            .map(|(name, count)| NewPartitions {
                name: name.clone(),
                count: *count,
                assignments: vec![],
            })
            .collect();
        self.create_partitions_with(image, &requests)
    }

    /// CreatePartitions where clients may choose the new replicas.
    pub fn create_partitions_with(
        &self,
        image: &MetadataImage,
        requests: &[NewPartitions],
    ) -> Result<Effects<TopicResults<()>>, ControllerError> {
        let placer = usable_brokers(image);
        let mut batch = Batch::new(image);
        let mut results = Vec::with_capacity(requests.len());
        let mut seen = BTreeSet::new();
        for request in requests {
            let name = &request.name;
            let result = if !seen.insert(name) {
                Err(TopicError::InvalidRequest(name.clone()))
            } else {
                match batch.image.topic_by_name(name).cloned() {
                    None => Err(TopicError::UnknownTopicOrPartition(name.clone())),
                    Some(topic) => grow(
                        &mut batch,
                        &placer,
                        &topic,
                        request.count,
                        &request.assignments,
                    )?,
                }
            };
            results.push((name.clone(), result));
        }
        Ok(batch.finish(results))
    }

    /// Deletes topics with their partitions and configs.
    pub fn delete_topics(
        &self,
        image: &MetadataImage,
        names: &[TopicName],
    ) -> Result<Effects<TopicResults<Uuid>>, ControllerError> {
        let mut batch = Batch::new(image);
        let mut results = Vec::with_capacity(names.len());
        for name in names {
            let result = match batch.image.topic_by_name(name).map(|t| t.id) {
                None => Err(TopicError::UnknownTopicOrPartition(name.clone())),
                Some(topic_id) => {
                    batch.push(MetadataRecord::RemoveTopic(RemoveTopicRecord { topic_id }))?;
                    Ok(topic_id)
                }
            };
            results.push((name.clone(), result));
        }
        Ok(batch.finish(results))
    }

    /// Sets (`Some`) or deletes (`None`) configs of one topic. Keys and
    /// values are validated by the caller, which knows the config schema.
    /// Switching `unclean.leader.election.enable` on elects, at once, a
    /// leader for its partitions that have none.
    pub fn alter_topic_configs(
        &self,
        image: &MetadataImage,
        name: &TopicName,
        changes: &[(String, Option<String>)],
    ) -> Result<Effects<Result<(), TopicError>>, ControllerError> {
        let mut batch = Batch::new(image);
        if image.topic_by_name(name).is_none() {
            return Ok(batch.finish(Err(TopicError::UnknownTopicOrPartition(name.clone()))));
        }
        batch.push_all(changes.iter().map(|(key, value)| {
            MetadataRecord::Config(ConfigRecord {
                resource_type: ConfigResourceType::Topic,
                resource_name: name.to_string(),
                key: key.clone(),
                value: value.clone(),
            })
        }))?;
        let elections = self.elect_leaderless(&batch.image);
        batch.push_all(elections)?;
        Ok(batch.finish(Ok(())))
    }
}

/// Checks replica assignments given by a client for partitions
/// `first..`: each lists `replication` distinct, registered brokers.
fn check_assignments(
    image: &MetadataImage,
    assignments: &[Vec<BrokerId>],
    first: usize,
    replication: usize,
) -> Result<(), String> {
    for (index, replicas) in (first..).zip(assignments) {
        if replicas.is_empty() {
            return Err(format!(
                "The manual partition assignment for partition {index} is empty."
            ));
        }
        if replicas.len() != replication {
            return Err(format!(
                "The manual partition assignment for partition {index} has {} replicas, \
                 not the topic's {replication}.",
                replicas.len()
            ));
        }
        if replicas
            .iter()
            .enumerate()
            .any(|(i, b)| replicas[..i].contains(b))
        {
            return Err(format!(
                "The manual partition assignment for partition {index} contains a duplicate broker."
            ));
        }
        if let Some(unknown) = replicas.iter().find(|b| image.broker(**b).is_none()) {
            return Err(format!(
                "The manual partition assignment for partition {index} includes broker {unknown}, \
                 which is not registered."
            ));
        }
    }
    Ok(())
}

/// The records creating partitions `first..` with replicas a client
/// chose: every replica in the ISR, the first unfenced one leading.
fn assigned_partition_records(
    image: &MetadataImage,
    topic_id: Uuid,
    first: i32,
    assignments: &[Vec<BrokerId>],
) -> Vec<MetadataRecord> {
    assignments
        .iter()
        .zip(first..)
        .map(|(replicas, p)| {
            MetadataRecord::Partition(PartitionRecord {
                topic_id,
                partition: PartitionId(p),
                replicas: replicas.clone(),
                isr: replicas.clone(),
                leader: replicas.iter().copied().find(|b| image.is_unfenced(*b)),
                leader_epoch: LeaderEpoch(0),
                partition_epoch: PartitionEpoch(0),
                adding_replicas: vec![],
                removing_replicas: vec![],
            })
        })
        .collect()
}

/// The records of a new topic: the topic, its partitions, its configs.
fn push_topic(
    batch: &mut Batch,
    request: &CreateTopicRequest,
    topic_id: Uuid,
    partitions: Vec<MetadataRecord>,
) -> Result<(), ImageError> {
    batch.push(MetadataRecord::Topic(TopicRecord {
        name: request.name.clone(),
        topic_id,
    }))?;
    batch.push_all(partitions)?;
    batch.push_all(request.configs.iter().map(|(key, value)| {
        MetadataRecord::Config(ConfigRecord {
            resource_type: ConfigResourceType::Topic,
            resource_name: request.name.to_string(),
            key: key.clone(),
            value: Some(value.clone()),
        })
    }))
}

fn grow(
    batch: &mut Batch,
    placer: &Placer,
    topic: &TopicImage,
    count: i32,
    assignments: &[Vec<BrokerId>],
) -> Result<Result<(), TopicError>, ControllerError> {
    let current = i32::try_from(topic.partitions.len()).unwrap_or(i32::MAX);
    if count <= current {
        let message = if count == current {
            format!("Topic already has {current} partitions.")
        } else {
            format!(
                "Topic currently has {current} partitions, which is higher than the \
                 requested {count}."
            )
        };
        return Ok(Err(TopicError::InvalidPartitions(message)));
    }
    if count > MAX_PARTITIONS_PER_TOPIC {
        return Ok(Err(TopicError::InvalidPartitions(format!(
            "Topic may have at most {MAX_PARTITIONS_PER_TOPIC} partitions, not {count}."
        ))));
    }
    let replication_factor = topic
        .partitions
        .values()
        .next()
        .map_or(1, |p| i32::try_from(p.replicas.len()).unwrap_or(i32::MAX));
    let first = u32::try_from(current).unwrap_or(0);
    let added = u32::try_from(count - current).unwrap_or(0);
    if !assignments.is_empty() {
        if assignments.len() != added as usize {
            return Ok(Err(TopicError::InvalidReplicaAssignment(format!(
                "Increasing the number of partitions by {added} but {} assignments provided.",
                assignments.len()
            ))));
        }
        let replication = usize::try_from(replication_factor).unwrap_or(0);
        if let Err(why) = check_assignments(&batch.image, assignments, first as usize, replication)
        {
            return Ok(Err(TopicError::InvalidReplicaAssignment(why)));
        }
        let records = assigned_partition_records(&batch.image, topic.id, current, assignments);
        batch.push_all(records)?;
        return Ok(Ok(()));
    }
    let assignments =
        match placer.place(placement_start(topic.id), first, added, replication_factor) {
            Ok(assignments) => assignments,
            Err(error) => return Ok(Err(placement_error(error))),
        };
    batch.push_all(partition_records(topic.id, first, assignments))?;
    Ok(Ok(()))
}
