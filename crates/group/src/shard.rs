//! One partition of `__consumer_offsets`: its groups and committed offsets.
//!
//! The runtime calls a method with the time, then carries out the
//! [`Effects`] in order: append `writes` to the partition, then — if the
//! append succeeded — give them back to [`Shard::apply`] (which stores
//! committed offsets and notes which consumer group records the log now
//! holds), then send `replies`. At start it replays the partition's
//! records through [`Shard::replay`].

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use kafka_protocol::messages::consumer_group_describe_response::DescribedGroup;
use kafka_protocol::messages::{ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use crate::classic::{
    ClassicConfig, ClassicGroup, ClassicState, JoinRequest, JoinResponse, LeaveMember,
    MemberDescription, Output, SyncRequest, SyncResponse,
};
use crate::consumer::{ConsumerConfig, ConsumerGroup, TopicMetadata};
use crate::offsets::{Expiry, OffsetStore};
use crate::records::{self, ConsumerKey, ConsumerValue, OffsetValue, RecordError, RecordKey};
use crate::{Millis, RequestId};

/// Broker settings a shard needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardConfig {
    pub classic: ClassicConfig,
    pub consumer: ConsumerConfig,
    /// `offset.metadata.max.bytes`
    pub offset_metadata_max_bytes: usize,
    /// `offsets.retention.minutes` in milliseconds.
    pub offsets_retention_ms: i64,
}

impl Default for ShardConfig {
    fn default() -> Self {
        ShardConfig {
            classic: ClassicConfig::default(),
            consumer: ConsumerConfig::default(),
            offset_metadata_max_bytes: 4096,
            offsets_retention_ms: 7 * 24 * 60 * 60 * 1000,
        }
    }
}

/// A group of either protocol.
#[derive(Debug)]
pub enum Group {
    Classic(ClassicGroup),
    Consumer(ConsumerGroup),
}

/// A record the shard asks the runtime to append.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Write {
    /// A committed offset, or its tombstone.
    Offset {
        group: String,
        topic: String,
        partition: i32,
        value: Option<OffsetValue>,
    },
    /// A classic group's state, or its tombstone.
    Group {
        group: String,
        value: Option<crate::classic::GroupSnapshot>,
    },
    /// One record of a KIP-848 consumer group, or its tombstone.
    Consumer {
        group: String,
        key: ConsumerKey,
        value: Option<ConsumerValue>,
    },
}

impl Write {
    /// The record's key bytes.
    pub fn key(&self) -> Vec<u8> {
        match self {
            Write::Offset {
                group,
                topic,
                partition,
                ..
            } => RecordKey::Offset {
                group: group.clone(),
                topic: topic.clone(),
                partition: *partition,
            },
            Write::Group { group, .. } => RecordKey::Group {
                group: group.clone(),
            },
            Write::Consumer { group, key, .. } => RecordKey::Consumer {
                group: group.clone(),
                key: key.clone(),
            },
        }
        .encode()
    }

    /// The record's value bytes; none for a tombstone.
    pub fn value(&self) -> Option<Vec<u8>> {
        match self {
            Write::Offset { value, .. } => value.as_ref().map(OffsetValue::encode),
            Write::Group { value, .. } => value.as_ref().map(records::encode_group),
            Write::Consumer { key, value, .. } => value.as_ref().map(|value| {
                debug_assert!(value.fits(key), "{key:?} given {value:?}");
                value.encode()
            }),
        }
    }
}

/// A delayed answer to a classic JoinGroup or SyncGroup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    Join(RequestId, JoinResponse),
    Sync(RequestId, SyncResponse),
}

/// What the runtime must do after a call, in order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Effects {
    pub writes: Vec<Write>,
    pub replies: Vec<Reply>,
}

impl Effects {
    fn extend(&mut self, other: Effects) {
        self.writes.extend(other.writes);
        self.replies.extend(other.replies);
    }
}

/// One partition to commit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommitPartition {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
}

/// An OffsetCommit for one group, its partitions already checked to exist.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommitRequest {
    pub group_id: String,
    pub api_version: i16,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    /// The classic generation, or the KIP-848 member epoch.
    pub generation_or_epoch: i32,
    /// OffsetCommit v2-v4's retention time; -1 for the broker's.
    pub retention_time_ms: i64,
    pub partitions: Vec<CommitPartition>,
}

/// A group as ListGroups shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupListing {
    pub group_id: String,
    pub protocol_type: String,
    pub state: String,
    /// "classic" or "consumer".
    pub group_type: String,
}

/// A classic group as DescribeGroups shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClassicDescription {
    pub state: ClassicState,
    pub protocol_type: String,
    pub protocol: String,
    pub members: Vec<MemberDescription>,
}

/// The outcome of a DescribeGroups lookup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Described {
    Classic(ClassicDescription),
    /// The group uses the consumer protocol.
    Consumer,
    NotFound,
}

