//! The records of `__consumer_offsets`, in Kafka's formats, so tools that
//! read the topic (and a future migration) see what they expect.
//!
//! Every key and value starts with an int16 version. Keys: versions 0 and
//! 1 are an offset commit (group, topic, partition), version 2 is a classic
//! group's metadata (group), versions 3 to 8 are a KIP-848 consumer
//! group's records ([`ConsumerKey`]). Values are Kafka's OffsetCommitValue
//! (written at v3), GroupMetadataValue (written at v3) and the KIP-848
//! values ([`ConsumerValue`], v0, Kafka's "flexible" encoding: compact
//! strings and arrays, a tagged-field section after every struct); a null
//! value is a tombstone. Other key versions (share and streams groups,
//! regex records of newer brokers) decode as [`RecordKey::Unknown`] and are
//! skipped on replay.
//!
//! A consumer group is spread over several records, as in Kafka, so a
//! heartbeat rewrites only what it changed:
//!
//! | key | per | value holds |
//! |-----|-----|-------------|
//! | 3 ConsumerGroupMetadata | group | the group epoch |
//! | 4 ConsumerGroupPartitionMetadata | group | id, name, partition count of each subscribed topic |
//! | 5 ConsumerGroupMemberMetadata | member | instance, rack, client, subscription, rebalance timeout, assignor |
//! | 6 ConsumerGroupTargetAssignmentMetadata | group | the assignment epoch |
//! | 7 ConsumerGroupTargetAssignmentMember | member | the member's target partitions |
//! | 8 ConsumerGroupCurrentMemberAssignment | member | epoch, previous epoch, state, assigned and revoking partitions |
//!
//! Deleting a group writes a tombstone for each of its keys, the group
//! metadata (3) last. Tagged fields of newer Kafka versions (the metadata
//! hash, per-partition assignment epochs, a classic member's protocols)
//! are skipped when read and not written.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;

use crate::assignor::{Partitions, TopicPartition};
use crate::classic::{GroupSnapshot, MemberSnapshot};
use crate::Millis;

/// What a record is about.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RecordKey {
    /// The committed offset of one partition for one group.
    Offset {
        group: String,
        topic: String,
        partition: i32,
    },
    /// A classic group's membership and assignment.
    Group { group: String },
    /// One record of a KIP-848 consumer group.
    Consumer { group: String, key: ConsumerKey },
    /// A key version this broker does not interpret.
    Unknown { version: i16 },
}

/// A committed offset, as OffsetCommitValue holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OffsetValue {
    pub offset: i64,
    /// -1 when the client sent none.
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp: Millis,
    /// Set only by OffsetCommit v2-v4 with a retention time; -1 otherwise.
    pub expire_timestamp: Millis,
}

/// A record that did not decode.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("malformed __consumer_offsets record: {0}")]
pub struct RecordError(pub String);

impl RecordKey {
    /// The group the record belongs to, if known.
    pub fn group(&self) -> Option<&str> {
        match self {
            RecordKey::Offset { group, .. }
            | RecordKey::Group { group }
            | RecordKey::Consumer { group, .. } => Some(group),
            RecordKey::Unknown { .. } => None,
        }
    }

    /// Encodes the key (offset keys at version 1, classic group keys at
    /// version 2, consumer group keys at their own versions, 3 to 8).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            RecordKey::Offset {
                group,
                topic,
                partition,
            } => {
                put_i16(&mut out, 1);
                put_str(&mut out, group);
                put_str(&mut out, topic);
                put_i32(&mut out, *partition);
            }
            RecordKey::Group { group } => {
                put_i16(&mut out, 2);
                put_str(&mut out, group);
            }
            RecordKey::Consumer { group, key } => {
                put_i16(&mut out, key.version());
                put_str(&mut out, group);
                if let Some(member) = key.member() {
                    put_str(&mut out, member);
                }
            }
            RecordKey::Unknown { version } => put_i16(&mut out, *version),
        }
        out
    }

    /// Decodes a key.
    pub fn decode(bytes: &[u8]) -> Result<RecordKey, RecordError> {
        let mut r = Reader::new(bytes);
        let version = r.i16()?;
        let key = match version {
            0 | 1 => RecordKey::Offset {
                group: r.string()?,
                topic: r.string()?,
                partition: r.i32()?,
            },
            2 => RecordKey::Group { group: r.string()? },
            3..=8 => {
                let group = r.string()?;
                let key = match version {
                    3 => ConsumerKey::GroupMetadata,
                    4 => ConsumerKey::PartitionMetadata,
                    6 => ConsumerKey::TargetAssignmentMetadata,
                    5 => ConsumerKey::MemberMetadata {
                        member: r.string()?,
                    },
                    7 => ConsumerKey::TargetAssignmentMember {
                        member: r.string()?,
                    },
                    _ => ConsumerKey::CurrentMemberAssignment {
                        member: r.string()?,
                    },
                };
                RecordKey::Consumer { group, key }
            }
            _ => return Ok(RecordKey::Unknown { version }),
        };
        r.finish()?;
        Ok(key)
    }
}

