//! Committed offsets: OffsetCommit, OffsetFetch (one group, or several
//! from v8) and OffsetDelete.

use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{
    OffsetCommitRequest, OffsetCommitResponse, OffsetDeleteRequest, OffsetDeleteResponse,
    OffsetFetchRequest, OffsetFetchResponse, TopicName,
};
use kafka_protocol::protocol::VersionRange;
use kafka_protocol::ResponseError;
use runnel_group::records::OffsetValue;
use runnel_group::shard::{CommitPartition, CommitRequest, Effects};

use super::str_bytes;
use crate::connection::RequestContext;
use crate::groups::now_ms;

pub(crate) const COMMIT_VERSIONS: VersionRange = VersionRange { min: 2, max: 9 };
pub(crate) const FETCH_VERSIONS: VersionRange = VersionRange { min: 1, max: 9 };
pub(crate) const DELETE_VERSIONS: VersionRange = VersionRange { min: 0, max: 0 };

fn partition_exists(ctx: &RequestContext, topic: &str, partition: i32) -> bool {
    ctx.broker
        .topics
        .get(topic)
        .is_some_and(|t| (0..t.partition_count()).contains(&partition))
}

pub(crate) async fn commit(
    ctx: &RequestContext,
    request: OffsetCommitRequest,
) -> OffsetCommitResponse {
    // Every partition's code, in request order; `None` = not yet decided.
    let mut codes: Vec<Vec<Option<i16>>> = request
        .topics
        .iter()
        .map(|t| {
            t.partitions
                .iter()
                .map(|p| {
                    (!partition_exists(ctx, t.name.as_str(), p.partition_index))
                        .then_some(ResponseError::UnknownTopicOrPartition.code())
                })
                .collect()
        })
        .collect();
    let top_level = if request.group_id.is_empty() {
        Err(ResponseError::InvalidGroupId.code())
    } else {
        let partitions = request
            .topics
            .iter()
            .zip(&codes)
            .flat_map(|(t, codes)| {
                t.partitions
                    .iter()
                    .zip(codes)
                    .filter(|(_, code)| code.is_none())
                    .map(|(p, _)| CommitPartition {
                        topic: t.name.to_string(),
                        partition: p.partition_index,
                        offset: p.committed_offset,
                        leader_epoch: p.committed_leader_epoch,
                        metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
                    })
            })
            .collect();
        let commit = CommitRequest {
            group_id: request.group_id.to_string(),
            api_version: ctx.api_version,
            member_id: request.member_id.to_string(),
            group_instance_id: request.group_instance_id.as_ref().map(|s| s.to_string()),
            generation_or_epoch: request.generation_id_or_member_epoch,
            retention_time_ms: if ctx.api_version <= 4 {
                request.retention_time_ms
            } else {
                -1
            },
            partitions,
        };
        ctx.broker
            .groups
            .run(&ctx.broker, &commit.group_id, |shard| {
                match shard.commit_offsets(now_ms(), &commit) {
                    Ok((codes, writes)) => (
                        Ok(codes),
                        Effects {
                            writes,
                            replies: Vec::new(),
                        },
                    ),
                    Err(code) => (Err(code), Effects::default()),
                }
            })
            .await
            .and_then(|(result, written)| {
                let codes = result?;
                Ok(match written {
                    Ok(()) => codes,
                    // Nothing was stored: every partition that would have
                    // been fails with the write's error.
                    Err(code) => codes
                        .into_iter()
                        .map(|c| if c == 0 { code } else { c })
                        .collect(),
                })
            })
    };
    match top_level {
        Ok(results) => {
            let mut results = results.into_iter();
            for code in codes.iter_mut().flatten().filter(|c| c.is_none()) {
                *code = Some(results.next().unwrap_or(0));
            }
        }
        Err(code) => {
            for c in codes.iter_mut().flatten().filter(|c| c.is_none()) {
                *c = Some(code);
            }
        }
    }
    let topics = request
        .topics
        .iter()
        .zip(codes)
        .map(|(t, codes)| {
            OffsetCommitResponseTopic::default()
                .with_name(t.name.clone())
                .with_partitions(
                    t.partitions
                        .iter()
                        .zip(codes)
                        .map(|(p, code)| {
                            OffsetCommitResponsePartition::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(code.unwrap_or(0))
                        })
                        .collect(),
                )
        })
        .collect();
    OffsetCommitResponse::default().with_topics(topics)
}

/// One group's answer: its partitions, or a group-level error.
type Fetched = Result<Vec<(String, i32, Option<OffsetValue>)>, i16>;

async fn fetch_group(
    ctx: &RequestContext,
    group_id: &str,
    topics: Option<Vec<(String, Vec<i32>)>>,
    member: Option<(String, i32)>,
) -> Fetched {
    if group_id.is_empty() {
        return Err(ResponseError::InvalidGroupId.code());
    }
    ctx.broker.groups.ensure_offsets_topic(&ctx.broker).await?;
    let shard = ctx.broker.groups.shard(&ctx.broker, group_id)?;
    let shard = shard.lock();
    shard.fetch_offsets(
        group_id,
        topics.as_deref(),
        member.as_ref().map(|(m, e)| (m.as_str(), *e)),
    )
}

