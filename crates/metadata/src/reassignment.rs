//! Partition reassignment (KIP-455): AlterPartitionReassignments and
//! ListPartitionReassignments, as Kafka's KRaft controller runs them.
//!
//! Starting a reassignment from replicas `current` to `target` makes the
//! replicas `target ++ (current − target)`, with `adding = target −
//! current` and `removing = current − target`; the ISR is unchanged. It
//! completes — at once, or when an AlterPartition brings the last adding
//! replica into the ISR — once every adding replica is in the ISR and an
//! ISR member is left besides the removing ones: the replicas become
//! `target`, the removing replicas leave the ISR, and a leader that was
//! removed is replaced by an eligible member of the new ISR.
//!
//! Example: replicas [1, 2], ISR [1, 2], leader 1, target [3, 2]:
//! replicas [3, 2, 1], adding [3], removing [1]. Broker 1 then asks for
//! ISR [1, 2, 3]: replicas [3, 2], ISR [2, 3], leader 3 (epoch + 1).
//!
//! Cancelling reverts to the original replicas (`replicas − adding`) and
//! ISR (`ISR − adding`); if that leaves the ISR empty, the first original
//! replica becomes it, which is an unclean election and needs the topic's
//! `unclean.leader.election.enable`.

use runnel_model::{BrokerId, PartitionId, TopicName};
use uuid::Uuid;

use crate::controller::{Batch, Controller, ControllerError, Effects};
use crate::elect_leaders::PartitionResults;
use crate::election::{self, Proposal};
use crate::image::{ImageError, MetadataImage, PartitionState};

/// A reassignment in progress, as ListPartitionReassignments reports it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OngoingReassignment {
    /// Every replica, the target ones first.
    pub replicas: Vec<BrokerId>,
    pub adding_replicas: Vec<BrokerId>,
    pub removing_replicas: Vec<BrokerId>,
}

/// Why a partition's reassignment was refused; the names are Kafka's
/// error codes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum ReassignmentError {
    #[error("{0}")]
    InvalidReplicaAssignment(String),
    #[error("this server does not host this topic-partition")]
    UnknownTopicOrPartition,
    #[error("no partition reassignment is in progress for this partition")]
    NoReassignmentInProgress,
}

/// One partition of an AlterPartitionReassignments request: the target
/// replicas, or `None` to cancel the reassignment in progress.
pub type Reassignment = (TopicName, PartitionId, Option<Vec<BrokerId>>);

impl Controller {
    /// Starts, replaces or cancels reassignments, answered per partition
    /// in request order.
    pub fn alter_partition_reassignments(
        &self,
        image: &MetadataImage,
        reassignments: &[Reassignment],
    ) -> Result<Effects<PartitionResults<(), ReassignmentError>>, ControllerError> {
        let mut batch = Batch::new(image);
        let mut results = Vec::with_capacity(reassignments.len());
        for (name, partition, target) in reassignments {
            let found = batch.image.topic_by_name(name).and_then(|t| {
                let state = t.partitions.get(partition)?;
                Some((t.id, state.clone()))
            });
            let result = match found {
                None => Err(ReassignmentError::UnknownTopicOrPartition),
                Some((topic_id, state)) => {
                    let unclean = self.unclean_leader_election_enabled(&batch.image, topic_id);
                    let proposal = match target {
                        Some(target) => start(&batch.image, &state, target),
                        None => cancel(&state, unclean, name, *partition),
                    };
                    match proposal {
                        Ok(proposal) => {
                            push(&mut batch, topic_id, *partition, &state, proposal, unclean)?;
                            Ok(())
                        }
                        Err(e) => Err(e),
                    }
                }
            };
            results.push((name.clone(), *partition, result));
        }
        Ok(batch.finish(results))
    }
}