impl OffsetValue {
    /// Encodes at version 3, or version 1 when an expire time is set (the
    /// only version that carries it).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        if self.expire_timestamp >= 0 {
            put_i16(&mut out, 1);
            put_i64(&mut out, self.offset);
            put_str(&mut out, &self.metadata);
            put_i64(&mut out, self.commit_timestamp);
            put_i64(&mut out, self.expire_timestamp);
        } else {
            put_i16(&mut out, 3);
            put_i64(&mut out, self.offset);
            put_i32(&mut out, self.leader_epoch);
            put_str(&mut out, &self.metadata);
            put_i64(&mut out, self.commit_timestamp);
        }
        out
    }

    /// Decodes versions 0 to 3.
    pub fn decode(bytes: &[u8]) -> Result<OffsetValue, RecordError> {
        let mut r = Reader::new(bytes);
        let version = r.i16()?;
        let value = match version {
            0 => OffsetValue {
                offset: r.i64()?,
                metadata: r.string()?,
                commit_timestamp: r.i64()?,
                leader_epoch: -1,
                expire_timestamp: -1,
            },
            1 => OffsetValue {
                offset: r.i64()?,
                metadata: r.string()?,
                commit_timestamp: r.i64()?,
                expire_timestamp: r.i64()?,
                leader_epoch: -1,
            },
            2 => OffsetValue {
                offset: r.i64()?,
                metadata: r.string()?,
                commit_timestamp: r.i64()?,
                leader_epoch: -1,
                expire_timestamp: -1,
            },
            3 => OffsetValue {
                offset: r.i64()?,
                leader_epoch: r.i32()?,
                metadata: r.string()?,
                commit_timestamp: r.i64()?,
                expire_timestamp: -1,
            },
            v => return Err(RecordError(format!("offset value version {v}"))),
        };
        r.finish()?;
        Ok(value)
    }
}

/// Encodes a classic group's state as GroupMetadataValue v3.
pub fn encode_group(snapshot: &GroupSnapshot) -> Vec<u8> {
    let mut out = Vec::new();
    put_i16(&mut out, 3);
    put_str(&mut out, &snapshot.protocol_type);
    put_i32(&mut out, snapshot.generation);
    put_nullable_str(&mut out, snapshot.protocol.as_deref());
    put_nullable_str(&mut out, snapshot.leader.as_deref());
    put_i64(&mut out, snapshot.current_state_timestamp);
    put_i32(&mut out, len_i32(snapshot.members.len()));
    for m in &snapshot.members {
        put_str(&mut out, &m.member_id);
        put_nullable_str(&mut out, m.group_instance_id.as_deref());
        put_str(&mut out, &m.client_id);
        put_str(&mut out, &m.client_host);
        put_i32(&mut out, m.rebalance_timeout_ms);
        put_i32(&mut out, m.session_timeout_ms);
        put_bytes(&mut out, &m.subscription);
        put_bytes(&mut out, &m.assignment);
    }
    out
}

/// Decodes GroupMetadataValue versions 0 to 3.
pub fn decode_group(bytes: &[u8]) -> Result<GroupSnapshot, RecordError> {
    let mut r = Reader::new(bytes);
    let version = r.i16()?;
    if !(0..=3).contains(&version) {
        return Err(RecordError(format!("group value version {version}")));
    }
    let protocol_type = r.string()?;
    let generation = r.i32()?;
    let protocol = r.nullable_string()?;
    let leader = r.nullable_string()?;
    let current_state_timestamp = if version >= 2 { r.i64()? } else { -1 };
    let count = r.i32()?;
    let count = usize::try_from(count).map_err(|_| RecordError("negative member count".into()))?;
    let mut members = Vec::with_capacity(count.min(bytes.len()));
    for _ in 0..count {
        let member_id = r.string()?;
        let group_instance_id = if version >= 3 {
            r.nullable_string()?
        } else {
            None
        };
        let client_id = r.string()?;
        let client_host = r.string()?;
        let rebalance_timeout_ms = if version >= 1 { Some(r.i32()?) } else { None };
        let session_timeout_ms = r.i32()?;
        members.push(MemberSnapshot {
            member_id,
            group_instance_id,
            client_id,
            client_host,
            rebalance_timeout_ms: rebalance_timeout_ms.unwrap_or(session_timeout_ms),
            session_timeout_ms,
            subscription: r.bytes()?,
            assignment: r.bytes()?,
        });
    }
    r.finish()?;
    Ok(GroupSnapshot {
        protocol_type,
        generation,
        protocol,
        leader,
        current_state_timestamp,
        members,
    })
}