/// The groups and offsets owned by one `__consumer_offsets` partition.
#[derive(Debug)]
pub struct Shard {
    partition: i32,
    cfg: ShardConfig,
    groups: BTreeMap<String, Group>,
    offsets: OffsetStore,
}

fn code(error: ResponseError) -> i16 {
    error.code()
}

impl Shard {
    /// An empty shard for `partition`.
    pub fn new(partition: i32, cfg: ShardConfig) -> Shard {
        Shard {
            partition,
            cfg,
            groups: BTreeMap::new(),
            offsets: OffsetStore::default(),
        }
    }

    /// The `__consumer_offsets` partition this shard owns.
    pub fn partition(&self) -> i32 {
        self.partition
    }

    /// Replaces the settings (dynamic broker config).
    pub fn set_config(&mut self, cfg: ShardConfig) {
        self.cfg = cfg;
    }

    /// The committed offsets.
    pub fn offsets(&self) -> &OffsetStore {
        &self.offsets
    }

    /// A group by id.
    pub fn group(&self, group_id: &str) -> Option<&Group> {
        self.groups.get(group_id)
    }

    /// Rebuilds state from one record of the partition, oldest first.
    /// Records with a key this broker does not know are skipped.
    ///
    /// A group is of the kind its newest group record says: a consumer
    /// group record replaces a classic group (the group was converted), a
    /// classic group record replaces a consumer group, and an offset
    /// record makes an empty classic group only for a group not seen yet,
    /// so offsets and a consumer group's records may come in any order.
    pub fn replay(
        &mut self,
        key: &[u8],
        value: Option<&[u8]>,
        now: Millis,
    ) -> Result<(), RecordError> {
        match RecordKey::decode(key)? {
            RecordKey::Offset {
                group,
                topic,
                partition,
            } => match value {
                Some(value) => {
                    let value = OffsetValue::decode(value)?;
                    self.groups
                        .entry(group.clone())
                        .or_insert_with(|| Group::Classic(ClassicGroup::new(group.clone(), now)));
                    self.offsets.put(&group, &topic, partition, value);
                }
                None => self.offsets.remove(&group, &topic, partition),
            },
            RecordKey::Group { group } => match value {
                Some(value) => {
                    let snapshot = records::decode_group(value)?;
                    self.groups.insert(
                        group.clone(),
                        Group::Classic(ClassicGroup::restore(group, snapshot, now)),
                    );
                }
                None => {
                    let classic = matches!(self.groups.get(&group), Some(Group::Classic(_)));
                    if classic && !self.offsets.has_offsets(&group) {
                        self.groups.remove(&group);
                    }
                }
            },
            RecordKey::Consumer { group, key } => {
                let value = value
                    .map(|bytes| ConsumerValue::decode(&key, bytes))
                    .transpose()?;
                self.replay_consumer(group, key, value, now);
            }
            RecordKey::Unknown { version } => {
                tracing::debug!(
                    version,
                    "skipping a __consumer_offsets record of unknown kind"
                );
            }
        }
        Ok(())
    }

    /// One consumer group record at replay. Its group metadata tombstone
    /// deletes the group (leaving an empty classic group if offsets
    /// remain, as an offset record alone would); other tombstones never
    /// make a group.
    fn replay_consumer(
        &mut self,
        group_id: String,
        key: ConsumerKey,
        value: Option<ConsumerValue>,
        now: Millis,
    ) {
        let existing = matches!(self.groups.get(&group_id), Some(Group::Consumer(_)));
        if value.is_none() && !existing {
            return;
        }
        if value.is_none() && key == ConsumerKey::GroupMetadata {
            self.groups.remove(&group_id);
            if self.offsets.has_offsets(&group_id) {
                self.groups.insert(
                    group_id.clone(),
                    Group::Classic(ClassicGroup::new(group_id, now)),
                );
            }
            return;
        }
        if !existing {
            self.groups.insert(
                group_id.clone(),
                Group::Consumer(ConsumerGroup::new(group_id.clone())),
            );
        }
        if let Some(Group::Consumer(group)) = self.groups.get_mut(&group_id) {
            group.replay(key, value, now, &self.cfg.consumer);
        }
    }

    /// Stores what a successful append wrote: committed offsets and their
    /// tombstones, and which records a consumer group now has in the log.
    /// Classic group records change nothing here (the groups already hold
    /// that state).
    pub fn apply(&mut self, writes: &[Write]) {
        for write in writes {
            match write {
                Write::Offset {
                    group,
                    topic,
                    partition,
                    value,
                } => match value {
                    Some(value) => self.offsets.put(group, topic, *partition, value.clone()),
                    None => self.offsets.remove(group, topic, *partition),
                },
                Write::Consumer { group, key, value } => {
                    if let Some(Group::Consumer(g)) = self.groups.get_mut(group) {
                        g.mark_written(key, value.as_ref());
                    }
                }
                Write::Group { .. } => {}
            }
        }
    }

