//! Offsets: ListOffsets and DeleteRecords at partition leaders; a group's
//! committed offsets with OffsetFetch, OffsetCommit and OffsetDelete.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_delete_request::{
    OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::{
    delete_records_request, list_offsets_request, BrokerId, DeleteRecordsRequest, GroupId,
    ListOffsetsRequest, OffsetCommitRequest, OffsetDeleteRequest, OffsetFetchRequest,
};

use super::retry::Outcomes;
use super::{str_bytes, topic_name, Admin};
use crate::cluster::CoordinatorKind;
use crate::error::{Error, Result};
use crate::types::TopicPartition;

/// Which offset [`Admin::list_offsets`] looks up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetSpec {
    /// The log start offset.
    Earliest,
    /// The log end offset (the high watermark).
    Latest,
    /// The first offset whose timestamp is at or after this one, in ms.
    Timestamp(i64),
    /// The offset of the record with the largest timestamp (ListOffsets v7+).
    MaxTimestamp,
}

impl OffsetSpec {
    fn wire(self) -> i64 {
        match self {
            OffsetSpec::Earliest => -2,
            OffsetSpec::Latest => -1,
            OffsetSpec::MaxTimestamp => -3,
            OffsetSpec::Timestamp(ms) => ms,
        }
    }
}

/// One answer of [`Admin::list_offsets`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListedOffset {
    /// The offset; -1 when no record is at or after the asked timestamp.
    pub offset: i64,
    /// The record's timestamp, for timestamp lookups (-1 otherwise).
    pub timestamp: i64,
    /// The leader epoch of that offset, when known.
    pub leader_epoch: Option<i32>,
}

impl Admin {
    /// Looks offsets up at the partitions' leaders (ListOffsets, one request per
    /// leader), read-uncommitted like Java's admin.
    ///
    /// ```no_run
    /// # async fn example(admin: runnel_client::admin::Admin) -> runnel_client::Result<()> {
    /// use std::collections::BTreeMap;
    /// use runnel_client::admin::OffsetSpec;
    /// use runnel_client::TopicPartition;
    ///
    /// let ask = BTreeMap::from([(TopicPartition::new("orders", 0), OffsetSpec::Latest)]);
    /// for (tp, answer) in admin.list_offsets(&ask).await? {
    ///     println!("{tp}: {:?}", answer.map(|o| o.offset));
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn list_offsets(
        &self,
        specs: &BTreeMap<TopicPartition, OffsetSpec>,
    ) -> Result<BTreeMap<TopicPartition, Result<ListedOffset>>> {
        let items = specs.keys().cloned().collect();
        self.per_item(items, |pending: Vec<TopicPartition>| async move {
            let (by_leader, mut outcomes) = self.group_by_leader(pending).await;
            for (leader, partitions) in by_leader {
                let answers = self.list_offsets_at(leader, &partitions, specs).await;
                match answers {
                    Ok(answers) => outcomes.extend(answers),
                    Err(e) => {
                        outcomes.extend(partitions.into_iter().map(|tp| (tp, Err(e.clone()))))
                    }
                }
            }
            Ok(outcomes)
        })
        .await
    }

