//! Requests the broker forwards to the active controller: how the
//! controller's answers become Kafka error codes and messages.

use kafka_protocol::ResponseError;
use runnel_metadata::TopicError;
use runnel_quorum::ControllerFailure;

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