/// One record of a KIP-848 consumer group, named within its group. The
/// order (by key version, then member) is the order a new group's records
/// are written in.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ConsumerKey {
    /// Key version 3, ConsumerGroupMetadataKey: the group epoch.
    GroupMetadata,
    /// Key version 4, ConsumerGroupPartitionMetadataKey: the subscribed
    /// topics as the group last saw them.
    PartitionMetadata,
    /// Key version 5, ConsumerGroupMemberMetadataKey: a member's client
    /// and subscription.
    MemberMetadata { member: String },
    /// Key version 6, ConsumerGroupTargetAssignmentMetadataKey: the group
    /// epoch the target assignment was computed for.
    TargetAssignmentMetadata,
    /// Key version 7, ConsumerGroupTargetAssignmentMemberKey: a member's
    /// target partitions.
    TargetAssignmentMember { member: String },
    /// Key version 8, ConsumerGroupCurrentMemberAssignmentKey: a member's
    /// epochs and the partitions it holds.
    CurrentMemberAssignment { member: String },
}

impl ConsumerKey {
    /// Kafka's key version (record type) for this record.
    pub fn version(&self) -> i16 {
        match self {
            ConsumerKey::GroupMetadata => 3,
            ConsumerKey::PartitionMetadata => 4,
            ConsumerKey::MemberMetadata { .. } => 5,
            ConsumerKey::TargetAssignmentMetadata => 6,
            ConsumerKey::TargetAssignmentMember { .. } => 7,
            ConsumerKey::CurrentMemberAssignment { .. } => 8,
        }
    }

    /// The member a per-member record is about.
    pub fn member(&self) -> Option<&str> {
        match self {
            ConsumerKey::MemberMetadata { member }
            | ConsumerKey::TargetAssignmentMember { member }
            | ConsumerKey::CurrentMemberAssignment { member } => Some(member),
            ConsumerKey::GroupMetadata
            | ConsumerKey::PartitionMetadata
            | ConsumerKey::TargetAssignmentMetadata => None,
        }
    }
}

/// A member's client and subscription (ConsumerGroupMemberMetadataValue).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemberMetadataValue {
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub subscribed_topic_names: BTreeSet<String>,
    /// The regex as the client sent it.
    pub subscribed_topic_regex: Option<String>,
    pub rebalance_timeout_ms: i32,
    pub server_assignor: Option<String>,
}

/// Kafka's `MemberState` bytes in [`CurrentAssignmentValue::state`].
pub const MEMBER_STATE_STABLE: i8 = 0;
/// The member must revoke partitions before its epoch moves.
pub const MEMBER_STATE_UNREVOKED_PARTITIONS: i8 = 1;
/// The member waits for partitions other members still hold.
pub const MEMBER_STATE_UNRELEASED_PARTITIONS: i8 = 2;

/// A member's place in reconciliation
/// (ConsumerGroupCurrentMemberAssignmentValue).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CurrentAssignmentValue {
    /// -2 for a static member that left for a while (its epoch is then in
    /// `previous_member_epoch`).
    pub member_epoch: i32,
    pub previous_member_epoch: i32,
    /// One of the `MEMBER_STATE_*` bytes; others are a newer broker's.
    pub state: i8,
    pub assigned: Partitions,
    pub pending_revocation: Partitions,
}

/// The value of a [`ConsumerKey`] record (each at value version 0).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConsumerValue {
    /// ConsumerGroupMetadataValue.
    GroupMetadata { epoch: i32 },
    /// ConsumerGroupPartitionMetadataValue: topic name to id and partition
    /// count. Per-partition racks are written empty.
    PartitionMetadata {
        topics: BTreeMap<String, (uuid::Uuid, i32)>,
    },
    /// ConsumerGroupMemberMetadataValue.
    MemberMetadata(MemberMetadataValue),
    /// ConsumerGroupTargetAssignmentMetadataValue.
    TargetAssignmentMetadata { assignment_epoch: i32 },
    /// ConsumerGroupTargetAssignmentMemberValue.
    TargetAssignmentMember { partitions: Partitions },
    /// ConsumerGroupCurrentMemberAssignmentValue.
    CurrentMemberAssignment(CurrentAssignmentValue),
}