    async fn list_offsets_at(
        &self,
        leader: i32,
        partitions: &[TopicPartition],
        specs: &BTreeMap<TopicPartition, OffsetSpec>,
    ) -> Result<Outcomes<TopicPartition, ListedOffset>> {
        use list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
        let connection = self.cluster.broker(leader).await?;
        let mut topics: BTreeMap<&str, Vec<ListOffsetsPartition>> = BTreeMap::new();
        for tp in partitions {
            let timestamp = specs.get(tp).copied().unwrap_or(OffsetSpec::Latest).wire();
            topics.entry(&tp.topic).or_default().push(
                ListOffsetsPartition::default()
                    .with_partition_index(tp.partition)
                    .with_current_leader_epoch(-1)
                    .with_timestamp(timestamp),
            );
        }
        let wants_max = partitions
            .iter()
            .any(|tp| specs.get(tp) == Some(&OffsetSpec::MaxTimestamp));
        let version = connection.version_for::<ListOffsetsRequest>(None)?;
        if wants_max && version < 7 {
            return Err(Error::UnsupportedVersion {
                api: "ListOffsets with MaxTimestamp (v7)".into(),
                broker: format!("up to v{version}"),
            });
        }
        let request = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_isolation_level(0)
            .with_timeout_ms(self.broker_timeout_ms())
            .with_topics(
                topics
                    .into_iter()
                    .map(|(topic, partitions)| {
                        ListOffsetsTopic::default()
                            .with_name(topic_name(topic))
                            .with_partitions(partitions)
                    })
                    .collect(),
            );
        let response = connection.send_version(&request, version).await?;
        let mut outcomes = Vec::new();
        for topic in response.topics {
            for p in topic.partitions {
                let tp = TopicPartition::new(topic.name.0.to_string(), p.partition_index);
                let result =
                    Error::check(p.error_code, None, || format!("ListOffsets {tp}")).map(|()| {
                        ListedOffset {
                            offset: p.offset,
                            timestamp: p.timestamp,
                            leader_epoch: (p.leader_epoch >= 0).then_some(p.leader_epoch),
                        }
                    });
                outcomes.push((tp, result));
            }
        }
        Ok(outcomes)
    }

    /// Deletes the records before the given offsets (DeleteRecords at the leaders);
    /// answers each partition's new low watermark (log start offset).
    pub async fn delete_records(
        &self,
        before: &BTreeMap<TopicPartition, i64>,
    ) -> Result<BTreeMap<TopicPartition, Result<i64>>> {
        use delete_records_request::{DeleteRecordsPartition, DeleteRecordsTopic};
        let items = before.keys().cloned().collect();
        self.per_item(items, |pending: Vec<TopicPartition>| async move {
            let (by_leader, mut outcomes) = self.group_by_leader(pending).await;
            for (leader, partitions) in by_leader {
                let mut topics: BTreeMap<&str, Vec<DeleteRecordsPartition>> = BTreeMap::new();
                for tp in &partitions {
                    topics.entry(&tp.topic).or_default().push(
                        DeleteRecordsPartition::default()
                            .with_partition_index(tp.partition)
                            .with_offset(before.get(tp).copied().unwrap_or(-1)),
                    );
                }
                let request = DeleteRecordsRequest::default()
                    .with_timeout_ms(self.broker_timeout_ms())
                    .with_topics(
                        topics
                            .into_iter()
                            .map(|(t, p)| {
                                DeleteRecordsTopic::default()
                                    .with_name(topic_name(t))
                                    .with_partitions(p)
                            })
                            .collect(),
                    );
                let sent = match self.cluster.broker(leader).await {
                    Ok(connection) => connection.send(&request).await,
                    Err(e) => Err(e),
                };
                match sent {
                    Ok(response) => {
                        for topic in response.topics {
                            for p in topic.partitions {
                                let tp = TopicPartition::new(
                                    topic.name.0.to_string(),
                                    p.partition_index,
                                );
                                let result = Error::check(p.error_code, None, || {
                                    format!("DeleteRecords {tp}")
                                })
                                .map(|()| p.low_watermark);
                                outcomes.push((tp, result));
                            }
                        }
                    }
                    Err(e) => {
                        outcomes.extend(partitions.into_iter().map(|tp| (tp, Err(e.clone()))))
                    }
                }
            }
            Ok(outcomes)
        })
        .await
    }

