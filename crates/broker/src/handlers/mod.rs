//! One module per Kafka API. Each declares the versions it serves in
//! `VERSIONS`; [`SUPPORTED`] is built from those declarations, and both
//! ApiVersions and request decoding read it, so the broker cannot advertise
//! an API no handler serves.

use std::net::SocketAddr;

use kafka_protocol::messages::{ApiKey, RequestKind, ResponseKind};
use kafka_protocol::protocol::VersionRange;
use kafka_protocol::ResponseError;
use runnel_protocol::request::{encode_response, DecodeError};

use crate::broker::Broker;
use crate::connection::RequestContext;
use crate::response::Response;

mod alter_partition_reassignments;
mod api_versions;
mod classic_group;
mod configs;
mod consumer_group;
mod create_partitions;
mod create_topics;
mod delete_records;
mod delete_topics;
mod describe_cluster;
mod describe_log_dirs;
mod elect_leaders;
mod fetch;
mod find_coordinator;
mod forward;
mod group_admin;
mod init_producer_id;
mod list_offsets;
mod list_partition_reassignments;
mod metadata;
mod offset_for_leader_epoch;
mod offsets;
mod produce;

/// An API this broker serves: the versions it advertises, and the lowest
/// version it actually decodes (Produce advertises v0 like Apache Kafka, as
/// a librdkafka workaround, but serves v3 and later only).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ApiSupport {
    pub api_key: ApiKey,
    pub advertised: VersionRange,
    pub min_served: i16,
}

const fn api(api_key: ApiKey, versions: VersionRange) -> ApiSupport {
    ApiSupport {
        api_key,
        advertised: versions,
        min_served: versions.min,
    }
}

/// Every API this broker serves.
pub(crate) const SUPPORTED: &[ApiSupport] = &[
    ApiSupport {
        api_key: ApiKey::Produce,
        advertised: VersionRange {
            min: 0,
            max: produce::VERSIONS.max,
        },
        min_served: produce::VERSIONS.min,
    },
    api(ApiKey::Fetch, fetch::VERSIONS),
    api(ApiKey::ListOffsets, list_offsets::VERSIONS),
    api(ApiKey::Metadata, metadata::VERSIONS),
    api(ApiKey::ApiVersions, api_versions::VERSIONS),
    api(ApiKey::CreateTopics, create_topics::VERSIONS),
    api(ApiKey::DeleteTopics, delete_topics::VERSIONS),
    api(ApiKey::DeleteRecords, delete_records::VERSIONS),
    api(ApiKey::InitProducerId, init_producer_id::VERSIONS),
    api(ApiKey::DescribeConfigs, configs::DESCRIBE_VERSIONS),
    api(ApiKey::AlterConfigs, configs::ALTER_VERSIONS),
    api(ApiKey::DescribeLogDirs, describe_log_dirs::VERSIONS),
    api(ApiKey::CreatePartitions, create_partitions::VERSIONS),
    api(
        ApiKey::IncrementalAlterConfigs,
        configs::INCREMENTAL_ALTER_VERSIONS,
    ),
    api(ApiKey::DescribeCluster, describe_cluster::VERSIONS),
    api(
        ApiKey::OffsetForLeaderEpoch,
        offset_for_leader_epoch::VERSIONS,
    ),
    api(ApiKey::ElectLeaders, elect_leaders::VERSIONS),
    api(
        ApiKey::AlterPartitionReassignments,
        alter_partition_reassignments::VERSIONS,
    ),
    api(
        ApiKey::ListPartitionReassignments,
        list_partition_reassignments::VERSIONS,
    ),
    api(ApiKey::FindCoordinator, find_coordinator::VERSIONS),
    api(ApiKey::JoinGroup, classic_group::JOIN_VERSIONS),
    api(ApiKey::SyncGroup, classic_group::SYNC_VERSIONS),
    api(ApiKey::Heartbeat, classic_group::HEARTBEAT_VERSIONS),
    api(ApiKey::LeaveGroup, classic_group::LEAVE_VERSIONS),
    api(ApiKey::OffsetCommit, offsets::COMMIT_VERSIONS),
    api(ApiKey::OffsetFetch, offsets::FETCH_VERSIONS),
    api(ApiKey::OffsetDelete, offsets::DELETE_VERSIONS),
    api(ApiKey::ListGroups, group_admin::LIST_VERSIONS),
    api(ApiKey::DescribeGroups, group_admin::DESCRIBE_VERSIONS),
    api(ApiKey::DeleteGroups, group_admin::DELETE_VERSIONS),
    api(
        ApiKey::ConsumerGroupHeartbeat,
        consumer_group::HEARTBEAT_VERSIONS,
    ),
    api(
        ApiKey::ConsumerGroupDescribe,
        consumer_group::DESCRIBE_VERSIONS,
    ),
];