impl ConsumerValue {
    /// True if this is the kind of value `key` holds.
    pub fn fits(&self, key: &ConsumerKey) -> bool {
        matches!(
            (self, key),
            (
                ConsumerValue::GroupMetadata { .. },
                ConsumerKey::GroupMetadata
            ) | (
                ConsumerValue::PartitionMetadata { .. },
                ConsumerKey::PartitionMetadata
            ) | (
                ConsumerValue::MemberMetadata(_),
                ConsumerKey::MemberMetadata { .. }
            ) | (
                ConsumerValue::TargetAssignmentMetadata { .. },
                ConsumerKey::TargetAssignmentMetadata
            ) | (
                ConsumerValue::TargetAssignmentMember { .. },
                ConsumerKey::TargetAssignmentMember { .. }
            ) | (
                ConsumerValue::CurrentMemberAssignment(_),
                ConsumerKey::CurrentMemberAssignment { .. }
            )
        )
    }

    /// Encodes the value at version 0 with no tagged fields.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        put_i16(&mut out, 0);
        match self {
            ConsumerValue::GroupMetadata { epoch } => put_i32(&mut out, *epoch),
            ConsumerValue::PartitionMetadata { topics } => {
                put_compact_len(&mut out, topics.len());
                for (name, (id, partitions)) in topics {
                    out.extend_from_slice(id.as_bytes());
                    put_compact_str(&mut out, name);
                    put_i32(&mut out, *partitions);
                    // PartitionMetadata (racks): none known.
                    put_compact_len(&mut out, 0);
                    put_no_tags(&mut out);
                }
            }
            ConsumerValue::MemberMetadata(m) => {
                put_compact_nullable_str(&mut out, m.instance_id.as_deref());
                put_compact_nullable_str(&mut out, m.rack_id.as_deref());
                put_compact_str(&mut out, &m.client_id);
                put_compact_str(&mut out, &m.client_host);
                put_compact_len(&mut out, m.subscribed_topic_names.len());
                for name in &m.subscribed_topic_names {
                    put_compact_str(&mut out, name);
                }
                put_compact_nullable_str(&mut out, m.subscribed_topic_regex.as_deref());
                put_i32(&mut out, m.rebalance_timeout_ms);
                put_compact_nullable_str(&mut out, m.server_assignor.as_deref());
            }
            ConsumerValue::TargetAssignmentMetadata { assignment_epoch } => {
                put_i32(&mut out, *assignment_epoch);
            }
            ConsumerValue::TargetAssignmentMember { partitions } => {
                put_topic_partitions(&mut out, partitions);
            }
            ConsumerValue::CurrentMemberAssignment(a) => {
                put_i32(&mut out, a.member_epoch);
                put_i32(&mut out, a.previous_member_epoch);
                out.extend_from_slice(&a.state.to_be_bytes());
                put_topic_partitions(&mut out, &a.assigned);
                put_topic_partitions(&mut out, &a.pending_revocation);
            }
        }
        put_no_tags(&mut out);
        out
    }

    /// Decodes the value of a `key` record (version 0; tagged fields are
    /// skipped).
    pub fn decode(key: &ConsumerKey, bytes: &[u8]) -> Result<ConsumerValue, RecordError> {
        let mut r = Reader::new(bytes);
        let version = r.i16()?;
        if version != 0 {
            return Err(RecordError(format!(
                "consumer group record {} value version {version}",
                key.version()
            )));
        }
        let value = match key {
            ConsumerKey::GroupMetadata => ConsumerValue::GroupMetadata { epoch: r.i32()? },
            ConsumerKey::PartitionMetadata => {
                let mut topics = BTreeMap::new();
                for _ in 0..r.compact_len()? {
                    let id = uuid::Uuid::from_bytes(r.array()?);
                    let name = r.compact_string()?;
                    let partitions = r.i32()?;
                    for _ in 0..r.compact_len()? {
                        let _partition = r.i32()?;
                        for _ in 0..r.compact_len()? {
                            r.compact_string()?;
                        }
                        r.skip_tags()?;
                    }
                    r.skip_tags()?;
                    topics.insert(name, (id, partitions));
                }
                ConsumerValue::PartitionMetadata { topics }
            }
            ConsumerKey::MemberMetadata { .. } => {
                let instance_id = r.compact_nullable_string()?;
                let rack_id = r.compact_nullable_string()?;
                let client_id = r.compact_string()?;
                let client_host = r.compact_string()?;
                let mut subscribed_topic_names = BTreeSet::new();
                for _ in 0..r.compact_len()? {
                    subscribed_topic_names.insert(r.compact_string()?);
                }
                ConsumerValue::MemberMetadata(MemberMetadataValue {
                    instance_id,
                    rack_id,
                    client_id,
                    client_host,
                    subscribed_topic_names,
                    subscribed_topic_regex: r.compact_nullable_string()?,
                    rebalance_timeout_ms: r.i32()?,
                    server_assignor: r.compact_nullable_string()?,
                })
            }
            ConsumerKey::TargetAssignmentMetadata => ConsumerValue::TargetAssignmentMetadata {
                assignment_epoch: r.i32()?,
            },
            ConsumerKey::TargetAssignmentMember { .. } => ConsumerValue::TargetAssignmentMember {
                partitions: r.topic_partitions()?,
            },
            ConsumerKey::CurrentMemberAssignment { .. } => {
                ConsumerValue::CurrentMemberAssignment(CurrentAssignmentValue {
                    member_epoch: r.i32()?,
                    previous_member_epoch: r.i32()?,
                    state: i8::from_be_bytes(r.array()?),
                    assigned: r.topic_partitions()?,
                    pending_revocation: r.topic_partitions()?,
                })
            }
        };
        r.skip_tags()?;
        r.finish()?;
        Ok(value)
    }
}