    /// The records a consumer group's log lacks (see
    /// [`ConsumerGroup::unwritten`]).
    fn consumer_writes(group: &ConsumerGroup) -> Vec<Write> {
        group
            .unwritten()
            .into_iter()
            .map(|(key, value)| Write::Consumer {
                group: group.group_id().to_string(),
                key,
                value,
            })
            .collect()
    }

    /// Tombstones for every record of a consumer group that goes away.
    fn consumer_tombstones(group: &ConsumerGroup) -> Vec<Write> {
        group
            .tombstones()
            .into_iter()
            .map(|key| Write::Consumer {
                group: group.group_id().to_string(),
                key,
                value: None,
            })
            .collect()
    }

    fn classic_effects(group: &ClassicGroup, now: Millis, out: Vec<Output>) -> Effects {
        let mut effects = Effects::default();
        for output in out {
            match output {
                Output::Persist => effects.writes.push(Write::Group {
                    group: group.group_id().to_string(),
                    value: Some(group.snapshot(now)),
                }),
                Output::Join(id, response) => effects.replies.push(Reply::Join(id, response)),
                Output::Sync(id, response) => effects.replies.push(Reply::Sync(id, response)),
            }
        }
        effects
    }

    /// Handles a JoinGroup. An empty consumer group becomes a classic
    /// group; its records are tombstoned.
    pub fn join(&mut self, now: Millis, group_id: &str, req: JoinRequest) -> Effects {
        let request = req.request;
        let replace = match self.groups.get(group_id) {
            Some(Group::Consumer(group)) if !group.is_empty() => {
                return Effects {
                    writes: Vec::new(),
                    replies: vec![Reply::Join(
                        request,
                        JoinResponse {
                            error: code(ResponseError::InconsistentGroupProtocol),
                            member_id: req.member_id,
                            ..JoinResponse::default()
                        },
                    )],
                };
            }
            Some(Group::Consumer(_)) | None => true,
            Some(Group::Classic(_)) => false,
        };
        let mut tombstones = Vec::new();
        if replace {
            let old = self.groups.insert(
                group_id.to_string(),
                Group::Classic(ClassicGroup::new(group_id.to_string(), now)),
            );
            if let Some(Group::Consumer(old)) = old {
                tombstones = Self::consumer_tombstones(&old);
            }
        }
        let Some(Group::Classic(group)) = self.groups.get_mut(group_id) else {
            return Effects::default();
        };
        let mut out = Vec::new();
        group.join(now, &self.cfg.classic, req, &mut out);
        let mut effects = Self::classic_effects(group, now, out);
        tombstones.append(&mut effects.writes);
        effects.writes = tombstones;
        effects
    }

    /// Handles a SyncGroup.
    pub fn sync(&mut self, now: Millis, group_id: &str, req: SyncRequest) -> Effects {
        let Some(Group::Classic(group)) = self.groups.get_mut(group_id) else {
            let error = match self.groups.get(group_id) {
                Some(Group::Consumer(_)) => ResponseError::InconsistentGroupProtocol,
                _ => ResponseError::UnknownMemberId,
            };
            return Effects {
                writes: Vec::new(),
                replies: vec![Reply::Sync(
                    req.request,
                    SyncResponse {
                        error: code(error),
                        ..SyncResponse::default()
                    },
                )],
            };
        };
        let mut out = Vec::new();
        group.sync(now, &self.cfg.classic, req, &mut out);
        Self::classic_effects(group, now, out)
    }

    /// Handles a Heartbeat; returns its error code.
    pub fn heartbeat(
        &mut self,
        now: Millis,
        group_id: &str,
        member_id: &str,
        group_instance_id: Option<&str>,
        generation_id: i32,
    ) -> i16 {
        match self.groups.get_mut(group_id) {
            Some(Group::Classic(group)) => {
                group.heartbeat(now, member_id, group_instance_id, generation_id)
            }
            Some(Group::Consumer(_)) => code(ResponseError::InconsistentGroupProtocol),
            None => code(ResponseError::UnknownMemberId),
        }
    }

    /// Handles a LeaveGroup: a top-level error, or one code per member.
    pub fn leave(
        &mut self,
        now: Millis,
        group_id: &str,
        members: &[LeaveMember],
    ) -> (Result<Vec<i16>, i16>, Effects) {
        match self.groups.get_mut(group_id) {
            Some(Group::Classic(group)) => {
                let mut out = Vec::new();
                let codes = group.leave(now, &self.cfg.classic, members, &mut out);
                let effects = Self::classic_effects(group, now, out);
                (Ok(codes), effects)
            }
            Some(Group::Consumer(_)) => (
                Err(code(ResponseError::InconsistentGroupProtocol)),
                Effects::default(),
            ),
            None => (
                Err(code(ResponseError::UnknownMemberId)),
                Effects::default(),
            ),
        }
    }

