//! ElectLeaders (KIP-183, KIP-460): preferred or unclean leader election
//! for some partitions or all, through the controller.

use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::{ElectLeadersRequest, ElectLeadersResponse};
use kafka_protocol::protocol::VersionRange;
use kafka_protocol::ResponseError;
use runnel_metadata::{ElectLeadersError, ElectionType};
use runnel_model::{PartitionId, TopicName};
use runnel_quorum::{ControllerRequest, ControllerResponse};

use super::{forward, str_bytes};
use crate::connection::RequestContext;

/// v1 adds the top-level error code, v2 is flexible; v0 always elects the
/// preferred leader.
pub(crate) const VERSIONS: VersionRange = VersionRange { min: 0, max: 2 };

fn wire_topic(name: &str) -> kafka_protocol::messages::TopicName {
    kafka_protocol::messages::TopicName(str_bytes(name.to_string()))
}

pub(crate) async fn handle(
    ctx: &RequestContext,
    request: ElectLeadersRequest,
) -> ElectLeadersResponse {
    let election_type = match (ctx.api_version, request.election_type) {
        (0, _) | (_, 0) => ElectionType::Preferred,
        (_, 1) => ElectionType::Unclean,
        (_, other) => {
            return ElectLeadersResponse::default()
                .with_error_code(ResponseError::InvalidRequest.code())
                .with_replica_election_results(invalid_names(
                    &request,
                    &format!("unknown election type {other}"),
                ));
        }
    };
    let mut results: Vec<ReplicaElectionResult> = Vec::new();
    let partitions = match &request.topic_partitions {
        None => None,
        Some(topics) => {
            let mut wanted = Vec::new();
            for t in topics {
                match TopicName::new(t.topic.0.to_string()) {
                    Ok(name) => {
                        wanted.extend(t.partitions.iter().map(|p| (name.clone(), PartitionId(*p))))
                    }
                    Err(e) => results.push(refused_topic(
                        t,
                        ResponseError::UnknownTopicOrPartition,
                        &e.to_string(),
                    )),
                }
            }
            Some(wanted)
        }
    };
    let outcome = forward::submit(
        &ctx.broker,
        ControllerRequest::ElectLeaders {
            election_type,
            partitions,
        },
        |r| match r {
            ControllerResponse::ElectLeaders(answers) => Ok(answers),
            other => Err(other),
        },
    )
    .await;
    let answers = match outcome {
        Ok(answers) => answers,
        Err((code, message)) => {
            return ElectLeadersResponse::default()
                .with_error_code(code.code())
                .with_replica_election_results(invalid_names(&request, &message));
        }
    };
    for (topic, partition, answer) in answers {
        let result = PartitionResult::default().with_partition_id(partition.0);
        let result = match answer {
            Ok(()) => result,
            Err(e) => result
                .with_error_code(election_error(&e).code())
                .with_error_message(Some(str_bytes(e.to_string()))),
        };
        match results
            .iter_mut()
            .find(|r| r.topic.0.as_str() == topic.as_str())
        {
            Some(r) => r.partition_result.push(result),
            None => results.push(
                ReplicaElectionResult::default()
                    .with_topic(wire_topic(topic.as_str()))
                    .with_partition_result(vec![result]),
            ),
        }
    }
    ElectLeadersResponse::default().with_replica_election_results(results)
}

fn election_error(error: &ElectLeadersError) -> ResponseError {
    match error {
        ElectLeadersError::ElectionNotNeeded => ResponseError::ElectionNotNeeded,
        ElectLeadersError::PreferredLeaderNotAvailable => {
            ResponseError::PreferredLeaderNotAvailable
        }
        ElectLeadersError::EligibleLeadersNotAvailable => {
            ResponseError::EligibleLeadersNotAvailable
        }
        ElectLeadersError::UnknownTopicOrPartition => ResponseError::UnknownTopicOrPartition,
    }
}

/// Every named partition with `message`, for a request refused whole.
fn invalid_names(request: &ElectLeadersRequest, message: &str) -> Vec<ReplicaElectionResult> {
    request
        .topic_partitions
        .iter()
        .flatten()
        .map(|t| refused_topic(t, ResponseError::InvalidRequest, message))
        .collect()
}

/// Every partition of `topic` refused with `error` and `message`.
fn refused_topic(
    topic: &TopicPartitions,
    error: ResponseError,
    message: &str,
) -> ReplicaElectionResult {
    ReplicaElectionResult::default()
        .with_topic(topic.topic.clone())
        .with_partition_result(
            topic
                .partitions
                .iter()
                .map(|p| {
                    PartitionResult::default()
                        .with_partition_id(*p)
                        .with_error_code(error.code())
                        .with_error_message(Some(str_bytes(message.to_string())))
                })
                .collect(),
        )
}
