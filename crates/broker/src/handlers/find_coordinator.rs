//! FindCoordinator: which node coordinates a group (v0-v3: one key; v4+:
//! a batch of keys). On one node that is always this broker, once
//! `__consumer_offsets` exists — it is created by the first lookup.

use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::{StrBytes, VersionRange};
use kafka_protocol::ResponseError;

use super::str_bytes;
use crate::connection::RequestContext;

pub(crate) const VERSIONS: VersionRange = VersionRange { min: 0, max: 6 };

const GROUP_KEY: i8 = 0;
const TRANSACTION_KEY: i8 = 1;

pub(crate) fn handle(
    ctx: &RequestContext,
    request: FindCoordinatorRequest,
) -> FindCoordinatorResponse {
    if ctx.api_version >= 4 {
        let coordinators = request
            .coordinator_keys
            .into_iter()
            .map(|key| {
                let (code, message) = lookup(ctx, &key, request.key_type);
                let coordinator = Coordinator::default().with_key(key);
                if code == 0 {
                    coordinator
                        .with_node_id(BrokerId(ctx.broker.node_id))
                        .with_host(str_bytes(ctx.broker.advertised_host.clone()))
                        .with_port(ctx.broker.advertised_port)
                } else {
                    coordinator
                        .with_node_id(BrokerId(-1))
                        .with_port(-1)
                        .with_error_code(code)
                        .with_error_message(message.map(str_bytes))
                }
            })
            .collect();
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    let (code, message) = lookup(ctx, &request.key, request.key_type);
    let response = FindCoordinatorResponse::default();
    if code == 0 {
        response
            .with_node_id(BrokerId(ctx.broker.node_id))
            .with_host(str_bytes(ctx.broker.advertised_host.clone()))
            .with_port(ctx.broker.advertised_port)
    } else {
        response
            .with_error_code(code)
            .with_error_message(message.map(str_bytes))
            .with_node_id(BrokerId(-1))
            .with_port(-1)
    }
}

/// Error code and message for one key; 0 when this node coordinates it.
fn lookup(ctx: &RequestContext, key: &StrBytes, key_type: i8) -> (i16, Option<String>) {
    match key_type {
        GROUP_KEY => {}
        TRANSACTION_KEY => {
            return (
                ResponseError::CoordinatorNotAvailable.code(),
                Some("transactions are not supported yet".into()),
            )
        }
        other => {
            return (
                ResponseError::InvalidRequest.code(),
                Some(format!("Unsupported key type {other}")),
            )
        }
    }
    if key.is_empty() {
        return (
            ResponseError::InvalidRequest.code(),
            Some("the group id is empty".into()),
        );
    }
    match ctx.broker.groups.shard(&ctx.broker, key.as_str()) {
        Ok(_) => (0, None),
        Err(code) => (code, None),
    }
}
