//! FindCoordinator: which node coordinates a group (v0-v3: one key; v4+:
//! a batch of keys). The coordinator of a group is the leader of its
//! partition of `__consumer_offsets`, which the first lookup creates.

use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::{StrBytes, VersionRange};
use kafka_protocol::ResponseError;
use runnel_model::TopicName;

use super::str_bytes;
use crate::connection::RequestContext;
use crate::groups::OFFSETS_TOPIC;

pub(crate) const VERSIONS: VersionRange = VersionRange { min: 0, max: 6 };

const GROUP_KEY: i8 = 0;
const TRANSACTION_KEY: i8 = 1;

/// A coordinator: node id, host and port.
type Found = (i32, String, i32);

pub(crate) async fn handle(
    ctx: &RequestContext,
    request: FindCoordinatorRequest,
) -> FindCoordinatorResponse {
    if ctx.api_version >= 4 {
        let mut coordinators = Vec::with_capacity(request.coordinator_keys.len());
        for key in request.coordinator_keys {
            let found = lookup(ctx, &key, request.key_type).await;
            let coordinator = Coordinator::default().with_key(key);
            coordinators.push(match found {
                Ok((node, host, port)) => coordinator
                    .with_node_id(BrokerId(node))
                    .with_host(str_bytes(host))
                    .with_port(port),
                Err((code, message)) => coordinator
                    .with_node_id(BrokerId(-1))
                    .with_port(-1)
                    .with_error_code(code)
                    .with_error_message(message.map(str_bytes)),
            });
        }
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    let response = FindCoordinatorResponse::default();
    match lookup(ctx, &request.key, request.key_type).await {
        Ok((node, host, port)) => response
            .with_node_id(BrokerId(node))
            .with_host(str_bytes(host))
            .with_port(port),
        Err((code, message)) => response
            .with_error_code(code)
            .with_error_message(message.map(str_bytes))
            .with_node_id(BrokerId(-1))
            .with_port(-1),
    }
}

/// The coordinator of one key, or an error code and message.
async fn lookup(
    ctx: &RequestContext,
    key: &StrBytes,
    key_type: i8,
) -> Result<Found, (i16, Option<String>)> {
    match key_type {
        GROUP_KEY => {}
        TRANSACTION_KEY => {
            return Err((
                ResponseError::CoordinatorNotAvailable.code(),
                Some("transactions are not supported yet".into()),
            ))
        }
        other => {
            return Err((
                ResponseError::InvalidRequest.code(),
                Some(format!("Unsupported key type {other}")),
            ))
        }
    }
    if key.is_empty() {
        return Err((
            ResponseError::InvalidRequest.code(),
            Some("the group id is empty".into()),
        ));
    }
    let broker = &ctx.broker;
    broker
        .groups
        .ensure_offsets_topic(broker)
        .await
        .map_err(|code| (code, None))?;
    let image = broker.image();
    let not_available = || (ResponseError::CoordinatorNotAvailable.code(), None);
    let topic = TopicName::new(OFFSETS_TOPIC)
        .ok()
        .and_then(|name| image.topic_by_name(&name))
        .ok_or_else(not_available)?;
    let count = i32::try_from(topic.partitions.len()).unwrap_or(i32::MAX);
    let index = runnel_group::partition_for(key.as_str(), count);
    let leader = topic
        .partitions
        .get(&runnel_model::PartitionId(index))
        .and_then(|p| p.leader)
        .ok_or_else(not_available)?;
    if leader.0 == broker.node_id {
        // Load the group's state now, so an error shows here.
        broker
            .groups
            .shard(broker, key.as_str())
            .map_err(|code| (code, None))?;
    }
    let (host, port) = broker
        .endpoint_of(&image, leader)
        .ok_or_else(not_available)?;
    Ok((leader.0, host, port))
}
