//! Idempotent-producer state: per producer id, its epoch and the last five
//! batches appended, to detect duplicates and sequence gaps; snapshotted to
//! `<20-digit offset>.snapshot` files at segment rolls and close.
//!
//! Snapshot format (big-endian): `"RNPS"`, version u16 (1), CRC-32C u32 of
//! everything after it, entry count u32, then per producer: id i64, epoch
//! i16, last timestamp i64, batch count u8, and per batch first sequence
//! i32, last sequence i32, first offset i64, last offset i64, timestamp i64.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::path::{Path, PathBuf};

use runnel_protocol::batch::BatchHeader;

use crate::storage_io::{replace_file, StorageIo};
use crate::LogError;

/// Batches remembered per producer, as Kafka (and `max.in.flight = 5`).
pub const PRODUCER_BATCHES_RETAINED: usize = 5;
/// Extension of producer-state snapshot files.
pub(crate) const SNAPSHOT_SUFFIX: &str = "snapshot";

const SNAPSHOT_MAGIC: &[u8; 4] = b"RNPS";
const SNAPSHOT_VERSION: u16 = 1;

/// What the log remembers of one appended batch of a producer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchMetadata {
    /// Base sequence.
    pub first_seq: i32,
    /// Sequence of the last record.
    pub last_seq: i32,
    /// Offset assigned to the first record.
    pub first_offset: i64,
    /// Offset assigned to the last record.
    pub last_offset: i64,
    /// The batch's max timestamp.
    pub timestamp: i64,
}

/// One producer id's state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProducerEntry {
    /// Current epoch.
    pub epoch: i16,
    /// The last batches, oldest first, at most [`PRODUCER_BATCHES_RETAINED`].
    pub batches: VecDeque<BatchMetadata>,
    /// Max timestamp of the last batch; drives expiry.
    pub last_timestamp: i64,
}

/// Result of checking a batch against a producer's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SequenceCheck {
    /// The batch is new and in sequence.
    Append,
    /// The batch was already appended, at these offsets.
    Duplicate(BatchMetadata),
}

fn next_sequence(seq: i32) -> i32 {
    if seq == i32::MAX {
        0
    } else {
        seq + 1
    }
}

impl ProducerEntry {
    /// Checks `header` against this producer's state by Kafka's rules (a
    /// `None` entry is an unknown producer and accepts any sequence).
    pub fn check(
        entry: Option<&ProducerEntry>,
        header: &BatchHeader,
    ) -> Result<SequenceCheck, LogError> {
        let Some(entry) = entry else {
            return Ok(SequenceCheck::Append);
        };
        let first_seq = header.base_sequence;
        if header.producer_epoch < entry.epoch {
            return Err(LogError::InvalidProducerEpoch);
        }
        if header.producer_epoch > entry.epoch {
            if first_seq != 0 {
                return Err(LogError::OutOfOrderSequence {
                    producer_id: header.producer_id,
                    expected: 0,
                    received: first_seq,
                });
            }
            return Ok(SequenceCheck::Append);
        }
        let last_seq = header.last_sequence();
        if let Some(dup) = entry
            .batches
            .iter()
            .find(|b| b.first_seq == first_seq && b.last_seq == last_seq)
        {
            return Ok(SequenceCheck::Duplicate(*dup));
        }
        match entry.batches.back() {
            Some(last) if next_sequence(last.last_seq) != first_seq => {
                Err(LogError::OutOfOrderSequence {
                    producer_id: header.producer_id,
                    expected: next_sequence(last.last_seq),
                    received: first_seq,
                })
            }
            _ => Ok(SequenceCheck::Append),
        }
    }

    /// Records an appended batch (offsets already assigned).
    pub fn update(&mut self, header: &BatchHeader) {
        if header.producer_epoch != self.epoch {
            self.epoch = header.producer_epoch;
            self.batches.clear();
        }
        self.batches.push_back(BatchMetadata {
            first_seq: header.base_sequence,
            last_seq: header.last_sequence(),
            first_offset: header.base_offset,
            last_offset: header.last_offset(),
            timestamp: header.max_timestamp,
        });
        while self.batches.len() > PRODUCER_BATCHES_RETAINED {
            self.batches.pop_front();
        }
        self.last_timestamp = header.max_timestamp;
    }
}

/// The producers of one partition.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProducerStateManager {
    producers: HashMap<i64, ProducerEntry>,
}