    /// Handles a ConsumerGroupHeartbeat; returns the response and the
    /// records to write (none when nothing persistent changed).
    /// `client` is the request's client id and the client's host, shown
    /// by ConsumerGroupDescribe. A join may turn an empty classic group
    /// into a consumer group (its classic record is tombstoned); a refused
    /// join leaves the shard as it was.
    pub fn consumer_heartbeat(
        &mut self,
        now: Millis,
        topics: &dyn TopicMetadata,
        version: i16,
        request: &ConsumerGroupHeartbeatRequest,
        fresh_member_id: &str,
        client: (&str, &str),
    ) -> (ConsumerGroupHeartbeatResponse, Vec<Write>) {
        let group_id = request.group_id.as_str();
        let refuse = |error: ResponseError, message: Option<String>| {
            let response = ConsumerGroupHeartbeatResponse::default()
                .with_error_code(code(error))
                .with_error_message(message.map(StrBytes::from_string));
            (response, Vec::new())
        };
        let convert = match self.groups.get(group_id) {
            Some(Group::Classic(group)) if !group.is_empty() => {
                return refuse(
                    ResponseError::GroupIdNotFound,
                    Some(format!("Group {group_id} is not a consumer group.")),
                );
            }
            Some(Group::Classic(_)) => true,
            Some(Group::Consumer(_)) => false,
            // Only a join may create the group.
            None if request.member_epoch != 0 => {
                return refuse(ResponseError::UnknownMemberId, None);
            }
            None => true,
        };
        // The group this heartbeat replaces, if it makes a new one.
        let replaced = convert.then(|| {
            self.groups.insert(
                group_id.to_string(),
                Group::Consumer(ConsumerGroup::new(group_id.to_string())),
            )
        });
        let Some(Group::Consumer(group)) = self.groups.get_mut(group_id) else {
            return refuse(ResponseError::UnknownServerError, None);
        };
        let response = group.heartbeat(
            now,
            &self.cfg.consumer,
            topics,
            version,
            request,
            fresh_member_id,
        );
        if response.error_code == 0 && request.member_epoch == 0 {
            if let Some(member_id) = &response.member_id {
                group.set_client(member_id, client.0, client.1);
            }
        }
        let mut writes = Self::consumer_writes(group);
        match replaced {
            // A refused first join leaves no group behind.
            Some(old) if response.error_code != 0 && group.is_empty() => {
                match old {
                    Some(old) => self.groups.insert(group_id.to_string(), old),
                    None => self.groups.remove(group_id),
                };
                return (response, Vec::new());
            }
            Some(Some(Group::Classic(_))) => writes.insert(
                0,
                Write::Group {
                    group: group_id.to_string(),
                    value: None,
                },
            ),
            _ => {}
        }
        (response, writes)
    }

    /// A KIP-848 group for ConsumerGroupDescribe at `version`, or the
    /// error code.
    pub fn consumer_describe(
        &self,
        group_id: &str,
        topics: &dyn TopicMetadata,
        version: i16,
    ) -> Result<DescribedGroup, (i16, String)> {
        match self.groups.get(group_id) {
            Some(Group::Consumer(group)) => Ok(group.describe_at(topics, version)),
            Some(Group::Classic(_)) => Err((
                code(ResponseError::GroupIdNotFound),
                format!("Group {group_id} is not a consumer group."),
            )),
            None => Err((
                code(ResponseError::GroupIdNotFound),
                format!("Group {group_id} not found."),
            )),
        }
    }

    /// Validates an OffsetCommit and gives the records to write: a
    /// top-level error for the whole request, or one code per partition.
    pub fn commit_offsets(
        &mut self,
        now: Millis,
        req: &CommitRequest,
    ) -> Result<(Vec<i16>, Vec<Write>), i16> {
        match self.groups.get_mut(&req.group_id) {
            Some(Group::Classic(group)) => group.accept_offset_commit(
                now,
                &req.member_id,
                req.group_instance_id.as_deref(),
                req.generation_or_epoch,
            )?,
            Some(Group::Consumer(group)) => group.validate_offset_commit(
                &req.member_id,
                req.generation_or_epoch,
                req.api_version,
            )?,
            None if req.generation_or_epoch < 0 => {
                // A "simple" group: a consumer that assigns its partitions
                // itself, or an admin tool.
                self.groups.insert(
                    req.group_id.clone(),
                    Group::Classic(ClassicGroup::new(req.group_id.clone(), now)),
                );
            }
            None if req.api_version >= 9 => return Err(code(ResponseError::GroupIdNotFound)),
            None => return Err(code(ResponseError::IllegalGeneration)),
        }
        let expire_timestamp = if req.retention_time_ms >= 0 {
            now.saturating_add(req.retention_time_ms)
        } else {
            -1
        };
        let mut codes = Vec::with_capacity(req.partitions.len());
        let mut writes = Vec::new();
        for p in &req.partitions {
            let metadata = p.metadata.clone().unwrap_or_default();
            if metadata.len() > self.cfg.offset_metadata_max_bytes {
                codes.push(code(ResponseError::OffsetMetadataTooLarge));
                continue;
            }
            codes.push(0);
            writes.push(Write::Offset {
                group: req.group_id.clone(),
                topic: p.topic.clone(),
                partition: p.partition,
                value: Some(OffsetValue {
                    offset: p.offset,
                    leader_epoch: p.leader_epoch,
                    metadata,
                    commit_timestamp: now,
                    expire_timestamp,
                }),
            });
        }
        Ok((codes, writes))
    }

