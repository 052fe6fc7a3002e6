//! Offset lookups and commits: OffsetFetch and OffsetCommit to the group
//! coordinator, ListOffsets to partition leaders. Each retries retriable errors
//! (coordinator moves, leader changes, broken connections) until `request.timeout.ms`
//! has passed, refreshing what it knows between attempts.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic},
    offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic},
    offset_fetch_request::{
        OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
    },
    BrokerId, GroupId, ListOffsetsRequest, OffsetCommitRequest, OffsetFetchRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use crate::cluster::{Cluster, CoordinatorKind};
use crate::consumer::config::IsolationLevel;
use crate::consumer::member::Generation;
use crate::error::{Error, Result};
use crate::types::TopicPartition;

/// An offset and the leader epoch of the record before it.
pub type OffsetAndEpoch = (i64, Option<i32>);

/// ListOffsets' special timestamp for the log start offset.
pub(crate) const EARLIEST: i64 = -2;
/// ListOffsets' special timestamp for the log end offset.
pub(crate) const LATEST: i64 = -1;

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_owned()))
}

fn by_topic<V>(
    tps: impl IntoIterator<Item = (TopicPartition, V)>,
) -> BTreeMap<String, Vec<(i32, V)>> {
    let mut topics: BTreeMap<String, Vec<(i32, V)>> = BTreeMap::new();
    for (tp, v) in tps {
        topics.entry(tp.topic).or_default().push((tp.partition, v));
    }
    topics
}

/// Whether a group call should look up the coordinator again and retry.
fn coordinator_retriable(error: &Error) -> bool {
    matches!(
        error.code(),
        Some(
            ResponseError::NotCoordinator
                | ResponseError::CoordinatorNotAvailable
                | ResponseError::CoordinatorLoadInProgress
                | ResponseError::UnstableOffsetCommit
                | ResponseError::RequestTimedOut
        )
    ) || matches!(error, Error::Connection { .. } | Error::Timeout(_))
}

/// Runs `call` against the group's coordinator until it succeeds, fails for good,
/// or `request.timeout.ms` passes.
async fn with_coordinator<T, F, Fut>(cluster: &Cluster, group: &str, mut call: F) -> Result<T>
where
    F: FnMut(std::sync::Arc<crate::connection::Connection>) -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let deadline = Instant::now() + cluster.config().request_timeout;
    loop {
        let result = match cluster.coordinator(CoordinatorKind::Group, group).await {
            Ok((_, connection)) => call(connection).await,
            Err(e) => Err(e),
        };
        match result {
            Err(e) if coordinator_retriable(&e) && Instant::now() < deadline => {
                tracing::debug!(group, error = %e, "retrying a group call");
                cluster.forget_coordinator(CoordinatorKind::Group, group);
                tokio::time::sleep(cluster.config().retry_backoff).await;
            }
            other => return other,
        }
    }
}