fn len_i32(len: usize) -> i32 {
    i32::try_from(len).unwrap_or(i32::MAX)
}

fn put_i16(out: &mut Vec<u8>, v: i16) {
    out.extend_from_slice(&v.to_be_bytes());
}

fn put_i32(out: &mut Vec<u8>, v: i32) {
    out.extend_from_slice(&v.to_be_bytes());
}

fn put_i64(out: &mut Vec<u8>, v: i64) {
    out.extend_from_slice(&v.to_be_bytes());
}

/// Strings longer than an int16 can say are cut (the broker bounds
/// metadata strings long before that).
fn put_str(out: &mut Vec<u8>, s: &str) {
    let mut end = s.len().min(i16::MAX as usize);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    put_i16(out, end as i16);
    out.extend_from_slice(&s.as_bytes()[..end]);
}

fn put_nullable_str(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => put_str(out, s),
        None => put_i16(out, -1),
    }
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_i32(out, len_i32(b.len()));
    out.extend_from_slice(b);
}

/// Kafka's unsigned varint.
fn put_uvarint(out: &mut Vec<u8>, mut v: u32) {
    while v >= 0x80 {
        out.push((v & 0x7f) as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A compact (flexible-version) array or string length: length + 1.
fn put_compact_len(out: &mut Vec<u8>, len: usize) {
    put_uvarint(out, u32::try_from(len).unwrap_or(u32::MAX - 1) + 1);
}

fn put_compact_str(out: &mut Vec<u8>, s: &str) {
    put_compact_len(out, s.len());
    out.extend_from_slice(s.as_bytes());
}

fn put_compact_nullable_str(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => put_compact_str(out, s),
        None => put_uvarint(out, 0),
    }
}

/// An empty tagged-field section.
fn put_no_tags(out: &mut Vec<u8>) {
    put_uvarint(out, 0);
}

/// `[]TopicPartitions`: topic id and partition numbers, by topic.
fn put_topic_partitions(out: &mut Vec<u8>, partitions: &Partitions) {
    let mut by_topic: BTreeMap<uuid::Uuid, Vec<i32>> = BTreeMap::new();
    for tp in partitions {
        by_topic.entry(tp.topic_id).or_default().push(tp.partition);
    }
    put_compact_len(out, by_topic.len());
    for (id, partitions) in by_topic {
        out.extend_from_slice(id.as_bytes());
        put_compact_len(out, partitions.len());
        for partition in partitions {
            put_i32(out, partition);
        }
        put_no_tags(out);
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf, pos: 0 }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], RecordError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.buf.len())
            .ok_or_else(|| RecordError("truncated".into()))?;
        let bytes = &self.buf[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], RecordError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn i16(&mut self) -> Result<i16, RecordError> {
        Ok(i16::from_be_bytes(self.array()?))
    }

    fn i32(&mut self) -> Result<i32, RecordError> {
        Ok(i32::from_be_bytes(self.array()?))
    }

    fn i64(&mut self) -> Result<i64, RecordError> {
        Ok(i64::from_be_bytes(self.array()?))
    }

    fn nullable_string(&mut self) -> Result<Option<String>, RecordError> {
        let len = self.i16()?;
        if len < 0 {
            return Ok(None);
        }
        let bytes = self.take(len as usize)?;
        String::from_utf8(bytes.to_vec())
            .map(Some)
            .map_err(|_| RecordError("string is not UTF-8".into()))
    }

    fn string(&mut self) -> Result<String, RecordError> {
        self.nullable_string()?
            .ok_or_else(|| RecordError("null string".into()))
    }

    fn bytes(&mut self) -> Result<Bytes, RecordError> {
        let len = self.i32()?;
        if len < 0 {
            return Ok(Bytes::new());
        }
        Ok(Bytes::copy_from_slice(self.take(len as usize)?))
    }

    fn uvarint(&mut self) -> Result<u32, RecordError> {
        let mut value: u32 = 0;
        for shift in [0, 7, 14, 21, 28] {
            let [byte] = self.array::<1>()?;
            value |= u32::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(RecordError("varint too long".into()))
    }

    /// A compact length; `None` for null.
    fn compact_nullable_len(&mut self) -> Result<Option<usize>, RecordError> {
        let n = self.uvarint()?;
        Ok(n.checked_sub(1).map(|len| len as usize))
    }

    /// A compact array's length (null reads as empty). Each element takes
    /// at least one byte, so a length beyond the bytes left is an error
    /// before anything is allocated for it.
    fn compact_len(&mut self) -> Result<usize, RecordError> {
        let len = self.compact_nullable_len()?.unwrap_or(0);
        if len > self.buf.len() - self.pos {
            return Err(RecordError("array longer than the record".into()));
        }
        Ok(len)
    }

    fn compact_nullable_string(&mut self) -> Result<Option<String>, RecordError> {
        let Some(len) = self.compact_nullable_len()? else {
            return Ok(None);
        };
        let bytes = self.take(len)?;
        String::from_utf8(bytes.to_vec())
            .map(Some)
            .map_err(|_| RecordError("string is not UTF-8".into()))
    }

    fn compact_string(&mut self) -> Result<String, RecordError> {
        self.compact_nullable_string()?
            .ok_or_else(|| RecordError("null string".into()))
    }

    /// Skips a tagged-field section.
    fn skip_tags(&mut self) -> Result<(), RecordError> {
        for _ in 0..self.uvarint()? {
            self.uvarint()?;
            let size = self.uvarint()?;
            self.take(size as usize)?;
        }
        Ok(())
    }

    fn topic_partitions(&mut self) -> Result<Partitions, RecordError> {
        let mut partitions = Partitions::new();
        for _ in 0..self.compact_len()? {
            let topic_id = uuid::Uuid::from_bytes(self.array()?);
            for _ in 0..self.compact_len()? {
                partitions.insert(TopicPartition::new(topic_id, self.i32()?));
            }
            self.skip_tags()?;
        }
        Ok(partitions)
    }

    fn finish(&self) -> Result<(), RecordError> {
        if self.pos == self.buf.len() {
            Ok(())
        } else {
            Err(RecordError("trailing bytes".into()))
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn offset_key_matches_kafka_bytes() {
        let key = RecordKey::Offset {
            group: "g".into(),
            topic: "t".into(),
            partition: 3,
        };
        // version 1, "g", "t", partition 3
        assert_eq!(key.encode(), [0, 1, 0, 1, b'g', 0, 1, b't', 0, 0, 0, 3]);
        assert_eq!(RecordKey::decode(&key.encode()).unwrap(), key);
        let group = RecordKey::Group { group: "g".into() };
        assert_eq!(group.encode(), [0, 2, 0, 1, b'g']);
        assert_eq!(RecordKey::decode(&group.encode()).unwrap(), group);
        assert_eq!(
            RecordKey::decode(&[0, 9, 1, 2, 3]).unwrap(),
            RecordKey::Unknown { version: 9 }
        );
    }

    fn member_keys(member: &str) -> [ConsumerKey; 3] {
        [
            ConsumerKey::MemberMetadata {
                member: member.into(),
            },
            ConsumerKey::TargetAssignmentMember {
                member: member.into(),
            },
            ConsumerKey::CurrentMemberAssignment {
                member: member.into(),
            },
        ]
    }

    #[test]
    fn consumer_keys_match_kafka_bytes() {
        let group = RecordKey::Consumer {
            group: "g".into(),
            key: ConsumerKey::GroupMetadata,
        };
        // version 3, "g"
        assert_eq!(group.encode(), [0, 3, 0, 1, b'g']);
        let member = RecordKey::Consumer {
            group: "g".into(),
            key: ConsumerKey::CurrentMemberAssignment { member: "m".into() },
        };
        // version 8, "g", "m"
        assert_eq!(member.encode(), [0, 8, 0, 1, b'g', 0, 1, b'm']);
        let mut keys = vec![
            ConsumerKey::GroupMetadata,
            ConsumerKey::PartitionMetadata,
            ConsumerKey::TargetAssignmentMetadata,
        ];
        keys.extend(member_keys("m-1"));
        for key in keys {
            let record = RecordKey::Consumer {
                group: "group ☃".into(),
                key: key.clone(),
            };
            assert_eq!(record.encode()[..2], key.version().to_be_bytes());
            assert_eq!(RecordKey::decode(&record.encode()).unwrap(), record);
            assert_eq!(record.group(), Some("group ☃"));
        }
        assert!(RecordKey::decode(&[0, 5, 0, 1, b'g']).is_err(), "no member");
    }

    fn tp(topic: u128, partition: i32) -> TopicPartition {
        TopicPartition::new(uuid::Uuid::from_u128(topic), partition)
    }

    fn sample_values() -> Vec<(ConsumerKey, ConsumerValue)> {
        let [metadata, target, current] = member_keys("m");
        vec![
            (
                ConsumerKey::GroupMetadata,
                ConsumerValue::GroupMetadata { epoch: 7 },
            ),
            (
                ConsumerKey::PartitionMetadata,
                ConsumerValue::PartitionMetadata {
                    topics: BTreeMap::from([
                        ("a".to_string(), (uuid::Uuid::from_u128(1), 6)),
                        ("b".to_string(), (uuid::Uuid::from_u128(2), 1)),
                    ]),
                },
            ),
            (
                metadata,
                ConsumerValue::MemberMetadata(MemberMetadataValue {
                    instance_id: Some("i".into()),
                    rack_id: None,
                    client_id: "client".into(),
                    client_host: "/127.0.0.1".into(),
                    subscribed_topic_names: ["a".to_string(), "b".to_string()].into(),
                    subscribed_topic_regex: Some("c.*".into()),
                    rebalance_timeout_ms: 30_000,
                    server_assignor: Some("range".into()),
                }),
            ),
            (
                ConsumerKey::TargetAssignmentMetadata,
                ConsumerValue::TargetAssignmentMetadata {
                    assignment_epoch: 7,
                },
            ),
            (
                target,
                ConsumerValue::TargetAssignmentMember {
                    partitions: [tp(1, 0), tp(1, 3), tp(2, 0)].into(),
                },
            ),
            (
                current,
                ConsumerValue::CurrentMemberAssignment(CurrentAssignmentValue {
                    member_epoch: 7,
                    previous_member_epoch: 6,
                    state: MEMBER_STATE_UNREVOKED_PARTITIONS,
                    assigned: [tp(1, 0)].into(),
                    pending_revocation: [tp(1, 5)].into(),
                }),
            ),
        ]
    }

    #[test]
    fn consumer_values_round_trip() {
        for (key, value) in sample_values() {
            assert!(value.fits(&key));
            let bytes = value.encode();
            assert_eq!(bytes[..2], [0, 0], "value version 0");
            assert_eq!(ConsumerValue::decode(&key, &bytes).unwrap(), value);
            assert!(ConsumerValue::decode(&key, &bytes[..bytes.len() - 1]).is_err());
        }
        assert!(!ConsumerValue::GroupMetadata { epoch: 1 }.fits(&ConsumerKey::PartitionMetadata));
    }

    #[test]
    fn consumer_values_use_kafkas_flexible_layout() {
        // ConsumerGroupTargetAssignmentMemberValue v0: one topic, partitions
        // 0 and 3, then the struct's and the value's empty tag sections.
        let value = ConsumerValue::TargetAssignmentMember {
            partitions: [tp(1, 0), tp(1, 3)].into(),
        };
        let mut expected = vec![0, 0, 2];
        expected.extend_from_slice(uuid::Uuid::from_u128(1).as_bytes());
        expected.extend_from_slice(&[3, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0]);
        assert_eq!(value.encode(), expected);
        // A newer broker's tagged fields are skipped: ConsumerGroupMetadata
        // with MetadataHash (tag 0, 8 bytes) and an unknown tag 5.
        let mut bytes = vec![0, 0, 0, 0, 0, 9, 2, 0, 8];
        bytes.extend_from_slice(&42i64.to_be_bytes());
        bytes.extend_from_slice(&[5, 1, 0xff]);
        assert_eq!(
            ConsumerValue::decode(&ConsumerKey::GroupMetadata, &bytes).unwrap(),
            ConsumerValue::GroupMetadata { epoch: 9 }
        );
        // And a newer value version is refused, not misread.
        assert!(
            ConsumerValue::decode(&ConsumerKey::GroupMetadata, &[0, 1, 0, 0, 0, 9, 0]).is_err()
        );
    }

    #[test]
    fn offset_values_round_trip_at_both_versions() {
        let mut value = OffsetValue {
            offset: 42,
            leader_epoch: 7,
            metadata: "meta ☃".into(),
            commit_timestamp: 1_700_000_000_000,
            expire_timestamp: -1,
        };
        assert_eq!(&value.encode()[..2], &[0, 3]);
        assert_eq!(OffsetValue::decode(&value.encode()).unwrap(), value);
        value.expire_timestamp = 1_800_000_000_000;
        value.leader_epoch = -1;
        assert_eq!(&value.encode()[..2], &[0, 1]);
        assert_eq!(OffsetValue::decode(&value.encode()).unwrap(), value);
    }

    #[test]
    fn group_value_round_trips() {
        let snapshot = GroupSnapshot {
            protocol_type: "consumer".into(),
            generation: 4,
            protocol: Some("range".into()),
            leader: Some("m1".into()),
            current_state_timestamp: 99,
            members: vec![MemberSnapshot {
                member_id: "m1".into(),
                group_instance_id: Some("i1".into()),
                client_id: "c".into(),
                client_host: "/127.0.0.1".into(),
                rebalance_timeout_ms: 300_000,
                session_timeout_ms: 45_000,
                subscription: Bytes::from_static(b"sub"),
                assignment: Bytes::from_static(b"asg"),
            }],
        };
        assert_eq!(decode_group(&encode_group(&snapshot)).unwrap(), snapshot);
    }

    #[test]
    fn truncated_and_trailing_bytes_are_errors() {
        let value = OffsetValue {
            offset: 1,
            leader_epoch: -1,
            metadata: String::new(),
            commit_timestamp: 0,
            expire_timestamp: -1,
        }
        .encode();
        assert!(OffsetValue::decode(&value[..value.len() - 1]).is_err());
        let mut long = value.clone();
        long.push(0);
        assert!(OffsetValue::decode(&long).is_err());
        assert!(OffsetValue::decode(&[0, 9]).is_err());
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = RecordKey::decode(&bytes);
            let _ = OffsetValue::decode(&bytes);
            let _ = decode_group(&bytes);
            let mut keys = vec![
                ConsumerKey::GroupMetadata,
                ConsumerKey::PartitionMetadata,
                ConsumerKey::TargetAssignmentMetadata,
            ];
            keys.extend(member_keys("m"));
            for key in &keys {
                let _ = ConsumerValue::decode(key, &bytes);
                // The same bytes behind a valid version, to reach the fields.
                let mut versioned = vec![0, 0];
                versioned.extend_from_slice(&bytes);
                let _ = ConsumerValue::decode(key, &versioned);
            }
        }

        #[test]
        fn member_values_round_trip(
            epoch in any::<i32>(),
            previous in any::<i32>(),
            state in any::<i8>(),
            assigned in proptest::collection::btree_set((0u128..3, 0i32..40), 0..30),
            pending in proptest::collection::btree_set((0u128..3, -1i32..40), 0..5),
            names in proptest::collection::btree_set(".{0,20}", 0..5),
            regex in proptest::option::of(".{0,20}"),
            timeout in any::<i32>(),
        ) {
            let partitions = |set: std::collections::BTreeSet<(u128, i32)>| -> Partitions {
                set.into_iter().map(|(t, p)| tp(t, p)).collect()
            };
            let [metadata, _, current] = member_keys("m");
            let value = ConsumerValue::CurrentMemberAssignment(CurrentAssignmentValue {
                member_epoch: epoch,
                previous_member_epoch: previous,
                state,
                assigned: partitions(assigned),
                pending_revocation: partitions(pending),
            });
            prop_assert_eq!(ConsumerValue::decode(&current, &value.encode()).unwrap(), value);
            let value = ConsumerValue::MemberMetadata(MemberMetadataValue {
                subscribed_topic_names: names,
                subscribed_topic_regex: regex,
                rebalance_timeout_ms: timeout,
                ..MemberMetadataValue::default()
            });
            prop_assert_eq!(ConsumerValue::decode(&metadata, &value.encode()).unwrap(), value);
        }
    }
}
