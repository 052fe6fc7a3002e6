//! AlterPartitionReassignments (KIP-455): move partitions to new replica
//! sets, or cancel a move, through the controller. The controller adds the
//! new replicas, waits until they join the ISR, then drops the old ones.

use kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse,
};
use kafka_protocol::protocol::VersionRange;
use kafka_protocol::ResponseError;
use runnel_metadata::{Reassignment, ReassignmentError};
use runnel_model::{BrokerId, PartitionId, TopicName};
use runnel_quorum::{ControllerRequest, ControllerResponse};

use super::{forward, str_bytes};
use crate::connection::RequestContext;

/// v1 adds `allow_replication_factor_change` (KIP-860).
pub(crate) const VERSIONS: VersionRange = VersionRange { min: 0, max: 1 };

/// A partition of the request, and the error it was refused with here.
type Slot = (
    kafka_protocol::messages::TopicName,
    i32,
    Option<(ResponseError, String)>,
);

pub(crate) async fn handle(
    ctx: &RequestContext,
    request: AlterPartitionReassignmentsRequest,
) -> AlterPartitionReassignmentsResponse {
    let may_change_factor = ctx.api_version < 1 || request.allow_replication_factor_change;
    let image = ctx.broker.image();
    // (topic, partition, refused here with this error) in request order.
    let mut slots: Vec<Slot> = Vec::new();
    let mut wanted: Vec<Reassignment> = Vec::new();
    for t in &request.topics {
        let name = TopicName::new(t.name.0.to_string()).ok();
        for p in &t.partitions {
            let target: Option<Vec<BrokerId>> = p
                .replicas
                .as_ref()
                .map(|r| r.iter().map(|b| BrokerId(b.0)).collect());
            let refused = match &name {
                None => Some((
                    ResponseError::UnknownTopicOrPartition,
                    format!("{} is not a valid topic name", t.name.0),
                )),
                Some(name) if !may_change_factor => {
                    let current = image
                        .topic_by_name(name)
                        .and_then(|topic| topic.partitions.get(&PartitionId(p.partition_index)))
                        .map(|s| s.replicas.len() - s.adding_replicas.len());
                    match (&target, current) {
                        (Some(target), Some(current)) if target.len() != current => Some((
                            ResponseError::InvalidReplicationFactor,
                            format!(
                                "The replication factor is changed from {current} to {} but allowReplicationFactorChange is false",
                                target.len()
                            ),
                        )),
                        _ => None,
                    }
                }
                Some(_) => None,
            };
            if refused.is_none() {
                if let Some(name) = &name {
                    wanted.push((name.clone(), PartitionId(p.partition_index), target));
                }
            }
            slots.push((t.name.clone(), p.partition_index, refused));
        }
    }
    let outcome = if wanted.is_empty() {
        Ok(Vec::new())
    } else {
        forward::submit(
            &ctx.broker,
            ControllerRequest::AlterPartitionReassignments {
                reassignments: wanted,
            },
            |r| match r {
                ControllerResponse::AlterPartitionReassignments(answers) => Ok(answers),
                other => Err(other),
            },
        )
        .await
    };
    let (answers, whole) = match outcome {
        Ok(answers) => (answers, None),
        Err(failure) => (Vec::new(), Some(failure)),
    };
    let mut answers = answers.into_iter();
    let mut responses: Vec<ReassignableTopicResponse> = Vec::new();
    for (topic, partition, refused) in slots {
        let failure = match (refused, &whole) {
            (Some(refused), _) => Some(refused),
            (None, Some(whole)) => Some(whole.clone()),
            (None, None) => match answers.next() {
                Some((_, _, Ok(()))) => None,
                Some((_, _, Err(e))) => Some((reassignment_error(&e), e.to_string())),
                None => Some((ResponseError::UnknownServerError, "no answer".into())),
            },
        };
        let entry = ReassignablePartitionResponse::default().with_partition_index(partition);
        let entry = match failure {
            None => entry,
            Some((code, message)) => entry
                .with_error_code(code.code())
                .with_error_message(Some(str_bytes(message))),
        };
        match responses.iter_mut().find(|r| r.name == topic) {
            Some(r) => r.partitions.push(entry),
            None => responses.push(
                ReassignableTopicResponse::default()
                    .with_name(topic)
                    .with_partitions(vec![entry]),
            ),
        }
    }
    AlterPartitionReassignmentsResponse::default()
        .with_allow_replication_factor_change(may_change_factor)
        .with_responses(responses)
}

fn reassignment_error(error: &ReassignmentError) -> ResponseError {
    match error {
        ReassignmentError::InvalidReplicaAssignment(_) => ResponseError::InvalidReplicaAssignment,
        ReassignmentError::UnknownTopicOrPartition => ResponseError::UnknownTopicOrPartition,
        ReassignmentError::NoReassignmentInProgress => ResponseError::NoReassignmentInProgress,
    }
}
