//! Metadata: brokers, topics and partition leadership, answered from the
//! metadata image, with topic auto-creation through the controller.

use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse};
use kafka_protocol::protocol::VersionRange;
use kafka_protocol::ResponseError;
use runnel_metadata::{CreateTopicRequest, MetadataImage, TopicImage};
use runnel_model::TopicName;
use runnel_quorum::ControllerRequest;
use uuid::Uuid;

use super::{authorized_operations, str_bytes, CLUSTER_OPERATIONS, TOPIC_OPERATIONS};
use crate::broker::{Broker, CONTROLLER_TIMEOUT};
use crate::connection::RequestContext;

pub(crate) const VERSIONS: VersionRange = VersionRange { min: 0, max: 12 };

/// One requested topic: by name or by id.
enum Wanted {
    Name(String),
    Id(Uuid),
}

pub(crate) async fn handle(ctx: &RequestContext, request: MetadataRequest) -> MetadataResponse {
    let broker = &ctx.broker;
    let version = ctx.api_version;
    // v0: an empty list means all topics; v1+: null means all topics.
    let requested: Option<Vec<Wanted>> = match request.topics {
        None => None,
        Some(topics) if topics.is_empty() && version == 0 => None,
        Some(topics) => Some(
            topics
                .into_iter()
                .map(|t| match t.name {
                    Some(name) => Wanted::Name(name.0.to_string()),
                    None => Wanted::Id(t.topic_id),
                })
                .collect(),
        ),
    };
    let mut image = broker.image();
    if let Some(requested) = &requested {
        let auto_create = (version < 4 || request.allow_auto_topic_creation)
            && broker.config.read().auto_create_topics_enable();
        if auto_create {
            auto_create_topics(broker, &image, requested).await;
            image = broker.image();
        }
    }
    let topics: Vec<MetadataResponseTopic> = match requested {
        None => image.topics().map(|t| topic_metadata(&image, t)).collect(),
        Some(requested) => requested
            .into_iter()
            .map(|wanted| match wanted {
                Wanted::Name(name) => named_topic(&image, &name),
                Wanted::Id(id) => match image.topic_by_id(id) {
                    Some(topic) => topic_metadata(&image, topic),
                    None => MetadataResponseTopic::default()
                        .with_topic_id(id)
                        .with_error_code(ResponseError::UnknownTopicId.code()),
                },
            })
            .collect(),
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
    let brokers = broker
        .live_brokers(&image)
        .into_iter()
        .map(|b| {
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(b.id))
                .with_host(str_bytes(b.host))
                .with_port(b.port)
                .with_rack(b.rack.map(str_bytes))
        })
        .collect();
    MetadataResponse::default()
        .with_cluster_authorized_operations(authorized_operations(
            (8..=10).contains(&version) && request.include_cluster_authorized_operations,
            CLUSTER_OPERATIONS,
        ))
        .with_brokers(brokers)
        .with_cluster_id(Some(str_bytes(broker.cluster_id.clone())))
        .with_controller_id(BrokerId(broker.controller_id(&image)))
        .with_topics(topics)
}

/// Creates the requested topics that do not exist, with the broker's
/// defaults, as Kafka does for `auto.create.topics.enable`. Internal and
/// invalid names are never created.
async fn auto_create_topics(broker: &Broker, image: &MetadataImage, requested: &[Wanted]) {
    let (partitions, replication_factor) = {
        let config = broker.config.read();
        (config.num_partitions(), config.default_replication_factor())
    };
    let missing: Vec<CreateTopicRequest> = requested
        .iter()
        .filter_map(|w| match w {
            Wanted::Name(name) => TopicName::new(name.as_str()).ok(),
            Wanted::Id(_) => None,
        })
        .filter(|name| !name.is_internal() && image.topic_by_name(name).is_none())
        .map(|name| CreateTopicRequest {
            name,
            num_partitions: partitions,
            replication_factor: i16::try_from(replication_factor).unwrap_or(i16::MAX),
            configs: Default::default(),
            assignments: vec![],
        })
        .collect();
    if missing.is_empty() {
        return;
    }
    let request = ControllerRequest::CreateTopics {
        topics: missing,
        validate_only: false,
    };
    if let Err(e) = broker.submit(request, CONTROLLER_TIMEOUT).await {
        tracing::warn!(error = %e, "topic auto-creation failed");
    }
}

fn named_topic(image: &MetadataImage, name: &str) -> MetadataResponseTopic {
    let unknown = |code: i16| {
        MetadataResponseTopic::default()
            .with_name(Some(kafka_protocol::messages::TopicName(str_bytes(name))))
            .with_topic_id(Uuid::nil())
            .with_error_code(code)
    };
    let Ok(valid) = TopicName::new(name) else {
        return unknown(ResponseError::InvalidTopicException.code());
    };
    match image.topic_by_name(&valid) {
        Some(topic) => topic_metadata(image, topic),
        None => unknown(ResponseError::UnknownTopicOrPartition.code()),
    }
}

/// A topic's partitions as the image has them: leader (or
/// LEADER_NOT_AVAILABLE), leader epoch, replicas, ISR, and the replicas on
/// brokers that are fenced.
pub(crate) fn topic_metadata(image: &MetadataImage, topic: &TopicImage) -> MetadataResponseTopic {
    let ids = |brokers: &[runnel_model::BrokerId]| brokers.iter().map(|b| BrokerId(b.0)).collect();
    let partitions = topic
        .partitions
        .iter()
        .map(|(index, state)| {
            let offline: Vec<runnel_model::BrokerId> = state
                .replicas
                .iter()
                .copied()
                .filter(|b| !image.is_unfenced(*b))
                .collect();
            let partition = MetadataResponsePartition::default()
                .with_partition_index(index.0)
                .with_leader_id(BrokerId(state.leader.map_or(-1, |b| b.0)))
                .with_leader_epoch(state.leader_epoch.0)
                .with_replica_nodes(ids(&state.replicas))
                .with_isr_nodes(ids(&state.isr))
                .with_offline_replicas(ids(&offline));
            if state.leader.is_none() {
                partition.with_error_code(ResponseError::LeaderNotAvailable.code())
            } else {
                partition
            }
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