    /// Committed offsets for OffsetFetch: the named partitions (-1 where
    /// none is committed), or every committed one when `topics` is none.
    /// `member` is OffsetFetch v9's member id and epoch.
    #[allow(clippy::type_complexity)]
    pub fn fetch_offsets(
        &self,
        group_id: &str,
        topics: Option<&[(String, Vec<i32>)]>,
        member: Option<(&str, i32)>,
    ) -> Result<Vec<(String, i32, Option<OffsetValue>)>, i16> {
        if let (Some(Group::Consumer(group)), Some((member_id, epoch))) =
            (self.groups.get(group_id), member)
        {
            if !(member_id.is_empty() && epoch < 0) {
                group.validate_offset_fetch(member_id, epoch)?;
            }
        }
        let committed = self.offsets.group(group_id);
        Ok(match topics {
            Some(topics) => topics
                .iter()
                .flat_map(|(topic, partitions)| {
                    partitions.iter().map(move |&partition| {
                        let value = committed
                            .and_then(|c| c.get(&(topic.clone(), partition)))
                            .cloned();
                        (topic.clone(), partition, value)
                    })
                })
                .collect(),
            None => committed
                .into_iter()
                .flatten()
                .map(|((topic, partition), value)| (topic.clone(), *partition, Some(value.clone())))
                .collect(),
        })
    }

    /// OffsetDelete: tombstones for the partitions, or a top-level error.
    /// A partition of a topic the active group consumes is refused with
    /// GROUP_SUBSCRIBED_TO_TOPIC.
    pub fn delete_offsets(
        &mut self,
        group_id: &str,
        partitions: &[(String, i32)],
    ) -> Result<(Vec<i16>, Vec<Write>), i16> {
        let subscribed = match self.groups.get(group_id) {
            None => return Err(code(ResponseError::GroupIdNotFound)),
            Some(Group::Classic(group)) => {
                if group.state() == ClassicState::Dead {
                    return Err(code(ResponseError::GroupIdNotFound));
                }
                if group.is_empty() {
                    BTreeSet::new()
                } else {
                    match group.subscribed_topics() {
                        Some(topics) => topics,
                        // Members of a non-consumer protocol: Kafka refuses.
                        None => return Err(code(ResponseError::NonEmptyGroup)),
                    }
                }
            }
            Some(Group::Consumer(group)) => group.subscribed_topics(),
        };
        let mut codes = Vec::with_capacity(partitions.len());
        let mut writes = Vec::new();
        for (topic, partition) in partitions {
            if subscribed.contains(topic) {
                codes.push(code(ResponseError::GroupSubscribedToTopic));
                continue;
            }
            codes.push(0);
            if self.offsets.get(group_id, topic, *partition).is_some() {
                writes.push(Write::Offset {
                    group: group_id.to_string(),
                    topic: topic.clone(),
                    partition: *partition,
                    value: None,
                });
            }
        }
        Ok((codes, writes))
    }

    /// Every group, for ListGroups.
    pub fn list_groups(&self) -> Vec<GroupListing> {
        self.groups
            .iter()
            .filter_map(|(id, group)| match group {
                Group::Classic(g) if g.state() != ClassicState::Dead => Some(GroupListing {
                    group_id: id.clone(),
                    protocol_type: g.protocol_type().unwrap_or_default().to_string(),
                    state: g.state().as_str().to_string(),
                    group_type: "classic".into(),
                }),
                Group::Classic(_) => None,
                Group::Consumer(g) => Some(GroupListing {
                    group_id: id.clone(),
                    protocol_type: "consumer".into(),
                    state: g.state_name().to_string(),
                    group_type: "consumer".into(),
                }),
            })
            .collect()
    }

    /// A group for DescribeGroups.
    pub fn describe_group(&self, group_id: &str) -> Described {
        match self.groups.get(group_id) {
            Some(Group::Classic(group)) if group.state() != ClassicState::Dead => {
                // Members' metadata and assignments are shown only once a
                // generation has a protocol, as in Kafka.
                let stable = group.state() == ClassicState::Stable;
                let members = group
                    .members()
                    .into_iter()
                    .map(|mut m| {
                        if !stable {
                            m.metadata = Bytes::new();
                            m.assignment = Bytes::new();
                        }
                        m
                    })
                    .collect();
                Described::Classic(ClassicDescription {
                    state: group.state(),
                    protocol_type: group.protocol_type().unwrap_or_default().to_string(),
                    protocol: if stable {
                        group.protocol_name().unwrap_or_default().to_string()
                    } else {
                        String::new()
                    },
                    members,
                })
            }
            Some(Group::Consumer(_)) => Described::Consumer,
            _ => Described::NotFound,
        }
    }

