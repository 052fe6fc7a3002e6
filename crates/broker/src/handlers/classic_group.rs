//! The classic group membership APIs: JoinGroup, SyncGroup, Heartbeat and
//! LeaveGroup. JoinGroup and SyncGroup are answered when the group's state
//! machine completes them, which may be long after they arrive.

use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{
    HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest,
    LeaveGroupResponse, SyncGroupRequest, SyncGroupResponse,
};
use kafka_protocol::protocol::VersionRange;
use kafka_protocol::ResponseError;
use runnel_group::classic::{JoinRequest, JoinResponse, LeaveMember, SyncRequest, SyncResponse};
use runnel_group::shard::{Effects, Reply};

use super::str_bytes;
use crate::connection::RequestContext;
use crate::groups::now_ms;

pub(crate) const JOIN_VERSIONS: VersionRange = VersionRange { min: 0, max: 9 };
pub(crate) const SYNC_VERSIONS: VersionRange = VersionRange { min: 0, max: 5 };
pub(crate) const HEARTBEAT_VERSIONS: VersionRange = VersionRange { min: 0, max: 4 };
pub(crate) const LEAVE_VERSIONS: VersionRange = VersionRange { min: 0, max: 5 };

/// Longest a held SyncGroup waits before the client is told to find its
/// coordinator again (the machine answers long before, unless it is lost).
const SYNC_WAIT: Duration = Duration::from_secs(600);

fn opt(s: &Option<kafka_protocol::protocol::StrBytes>) -> Option<String> {
    s.as_ref().map(|s| s.to_string())
}

fn client_host(ctx: &RequestContext) -> String {
    format!("/{}", ctx.peer.ip())
}

pub(crate) async fn join(ctx: &RequestContext, request: JoinGroupRequest) -> JoinGroupResponse {
    let member_id = request.member_id.to_string();
    let fail = |code: i16| {
        JoinGroupResponse::default()
            .with_error_code(code)
            .with_generation_id(-1)
            .with_member_id(str_bytes(member_id.clone()))
    };
    if request.group_id.is_empty() {
        return fail(ResponseError::InvalidGroupId.code());
    }
    let rebalance_timeout_ms = if ctx.api_version == 0 {
        request.session_timeout_ms
    } else {
        request.rebalance_timeout_ms
    };
    let groups = &ctx.broker.groups;
    let (id, rx) = groups.register();
    let join = JoinRequest {
        request: id,
        version: ctx.api_version,
        member_id: member_id.clone(),
        group_instance_id: opt(&request.group_instance_id),
        client_id: ctx.client_id.clone(),
        client_host: client_host(ctx),
        session_timeout_ms: request.session_timeout_ms,
        rebalance_timeout_ms,
        protocol_type: request.protocol_type.to_string(),
        protocols: request
            .protocols
            .iter()
            .map(|p| (p.name.to_string(), p.metadata.clone()))
            .collect(),
        reason: opt(&request.reason),
        fresh_suffix: uuid::Uuid::new_v4().to_string(),
    };
    let group_id = request.group_id.to_string();
    let ran = groups
        .run(&ctx.broker, &group_id, |shard| {
            ((), shard.join(now_ms(), &group_id, join))
        })
        .await;
    if let Err(code) = ran {
        groups.forget(id);
        return fail(code);
    }
    let wait = Duration::from_millis(rebalance_timeout_ms.max(0) as u64) + SYNC_WAIT;
    match tokio::time::timeout(wait, rx).await {
        Ok(Ok(Reply::Join(_, response))) => join_response(response),
        _ => {
            groups.forget(id);
            fail(ResponseError::NotCoordinator.code())
        }
    }
}

fn join_response(r: JoinResponse) -> JoinGroupResponse {
    JoinGroupResponse::default()
        .with_error_code(r.error)
        .with_generation_id(r.generation_id)
        .with_protocol_type(r.protocol_type.map(str_bytes))
        .with_protocol_name(r.protocol_name.map(str_bytes))
        .with_leader(str_bytes(r.leader))
        .with_skip_assignment(r.skip_assignment)
        .with_member_id(str_bytes(r.member_id))
        .with_members(
            r.members
                .into_iter()
                .map(|m| {
                    JoinGroupResponseMember::default()
                        .with_member_id(str_bytes(m.member_id))
                        .with_group_instance_id(m.group_instance_id.map(str_bytes))
                        .with_metadata(m.metadata)
                })
                .collect(),
        )
}