/// The group's committed offsets of `partitions` (OffsetFetch, the v8+ multi-group
/// form when the coordinator speaks it); `None` where nothing is committed.
pub(crate) async fn fetch_committed(
    cluster: &Cluster,
    group: &str,
    partitions: &[TopicPartition],
) -> Result<BTreeMap<TopicPartition, Option<OffsetAndEpoch>>> {
    let topics = by_topic(partitions.iter().map(|tp| (tp.clone(), ())));
    with_coordinator(cluster, group, |connection| {
        let topics = &topics;
        async move {
            let version = connection.version_for::<OffsetFetchRequest>(None)?;
            let context = || format!("OffsetFetch for group {group}");
            let mut request = OffsetFetchRequest::default().with_require_stable(version >= 7);
            let mut found = BTreeMap::new();
            if version >= 8 {
                request.groups = vec![OffsetFetchRequestGroup::default()
                    .with_group_id(GroupId(StrBytes::from_string(group.to_owned())))
                    .with_topics(Some(
                        topics
                            .iter()
                            .map(|(t, ps)| {
                                OffsetFetchRequestTopics::default()
                                    .with_name(name(t))
                                    .with_partition_indexes(ps.iter().map(|(p, _)| *p).collect())
                            })
                            .collect(),
                    ))];
                let response = connection.send_version(&request, version).await?;
                let answer = response.groups.into_iter().next().ok_or_else(|| {
                    Error::Protocol(format!("{}: no group in the answer", context()))
                })?;
                Error::check(answer.error_code, None, context)?;
                for topic in answer.topics {
                    for p in topic.partitions {
                        Error::check(p.error_code, None, context)?;
                        let tp = TopicPartition::new(topic.name.0.to_string(), p.partition_index);
                        found.insert(tp, committed(p.committed_offset, p.committed_leader_epoch));
                    }
                }
            } else {
                request.group_id = GroupId(StrBytes::from_string(group.to_owned()));
                request.topics = Some(
                    topics
                        .iter()
                        .map(|(t, ps)| {
                            OffsetFetchRequestTopic::default()
                                .with_name(name(t))
                                .with_partition_indexes(ps.iter().map(|(p, _)| *p).collect())
                        })
                        .collect(),
                );
                let response = connection.send_version(&request, version).await?;
                Error::check(response.error_code, None, context)?;
                for topic in response.topics {
                    for p in topic.partitions {
                        Error::check(p.error_code, None, context)?;
                        let tp = TopicPartition::new(topic.name.0.to_string(), p.partition_index);
                        found.insert(tp, committed(p.committed_offset, p.committed_leader_epoch));
                    }
                }
            }
            for tp in partitions {
                found.entry(tp.clone()).or_insert(None);
            }
            Ok(found)
        }
    })
    .await
}

fn committed(offset: i64, epoch: i32) -> Option<OffsetAndEpoch> {
    (offset >= 0).then_some((offset, (epoch >= 0).then_some(epoch)))
}

/// What a commit carries besides the offsets.
#[derive(Debug, Clone, Default)]
pub(crate) struct CommitIdentity {
    /// The member's generation (classic) or epoch (KIP-848); none for a consumer
    /// without group management.
    pub generation: Option<Generation>,
    /// `group.instance.id`.
    pub group_instance_id: Option<String>,
}

/// Commits `offsets` for `group` (OffsetCommit).
pub(crate) async fn commit(
    cluster: &Cluster,
    group: &str,
    identity: &CommitIdentity,
    offsets: &BTreeMap<TopicPartition, OffsetAndEpoch>,
) -> Result<()> {
    if offsets.is_empty() {
        return Ok(());
    }
    let topics = by_topic(offsets.iter().map(|(tp, v)| (tp.clone(), *v)));
    let (generation_id, member_id) = match &identity.generation {
        Some(g) => (g.generation_id, g.member_id.clone()),
        None => (-1, String::new()),
    };
    let request = OffsetCommitRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.to_owned())))
        .with_generation_id_or_member_epoch(generation_id)
        .with_member_id(StrBytes::from_string(member_id))
        .with_group_instance_id(
            identity
                .group_instance_id
                .clone()
                .map(StrBytes::from_string),
        )
        .with_topics(
            topics
                .iter()
                .map(|(t, ps)| {
                    OffsetCommitRequestTopic::default()
                        .with_name(name(t))
                        .with_partitions(
                            ps.iter()
                                .map(|(p, (offset, epoch))| {
                                    OffsetCommitRequestPartition::default()
                                        .with_partition_index(*p)
                                        .with_committed_offset(*offset)
                                        .with_committed_leader_epoch(epoch.unwrap_or(-1))
                                })
                                .collect(),
                        )
                })
                .collect(),
        );
    with_coordinator(cluster, group, |connection| {
        let request = &request;
        async move {
            let response = connection.send(request).await?;
            for topic in &response.topics {
                for p in &topic.partitions {
                    Error::check(p.error_code, None, || {
                        format!(
                            "OffsetCommit of {}-{} for group {group}",
                            topic.name.0, p.partition_index
                        )
                    })?;
                }
            }
            Ok(())
        }
    })
    .await
}

/// One ListOffsets answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListedOffset {
    /// The offset.
    pub offset: i64,
    /// The timestamp of the record found (for timestamp lookups), -1 otherwise.
    pub timestamp: i64,
    /// The leader epoch, when the broker reports it.
    pub leader_epoch: Option<i32>,
}