    /// DeleteGroups for one group: the tombstones to write, or the error
    /// (GROUP_ID_NOT_FOUND, NON_EMPTY_GROUP). The group is gone at once.
    pub fn delete_group(&mut self, group_id: &str) -> Result<Vec<Write>, i16> {
        let mut group_tombstones = Vec::new();
        match self.groups.get_mut(group_id) {
            None => return Err(code(ResponseError::GroupIdNotFound)),
            Some(Group::Classic(group)) => {
                if group.state() == ClassicState::Dead {
                    return Err(code(ResponseError::GroupIdNotFound));
                }
                if !group.is_empty() {
                    return Err(code(ResponseError::NonEmptyGroup));
                }
                group.shut_down(
                    code(ResponseError::CoordinatorNotAvailable),
                    &mut Vec::new(),
                );
            }
            Some(Group::Consumer(group)) => {
                if !group.is_empty() {
                    return Err(code(ResponseError::NonEmptyGroup));
                }
                group.shut_down();
                group_tombstones = Self::consumer_tombstones(group);
            }
        }
        self.groups.remove(group_id);
        let mut writes: Vec<Write> = self
            .offsets
            .group(group_id)
            .into_iter()
            .flatten()
            .map(|((topic, partition), _)| Write::Offset {
                group: group_id.to_string(),
                topic: topic.clone(),
                partition: *partition,
                value: None,
            })
            .collect();
        writes.extend(group_tombstones);
        writes.push(Write::Group {
            group: group_id.to_string(),
            value: None,
        });
        // The offsets go now; the runtime's apply of the tombstones is then
        // a no-op, and a failed append leaves memory and log apart only
        // until the next restart.
        self.apply(&writes);
        Ok(writes)
    }

    /// Tombstones for offsets past `offsets.retention.minutes`, and for
    /// empty groups left with no offsets (which are removed, as Kafka
    /// removes them: an empty consumer group is persisted, so it would
    /// otherwise outlive every restart).
    pub fn expire_offsets(&mut self, now: Millis) -> Vec<Write> {
        let retention = self.cfg.offsets_retention_ms;
        let mut writes = Vec::new();
        let mut gone = Vec::new();
        for (id, group) in &self.groups {
            let expiry = match group {
                Group::Classic(g) if g.is_empty() => Expiry::Empty {
                    since: g.snapshot(now).current_state_timestamp,
                },
                Group::Classic(g) => match g.subscribed_topics() {
                    Some(topics) => Expiry::Subscribed(topics),
                    None => Expiry::Never,
                },
                Group::Consumer(g) if g.is_empty() => Expiry::Empty { since: 0 },
                Group::Consumer(g) => Expiry::Subscribed(g.subscribed_topics()),
            };
            let expired = self.offsets.expired(id, &expiry, now, retention);
            let all = self.offsets.group(id).map_or(0, BTreeMap::len);
            let empty = match group {
                Group::Classic(g) => g.is_empty(),
                Group::Consumer(g) => g.is_empty(),
            };
            if empty && expired.len() == all {
                gone.push(id.clone());
            }
            writes.extend(expired.into_iter().map(|(topic, partition)| Write::Offset {
                group: id.clone(),
                topic,
                partition,
                value: None,
            }));
        }
        for id in gone {
            match self.groups.remove(&id) {
                Some(Group::Consumer(group)) => writes.extend(Self::consumer_tombstones(&group)),
                _ => writes.push(Write::Group {
                    group: id,
                    value: None,
                }),
            }
        }
        writes
    }

    /// Runs every group's timers due at `now`; the effects include the
    /// records of consumer groups whose members expired or were fenced.
    pub fn tick(&mut self, now: Millis, topics: &dyn TopicMetadata) -> Effects {
        let mut effects = Effects::default();
        for group in self.groups.values_mut() {
            match group {
                Group::Classic(g) => {
                    if g.next_deadline().is_some_and(|d| d <= now) {
                        let mut out = Vec::new();
                        g.tick(now, &self.cfg.classic, &mut out);
                        effects.extend(Self::classic_effects(g, now, out));
                    }
                }
                Group::Consumer(g) => {
                    if g.next_deadline().is_some_and(|d| d <= now) {
                        g.tick(now, &self.cfg.consumer, topics);
                        effects.writes.extend(Self::consumer_writes(g));
                    }
                }
            }
        }
        effects
    }

    /// The earliest time [`Shard::tick`] has something to do.
    pub fn next_deadline(&self) -> Option<Millis> {
        self.groups
            .values()
            .filter_map(|g| match g {
                Group::Classic(g) => g.next_deadline(),
                Group::Consumer(g) => g.next_deadline(),
            })
            .min()
    }

