//! AlterPartition (KIP-497): a partition leader asks the controller to
//! change its ISR, and gets either the committed new state or a Kafka
//! error for the partition.
//!
//! The checks and their order are those of Kafka's
//! `ReplicationControlManager.validateAlterPartitionData`: the leader's
//! view (its leader epoch and partition epoch) must be the controller's,
//! the new ISR must be a valid ISR of the partition containing the leader,
//! and every member must be eligible (KIP-841: registered, unfenced, not
//! shutting down). Shrinking to eligible members is always allowed.
//!
//! An ISR that brings the last adding replica of a reassignment in
//! completes it ([`crate::reassignment`]); if that removes the sender, a
//! new leader is elected and the sender is told `NEW_LEADER_ELECTED`.

use runnel_model::{BrokerId, LeaderEpoch, PartitionId};
use uuid::Uuid;

use crate::controller::{Batch, Controller, ControllerError, Effects};
use crate::election::{self, Proposal};
use crate::image::{ImageError, MetadataImage, PartitionState};
use crate::{BrokerEpoch, PartitionEpoch};

/// One partition of an AlterPartition request, from its leader.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AlterPartitionRequest {
    /// The partition leader sending the request.
    pub broker_id: BrokerId,
    pub broker_epoch: BrokerEpoch,
    pub topic_id: Uuid,
    pub partition: PartitionId,
    /// The leader epoch the leader leads in.
    pub leader_epoch: LeaderEpoch,
    /// The partition epoch of the state the new ISR was computed from.
    pub partition_epoch: PartitionEpoch,
    /// The ISR wanted; in the order given, it becomes the partition's.
    pub new_isr: Vec<BrokerId>,
}

/// Why an AlterPartition was refused for its partition; the names are
/// Kafka's error codes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum AlterPartitionError {
    /// The topic id is not known.
    #[error("unknown topic id {0}")]
    UnknownTopicId(Uuid),
    /// The topic exists but not this partition.
    #[error("unknown partition {1} of topic {0}")]
    UnknownTopicOrPartition(Uuid, PartitionId),
    /// The request has a larger leader or partition epoch than the
    /// controller knows: this controller is likely behind a newer one.
    /// Kafka answers NOT_CONTROLLER so the leader looks for it.
    #[error("the request's epochs are newer than this controller's: {0}")]
    NotController(String),
    /// The request's leader epoch is older than the partition's.
    #[error("leader epoch {requested} is older than the current {current}")]
    FencedLeaderEpoch {
        current: LeaderEpoch,
        requested: LeaderEpoch,
    },
    /// The partition epoch is older than the partition's: the ISR was
    /// computed from a state that has since changed.
    #[error("partition epoch {requested} is older than the current {current}")]
    InvalidUpdateVersion {
        current: PartitionEpoch,
        requested: PartitionEpoch,
    },
    /// The sender is not the leader, or the new ISR is not a valid ISR
    /// (empty, duplicates, non-replicas, without the leader). Kafka
    /// answers INVALID_REQUEST for both.
    #[error("{0}")]
    InvalidRequest(String),
    /// The new ISR has a member that may not be in it (KIP-841).
    #[error("broker {0} is not eligible to join the ISR: {1}")]
    IneligibleReplica(BrokerId, String),
    /// The change was committed, but it also completed a reassignment
    /// that moved leadership off the sender: it must refresh its metadata
    /// and stop leading.
    #[error("the ISR change completed a reassignment that elected a new leader")]
    NewLeaderElected,
}

impl Controller {
    /// Handles one partition of an AlterPartition request.
    ///
    /// A request from a broker whose epoch is not its registered one is
    /// refused as a whole (`STALE_BROKER_EPOCH`, a [`ControllerError`]; an
    /// unregistered broker is `BrokerIdNotRegistered`, which Kafka also
    /// answers with `STALE_BROKER_EPOCH`); otherwise the answer is per
    /// partition. The same ISR as the current
    /// one succeeds without a record; a new one is a `PartitionChangeRecord`
    /// with the partition epoch bumped and the leader epoch unchanged.
    ///
    /// Example: replicas [1, 2, 3], ISR [1, 2], leader 1, leader epoch 4,
    /// partition epoch 7. Broker 1 sends (4, 7, [1, 2, 3]): the answer is
    /// ISR [1, 2, 3], leader epoch 4, partition epoch 8.
    pub fn alter_partition(
        &self,
        image: &MetadataImage,
        request: AlterPartitionRequest,
    ) -> Result<Effects<Result<PartitionState, AlterPartitionError>>, ControllerError> {
        let broker = image
            .broker(request.broker_id)
            .ok_or(ControllerError::BrokerIdNotRegistered(request.broker_id))?;
        if broker.broker_epoch != request.broker_epoch {
            return Err(ControllerError::StaleBrokerEpoch {
                broker_id: request.broker_id,
                current: broker.broker_epoch,
                requested: request.broker_epoch,
            });
        }
        let batch = Batch::new(image);
        let state = match validate(image, &request) {
            Ok(state) => state,
            Err(error) => return Ok(batch.finish(Err(error))),
        };
        self.commit_isr(batch, &request, state)
    }