/// Looks up offsets with ListOffsets at each partition's leader. `timestamps` maps
/// partitions to a timestamp, [`EARLIEST`] or [`LATEST`]. A partition the broker has
/// no answer for (no record at or after the timestamp) maps to `None`.
pub(crate) async fn list_offsets(
    cluster: &Cluster,
    timestamps: &BTreeMap<TopicPartition, i64>,
    isolation: IsolationLevel,
) -> Result<BTreeMap<TopicPartition, Option<ListedOffset>>> {
    let deadline = Instant::now() + cluster.config().request_timeout;
    let mut found = BTreeMap::new();
    let mut todo: BTreeMap<TopicPartition, i64> = timestamps.clone();
    loop {
        let mut by_leader: HashMap<i32, Vec<(TopicPartition, i64)>> = HashMap::new();
        let mut last_error = None;
        for (tp, ts) in &todo {
            match cluster.leader(&tp.topic, tp.partition).await {
                Ok((leader, _)) => by_leader.entry(leader).or_default().push((tp.clone(), *ts)),
                Err(e) if e.is_retriable() || e.needs_metadata_refresh() => last_error = Some(e),
                Err(e) => return Err(e),
            }
        }
        for (leader, tps) in by_leader {
            match list_at(cluster, leader, &tps, isolation).await {
                Ok(answers) => {
                    for (tp, answer) in answers {
                        match answer {
                            Ok(listed) => {
                                todo.remove(&tp);
                                found.insert(tp, listed);
                            }
                            Err(e) if e.is_retriable() || e.needs_metadata_refresh() => {
                                last_error = Some(e)
                            }
                            Err(e) => return Err(e),
                        }
                    }
                }
                Err(e) if e.is_retriable() || e.needs_metadata_refresh() => {
                    cluster.forget_broker(leader);
                    last_error = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        if todo.is_empty() {
            return Ok(found);
        }
        let error = last_error
            .unwrap_or_else(|| Error::Protocol("ListOffsets left partitions unanswered".into()));
        if Instant::now() >= deadline {
            return Err(error);
        }
        tokio::time::sleep(cluster.config().retry_backoff).await;
        let topics: Vec<String> = todo.keys().map(|tp| tp.topic.clone()).collect();
        let _ = cluster.refresh_metadata(&topics).await;
    }
}

type ListAnswers = Vec<(TopicPartition, Result<Option<ListedOffset>>)>;

async fn list_at(
    cluster: &Cluster,
    leader: i32,
    tps: &[(TopicPartition, i64)],
    isolation: IsolationLevel,
) -> Result<ListAnswers> {
    let connection = cluster.broker(leader).await?;
    let topics = by_topic(tps.iter().cloned());
    let request = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_isolation_level(isolation.wire())
        .with_timeout_ms(
            i32::try_from(cluster.config().request_timeout.as_millis()).unwrap_or(i32::MAX),
        )
        .with_topics(
            topics
                .iter()
                .map(|(t, ps)| {
                    ListOffsetsTopic::default()
                        .with_name(name(t))
                        .with_partitions(
                            ps.iter()
                                .map(|(p, ts)| {
                                    ListOffsetsPartition::default()
                                        .with_partition_index(*p)
                                        .with_timestamp(*ts)
                                })
                                .collect(),
                        )
                })
                .collect(),
        );
    let response = connection.send(&request).await?;
    let mut answers = Vec::new();
    for topic in response.topics {
        for p in topic.partitions {
            let tp = TopicPartition::new(topic.name.0.to_string(), p.partition_index);
            let answer =
                Error::check(p.error_code, None, || format!("ListOffsets for {tp}")).map(|()| {
                    (p.offset >= 0).then_some(ListedOffset {
                        offset: p.offset,
                        timestamp: p.timestamp,
                        leader_epoch: (p.leader_epoch >= 0).then_some(p.leader_epoch),
                    })
                });
            answers.push((tp, answer));
        }
    }
    Ok(answers)
}