    /// Splits partitions by their leader's node id; partitions without one are
    /// answered at once (retriably when the leader is only unknown for now).
    async fn group_by_leader<V>(
        &self,
        partitions: Vec<TopicPartition>,
    ) -> (
        BTreeMap<i32, Vec<TopicPartition>>,
        Outcomes<TopicPartition, V>,
    ) {
        // Partitions the cache does not know (added since it was fetched) are looked
        // up once before being called unknown.
        let metadata = self.cluster.metadata();
        let mut unknown: Vec<String> = partitions
            .iter()
            .filter(|tp| {
                metadata.topics.get(&tp.topic).is_some_and(|t| {
                    tp.partition >= 0 && tp.partition as usize >= t.partitions.len()
                })
            })
            .map(|tp| tp.topic.clone())
            .collect();
        unknown.dedup();
        if !unknown.is_empty() {
            if let Err(e) = self.cluster.refresh_metadata(&unknown).await {
                tracing::debug!(error = %e, "metadata refresh for new partitions failed");
            }
        }
        let mut by_leader: BTreeMap<i32, Vec<TopicPartition>> = BTreeMap::new();
        let mut failed = Vec::new();
        for tp in partitions {
            let leader = match self.cluster.topic(&tp.topic).await {
                Err(e) => Err(e),
                Ok(info) if tp.partition < 0 || tp.partition as usize >= info.partitions.len() => {
                    Err(Error::UnknownPartition {
                        topic: tp.topic.clone(),
                        partition: tp.partition,
                    })
                }
                Ok(_) => self
                    .cluster
                    .metadata()
                    .leader(&tp.topic, tp.partition)
                    .ok_or_else(|| {
                        Error::broker(
                            ResponseError::LeaderNotAvailable.code(),
                            None,
                            format!("no leader for {tp}"),
                        )
                    }),
            };
            match leader {
                Ok(id) => by_leader.entry(id).or_default().push(tp),
                Err(e) => failed.push((tp, Err(e))),
            }
        }
        (by_leader, failed)
    }

    /// The group's committed offsets (OffsetFetch): for `partitions`, or for every
    /// partition the group has an offset for when `None`. Partitions without a
    /// committed offset are left out.
    pub async fn list_group_offsets(
        &self,
        group: &str,
        partitions: Option<&[TopicPartition]>,
    ) -> Result<BTreeMap<TopicPartition, i64>> {
        self.retrying(|| async {
            self.at_coordinator(group, |connection, _| async move {
                let version = connection.version_for::<OffsetFetchRequest>(None)?;
                let by_topic = partitions.map(by_topic);
                let mut request = OffsetFetchRequest::default().with_require_stable(true);
                if version >= 8 {
                    request.groups = vec![OffsetFetchRequestGroup::default()
                        .with_group_id(GroupId(str_bytes(group)))
                        .with_member_epoch(-1)
                        .with_topics(by_topic.map(|topics| {
                            topics
                                .into_iter()
                                .map(|(t, p)| {
                                    OffsetFetchRequestTopics::default()
                                        .with_name(topic_name(&t))
                                        .with_partition_indexes(p)
                                })
                                .collect()
                        }))];
                } else {
                    request.group_id = GroupId(str_bytes(group));
                    request.topics = by_topic.map(|topics| {
                        topics
                            .into_iter()
                            .map(|(t, p)| {
                                OffsetFetchRequestTopic::default()
                                    .with_name(topic_name(&t))
                                    .with_partition_indexes(p)
                            })
                            .collect()
                    });
                }
                let response = connection.send_version(&request, version).await?;
                let context = || format!("OffsetFetch for group {group}");
                let mut offsets = BTreeMap::new();
                let mut record = |tp: TopicPartition, offset: i64, code: i16| -> Result<()> {
                    Error::check(code, None, || format!("OffsetFetch {tp} for group {group}"))?;
                    if offset >= 0 {
                        offsets.insert(tp, offset);
                    }
                    Ok(())
                };
                if version >= 8 {
                    let answer = response
                        .groups
                        .into_iter()
                        .find(|g| g.group_id.as_str() == group)
                        .ok_or_else(|| Error::Protocol(format!("{} is missing", context())))?;
                    Error::check(answer.error_code, None, context)?;
                    for t in answer.topics {
                        for p in t.partitions {
                            let tp = TopicPartition::new(t.name.0.to_string(), p.partition_index);
                            record(tp, p.committed_offset, p.error_code)?;
                        }
                    }
                } else {
                    Error::check(response.error_code, None, context)?;
                    for t in response.topics {
                        for p in t.partitions {
                            let tp = TopicPartition::new(t.name.0.to_string(), p.partition_index);
                            record(tp, p.committed_offset, p.error_code)?;
                        }
                    }
                }
                Ok(offsets)
            })
            .await
        })
        .await
    }

