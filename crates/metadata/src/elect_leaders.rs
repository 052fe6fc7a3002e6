//! ElectLeaders (KIP-460): an administrator asks for preferred or unclean
//! leader elections, answered per partition as Kafka's
//! `ReplicationControlManager.electLeaders` answers.
//!
//! - Preferred: the first replica leads if it is in the ISR and unfenced
//!   (`PREFERRED_LEADER_NOT_AVAILABLE` otherwise); a partition it already
//!   leads needs no election.
//! - Unclean: a partition without a leader gets one — from the ISR if it
//!   can, otherwise the first live replica, whatever the topic's
//!   `unclean.leader.election.enable` (`ELIGIBLE_LEADERS_NOT_AVAILABLE`
//!   when no replica is live); one with a leader needs no election.
//!
//! Asked for every partition (`None`), the answer leaves out those that
//! need no election, as Kafka does.

use runnel_model::{PartitionId, TopicName};
use uuid::Uuid;

use crate::controller::{Batch, Controller, ControllerError, Effects};
use crate::election;
use crate::image::{ImageError, MetadataImage};

/// Which election an ElectLeaders request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ElectionType {
    Preferred,
    Unclean,
}

/// Why a partition got no new leader; the names are Kafka's error codes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum ElectLeadersError {
    /// It already has the leader the election would give it.
    #[error("leader election not needed for topic partition")]
    ElectionNotNeeded,
    /// The preferred replica is not in the ISR or is fenced.
    #[error("the preferred leader was not available")]
    PreferredLeaderNotAvailable,
    /// No replica is live.
    #[error("eligible topic partition leaders are not available")]
    EligibleLeadersNotAvailable,
    #[error("this server does not host this topic-partition")]
    UnknownTopicOrPartition,
}

/// Per-partition answers, in request order.
pub type PartitionResults<T, E> = Vec<(TopicName, PartitionId, Result<T, E>)>;

impl Controller {
    /// Runs the elections asked for: the partitions given, or all.
    pub fn elect_leaders(
        &self,
        image: &MetadataImage,
        election_type: ElectionType,
        partitions: Option<&[(TopicName, PartitionId)]>,
    ) -> Result<Effects<PartitionResults<(), ElectLeadersError>>, ControllerError> {
        let mut batch = Batch::new(image);
        let mut results = Vec::new();
        match partitions {
            Some(partitions) => {
                for (name, partition) in partitions {
                    let result = match image.topic_by_name(name) {
                        None => Err(ElectLeadersError::UnknownTopicOrPartition),
                        Some(topic) => elect_one(&mut batch, election_type, topic.id, *partition)?,
                    };
                    results.push((name.clone(), *partition, result));
                }
            }
            None => {
                let all: Vec<(TopicName, Uuid, PartitionId)> = image
                    .topics()
                    .flat_map(|t| t.partitions.keys().map(|p| (t.name.clone(), t.id, *p)))
                    .collect();
                for (name, topic_id, partition) in all {
                    let result = elect_one(&mut batch, election_type, topic_id, partition)?;
                    if result != Err(ElectLeadersError::ElectionNotNeeded) {
                        results.push((name, partition, result));
                    }
                }
            }
        }
        Ok(batch.finish(results))
    }
}

fn elect_one(
    batch: &mut Batch,
    election_type: ElectionType,
    topic_id: Uuid,
    partition: PartitionId,
) -> Result<Result<(), ElectLeadersError>, ImageError> {
    let Some(state) = batch.image.partition(topic_id, partition) else {
        return Ok(Err(ElectLeadersError::UnknownTopicOrPartition));
    };
    let (not_needed, record, unavailable) = match election_type {
        ElectionType::Preferred => (
            state.leader.is_some() && state.leader == state.replicas.first().copied(),
            election::elect_preferred(&batch.image, topic_id, partition, state),
            ElectLeadersError::PreferredLeaderNotAvailable,
        ),
        ElectionType::Unclean => (
            state.leader.is_some(),
            election::elect_unclean(&batch.image, topic_id, partition, state),
            ElectLeadersError::EligibleLeadersNotAvailable,
        ),
    };
    if not_needed {
        return Ok(Err(ElectLeadersError::ElectionNotNeeded));
    }
    match record {
        Some(record) => {
            batch.push(record.into())?;
            Ok(Ok(()))
        }
        None => Ok(Err(unavailable)),
    }
}