/// The reassignments in progress: of the partitions given (those unknown
/// or not reassigning are left out), or of all.
pub fn list_partition_reassignments(
    image: &MetadataImage,
    partitions: Option<&[(TopicName, PartitionId)]>,
) -> Vec<(TopicName, PartitionId, OngoingReassignment)> {
    let ongoing = |name: &TopicName, partition: PartitionId, state: &PartitionState| {
        state.is_reassigning().then(|| {
            (
                name.clone(),
                partition,
                OngoingReassignment {
                    replicas: state.replicas.clone(),
                    adding_replicas: state.adding_replicas.clone(),
                    removing_replicas: state.removing_replicas.clone(),
                },
            )
        })
    };
    match partitions {
        Some(partitions) => partitions
            .iter()
            .filter_map(|(name, partition)| {
                let state = image.topic_by_name(name)?.partitions.get(partition)?;
                ongoing(name, *partition, state)
            })
            .collect(),
        None => image
            .topics()
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .filter_map(|(p, state)| ongoing(&t.name, *p, state))
            })
            .collect(),
    }
}

fn push(
    batch: &mut Batch,
    topic_id: Uuid,
    partition: PartitionId,
    state: &PartitionState,
    proposal: Proposal,
    unclean: bool,
) -> Result<(), ImageError> {
    let proposal = election::settle(&batch.image, proposal, unclean);
    match election::change(topic_id, partition, state, proposal) {
        Some(record) => batch.push(record.into()),
        None => Ok(()),
    }
}

/// Kafka's `validateManualPartitionAssignment`, then the replicas of the
/// reassignment from the current replicas (including those a reassignment
/// in progress is adding) to `target`.
fn start(
    image: &MetadataImage,
    state: &PartitionState,
    target: &[BrokerId],
) -> Result<Proposal, ReassignmentError> {
    let invalid = |why: String| Err(ReassignmentError::InvalidReplicaAssignment(why));
    if target.is_empty() {
        return invalid("The manual partition assignment includes an empty replica list.".into());
    }
    if let Some((_, twice)) = target
        .iter()
        .enumerate()
        .find(|(i, b)| target[..*i].contains(b))
    {
        return invalid(format!(
            "The manual partition assignment includes the broker {twice} more than once."
        ));
    }
    if let Some(unknown) = target.iter().find(|b| image.broker(**b).is_none()) {
        return invalid(format!(
            "The manual partition assignment includes broker {unknown}, but no such broker is \
             registered."
        ));
    }
    let current = &state.replicas;
    let removing: Vec<BrokerId> = current
        .iter()
        .copied()
        .filter(|b| !target.contains(b))
        .collect();
    let adding: Vec<BrokerId> = target
        .iter()
        .copied()
        .filter(|b| !current.contains(b))
        .collect();
    let replicas: Vec<BrokerId> = target.iter().chain(&removing).copied().collect();
    Ok(Proposal {
        replicas,
        adding,
        removing,
        ..Proposal::from(state)
    })
}

/// Kafka's `PartitionReassignmentRevert`: back to the original replicas
/// and the ISR without the replicas being added.
fn cancel(
    state: &PartitionState,
    unclean: bool,
    name: &TopicName,
    partition: PartitionId,
) -> Result<Proposal, ReassignmentError> {
    if !state.is_reassigning() {
        return Err(ReassignmentError::NoReassignmentInProgress);
    }
    let adding = &state.adding_replicas;
    let replicas: Vec<BrokerId> = state
        .replicas
        .iter()
        .copied()
        .filter(|b| !adding.contains(b))
        .collect();
    let mut isr: Vec<BrokerId> = state
        .isr
        .iter()
        .copied()
        .filter(|b| !adding.contains(b))
        .collect();
    if isr.is_empty() {
        let Some(&first) = replicas.first() else {
            return Err(ReassignmentError::InvalidReplicaAssignment(
                "Invalid replica assignment: addingReplicas contains all replicas.".into(),
            ));
        };
        if !unclean {
            return Err(ReassignmentError::InvalidReplicaAssignment(format!(
                "Unable to revert partition assignment for {name}:{partition} because it \
                 would require an unclean leader election."
            )));
        }
        isr = vec![first];
    }
    Ok(Proposal {
        replicas,
        isr,
        leader: state.leader,
        adding: Vec::new(),
        removing: Vec::new(),
    })
}