    /// Gives up the shard (its partition moved away or the broker stops):
    /// every held JoinGroup and SyncGroup is answered NOT_COORDINATOR.
    pub fn unload(&mut self) -> Effects {
        let mut effects = Effects::default();
        for group in self.groups.values_mut() {
            match group {
                Group::Classic(g) => {
                    let mut out = Vec::new();
                    g.shut_down(code(ResponseError::NotCoordinator), &mut out);
                    for output in out {
                        match output {
                            Output::Join(id, r) => effects.replies.push(Reply::Join(id, r)),
                            Output::Sync(id, r) => effects.replies.push(Reply::Sync(id, r)),
                            Output::Persist => {}
                        }
                    }
                }
                Group::Consumer(g) => g.shut_down(),
            }
        }
        self.groups.clear();
        effects
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    struct NoTopics;

    impl TopicMetadata for NoTopics {
        fn topic_by_name(&self, _: &str) -> Option<(uuid::Uuid, i32)> {
            None
        }
        fn topic_by_id(&self, _: uuid::Uuid) -> Option<(String, i32)> {
            None
        }
        fn topic_names(&self) -> Vec<String> {
            Vec::new()
        }
    }

    fn commit(group: &str, generation: i32, member: &str, offset: i64) -> CommitRequest {
        CommitRequest {
            group_id: group.into(),
            api_version: 8,
            member_id: member.into(),
            group_instance_id: None,
            generation_or_epoch: generation,
            retention_time_ms: -1,
            partitions: vec![CommitPartition {
                topic: "t".into(),
                partition: 0,
                offset,
                leader_epoch: 3,
                metadata: Some("meta".into()),
            }],
        }
    }

    fn join_request(id: RequestId, member: &str) -> JoinRequest {
        JoinRequest {
            request: id,
            version: 3,
            member_id: member.into(),
            group_instance_id: None,
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
            session_timeout_ms: 10_000,
            rebalance_timeout_ms: 10_000,
            protocol_type: "consumer".into(),
            protocols: vec![("range".into(), Bytes::from_static(b"sub"))],
            reason: None,
            fresh_suffix: "x".into(),
        }
    }

    fn cfg() -> ShardConfig {
        let mut cfg = ShardConfig::default();
        cfg.classic.initial_rebalance_delay_ms = 0;
        cfg.offsets_retention_ms = 1_000;
        cfg
    }

    /// Replays `writes` into `shard` as the runtime does at start.
    fn replay_all(shard: &mut Shard, writes: &[Write], now: Millis) {
        for w in writes {
            shard.replay(&w.key(), w.value().as_deref(), now).unwrap();
        }
    }

    #[test]
    fn commits_apply_only_after_the_write_and_replay_to_the_same_state() {
        let mut shard = Shard::new(0, cfg());
        let (codes, writes) = shard.commit_offsets(100, &commit("g", -1, "", 7)).unwrap();
        assert_eq!(codes, [0]);
        assert!(
            shard.offsets().get("g", "t", 0).is_none(),
            "not before apply"
        );
        shard.apply(&writes);
        let stored = shard.offsets().get("g", "t", 0).unwrap().clone();
        assert_eq!(
            (stored.offset, stored.leader_epoch, stored.metadata.as_str()),
            (7, 3, "meta")
        );
        let mut fresh = Shard::new(0, cfg());
        replay_all(&mut fresh, &writes, 200);
        assert_eq!(fresh.offsets().get("g", "t", 0), Some(&stored));
        assert_eq!(fresh.list_groups()[0].state, "Empty");
    }

    #[test]
    fn a_group_with_members_refuses_simple_commits_and_replays_its_generation() {
        let mut shard = Shard::new(0, cfg());
        let effects = shard.join(0, "g", join_request(1, ""));
        let Reply::Join(1, joined) = &effects.replies[0] else {
            panic!("no join answer: {effects:?}");
        };
        assert_eq!(joined.error, 0);
        let member = joined.member_id.clone();
        let generation = joined.generation_id;
        let synced = shard.sync(
            0,
            "g",
            SyncRequest {
                request: 2,
                member_id: member.clone(),
                group_instance_id: None,
                generation_id: generation,
                protocol_type: None,
                protocol_name: None,
                assignments: vec![(member.clone(), Bytes::from_static(b"a"))],
            },
        );
        assert!(
            synced
                .writes
                .iter()
                .any(|w| matches!(w, Write::Group { value: Some(_), .. })),
            "the assignment is persisted"
        );
        assert_eq!(
            shard
                .commit_offsets(1, &commit("g", -1, "", 1))
                .unwrap_err(),
            ResponseError::UnknownMemberId.code()
        );
        assert_eq!(
            shard
                .commit_offsets(1, &commit("g", generation + 1, &member, 1))
                .unwrap_err(),
            ResponseError::IllegalGeneration.code()
        );
        assert!(shard
            .commit_offsets(1, &commit("g", generation, &member, 1))
            .is_ok());
        assert_eq!(
            shard.delete_group("g").unwrap_err(),
            ResponseError::NonEmptyGroup.code()
        );
        // After a restart the member carries on in the same generation.
        let mut fresh = Shard::new(0, cfg());
        replay_all(&mut fresh, &synced.writes, 5);
        assert_eq!(fresh.heartbeat(6, "g", &member, None, generation), 0);
        // A KIP-848 heartbeat cannot take over a classic group with members.
        let request = ConsumerGroupHeartbeatRequest::default().with_group_id(
            kafka_protocol::messages::GroupId(StrBytes::from_static_str("g")),
        );
        let (response, writes) =
            fresh.consumer_heartbeat(7, &NoTopics, 1, &request, "m", ("c", "h"));
        assert_eq!(response.error_code, ResponseError::GroupIdNotFound.code());
        assert!(writes.is_empty());
    }

    #[test]
    fn held_joins_are_answered_not_coordinator_on_unload() {
        let mut shard = Shard::new(0, cfg());
        let first = shard.join(0, "g", join_request(1, ""));
        let Reply::Join(_, joined) = &first.replies[0] else {
            panic!("no join answer");
        };
        // A second member makes the first rejoin; the second's join is held.
        let held = shard.join(1, "g", join_request(2, ""));
        assert!(held.replies.is_empty(), "{held:?}");
        assert!(shard.next_deadline().is_some());
        let unloaded = shard.unload();
        let codes: Vec<i16> = unloaded
            .replies
            .iter()
            .map(|r| match r {
                Reply::Join(_, j) => j.error,
                Reply::Sync(_, s) => s.error,
            })
            .collect();
        assert_eq!(codes, [ResponseError::NotCoordinator.code()]);
        assert!(shard.list_groups().is_empty());
        assert!(!joined.member_id.is_empty());
    }

    #[test]
    fn deleting_and_expiring_write_tombstones_that_replay_to_nothing() {
        let mut shard = Shard::new(0, cfg());
        let mut log = Vec::new();
        for group in ["a", "b"] {
            let (_, writes) = shard.commit_offsets(0, &commit(group, -1, "", 1)).unwrap();
            shard.apply(&writes);
            log.extend(writes);
        }
        assert_eq!(
            shard.delete_group("missing"),
            Err(ResponseError::GroupIdNotFound.code())
        );
        let deleted = shard.delete_group("a").unwrap();
        assert_eq!(deleted.len(), 2, "one offset and the group");
        log.extend(deleted);
        assert!(
            shard.expire_offsets(999).is_empty(),
            "retention not reached"
        );
        let expired = shard.expire_offsets(1_000);
        assert_eq!(expired.len(), 2, "b's offset and b itself: {expired:?}");
        shard.apply(&expired);
        log.extend(expired);
        assert!(shard.list_groups().is_empty());
        let mut fresh = Shard::new(0, cfg());
        replay_all(&mut fresh, &log, 2_000);
        assert!(fresh.list_groups().is_empty());
        assert!(fresh.offsets().group("a").is_none() && fresh.offsets().group("b").is_none());
    }

    #[test]
    fn offset_delete_refuses_topics_the_active_group_consumes() {
        let mut shard = Shard::new(0, cfg());
        // ConsumerProtocolSubscription v0 with topic "t".
        let subscription = Bytes::from_static(&[0, 0, 0, 0, 0, 1, 0, 1, b't', 0, 0, 0, 0]);
        let mut request = join_request(1, "");
        request.protocols = vec![("range".into(), subscription)];
        let effects = shard.join(0, "g", request);
        let Reply::Join(_, joined) = &effects.replies[0] else {
            panic!("no join answer");
        };
        let (member, generation) = (joined.member_id.clone(), joined.generation_id);
        // Commits wait for the assignment (REBALANCE_IN_PROGRESS before).
        assert_eq!(
            shard
                .commit_offsets(0, &commit("g", generation, &member, 4))
                .unwrap_err(),
            ResponseError::RebalanceInProgress.code()
        );
        shard.sync(
            0,
            "g",
            SyncRequest {
                request: 2,
                member_id: member.clone(),
                group_instance_id: None,
                generation_id: generation,
                protocol_type: None,
                protocol_name: None,
                assignments: Vec::new(),
            },
        );
        let (_, writes) = shard
            .commit_offsets(0, &commit("g", generation, &member, 4))
            .unwrap_or_else(|code| panic!("commit refused: {code}"));
        shard.apply(&writes);
        let (codes, writes) = shard
            .delete_offsets("g", &[("t".into(), 0), ("other".into(), 0)])
            .unwrap();
        assert_eq!(codes, [ResponseError::GroupSubscribedToTopic.code(), 0]);
        assert!(writes.is_empty(), "nothing committed for 'other'");
        assert_eq!(
            shard.delete_offsets("nope", &[]).unwrap_err(),
            ResponseError::GroupIdNotFound.code()
        );
    }
}