/// The advertised version ranges, as `(api key, min, max)`.
pub fn supported_versions() -> Vec<(i16, i16, i16)> {
    SUPPORTED
        .iter()
        .map(|s| (s.api_key as i16, s.advertised.min, s.advertised.max))
        .collect()
}

/// The versions of `api_key` this broker decodes, if any.
pub(crate) fn served_versions(api_key: ApiKey) -> Option<VersionRange> {
    SUPPORTED
        .iter()
        .find(|s| s.api_key == api_key)
        .map(|s| VersionRange {
            min: s.min_served,
            max: s.advertised.max,
        })
}

/// Runs the handler for a decoded request.
pub(crate) async fn handle(ctx: &RequestContext, api_key: ApiKey, body: RequestKind) -> Response {
    let response = match body {
        RequestKind::Produce(r) => return produce::handle(ctx, r).await,
        RequestKind::Fetch(r) => return fetch::handle(ctx, r).await,
        RequestKind::ApiVersions(r) => ResponseKind::ApiVersions(api_versions::handle(ctx, r)),
        RequestKind::Metadata(r) => ResponseKind::Metadata(metadata::handle(ctx, r).await),
        RequestKind::ListOffsets(r) => ResponseKind::ListOffsets(list_offsets::handle(ctx, r)),
        RequestKind::ElectLeaders(r) => {
            ResponseKind::ElectLeaders(elect_leaders::handle(ctx, r).await)
        }
        RequestKind::AlterPartitionReassignments(r) => ResponseKind::AlterPartitionReassignments(
            alter_partition_reassignments::handle(ctx, r).await,
        ),
        RequestKind::ListPartitionReassignments(r) => ResponseKind::ListPartitionReassignments(
            list_partition_reassignments::handle(ctx, r).await,
        ),
        RequestKind::OffsetForLeaderEpoch(r) => {
            ResponseKind::OffsetForLeaderEpoch(offset_for_leader_epoch::handle(ctx, r))
        }
        RequestKind::CreateTopics(r) => {
            ResponseKind::CreateTopics(create_topics::handle(ctx, r).await)
        }
        RequestKind::DeleteTopics(r) => {
            ResponseKind::DeleteTopics(delete_topics::handle(ctx, r).await)
        }
        RequestKind::DeleteRecords(r) => {
            ResponseKind::DeleteRecords(delete_records::handle(ctx, r))
        }
        RequestKind::InitProducerId(r) => {
            ResponseKind::InitProducerId(init_producer_id::handle(ctx, r).await)
        }
        RequestKind::DescribeConfigs(r) => ResponseKind::DescribeConfigs(configs::describe(ctx, r)),
        RequestKind::AlterConfigs(r) => ResponseKind::AlterConfigs(configs::alter(ctx, r).await),
        RequestKind::IncrementalAlterConfigs(r) => {
            ResponseKind::IncrementalAlterConfigs(configs::incremental_alter(ctx, r).await)
        }
        RequestKind::DescribeLogDirs(r) => {
            ResponseKind::DescribeLogDirs(describe_log_dirs::handle(ctx, r))
        }
        RequestKind::CreatePartitions(r) => {
            ResponseKind::CreatePartitions(create_partitions::handle(ctx, r).await)
        }
        RequestKind::DescribeCluster(r) => {
            ResponseKind::DescribeCluster(describe_cluster::handle(ctx, r))
        }
        RequestKind::FindCoordinator(r) => {
            ResponseKind::FindCoordinator(find_coordinator::handle(ctx, r).await)
        }
        RequestKind::JoinGroup(r) => ResponseKind::JoinGroup(classic_group::join(ctx, r).await),
        RequestKind::SyncGroup(r) => ResponseKind::SyncGroup(classic_group::sync(ctx, r).await),
        RequestKind::Heartbeat(r) => {
            ResponseKind::Heartbeat(classic_group::heartbeat(ctx, r).await)
        }
        RequestKind::LeaveGroup(r) => ResponseKind::LeaveGroup(classic_group::leave(ctx, r).await),
        RequestKind::OffsetCommit(r) => ResponseKind::OffsetCommit(offsets::commit(ctx, r).await),
        RequestKind::OffsetFetch(r) => ResponseKind::OffsetFetch(offsets::fetch(ctx, r).await),
        RequestKind::OffsetDelete(r) => ResponseKind::OffsetDelete(offsets::delete(ctx, r).await),
        RequestKind::ListGroups(r) => ResponseKind::ListGroups(group_admin::list(ctx, r)),
        RequestKind::DescribeGroups(r) => {
            ResponseKind::DescribeGroups(group_admin::describe(ctx, r))
        }
        RequestKind::DeleteGroups(r) => {
            ResponseKind::DeleteGroups(group_admin::delete(ctx, r).await)
        }
        RequestKind::ConsumerGroupHeartbeat(r) => {
            ResponseKind::ConsumerGroupHeartbeat(consumer_group::heartbeat(ctx, r).await)
        }
        RequestKind::ConsumerGroupDescribe(r) => {
            ResponseKind::ConsumerGroupDescribe(consumer_group::describe(ctx, r))
        }
        other => {
            // `served_versions` only admits the APIs above; reaching this is
            // a bug in the table, not something a client can cause.
            return Response::Close(format!("no handler for {api_key:?}: {other:?}"));
        }
    };
    encode(ctx, api_key, &response)
}