pub(crate) async fn sync(ctx: &RequestContext, request: SyncGroupRequest) -> SyncGroupResponse {
    let fail = |code: i16| SyncGroupResponse::default().with_error_code(code);
    if request.group_id.is_empty() {
        return fail(ResponseError::InvalidGroupId.code());
    }
    let groups = &ctx.broker.groups;
    let (id, rx) = groups.register();
    let sync = SyncRequest {
        request: id,
        member_id: request.member_id.to_string(),
        group_instance_id: opt(&request.group_instance_id),
        generation_id: request.generation_id,
        protocol_type: opt(&request.protocol_type),
        protocol_name: opt(&request.protocol_name),
        assignments: request
            .assignments
            .iter()
            .map(|a| (a.member_id.to_string(), a.assignment.clone()))
            .collect(),
    };
    let group_id = request.group_id.to_string();
    let ran = groups
        .run(&ctx.broker, &group_id, |shard| {
            ((), shard.sync(now_ms(), &group_id, sync))
        })
        .await;
    let stored = match ran {
        Ok(((), stored)) => stored,
        Err(code) => {
            groups.forget(id);
            return fail(code);
        }
    };
    match tokio::time::timeout(SYNC_WAIT, rx).await {
        Ok(Ok(Reply::Sync(_, response))) => {
            // The leader's assignment must be stored before anyone is
            // told it; if the write failed the members rejoin.
            let response = match stored {
                Err(code) if response.error == 0 => SyncResponse {
                    error: code,
                    ..SyncResponse::default()
                },
                _ => response,
            };
            SyncGroupResponse::default()
                .with_error_code(response.error)
                .with_protocol_type(response.protocol_type.map(str_bytes))
                .with_protocol_name(response.protocol_name.map(str_bytes))
                .with_assignment(if response.error == 0 {
                    response.assignment
                } else {
                    Bytes::new()
                })
        }
        _ => {
            groups.forget(id);
            fail(ResponseError::NotCoordinator.code())
        }
    }
}

pub(crate) async fn heartbeat(
    ctx: &RequestContext,
    request: HeartbeatRequest,
) -> HeartbeatResponse {
    if request.group_id.is_empty() {
        return HeartbeatResponse::default().with_error_code(ResponseError::InvalidGroupId.code());
    }
    let group_id = request.group_id.to_string();
    let instance = opt(&request.group_instance_id);
    let ran = ctx
        .broker
        .groups
        .run(&ctx.broker, &group_id, |shard| {
            let code = shard.heartbeat(
                now_ms(),
                &group_id,
                &request.member_id,
                instance.as_deref(),
                request.generation_id,
            );
            (code, Effects::default())
        })
        .await;
    let code = match ran {
        Ok((code, _)) => code,
        Err(code) => code,
    };
    HeartbeatResponse::default().with_error_code(code)
}

pub(crate) async fn leave(ctx: &RequestContext, request: LeaveGroupRequest) -> LeaveGroupResponse {
    if request.group_id.is_empty() {
        return LeaveGroupResponse::default().with_error_code(ResponseError::InvalidGroupId.code());
    }
    let members: Vec<LeaveMember> = if ctx.api_version < 3 {
        vec![LeaveMember {
            member_id: request.member_id.to_string(),
            group_instance_id: None,
            reason: None,
        }]
    } else {
        request
            .members
            .iter()
            .map(|m| LeaveMember {
                member_id: m.member_id.to_string(),
                group_instance_id: opt(&m.group_instance_id),
                reason: opt(&m.reason),
            })
            .collect()
    };
    let group_id = request.group_id.to_string();
    let ran = ctx
        .broker
        .groups
        .run(&ctx.broker, &group_id, |shard| {
            shard.leave(now_ms(), &group_id, &members)
        })
        .await;
    let codes = match ran {
        Ok((Ok(codes), _)) => codes,
        Ok((Err(code), _)) | Err(code) => {
            return LeaveGroupResponse::default().with_error_code(code);
        }
    };
    if ctx.api_version < 3 {
        let code = codes.first().copied().unwrap_or(0);
        return LeaveGroupResponse::default().with_error_code(code);
    }
    LeaveGroupResponse::default().with_members(
        members
            .into_iter()
            .zip(codes)
            .map(|(m, code)| {
                MemberResponse::default()
                    .with_member_id(str_bytes(m.member_id))
                    .with_group_instance_id(m.group_instance_id.map(str_bytes))
                    .with_error_code(code)
            })
            .collect(),
    )
}
