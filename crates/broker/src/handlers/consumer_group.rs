//! The KIP-848 consumer group APIs: ConsumerGroupHeartbeat and
//! ConsumerGroupDescribe.

use kafka_protocol::messages::consumer_group_describe_response::DescribedGroup;
use kafka_protocol::messages::{
    ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse, ConsumerGroupHeartbeatRequest,
    ConsumerGroupHeartbeatResponse,
};
use kafka_protocol::protocol::VersionRange;
use kafka_protocol::ResponseError;
use runnel_group::shard::Effects;

use super::{authorized_operations, str_bytes, GROUP_OPERATIONS};
use crate::connection::RequestContext;
use crate::groups::{now_ms, BrokerTopics};

pub(crate) const HEARTBEAT_VERSIONS: VersionRange = VersionRange { min: 0, max: 1 };
pub(crate) const DESCRIBE_VERSIONS: VersionRange = VersionRange { min: 0, max: 1 };

pub(crate) async fn heartbeat(
    ctx: &RequestContext,
    request: ConsumerGroupHeartbeatRequest,
) -> ConsumerGroupHeartbeatResponse {
    if request.group_id.is_empty() {
        return ConsumerGroupHeartbeatResponse::default()
            .with_error_code(ResponseError::InvalidRequest.code())
            .with_error_message(Some(str_bytes("GroupId can't be empty.")));
    }
    let group_id = request.group_id.to_string();
    let fresh = uuid::Uuid::new_v4().to_string();
    let version = ctx.api_version;
    let ran = ctx
        .broker
        .groups
        .run(&ctx.broker, &group_id, |shard| {
            let topics = BrokerTopics(&ctx.broker);
            let host = format!("/{}", ctx.peer.ip());
            let (response, writes) = shard.consumer_heartbeat(
                now_ms(),
                &topics,
                version,
                &request,
                &fresh,
                (&ctx.client_id, &host),
            );
            let effects = Effects {
                writes,
                replies: Vec::new(),
            };
            (response, effects)
        })
        .await;
    match ran {
        Ok((response, Ok(()))) => response,
        // The group's new state is not in the log: the member must not act
        // on it. It retries; the group writes what the log lacks then.
        Ok((response, Err(code))) if response.error_code == 0 => {
            let code = if code == ResponseError::InvalidCommitOffsetSize.code() {
                // Records too large for the log: not an offset matter here.
                ResponseError::UnknownServerError.code()
            } else {
                code
            };
            ConsumerGroupHeartbeatResponse::default().with_error_code(code)
        }
        Ok((response, Err(_))) => response,
        Err(code) => ConsumerGroupHeartbeatResponse::default().with_error_code(code),
    }
}

pub(crate) fn describe(
    ctx: &RequestContext,
    request: ConsumerGroupDescribeRequest,
) -> ConsumerGroupDescribeResponse {
    let topics = BrokerTopics(&ctx.broker);
    let operations = authorized_operations(request.include_authorized_operations, GROUP_OPERATIONS);
    let groups = request
        .group_ids
        .into_iter()
        .map(|group_id| {
            let failed = |code: i16, message: Option<String>| {
                DescribedGroup::default()
                    .with_group_id(group_id.clone())
                    .with_group_state(str_bytes("Dead"))
                    .with_authorized_operations(operations)
                    .with_error_code(code)
                    .with_error_message(message.map(str_bytes))
            };
            if group_id.is_empty() {
                return failed(ResponseError::InvalidGroupId.code(), None);
            }
            let shard = match ctx.broker.groups.shard(&ctx.broker, group_id.as_str()) {
                Ok(shard) => shard,
                Err(code) => return failed(code, None),
            };
            let described =
                shard
                    .lock()
                    .consumer_describe(group_id.as_str(), &topics, ctx.api_version);
            match described {
                Ok(group) => group
                    .with_group_id(group_id.clone())
                    .with_authorized_operations(operations),
                Err((code, message)) => failed(code, Some(message)),
            }
        })
        .collect();
    ConsumerGroupDescribeResponse::default().with_groups(groups)
}