    /// Sets a group's committed offsets (OffsetCommit as an admin: generation -1 and
    /// no member id, like Java's `alterConsumerGroupOffsets`). The coordinator only
    /// accepts it for a group without members (otherwise `UNKNOWN_MEMBER_ID`).
    /// Committing to a group that does not exist creates it, empty.
    pub async fn alter_group_offsets(
        &self,
        group: &str,
        offsets: &BTreeMap<TopicPartition, i64>,
    ) -> Result<BTreeMap<TopicPartition, Result<()>>> {
        let items = offsets.keys().cloned().collect();
        self.per_item(items, |pending: Vec<TopicPartition>| async move {
            let topics = by_topic(&pending)
                .into_iter()
                .map(|(topic, partitions)| {
                    let partitions = partitions
                        .into_iter()
                        .map(|p| {
                            let offset = offsets
                                .get(&TopicPartition::new(topic.clone(), p))
                                .copied()
                                .unwrap_or(-1);
                            OffsetCommitRequestPartition::default()
                                .with_partition_index(p)
                                .with_committed_offset(offset)
                                .with_committed_leader_epoch(-1)
                        })
                        .collect();
                    OffsetCommitRequestTopic::default()
                        .with_name(topic_name(&topic))
                        .with_partitions(partitions)
                })
                .collect();
            let request = OffsetCommitRequest::default()
                .with_group_id(GroupId(str_bytes(group)))
                .with_generation_id_or_member_epoch(-1)
                .with_member_id(str_bytes(""))
                .with_retention_time_ms(-1)
                .with_topics(topics);
            let response = self
                .at_coordinator(group, |c, _| async move { c.send(&request).await })
                .await?;
            let mut outcomes = Vec::new();
            let mut moved = false;
            for t in response.topics {
                for p in t.partitions {
                    let tp = TopicPartition::new(t.name.0.to_string(), p.partition_index);
                    let result = Error::check(p.error_code, None, || {
                        format!("OffsetCommit {tp} for group {group}")
                    });
                    moved |= matches!(
                        result.as_ref().err().and_then(Error::code),
                        Some(
                            ResponseError::NotCoordinator | ResponseError::CoordinatorNotAvailable
                        )
                    );
                    outcomes.push((tp, result));
                }
            }
            if moved {
                self.cluster
                    .forget_coordinator(CoordinatorKind::Group, group);
            }
            Ok(outcomes)
        })
        .await
    }

    /// Deletes a group's committed offsets for `partitions` (OffsetDelete). The
    /// coordinator refuses (`GROUP_SUBSCRIBED_TO_TOPIC`) for topics the group's
    /// members consume.
    pub async fn delete_group_offsets(
        &self,
        group: &str,
        partitions: &[TopicPartition],
    ) -> Result<BTreeMap<TopicPartition, Result<()>>> {
        self.per_item(
            partitions.to_vec(),
            |pending: Vec<TopicPartition>| async move {
                let request = OffsetDeleteRequest::default()
                    .with_group_id(GroupId(str_bytes(group)))
                    .with_topics(
                        by_topic(&pending)
                            .into_iter()
                            .map(|(t, p)| {
                                OffsetDeleteRequestTopic::default()
                                    .with_name(topic_name(&t))
                                    .with_partitions(
                                        p.into_iter()
                                            .map(|i| {
                                                OffsetDeleteRequestPartition::default()
                                                    .with_partition_index(i)
                                            })
                                            .collect(),
                                    )
                            })
                            .collect(),
                    );
                let response = self
                    .at_coordinator(group, |c, _| async move {
                        let response = c.send(&request).await?;
                        Error::check(response.error_code, None, || {
                            format!("OffsetDelete for group {group}")
                        })?;
                        Ok(response)
                    })
                    .await?;
                let mut outcomes: Outcomes<TopicPartition, ()> = Vec::new();
                for t in response.topics {
                    for p in t.partitions {
                        let tp = TopicPartition::new(t.name.0.to_string(), p.partition_index);
                        let result = Error::check(p.error_code, None, || {
                            format!("OffsetDelete {tp} for group {group}")
                        });
                        outcomes.push((tp, result));
                    }
                }
                Ok(outcomes)
            },
        )
        .await
    }
}

/// Partitions by topic, in order.
fn by_topic(partitions: &[TopicPartition]) -> BTreeMap<String, Vec<i32>> {
    let mut topics: BTreeMap<String, Vec<i32>> = BTreeMap::new();
    for tp in partitions {
        topics
            .entry(tp.topic.clone())
            .or_default()
            .push(tp.partition);
    }
    topics
}
