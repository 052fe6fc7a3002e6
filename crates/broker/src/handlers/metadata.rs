//! Metadata: brokers, topics and partition leadership, with topic
//! auto-creation.

use std::collections::BTreeMap;

use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse};
use kafka_protocol::protocol::VersionRange;
use kafka_protocol::ResponseError;
use runnel_model::TopicName;
use uuid::Uuid;

use super::{authorized_operations, str_bytes, CLUSTER_OPERATIONS, TOPIC_OPERATIONS};
use crate::broker::{Broker, TopicError};
use crate::connection::RequestContext;
use crate::topics::Topic;

pub(crate) const VERSIONS: VersionRange = VersionRange { min: 0, max: 12 };

pub(crate) fn handle(ctx: &RequestContext, request: MetadataRequest) -> MetadataResponse {
    let broker = &ctx.broker;
    let version = ctx.api_version;
    // v0: an empty list means all topics; v1+: null means all topics.
    let requested = match request.topics {
        None => None,
        Some(topics) if topics.is_empty() && version == 0 => None,
        Some(topics) => Some(topics),
    };
    let topics: Vec<MetadataResponseTopic> = match requested {
        None => broker
            .topics
            .all()
            .iter()
            .map(|t| topic_metadata(broker, t))
            .collect(),
        Some(requested) => {
            let auto_create = (version < 4 || request.allow_auto_topic_creation)
                && broker.config.read().auto_create_topics_enable();
            requested
                .into_iter()
                .map(|t| match t.name {
                    Some(name) => named_topic(broker, name.0.as_str(), auto_create),
                    None => match broker.topics.get_by_id(&t.topic_id) {
                        Some(topic) => topic_metadata(broker, &topic),
                        None => MetadataResponseTopic::default()
                            .with_topic_id(t.topic_id)
                            .with_error_code(ResponseError::UnknownTopicId.code()),
                    },
                })
                .collect()
        }
    };
    let topic_operations = authorized_operations(
        version >= 8 && request.include_topic_authorized_operations,
        TOPIC_OPERATIONS,
    );
    let topics: Vec<MetadataResponseTopic> = topics
        .into_iter()
        .map(|t| {
            if t.error_code == 0 {
                t.with_topic_authorized_operations(topic_operations)
            } else {
                t
            }
        })
        .collect();
    MetadataResponse::default()
        .with_cluster_authorized_operations(authorized_operations(
            (8..=10).contains(&version) && request.include_cluster_authorized_operations,
            CLUSTER_OPERATIONS,
        ))
        .with_brokers(vec![MetadataResponseBroker::default()
            .with_node_id(BrokerId(broker.node_id))
            .with_host(str_bytes(broker.advertised_host.clone()))
            .with_port(broker.advertised_port)])
        .with_cluster_id(Some(str_bytes(broker.cluster_id.clone())))
        .with_controller_id(BrokerId(broker.node_id))
        .with_topics(topics)
}

fn named_topic(broker: &Broker, name: &str, auto_create: bool) -> MetadataResponseTopic {
    let unknown = |code: i16| {
        MetadataResponseTopic::default()
            .with_name(Some(kafka_protocol::messages::TopicName(str_bytes(name))))
            .with_topic_id(Uuid::nil())
            .with_error_code(code)
    };
    if let Some(topic) = broker.topics.get(name) {
        return topic_metadata(broker, &topic);
    }
    let valid = match TopicName::new(name) {
        Ok(valid) => valid,
        Err(_) => return unknown(ResponseError::InvalidTopicException.code()),
    };
    if !auto_create || valid.is_internal() {
        return unknown(ResponseError::UnknownTopicOrPartition.code());
    }
    let partitions = broker.config.read().num_partitions();
    match broker.create_topic(valid, partitions, BTreeMap::new()) {
        Ok(topic) => topic_metadata(broker, &topic),
        // Another request created it first.
        Err(TopicError::AlreadyExists(_)) => match broker.topics.get(name) {
            Some(topic) => topic_metadata(broker, &topic),
            None => unknown(ResponseError::LeaderNotAvailable.code()),
        },
        Err(e) => {
            tracing::error!(topic = name, error = %e, "auto-creation failed");
            unknown(ResponseError::KafkaStorageError.code())
        }
    }
}

pub(crate) fn topic_metadata(broker: &Broker, topic: &Topic) -> MetadataResponseTopic {
    let node = BrokerId(broker.node_id);
    let partitions = (0..topic.partitions.len() as i32)
        .map(|index| {
            MetadataResponsePartition::default()
                .with_partition_index(index)
                .with_leader_id(node)
                .with_leader_epoch(0)
                .with_replica_nodes(vec![node])
                .with_isr_nodes(vec![node])
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(kafka_protocol::messages::TopicName(str_bytes(
            topic.name.to_string(),
        ))))
        .with_topic_id(topic.id)
        .with_is_internal(topic.name.is_internal())
        .with_partitions(partitions)
}
