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

use super::configs::topic_config_entries;
use super::str_bytes;
use crate::broker::TopicError;
use crate::connection::RequestContext;

pub(crate) const VERSIONS: VersionRange = VersionRange { min: 2, max: 7 };

pub(crate) fn handle(ctx: &RequestContext, request: CreateTopicsRequest) -> CreateTopicsResponse {
    let mut seen = HashSet::new();
    let duplicates: HashSet<String> = request
        .topics
        .iter()
        .filter(|t| !seen.insert(t.name.0.to_string()))
        .map(|t| t.name.0.to_string())
        .collect();
    let mut reported = HashSet::new();
    let mut results = Vec::new();
    for topic in request.topics {
        let name = topic.name.0.to_string();
        if duplicates.contains(&name) {
            if reported.insert(name.clone()) {
                results.push(failure(
                    &name,
                    ResponseError::InvalidRequest,
                    format!(
                        "Create topics request from client included topic {name} more than once."
                    ),
                ));
            }
            continue;
        }
        results.push(match create_one(ctx, topic, request.validate_only) {
            Ok(result) => result,
            Err((error, message)) => failure(&name, error, message),
        });
    }
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

fn create_one(
    ctx: &RequestContext,
    topic: CreatableTopic,
    validate_only: bool,
) -> Result<CreatableTopicResult, (ResponseError, String)> {
    let broker = &ctx.broker;
    let name = TopicName::new(topic.name.0.to_string())
        .map_err(|e| (ResponseError::InvalidTopicException, e.to_string()))?;
    if broker.topics.get(name.as_str()).is_some() {
        return Err((
            ResponseError::TopicAlreadyExists,
            format!("Topic '{name}' already exists."),
        ));
    }
    let (default_partitions, default_rf) = {
        let config = broker.config.read();
        (config.num_partitions(), config.default_replication_factor())
    };
    let partitions = if !topic.assignments.is_empty() {
        if topic.num_partitions != -1 || topic.replication_factor != -1 {
            return Err((
                ResponseError::InvalidRequest,
                "Both numPartitions or replicationFactor and replicasAssignments were set. Both cannot be used at the same time.".into(),
            ));
        }
        for (i, assignment) in topic.assignments.iter().enumerate() {
            if assignment.partition_index != i as i32
                || assignment.broker_ids.len() != 1
                || assignment.broker_ids[0].0 != broker.node_id
            {
                return Err((
                    ResponseError::InvalidReplicaAssignment,
                    format!(
                        "Replica assignment for partition {} must be [{}] on this single-node cluster.",
                        assignment.partition_index, broker.node_id
                    ),
                ));
            }
        }
        topic.assignments.len() as i32
    } else {
        let partitions = if topic.num_partitions == -1 {
            default_partitions
        } else {
            topic.num_partitions
        };
        if partitions <= 0 {
            return Err((
                ResponseError::InvalidPartitions,
                "Number of partitions must be larger than 0.".into(),
            ));
        }
        let rf = if topic.replication_factor == -1 {
            default_rf
        } else {
            i32::from(topic.replication_factor)
        };
        if rf <= 0 {
            return Err((
                ResponseError::InvalidReplicationFactor,
                "Replication factor must be larger than 0.".into(),
            ));
        }
        if rf > 1 {
            return Err((
                ResponseError::InvalidReplicationFactor,
                format!("Unable to replicate the partition {rf} time(s): The target replication factor of {rf} cannot be reached because only 1 broker(s) are registered."),
            ));
        }
        partitions
    };
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
    let (id, result_configs) = if validate_only {
        (uuid::Uuid::nil(), topic_config_entries(broker, &configs))
    } else {
        let created = broker
            .create_topic(name.clone(), partitions, configs)
            .map_err(|e| match e {
                TopicError::AlreadyExists(_) => (
                    ResponseError::TopicAlreadyExists,
                    format!("Topic '{name}' already exists."),
                ),
                other => (ResponseError::KafkaStorageError, other.to_string()),
            })?;
        (created.id, topic_config_entries(broker, &created.configs))
    };
    let configs = result_configs
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
    Ok(CreatableTopicResult::default()
        .with_name(kafka_protocol::messages::TopicName(str_bytes(
            name.to_string(),
        )))
        .with_topic_id(id)
        .with_num_partitions(partitions)
        .with_replication_factor(1)
        .with_configs(Some(configs)))
}