/// Encodes a response body at the request's version.
pub(crate) fn encode(ctx: &RequestContext, api_key: ApiKey, body: &ResponseKind) -> Response {
    match encode_response(api_key, ctx.api_version, ctx.correlation_id, body) {
        Ok(frame) => Response::Frame(frame),
        Err(e) => {
            tracing::error!(error = %e, "failed to encode response");
            Response::Close(e.to_string())
        }
    }
}

/// What to send for a frame that did not decode. An unsupported version or
/// a malformed body is answered with the API's top-level error code where
/// its response has one (UNSUPPORTED_VERSION, INVALID_REQUEST); where it has
/// none, or nothing can be parsed at all, the connection is closed, as
/// Apache Kafka does.
pub(crate) fn decode_failure(broker: &Broker, peer: SocketAddr, error: DecodeError) -> Response {
    let (api_key, header, code) = match &error {
        DecodeError::UnsupportedVersion {
            api_key, header, ..
        } => (*api_key, header, ResponseError::UnsupportedVersion.code()),
        DecodeError::Body {
            api_key, header, ..
        } => (*api_key, header, ResponseError::InvalidRequest.code()),
        _ => return Response::Close(error.to_string()),
    };
    tracing::warn!(%peer, %error, "rejecting request");
    let version = header.request_api_version;
    let correlation_id = header.correlation_id;
    if api_key == ApiKey::ApiVersions {
        // KIP-511: answer an ApiVersions version we do not know with a v0
        // body listing what we support, so the client retries with one.
        let body = api_versions::response(broker, code);
        let version = if code == ResponseError::UnsupportedVersion.code() {
            0
        } else {
            version
        };
        return match encode_response(
            api_key,
            version,
            correlation_id,
            &ResponseKind::ApiVersions(body),
        ) {
            Ok(frame) => Response::Frame(frame),
            Err(e) => Response::Close(e.to_string()),
        };
    }
    let body = match top_level_error_response(api_key, code) {
        Some(body) => body,
        None => return Response::Close(error.to_string()),
    };
    match encode_response(api_key, version, correlation_id, &body) {
        Ok(frame) => Response::Frame(frame),
        Err(_) => Response::Close(error.to_string()),
    }
}