pub(crate) async fn fetch(
    ctx: &RequestContext,
    request: OffsetFetchRequest,
) -> OffsetFetchResponse {
    if ctx.api_version >= 8 {
        let mut groups = Vec::with_capacity(request.groups.len());
        for group in &request.groups {
            let topics = group.topics.as_ref().map(|topics| {
                topics
                    .iter()
                    .map(|t| (t.name.to_string(), t.partition_indexes.clone()))
                    .collect()
            });
            let member = group
                .member_id
                .as_ref()
                .map(|m| (m.to_string(), group.member_epoch));
            let result = fetch_group(ctx, group.group_id.as_str(), topics, member).await;
            let response =
                OffsetFetchResponseGroup::default().with_group_id(group.group_id.clone());
            groups.push(match result {
                Err(code) => response.with_error_code(code),
                Ok(rows) => response.with_topics(
                    group_by_topic(rows)
                        .into_iter()
                        .map(|(name, partitions)| {
                            OffsetFetchResponseTopics::default()
                                .with_name(TopicName(str_bytes(name)))
                                .with_partitions(
                                    partitions
                                        .into_iter()
                                        .map(|(partition, value)| {
                                            let (offset, epoch, metadata) = fields(value);
                                            OffsetFetchResponsePartitions::default()
                                                .with_partition_index(partition)
                                                .with_committed_offset(offset)
                                                .with_committed_leader_epoch(epoch)
                                                .with_metadata(Some(str_bytes(metadata)))
                                        })
                                        .collect(),
                                )
                        })
                        .collect(),
                ),
            });
        }
        return OffsetFetchResponse::default().with_groups(groups);
    }
    let topics = request.topics.as_ref().map(|topics| {
        topics
            .iter()
            .map(|t| (t.name.to_string(), t.partition_indexes.clone()))
            .collect()
    });
    match fetch_group(ctx, request.group_id.as_str(), topics, None).await {
        Err(code) => OffsetFetchResponse::default().with_error_code(code),
        Ok(rows) => OffsetFetchResponse::default().with_topics(
            group_by_topic(rows)
                .into_iter()
                .map(|(name, partitions)| {
                    OffsetFetchResponseTopic::default()
                        .with_name(TopicName(str_bytes(name)))
                        .with_partitions(
                            partitions
                                .into_iter()
                                .map(|(partition, value)| {
                                    let (offset, epoch, metadata) = fields(value);
                                    OffsetFetchResponsePartition::default()
                                        .with_partition_index(partition)
                                        .with_committed_offset(offset)
                                        .with_committed_leader_epoch(epoch)
                                        .with_metadata(Some(str_bytes(metadata)))
                                })
                                .collect(),
                        )
                })
                .collect(),
        ),
    }
}

/// Offset, leader epoch and metadata as OffsetFetch shows them; -1, -1
/// and "" when nothing is committed.
fn fields(value: Option<OffsetValue>) -> (i64, i32, String) {
    match value {
        Some(v) => (v.offset, v.leader_epoch, v.metadata),
        None => (-1, -1, String::new()),
    }
}

/// Rows grouped by topic, topics in first-seen order.
#[allow(clippy::type_complexity)]
fn group_by_topic(
    rows: Vec<(String, i32, Option<OffsetValue>)>,
) -> Vec<(String, Vec<(i32, Option<OffsetValue>)>)> {
    let mut out: Vec<(String, Vec<(i32, Option<OffsetValue>)>)> = Vec::new();
    for (topic, partition, value) in rows {
        match out.iter_mut().find(|(t, _)| *t == topic) {
            Some((_, partitions)) => partitions.push((partition, value)),
            None => out.push((topic, vec![(partition, value)])),
        }
    }
    out
}

pub(crate) async fn delete(
    ctx: &RequestContext,
    request: OffsetDeleteRequest,
) -> OffsetDeleteResponse {
    if request.group_id.is_empty() {
        return OffsetDeleteResponse::default()
            .with_error_code(ResponseError::InvalidGroupId.code());
    }
    let group_id = request.group_id.to_string();
    let exists: Vec<Vec<bool>> = request
        .topics
        .iter()
        .map(|t| {
            t.partitions
                .iter()
                .map(|p| partition_exists(ctx, t.name.as_str(), p.partition_index))
                .collect()
        })
        .collect();
    let mut known = Vec::new();
    for (t, exists) in request.topics.iter().zip(&exists) {
        for (p, _) in t.partitions.iter().zip(exists).filter(|(_, e)| **e) {
            known.push((t.name.to_string(), p.partition_index));
        }
    }
    let ran = ctx
        .broker
        .groups
        .run(&ctx.broker, &group_id, |shard| {
            match shard.delete_offsets(&group_id, &known) {
                Ok((codes, writes)) => (
                    Ok(codes),
                    Effects {
                        writes,
                        replies: Vec::new(),
                    },
                ),
                Err(code) => (Err(code), Effects::default()),
            }
        })
        .await;
    let codes = match ran {
        Ok((Ok(codes), Ok(()))) => codes,
        Ok((Ok(_), Err(code))) | Ok((Err(code), _)) | Err(code) => {
            return OffsetDeleteResponse::default().with_error_code(code);
        }
    };
    let mut codes = codes.into_iter();
    let topics = request
        .topics
        .iter()
        .zip(exists)
        .map(|(t, exists)| {
            OffsetDeleteResponseTopic::default()
                .with_name(t.name.clone())
                .with_partitions(
                    t.partitions
                        .iter()
                        .zip(exists)
                        .map(|(p, exists)| {
                            let code = if exists {
                                codes.next().unwrap_or(0)
                            } else {
                                ResponseError::UnknownTopicOrPartition.code()
                            };
                            OffsetDeleteResponsePartition::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(code)
                        })
                        .collect(),
                )
        })
        .collect();
    OffsetDeleteResponse::default().with_topics(topics)
}
