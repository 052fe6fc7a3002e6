//! Group administration: ListGroups, DescribeGroups and DeleteGroups.

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{
    DeleteGroupsRequest, DeleteGroupsResponse, DescribeGroupsRequest, DescribeGroupsResponse,
    GroupId, ListGroupsRequest, ListGroupsResponse,
};
use kafka_protocol::protocol::VersionRange;
use kafka_protocol::ResponseError;
use runnel_group::shard::{Described, Effects};

use super::{authorized_operations, str_bytes, GROUP_OPERATIONS};
use crate::connection::RequestContext;

pub(crate) const LIST_VERSIONS: VersionRange = VersionRange { min: 0, max: 5 };
pub(crate) const DESCRIBE_VERSIONS: VersionRange = VersionRange { min: 0, max: 6 };
pub(crate) const DELETE_VERSIONS: VersionRange = VersionRange { min: 0, max: 2 };

pub(crate) fn list(ctx: &RequestContext, request: ListGroupsRequest) -> ListGroupsResponse {
    let states: Vec<String> = request
        .states_filter
        .iter()
        .map(|s| s.to_lowercase())
        .collect();
    let types: Vec<String> = request
        .types_filter
        .iter()
        .map(|s| s.to_lowercase())
        .collect();
    let mut groups = Vec::new();
    for shard in ctx.broker.groups.all_shards() {
        for listing in shard.lock().list_groups() {
            if !states.is_empty() && !states.contains(&listing.state.to_lowercase()) {
                continue;
            }
            if !types.is_empty() && !types.contains(&listing.group_type.to_lowercase()) {
                continue;
            }
            groups.push(
                ListedGroup::default()
                    .with_group_id(GroupId(str_bytes(listing.group_id)))
                    .with_protocol_type(str_bytes(listing.protocol_type))
                    .with_group_state(str_bytes(listing.state))
                    .with_group_type(str_bytes(listing.group_type)),
            );
        }
    }
    groups.sort_by(|a, b| a.group_id.cmp(&b.group_id));
    ListGroupsResponse::default().with_groups(groups)
}

pub(crate) fn describe(
    ctx: &RequestContext,
    request: DescribeGroupsRequest,
) -> DescribeGroupsResponse {
    let operations = authorized_operations(request.include_authorized_operations, GROUP_OPERATIONS);
    let groups = request
        .groups
        .into_iter()
        .map(|group_id| {
            let described = DescribedGroup::default()
                .with_group_id(group_id.clone())
                .with_authorized_operations(operations);
            if group_id.is_empty() {
                return described.with_error_code(ResponseError::InvalidGroupId.code());
            }
            let shard = match ctx.broker.groups.shard(&ctx.broker, group_id.as_str()) {
                Ok(shard) => shard,
                Err(code) => return described.with_error_code(code),
            };
            let result = shard.lock().describe_group(group_id.as_str());
            match result {
                Described::Classic(group) => described
                    .with_group_state(str_bytes(group.state.as_str()))
                    .with_protocol_type(str_bytes(group.protocol_type))
                    .with_protocol_data(str_bytes(group.protocol))
                    .with_members(
                        group
                            .members
                            .into_iter()
                            .map(|m| {
                                DescribedGroupMember::default()
                                    .with_member_id(str_bytes(m.member_id))
                                    .with_group_instance_id(m.group_instance_id.map(str_bytes))
                                    .with_client_id(str_bytes(m.client_id))
                                    .with_client_host(str_bytes(m.client_host))
                                    .with_member_metadata(m.metadata)
                                    .with_member_assignment(m.assignment)
                            })
                            .collect(),
                    ),
                Described::Consumer | Described::NotFound if ctx.api_version >= 6 => {
                    let message = if matches!(result, Described::Consumer) {
                        format!("Group {} is not a classic group.", group_id.as_str())
                    } else {
                        format!("Group {} not found.", group_id.as_str())
                    };
                    described
                        .with_group_state(str_bytes("Dead"))
                        .with_error_code(ResponseError::GroupIdNotFound.code())
                        .with_error_message(Some(str_bytes(message)))
                }
                Described::Consumer | Described::NotFound => {
                    described.with_group_state(str_bytes("Dead"))
                }
            }
        })
        .collect();
    DescribeGroupsResponse::default().with_groups(groups)
}

pub(crate) async fn delete(
    ctx: &RequestContext,
    request: DeleteGroupsRequest,
) -> DeleteGroupsResponse {
    let mut results = Vec::with_capacity(request.groups_names.len());
    for group_id in request.groups_names {
        let code = if group_id.is_empty() {
            ResponseError::InvalidGroupId.code()
        } else {
            let id = group_id.to_string();
            let ran = ctx
                .broker
                .groups
                .run(&ctx.broker, &id, |shard| match shard.delete_group(&id) {
                    Ok(writes) => (
                        0,
                        Effects {
                            writes,
                            replies: Vec::new(),
                        },
                    ),
                    Err(code) => (code, Effects::default()),
                })
                .await;
            match ran {
                Ok((0, Err(code))) => code,
                Ok((code, _)) | Err(code) => code,
            }
        };
        results.push(
            DeletableGroupResult::default()
                .with_group_id(group_id)
                .with_error_code(code),
        );
    }
    DeleteGroupsResponse::default().with_results(results)
}