impl ProducerStateManager {
    /// The entry of `producer_id`, if known.
    pub fn entry(&self, producer_id: i64) -> Option<&ProducerEntry> {
        self.producers.get(&producer_id)
    }

    /// Number of producers tracked.
    pub fn len(&self) -> usize {
        self.producers.len()
    }

    /// Whether no producer is tracked.
    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }

    /// Records an appended batch if it carries a producer id.
    pub fn update(&mut self, header: &BatchHeader) {
        if header.has_producer_id() && !header.is_control() {
            let entry = self
                .producers
                .entry(header.producer_id)
                .or_insert_with(|| ProducerEntry {
                    epoch: header.producer_epoch,
                    ..ProducerEntry::default()
                });
            entry.update(header);
        }
    }

    /// `(producer id, last offset of its last batch)` for every producer
    /// with a batch: the batches the cleaner must keep.
    pub(crate) fn last_offsets(&self) -> impl Iterator<Item = (i64, i64)> + '_ {
        self.producers
            .iter()
            .filter_map(|(&id, entry)| Some((id, entry.batches.back()?.last_offset)))
    }

    /// Replaces the entries in `changed` (the result of a checked append).
    pub(crate) fn commit(&mut self, changed: HashMap<i64, ProducerEntry>) {
        self.producers.extend(changed);
    }

    /// Forgets producers whose last batch is older than
    /// `producer_id_expiration_ms`. Returns how many were removed.
    pub fn expire(&mut self, now_ms: i64, producer_id_expiration_ms: i64) -> usize {
        let before = self.producers.len();
        self.producers
            .retain(|_, e| now_ms.saturating_sub(e.last_timestamp) < producer_id_expiration_ms);
        before - self.producers.len()
    }

    /// Encodes the snapshot file's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut body = Vec::new();
        body.extend_from_slice(&(self.producers.len() as u32).to_be_bytes());
        let mut ids: Vec<_> = self.producers.keys().copied().collect();
        ids.sort_unstable();
        for id in ids {
            let Some(entry) = self.producers.get(&id) else {
                continue;
            };
            body.extend_from_slice(&id.to_be_bytes());
            body.extend_from_slice(&entry.epoch.to_be_bytes());
            body.extend_from_slice(&entry.last_timestamp.to_be_bytes());
            body.push(entry.batches.len() as u8);
            for b in &entry.batches {
                body.extend_from_slice(&b.first_seq.to_be_bytes());
                body.extend_from_slice(&b.last_seq.to_be_bytes());
                body.extend_from_slice(&b.first_offset.to_be_bytes());
                body.extend_from_slice(&b.last_offset.to_be_bytes());
                body.extend_from_slice(&b.timestamp.to_be_bytes());
            }
        }
        let mut out = Vec::with_capacity(body.len() + 10);
        out.extend_from_slice(SNAPSHOT_MAGIC);
        out.extend_from_slice(&SNAPSHOT_VERSION.to_be_bytes());
        out.extend_from_slice(&crc32c::crc32c(&body).to_be_bytes());
        out.extend_from_slice(&body);
        out
    }

    /// Decodes a snapshot; `None` if it is truncated, corrupt or of an
    /// unknown version.
    pub fn decode(bytes: &[u8]) -> Option<ProducerStateManager> {
        let mut r = Reader(bytes);
        if r.take(4)? != SNAPSHOT_MAGIC || r.u16()? != SNAPSHOT_VERSION {
            return None;
        }
        let crc = r.u32()?;
        if crc32c::crc32c(r.0) != crc {
            return None;
        }
        let count = r.u32()?;
        let mut producers = HashMap::new();
        for _ in 0..count {
            let id = r.i64()?;
            let epoch = r.u16()? as i16;
            let last_timestamp = r.i64()?;
            let n = r.take(1)?[0] as usize;
            if n > PRODUCER_BATCHES_RETAINED {
                return None;
            }
            let mut batches = VecDeque::with_capacity(n);
            for _ in 0..n {
                batches.push_back(BatchMetadata {
                    first_seq: r.u32()? as i32,
                    last_seq: r.u32()? as i32,
                    first_offset: r.i64()?,
                    last_offset: r.i64()?,
                    timestamp: r.i64()?,
                });
            }
            producers.insert(
                id,
                ProducerEntry {
                    epoch,
                    batches,
                    last_timestamp,
                },
            );
        }
        r.0.is_empty().then_some(ProducerStateManager { producers })
    }

    /// Writes the snapshot for `offset` (write to a temporary file, then
    /// rename), and keeps only the newest `keep` snapshots.
    pub(crate) fn write_snapshot(
        &self,
        io: &dyn StorageIo,
        dir: &Path,
        offset: i64,
        sync: bool,
    ) -> io::Result<()> {
        let name = format!("{offset:020}.{SNAPSHOT_SUFFIX}");
        replace_file(io, dir, &name, &self.encode(), sync)?;
        let snapshots = list_snapshots(dir)?;
        let keep = 3;
        if snapshots.len() > keep {
            for (_, old) in &snapshots[..snapshots.len() - keep] {
                std::fs::remove_file(old)?;
            }
        }
        Ok(())
    }
}

