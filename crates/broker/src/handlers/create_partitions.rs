//! CreatePartitions: grow topics, through the controller.

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};
use kafka_protocol::protocol::VersionRange;
use kafka_protocol::ResponseError;
use runnel_metadata::NewPartitions;
use runnel_model::{BrokerId, TopicName};
use runnel_quorum::{ControllerRequest, ControllerResponse};

use super::{forward, str_bytes};
use crate::connection::RequestContext;

pub(crate) const VERSIONS: VersionRange = VersionRange { min: 0, max: 3 };

pub(crate) async fn handle(
    ctx: &RequestContext,
    request: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let broker = &ctx.broker;
    let mut results: Vec<(CreatePartitionsTopicResult, Option<TopicName>)> = Vec::new();
    let mut wanted = Vec::new();
    for t in request.topics {
        let result = CreatePartitionsTopicResult::default().with_name(t.name.clone());
        let name = match TopicName::new(t.name.0.to_string()) {
            Ok(name) => name,
            Err(e) => {
                results.push((
                    result
                        .with_error_code(ResponseError::InvalidTopicException.code())
                        .with_error_message(Some(str_bytes(e.to_string()))),
                    None,
                ));
                continue;
            }
        };
        let assignments = t
            .assignments
            .unwrap_or_default()
            .into_iter()
            .map(|a| a.broker_ids.into_iter().map(|b| BrokerId(b.0)).collect())
            .collect();
        wanted.push(NewPartitions {
            name: name.clone(),
            count: t.count,
            assignments,
        });
        results.push((result, Some(name)));
    }
    let outcome = if wanted.is_empty() {
        Ok(Vec::new())
    } else {
        let request = ControllerRequest::CreatePartitions {
            topics: wanted,
            validate_only: request.validate_only,
        };
        forward::submit(broker, request, |r| match r {
            ControllerResponse::CreatePartitions(answers) => Ok(answers),
            other => Err(other),
        })
        .await
    };
    // The controller answers in request order.
    let mut answers = outcome.as_ref().map(|a| a.iter());
    let results = results
        .into_iter()
        .map(|(result, name)| {
            if name.is_none() {
                return result;
            }
            let failure = match &mut answers {
                Err(failure) => Some(failure.clone()),
                Ok(answers) => match answers.next() {
                    Some((_, Ok(()))) => None,
                    Some((_, Err(e))) => Some(forward::topic_error(e)),
                    None => Some((ResponseError::UnknownServerError, "no answer".into())),
                },
            };
            match failure {
                None => result,
                Some((code, message)) => result
                    .with_error_code(code.code())
                    .with_error_message(Some(str_bytes(message))),
            }
        })
        .collect();
    CreatePartitionsResponse::default().with_results(results)
}
