//! CreatePartitions: grow a topic.

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};
use kafka_protocol::protocol::VersionRange;
use kafka_protocol::ResponseError;
use runnel_model::TopicName;

use super::str_bytes;
use crate::broker::TopicError;
use crate::connection::RequestContext;

pub(crate) const VERSIONS: VersionRange = VersionRange { min: 0, max: 3 };

pub(crate) fn handle(
    ctx: &RequestContext,
    request: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let broker = &ctx.broker;
    let results = request
        .topics
        .into_iter()
        .map(|t| {
            let result = CreatePartitionsTopicResult::default().with_name(t.name.clone());
            let fail = |error: ResponseError, message: String| {
                result
                    .clone()
                    .with_error_code(error.code())
                    .with_error_message(Some(str_bytes(message)))
            };
            let name = t.name.0.to_string();
            let Some(topic) = broker.topics.get(&name) else {
                return fail(
                    ResponseError::UnknownTopicOrPartition,
                    format!("The topic '{name}' does not exist."),
                );
            };
            let current = topic.partitions.len() as i32;
            if t.count <= current {
                return fail(
                    ResponseError::InvalidPartitions,
                    format!("Topic currently has {current} partitions, which is higher than the requested {}.", t.count),
                );
            }
            if let Some(assignments) = t.assignments.as_ref().filter(|a| !a.is_empty()) {
                if assignments.len() as i32 != t.count - current {
                    return fail(
                        ResponseError::InvalidReplicaAssignment,
                        format!("Increasing the number of partitions by {} but {} assignments provided.", t.count - current, assignments.len()),
                    );
                }
                if assignments
                    .iter()
                    .any(|a| a.broker_ids.len() != 1 || a.broker_ids[0].0 != broker.node_id)
                {
                    return fail(
                        ResponseError::InvalidReplicaAssignment,
                        format!("Every new partition must be assigned to [{}] on this single-node cluster.", broker.node_id),
                    );
                }
            }
            if request.validate_only {
                return result;
            }
            let Ok(name) = TopicName::new(name) else {
                return fail(ResponseError::InvalidTopicException, "invalid topic name".into());
            };
            match broker.create_partitions(&name, t.count) {
                Ok(()) => result,
                Err(TopicError::InvalidPartitions(m)) => fail(ResponseError::InvalidPartitions, m),
                Err(TopicError::Unknown(m)) => fail(ResponseError::UnknownTopicOrPartition, m),
                Err(e) => fail(ResponseError::KafkaStorageError, e.to_string()),
            }
        })
        .collect();
    CreatePartitionsResponse::default().with_results(results)
}
