//! DeleteTopics, by name or (v6) by topic id.

use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse};
use kafka_protocol::protocol::VersionRange;
use kafka_protocol::ResponseError;
use uuid::Uuid;

use super::str_bytes;
use crate::connection::RequestContext;

pub(crate) const VERSIONS: VersionRange = VersionRange { min: 1, max: 6 };

pub(crate) fn handle(ctx: &RequestContext, request: DeleteTopicsRequest) -> DeleteTopicsResponse {
    let broker = &ctx.broker;
    // v0-5 send names; v6 sends (name or id) states.
    let targets: Vec<(Option<String>, Uuid)> = if ctx.api_version >= 6 {
        request
            .topics
            .into_iter()
            .map(|t| (t.name.map(|n| n.0.to_string()), t.topic_id))
            .collect()
    } else {
        request
            .topic_names
            .into_iter()
            .map(|n| (Some(n.0.to_string()), Uuid::nil()))
            .collect()
    };
    let enabled = broker.config.read().delete_topic_enable();
    let responses = targets
        .into_iter()
        .map(|(name, id)| {
            let topic = match &name {
                Some(name) => broker.topics.get(name),
                None => broker.topics.get_by_id(&id),
            };
            let result = DeletableTopicResult::default()
                .with_name(
                    name.clone()
                        .map(|n| kafka_protocol::messages::TopicName(str_bytes(n))),
                )
                .with_topic_id(id);
            let Some(topic) = topic else {
                let error = if name.is_some() {
                    ResponseError::UnknownTopicOrPartition
                } else {
                    ResponseError::UnknownTopicId
                };
                return result.with_error_code(error.code());
            };
            if !enabled {
                return result.with_error_code(ResponseError::TopicDeletionDisabled.code());
            }
            let result = result
                .with_name(Some(kafka_protocol::messages::TopicName(str_bytes(
                    topic.name.to_string(),
                ))))
                .with_topic_id(topic.id);
            match broker.delete_topic(&topic.name) {
                Ok(_) => result,
                Err(e) => result
                    .with_error_code(ResponseError::UnknownTopicOrPartition.code())
                    .with_error_message(Some(str_bytes(e.to_string()))),
            }
        })
        .collect();
    DeleteTopicsResponse::default().with_responses(responses)
}
