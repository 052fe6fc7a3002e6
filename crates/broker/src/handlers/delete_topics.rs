//! DeleteTopics, by name or (v6) by topic id.

use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse};
use kafka_protocol::protocol::VersionRange;
use kafka_protocol::ResponseError;
use runnel_model::TopicName;
use runnel_quorum::{ControllerRequest, ControllerResponse};
use uuid::Uuid;

use super::{forward, str_bytes};
use crate::connection::RequestContext;

pub(crate) const VERSIONS: VersionRange = VersionRange { min: 1, max: 6 };

pub(crate) async fn handle(
    ctx: &RequestContext,
    request: DeleteTopicsRequest,
) -> DeleteTopicsResponse {
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
    let image = broker.image();
    // Each target's result, and the name to delete for those that exist.
    let mut results: Vec<(DeletableTopicResult, Option<()>)> = Vec::with_capacity(targets.len());
    let mut to_delete = Vec::new();
    for (name, id) in targets {
        let topic = match &name {
            Some(name) => TopicName::new(name.as_str())
                .ok()
                .and_then(|n| image.topic_by_name(&n)),
            None => image.topic_by_id(id),
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
            results.push((result.with_error_code(error.code()), None));
            continue;
        };
        if !enabled {
            results.push((
                result.with_error_code(ResponseError::TopicDeletionDisabled.code()),
                None,
            ));
            continue;
        }
        let result = result
            .with_name(Some(kafka_protocol::messages::TopicName(str_bytes(
                topic.name.to_string(),
            ))))
            .with_topic_id(topic.id);
        to_delete.push(topic.name.clone());
        results.push((result, Some(())));
    }
    let outcome = if to_delete.is_empty() {
        Ok(Vec::new())
    } else {
        let request = ControllerRequest::DeleteTopics(to_delete);
        forward::submit(broker, request, |r| match r {
            ControllerResponse::DeleteTopics(answers) => Ok(answers),
            other => Err(other),
        })
        .await
    };
    // The controller answers in request order.
    let mut answers = outcome.as_ref().map(|a| a.iter());
    let responses = results
        .into_iter()
        .map(|(result, name)| {
            if name.is_none() {
                return result;
            }
            let answer = match &mut answers {
                Ok(answers) => answers.next().map(|(_, r)| r),
                Err((code, message)) => {
                    return result
                        .with_error_code(code.code())
                        .with_error_message(Some(str_bytes(message.clone())))
                }
            };
            match answer {
                Some(Ok(_)) => result,
                Some(Err(e)) => {
                    let (code, message) = forward::topic_error(e);
                    result
                        .with_error_code(code.code())
                        .with_error_message(Some(str_bytes(message)))
                }
                None => result.with_error_code(ResponseError::UnknownServerError.code()),
            }
        })
        .collect();
    DeleteTopicsResponse::default().with_responses(responses)
}