/// Snapshot files in `dir`, oldest first.
pub(crate) fn list_snapshots(dir: &Path) -> io::Result<Vec<(i64, PathBuf)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().and_then(|e| e.to_str()) != Some(SNAPSHOT_SUFFIX) {
            continue;
        }
        if let Some(offset) = path
            .file_stem()
            .and_then(|s| s.to_str())
            .and_then(|s| s.parse::<i64>().ok())
        {
            out.push((offset, path));
        }
    }
    out.sort();
    Ok(out)
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Some(head)
    }
    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn i64(&mut self) -> Option<i64> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Some(i64::from_be_bytes(a))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use runnel_protocol::batch::BatchBuilder;

    fn header(pid: i64, epoch: i16, seq: i32, records: usize, base_offset: i64) -> BatchHeader {
        let mut b = BatchBuilder::default().producer(pid, epoch, seq);
        for _ in 0..records {
            b = b.value(1, b"v");
        }
        b.base_offset = base_offset;
        BatchHeader::parse(&b.build().unwrap()).unwrap()
    }

    #[test]
    fn sequence_rules_follow_kafka() {
        let mut state = ProducerStateManager::default();
        let first = header(1, 0, 7, 2, 0);
        assert_eq!(
            ProducerEntry::check(state.entry(1), &first).unwrap(),
            SequenceCheck::Append
        );
        state.update(&first);
        let dup = ProducerEntry::check(state.entry(1), &header(1, 0, 7, 2, 99)).unwrap();
        assert!(
            matches!(dup, SequenceCheck::Duplicate(m) if m.first_offset == 0 && m.last_offset == 1)
        );
        assert!(matches!(
            ProducerEntry::check(state.entry(1), &header(1, 0, 10, 1, 5)),
            Err(LogError::OutOfOrderSequence {
                expected: 9,
                received: 10,
                ..
            })
        ));
        assert_eq!(
            ProducerEntry::check(state.entry(1), &header(1, 0, 9, 1, 5)).unwrap(),
            SequenceCheck::Append
        );
        assert!(matches!(
            ProducerEntry::check(state.entry(1), &header(1, 1, 3, 1, 5)),
            Err(LogError::OutOfOrderSequence { expected: 0, .. })
        ));
        state.update(&header(1, 1, 0, 1, 5));
        assert!(matches!(
            ProducerEntry::check(state.entry(1), &header(1, 0, 9, 1, 6)),
            Err(LogError::InvalidProducerEpoch)
        ));
    }

    #[test]
    fn only_five_batches_are_remembered() {
        let mut state = ProducerStateManager::default();
        for i in 0..7 {
            state.update(&header(1, 0, i, 1, i64::from(i)));
        }
        let entry = state.entry(1).unwrap();
        assert_eq!(entry.batches.len(), 5);
        assert_eq!(entry.batches[0].first_seq, 2);
    }

    #[test]
    fn snapshot_round_trips_and_rejects_corruption() {
        let mut state = ProducerStateManager::default();
        state.update(&header(1, 0, 0, 3, 0));
        state.update(&header(2, 4, 0, 1, 3));
        let bytes = state.encode();
        assert_eq!(ProducerStateManager::decode(&bytes).unwrap(), state);
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x40;
            assert!(ProducerStateManager::decode(&bad).is_none());
        }
        assert!(ProducerStateManager::decode(&bytes[..bytes.len() - 1]).is_none());
    }

    #[test]
    fn idle_producers_expire() {
        let mut state = ProducerStateManager::default();
        state.update(&header(1, 0, 0, 1, 0));
        assert_eq!(state.expire(1000, 10_000), 0);
        assert_eq!(state.expire(20_000, 10_000), 1);
        assert!(state.is_empty());
    }
}