fn top_level_error_response(api_key: ApiKey, code: i16) -> Option<ResponseKind> {
    use kafka_protocol::messages::*;
    Some(match api_key {
        ApiKey::InitProducerId => ResponseKind::InitProducerId(
            InitProducerIdResponse::default()
                .with_error_code(code)
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1),
        ),
        ApiKey::DescribeCluster => {
            ResponseKind::DescribeCluster(DescribeClusterResponse::default().with_error_code(code))
        }
        ApiKey::DescribeLogDirs => {
            ResponseKind::DescribeLogDirs(DescribeLogDirsResponse::default().with_error_code(code))
        }
        ApiKey::Fetch => ResponseKind::Fetch(FetchResponse::default().with_error_code(code)),
        ApiKey::JoinGroup => ResponseKind::JoinGroup(
            JoinGroupResponse::default()
                .with_error_code(code)
                .with_generation_id(-1),
        ),
        ApiKey::SyncGroup => {
            ResponseKind::SyncGroup(SyncGroupResponse::default().with_error_code(code))
        }
        ApiKey::Heartbeat => {
            ResponseKind::Heartbeat(HeartbeatResponse::default().with_error_code(code))
        }
        ApiKey::LeaveGroup => {
            ResponseKind::LeaveGroup(LeaveGroupResponse::default().with_error_code(code))
        }
        ApiKey::ListGroups => {
            ResponseKind::ListGroups(ListGroupsResponse::default().with_error_code(code))
        }
        ApiKey::OffsetDelete => {
            ResponseKind::OffsetDelete(OffsetDeleteResponse::default().with_error_code(code))
        }
        ApiKey::ConsumerGroupHeartbeat => ResponseKind::ConsumerGroupHeartbeat(
            ConsumerGroupHeartbeatResponse::default().with_error_code(code),
        ),
        _ => return None,
    })
}

/// Kafka's ACL operation codes, as bits of an `authorized_operations` field.
mod acl {
    pub const READ: u8 = 3;
    pub const WRITE: u8 = 4;
    pub const CREATE: u8 = 5;
    pub const DELETE: u8 = 6;
    pub const ALTER: u8 = 7;
    pub const DESCRIBE: u8 = 8;
    pub const CLUSTER_ACTION: u8 = 9;
    pub const DESCRIBE_CONFIGS: u8 = 10;
    pub const ALTER_CONFIGS: u8 = 11;
    pub const IDEMPOTENT_WRITE: u8 = 12;
}

/// Operations on a topic, a group and the cluster (Kafka's supported
/// operations per resource type).
pub(crate) const TOPIC_OPERATIONS: &[u8] = &[
    acl::READ,
    acl::WRITE,
    acl::CREATE,
    acl::DELETE,
    acl::ALTER,
    acl::DESCRIBE,
    acl::DESCRIBE_CONFIGS,
    acl::ALTER_CONFIGS,
];
pub(crate) const GROUP_OPERATIONS: &[u8] = &[acl::READ, acl::DELETE, acl::DESCRIBE];
pub(crate) const CLUSTER_OPERATIONS: &[u8] = &[
    acl::CREATE,
    acl::ALTER,
    acl::DESCRIBE,
    acl::CLUSTER_ACTION,
    acl::DESCRIBE_CONFIGS,
    acl::ALTER_CONFIGS,
    acl::IDEMPOTENT_WRITE,
];

/// An `authorized_operations` field: Kafka's "not asked" value when the
/// client did not ask, else every operation of the resource — there is no
/// authorizer, so everything is allowed.
pub(crate) fn authorized_operations(requested: bool, operations: &[u8]) -> i32 {
    if !requested {
        return i32::MIN;
    }
    operations.iter().fold(0, |bits, op| bits | (1 << op))
}

/// Shorthand for a `StrBytes` from any string.
pub(crate) fn str_bytes(s: impl Into<String>) -> kafka_protocol::protocol::StrBytes {
    kafka_protocol::protocol::StrBytes::from_string(s.into())
}
