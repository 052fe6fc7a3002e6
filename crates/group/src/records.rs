//! The records of `__consumer_offsets`, in Kafka's formats, so tools that
//! read the topic (and a future migration) see what they expect.
//!
//! Every key and value starts with an int16 version. Keys: versions 0 and
//! 1 are an offset commit (group, topic, partition), version 2 is a classic
//! group's metadata (group). Values are Kafka's OffsetCommitValue (written
//! at v3) and GroupMetadataValue (written at v3); a null value is a
//! tombstone. Other key versions (KIP-848 group records of other brokers)
//! decode as [`RecordKey::Unknown`] and are skipped on replay.

use bytes::Bytes;

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
            RecordKey::Offset { group, .. } | RecordKey::Group { group } => Some(group),
            RecordKey::Unknown { .. } => None,
        }
    }

    /// Encodes the key (offset keys at version 1, group keys at version 2).
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
            RecordKey::decode(&[0, 5, 1, 2, 3]).unwrap(),
            RecordKey::Unknown { version: 5 }
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
        }
    }
}
