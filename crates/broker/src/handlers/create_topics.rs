//! CreateTopics.

use std::collections::{BTreeMap, HashSet};

use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use kafka_protocol::protocol::VersionRange;
use kafka_protocol::ResponseError;
use runnel_model::config::validate_topic_config;
use runnel_model::TopicName;

use runnel_metadata::{CreateTopicRequest, CreatedTopic};
use runnel_model::BrokerId;
use runnel_quorum::{ControllerRequest, ControllerResponse};

use super::configs::topic_config_entries;
use super::{forward, str_bytes};
use crate::connection::RequestContext;

pub(crate) const VERSIONS: VersionRange = VersionRange { min: 2, max: 7 };

pub(crate) async fn handle(
    ctx: &RequestContext,
    request: CreateTopicsRequest,
) -> CreateTopicsResponse {
    let mut seen = HashSet::new();
    let duplicates: HashSet<String> = request
        .topics
        .iter()
        .filter(|t| !seen.insert(t.name.0.to_string()))
        .map(|t| t.name.0.to_string())
        .collect();
    let mut reported = HashSet::new();
    // Each topic's result: a failure already, or a request for the
    // controller (answered in order).
    let mut slots: Vec<Result<CreateTopicRequest, CreatableTopicResult>> = Vec::new();
    for topic in request.topics {
        let name = topic.name.0.to_string();
        if duplicates.contains(&name) {
            if reported.insert(name.clone()) {
                slots.push(Err(failure(
                    &name,
                    ResponseError::InvalidRequest,
                    format!(
                        "Create topics request from client included topic {name} more than once."
                    ),
                )));
            }
            continue;
        }
        slots.push(check(topic).map_err(|(error, message)| failure(&name, error, message)));
    }
    let wanted: Vec<CreateTopicRequest> = slots
        .iter()
        .filter_map(|s| s.as_ref().ok())
        .cloned()
        .collect();
    let outcome = if wanted.is_empty() {
        Ok(Vec::new())
    } else {
        let request = ControllerRequest::CreateTopics {
            topics: wanted,
            validate_only: request.validate_only,
        };
        forward::submit(&ctx.broker, request, |r| match r {
            ControllerResponse::CreateTopics(answers) => Ok(answers),
            other => Err(other),
        })
        .await
    };
    let mut answers = outcome.as_ref().map(|a| a.iter());
    let results = slots
        .into_iter()
        .map(|slot| {
            let wanted = match slot {
                Ok(wanted) => wanted,
                Err(result) => return result,
            };
            let name = wanted.name.to_string();
            let answer = match &mut answers {
                Err((error, message)) => return failure(&name, *error, message.clone()),
                Ok(answers) => answers.next().map(|(_, a)| a),
            };
            match answer {
                Some(Ok(created)) => {
                    let id = if request.validate_only {
                        uuid::Uuid::nil()
                    } else {
                        created.topic_id
                    };
                    created_result(ctx, &wanted, created, id)
                }
                Some(Err(e)) => {
                    let (error, message) = forward::topic_error(e);
                    failure(&name, error, message)
                }
                None => failure(&name, ResponseError::UnknownServerError, "no answer".into()),
            }
        })
        .collect();
    CreateTopicsResponse::default().with_topics(results)
}

fn failure(name: &str, error: ResponseError, message: String) -> CreatableTopicResult {
    CreatableTopicResult::default()
        .with_name(kafka_protocol::messages::TopicName(str_bytes(name)))
        .with_error_code(error.code())
        .with_error_message(Some(str_bytes(message)))
        .with_num_partitions(-1)
        .with_replication_factor(-1)
}

/// Checks what the broker can check itself — the name, the configs, the
/// shape of the request — and makes the controller's request.
fn check(topic: CreatableTopic) -> Result<CreateTopicRequest, (ResponseError, String)> {
    let name = TopicName::new(topic.name.0.to_string())
        .map_err(|e| (ResponseError::InvalidTopicException, e.to_string()))?;
    let assignments: Vec<Vec<BrokerId>> = topic
        .assignments
        .iter()
        .map(|a| a.broker_ids.iter().map(|b| BrokerId(b.0)).collect())
        .collect();
    if !assignments.is_empty() {
        if topic.num_partitions != -1 || topic.replication_factor != -1 {
            return Err((
                ResponseError::InvalidRequest,
                "Both numPartitions or replicationFactor and replicasAssignments were set. Both cannot be used at the same time.".into(),
            ));
        }
        for (i, assignment) in topic.assignments.iter().enumerate() {
            if assignment.partition_index != i as i32 {
                return Err((
                    ResponseError::InvalidReplicaAssignment,
                    format!(
                        "Partitions should be 0-based consecutive integers, found {} at position {i}.",
                        assignment.partition_index
                    ),
                ));
            }
        }
    } else {
        if topic.num_partitions == 0 || topic.num_partitions < -1 {
            return Err((
                ResponseError::InvalidPartitions,
                "Number of partitions must be larger than 0.".into(),
            ));
        }
        if topic.replication_factor == 0 || topic.replication_factor < -1 {
            return Err((
                ResponseError::InvalidReplicationFactor,
                "Replication factor must be larger than 0.".into(),
            ));
        }
    }
    let mut configs = BTreeMap::new();
    for config in topic.configs {
        let key = config.name.to_string();
        let Some(value) = config.value else {
            return Err((
                ResponseError::InvalidConfig,
                format!("Null value not supported for topic configs: {key}"),
            ));
        };
        validate_topic_config(&key, value.as_str())
            .map_err(|e| (ResponseError::InvalidConfig, e.to_string()))?;
        configs.insert(key, value.to_string());
    }
    Ok(CreateTopicRequest {
        name,
        num_partitions: topic.num_partitions,
        replication_factor: topic.replication_factor,
        configs,
        assignments,
    })
}

fn created_result(
    ctx: &RequestContext,
    wanted: &CreateTopicRequest,
    created: &CreatedTopic,
    id: uuid::Uuid,
) -> CreatableTopicResult {
    let configs = topic_config_entries(&ctx.broker, &wanted.configs)
        .into_iter()
        .map(|c| {
            CreatableTopicConfigs::default()
                .with_name(str_bytes(c.name))
                .with_value(c.value.map(str_bytes))
                .with_read_only(c.read_only)
                .with_config_source(c.source)
                .with_is_sensitive(c.sensitive)
        })
        .collect();
    CreatableTopicResult::default()
        .with_name(kafka_protocol::messages::TopicName(str_bytes(
            wanted.name.to_string(),
        )))
        .with_topic_id(id)
        .with_num_partitions(created.num_partitions)
        .with_replication_factor(created.replication_factor)
        .with_configs(Some(configs))
}
