//! Requests the broker forwards to the active controller: how the
//! controller's answers become Kafka error codes and messages.

use kafka_protocol::ResponseError;
use runnel_metadata::TopicError;
use runnel_quorum::{ControllerFailure, ControllerRequest, ControllerResponse};

use crate::broker::{Broker, CONTROLLER_TIMEOUT};

/// Sends `request` to the active controller and takes the answer `pick`
/// expects; anything else, or no answer, is an error code and message for
/// every part of the client's request.
pub(crate) async fn submit<T>(
    broker: &Broker,
    request: ControllerRequest,
    pick: impl FnOnce(ControllerResponse) -> Result<T, ControllerResponse>,
) -> Result<T, (ResponseError, String)> {
    match broker.submit(request, CONTROLLER_TIMEOUT).await {
        Ok(response) => pick(response).map_err(|other| {
            (
                ResponseError::UnknownServerError,
                format!("unexpected answer from the controller: {other:?}"),
            )
        }),
        Err(e) => Err(failure(&e)),
    }
}

/// The error code and message of a request the controller did not do.
pub(crate) fn failure(error: &ControllerFailure) -> (ResponseError, String) {
    let code = match error {
        ControllerFailure::NotController { .. } => ResponseError::NotController,
        // The quorum has no leader or did not answer in time: retriable.
        ControllerFailure::Unavailable(_) => ResponseError::RequestTimedOut,
        ControllerFailure::BrokerIdNotRegistered(_)
        | ControllerFailure::StaleBrokerEpoch(_)
        | ControllerFailure::DuplicateBrokerRegistration(_) => ResponseError::UnknownServerError,
    };
    (code, error.to_string())
}

/// The error code and message of one topic the controller refused.
pub(crate) fn topic_error(error: &TopicError) -> (ResponseError, String) {
    let code = match error {
        TopicError::TopicAlreadyExists(_) => ResponseError::TopicAlreadyExists,
        TopicError::InvalidPartitions(_) => ResponseError::InvalidPartitions,
        TopicError::InvalidReplicationFactor(_) => ResponseError::InvalidReplicationFactor,
        TopicError::InvalidReplicaAssignment(_) => ResponseError::InvalidReplicaAssignment,
        TopicError::InvalidRequest(_) => ResponseError::InvalidRequest,
        TopicError::UnknownTopicOrPartition(_) => ResponseError::UnknownTopicOrPartition,
        TopicError::TopicIdGeneration => ResponseError::UnknownServerError,
    };
    let message = match error {
        TopicError::TopicAlreadyExists(name) => format!("Topic '{name}' already exists."),
        TopicError::UnknownTopicOrPartition(name) => format!("The topic '{name}' does not exist."),
        other => other.to_string(),
    };
    (code, message)
}