    fn commit_isr(
        &self,
        mut batch: Batch,
        request: &AlterPartitionRequest,
        state: &PartitionState,
    ) -> Result<Effects<Result<PartitionState, AlterPartitionError>>, ControllerError> {
        let (topic_id, partition) = (request.topic_id, request.partition);
        let proposal = Proposal {
            isr: request.new_isr.clone(),
            ..Proposal::from(state)
        };
        let unclean = self.unclean_leader_election_enabled(&batch.image, topic_id);
        let proposal = election::settle(&batch.image, proposal, unclean);
        let Some(record) = election::change(topic_id, partition, state, proposal) else {
            return Ok(batch.finish(Ok(state.clone())));
        };
        batch.push(record.into())?;
        let Some(new) = batch.image.partition(topic_id, partition).cloned() else {
            return Err(ImageError::UnknownPartition(topic_id, partition).into());
        };
        if new.leader != Some(request.broker_id) {
            return Ok(batch.finish(Err(AlterPartitionError::NewLeaderElected)));
        }
        Ok(batch.finish(Ok(new)))
    }
}

/// The checks of Kafka's `validateAlterPartitionData`, in its order; the
/// partition's state if they pass.
fn validate<'a>(
    image: &'a MetadataImage,
    request: &AlterPartitionRequest,
) -> Result<&'a PartitionState, AlterPartitionError> {
    let topic = image
        .topic_by_id(request.topic_id)
        .ok_or(AlterPartitionError::UnknownTopicId(request.topic_id))?;
    let state = topic.partitions.get(&request.partition).ok_or(
        AlterPartitionError::UnknownTopicOrPartition(request.topic_id, request.partition),
    )?;
    if request.leader_epoch > state.leader_epoch {
        return Err(AlterPartitionError::NotController(format!(
            "leader epoch {} is newer than {}",
            request.leader_epoch, state.leader_epoch
        )));
    }
    if request.partition_epoch > state.partition_epoch {
        return Err(AlterPartitionError::NotController(format!(
            "partition epoch {} is newer than {}",
            request.partition_epoch, state.partition_epoch
        )));
    }
    if request.leader_epoch < state.leader_epoch {
        return Err(AlterPartitionError::FencedLeaderEpoch {
            current: state.leader_epoch,
            requested: request.leader_epoch,
        });
    }
    if state.leader != Some(request.broker_id) {
        return Err(AlterPartitionError::InvalidRequest(format!(
            "broker {} is not the leader of partition {} (the leader is {:?})",
            request.broker_id, request.partition, state.leader
        )));
    }
    if request.partition_epoch < state.partition_epoch {
        return Err(AlterPartitionError::InvalidUpdateVersion {
            current: state.partition_epoch,
            requested: request.partition_epoch,
        });
    }
    check_isr(state, &request.new_isr, request.broker_id)?;
    for &member in &request.new_isr {
        let why = match image.broker(member) {
            None => "not registered",
            Some(b) if b.fenced => "fenced",
            Some(_) => continue,
        };
        return Err(AlterPartitionError::IneligibleReplica(member, why.into()));
    }
    Ok(state)
}

/// Kafka's `Replicas.validateIsr` and "the ISR must include the leader".
fn check_isr(
    state: &PartitionState,
    isr: &[BrokerId],
    leader: BrokerId,
) -> Result<(), AlterPartitionError> {
    let invalid = |why: String| Err(AlterPartitionError::InvalidRequest(why));
    if isr.is_empty() {
        return invalid("the new ISR is empty".into());
    }
    if let Some(twice) = isr.iter().enumerate().find(|(i, b)| isr[..*i].contains(b)) {
        return invalid(format!("broker {} appears twice in the new ISR", twice.1));
    }
    if let Some(stranger) = isr.iter().find(|b| !state.replicas.contains(b)) {
        return invalid(format!("broker {stranger} in the new ISR is not a replica"));
    }
    if !isr.contains(&leader) {
        return invalid(format!("the new ISR does not include the leader {leader}"));
    }
    Ok(())
}
