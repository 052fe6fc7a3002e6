//! The leader-epoch cache: for each leader epoch that wrote to the log, the
//! offset of its first record. A follower asks the leader where its latest
//! epoch ends (OffsetsForLeaderEpoch) and truncates what the leader does
//! not have, so replicas that diverged at a leader change converge again
//! (Kafka's KIP-101 and KIP-279).
//!
//! ```text
//! batches: [0..9 epoch 0] [10..19 epoch 2] [20..29 epoch 5], log end 30
//! cache:   (0, 0) (2, 10) (5, 20)
//! end_offset_for(5) = (5, 30)   end_offset_for(3) = (2, 20)
//! end_offset_for(1) = (0, 10)   end_offset_for(6) = None
//! ```
//!
//! Persisted as `leader-epoch-checkpoint` in Kafka's text format: the
//! version (`0`), the entry count, then one `epoch start_offset` line per
//! entry. The file is rewritten (through a temporary file, fsynced) on every
//! change, *before* the records that caused it are written, so after a crash
//! the file may name epochs whose records never reached the log — those
//! start at or past the recovered log end and are dropped at open — but
//! never misses an epoch the log holds. A missing or garbled file is rebuilt
//! from the batch headers' `partition_leader_epoch`.

use std::io;
use std::path::Path;

use runnel_model::{LeaderEpoch, Offset};

use crate::log::Log;
use crate::segment::Segment;
use crate::storage_io::{replace_file, StorageIo};

/// The file holding the cache, in the partition directory.
pub(crate) const LEADER_EPOCH_CHECKPOINT_FILE: &str = "leader-epoch-checkpoint";
/// The only format version Kafka has written.
const CHECKPOINT_VERSION: u32 = 0;

/// `(epoch, start offset)` entries, strictly increasing in both.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct LeaderEpochCache {
    entries: Vec<(LeaderEpoch, Offset)>,
}

impl LeaderEpochCache {
    /// The entries, oldest first.
    pub(crate) fn entries(&self) -> &[(LeaderEpoch, Offset)] {
        &self.entries
    }

    /// The newest entry.
    pub(crate) fn latest(&self) -> Option<(LeaderEpoch, Offset)> {
        self.entries.last().copied()
    }

    /// Records that `epoch` starts at `start_offset`. Returns whether the
    /// cache changed: an epoch not above the latest is ignored (it is
    /// already known), and so, with a warning, is a start offset below the
    /// latest entry's (the caller's bug: epochs only move forward in the
    /// log). A start offset *equal* to the latest entry's replaces that
    /// entry — the older epoch wrote nothing — as Kafka does.
    pub(crate) fn assign(&mut self, epoch: LeaderEpoch, start_offset: Offset) -> bool {
        if epoch.0 < 0 || start_offset.0 < 0 {
            tracing::warn!(%epoch, %start_offset, "ignoring a negative leader epoch or start offset");
            return false;
        }
        match self.latest() {
            Some((latest, _)) if epoch <= latest => false,
            Some((latest, start)) if start_offset < start => {
                tracing::warn!(%epoch, %start_offset, latest_epoch = %latest, latest_start = %start,
                    "ignoring a leader epoch that starts before the latest one");
                false
            }
            Some((_, start)) if start_offset == start => {
                if let Some(last) = self.entries.last_mut() {
                    *last = (epoch, start_offset);
                }
                true
            }
            _ => {
                self.entries.push((epoch, start_offset));
                true
            }
        }
    }

    /// Kafka's `LeaderEpochFileCache.endOffsetFor`: the largest epoch at
    /// most `requested` and the offset where it ends (the start of the next
    /// epoch, or `log_end_offset` for the latest). `None` when the answer
    /// is undefined: an empty cache, a negative epoch, or one above every
    /// epoch known. A requested epoch older than every entry gives itself
    /// and the first entry's start.
    pub(crate) fn end_offset_for(
        &self,
        requested: LeaderEpoch,
        log_end_offset: Offset,
    ) -> Option<(LeaderEpoch, Offset)> {
        let (latest, _) = self.latest()?;
        if requested.0 < 0 {
            return None;
        }
        if requested == latest {
            return Some((latest, log_end_offset));
        }
        let higher = self.entries.partition_point(|&(e, _)| e <= requested);
        let (_, end) = *self.entries.get(higher)?;
        match higher.checked_sub(1) {
            None => Some((requested, end)),
            Some(floor) => Some((self.entries[floor].0, end)),
        }
    }

    /// Drops the entries starting at or past `end_offset` (the log was
    /// truncated there). Returns whether any was dropped.
    pub(crate) fn truncate_from_end(&mut self, end_offset: Offset) -> bool {
        let keep = self.entries.partition_point(|&(_, s)| s < end_offset);
        let changed = keep < self.entries.len();
        self.entries.truncate(keep);
        changed
    }

    /// Forgets the epochs wholly below `start_offset` (the log start moved
    /// there): the last entry starting at or below it is kept and now
    /// starts at `start_offset`, as Kafka's `truncateFromStart`. Returns
    /// whether the cache changed.
    pub(crate) fn truncate_from_start(&mut self, start_offset: Offset) -> bool {
        let at_or_below = self.entries.partition_point(|&(_, s)| s <= start_offset);
        let Some(last) = at_or_below.checked_sub(1) else {
            return false;
        };
        if last == 0 && self.entries[0].1 == start_offset {
            return false;
        }
        let epoch = self.entries[last].0;
        self.entries.drain(..last);
        self.entries[0] = (epoch, start_offset);
        true
    }

    /// Forgets every entry.
    pub(crate) fn clear(&mut self) {
        self.entries.clear();
    }

    /// The checkpoint file's text.
    pub(crate) fn encode(&self) -> String {
        let mut text = format!("{CHECKPOINT_VERSION}\n{}\n", self.entries.len());
        for (epoch, start) in &self.entries {
            text.push_str(&format!("{epoch} {start}\n"));
        }
        text
    }

    /// Parses a checkpoint file; `None` unless it is exactly version 0,
    /// the count, and that many entries strictly increasing in both fields
    /// and not negative.
    pub(crate) fn decode(text: &str) -> Option<LeaderEpochCache> {
        let mut lines = text.lines();
        if lines.next()?.trim().parse::<u32>().ok()? != CHECKPOINT_VERSION {
            return None;
        }
        let count = lines.next()?.trim().parse::<usize>().ok()?;
        let mut cache = LeaderEpochCache::default();
        for _ in 0..count {
            let mut fields = lines.next()?.split_whitespace();
            let epoch = LeaderEpoch(fields.next()?.parse().ok()?);
            let start = Offset(fields.next()?.parse().ok()?);
            if fields.next().is_some() || epoch.0 < 0 || start.0 < 0 {
                return None;
            }
            let ordered = cache.latest().is_none_or(|(e, s)| epoch > e && start > s);
            if !ordered {
                return None;
            }
            cache.entries.push((epoch, start));
        }
        if lines.any(|line| !line.trim().is_empty()) {
            return None;
        }
        Some(cache)
    }

    /// Reads the checkpoint in `dir`; `None` if it is missing or garbled.
    pub(crate) fn load(dir: &Path) -> Option<LeaderEpochCache> {
        let text = std::fs::read_to_string(dir.join(LEADER_EPOCH_CHECKPOINT_FILE)).ok()?;
        let cache = LeaderEpochCache::decode(&text);
        if cache.is_none() {
            tracing::warn!(dir = %dir.display(), "garbled leader-epoch checkpoint; rebuilding it from the batch headers");
        }
        cache
    }

    /// Rebuilds the cache from the batch headers of `segments`: each epoch
    /// (negative ones, written by clients or before replication, ignored)
    /// starts at the first batch carrying it.
    pub(crate) fn rebuild(segments: &[Segment]) -> io::Result<LeaderEpochCache> {
        let mut cache = LeaderEpochCache::default();
        for segment in segments {
            let mut position = 0;
            while let Some((at, header)) = segment.scan_from(position, |_| true)? {
                let epoch = LeaderEpoch(header.partition_leader_epoch);
                if epoch.0 >= 0 && cache.latest().is_none_or(|(latest, _)| epoch > latest) {
                    cache.assign(epoch, Offset(header.base_offset));
                }
                position = at + header.total_len() as u64;
            }
        }
        Ok(cache)
    }

    /// Writes the checkpoint to `dir` (temporary file, fsync, rename).
    pub(crate) fn write(&self, io: &dyn StorageIo, dir: &Path) -> io::Result<()> {
        replace_file(
            io,
            dir,
            LEADER_EPOCH_CHECKPOINT_FILE,
            self.encode().as_bytes(),
            true,
        )
    }
}

impl Log {
    /// The epoch of the newest leader that wrote to this log (or was
    /// recorded by [`Log::assign_epoch`]); `None` before any.
    pub fn latest_epoch(&self) -> Option<LeaderEpoch> {
        self.epochs.latest().map(|(epoch, _)| epoch)
    }

    /// Records that leader epoch `epoch` starts at `start_offset`; the
    /// broker calls it when this replica becomes leader, with the log end
    /// offset. Persists the checkpoint. Does nothing if `epoch` is not
    /// above the latest epoch, or (with a warning: the caller's bug) if
    /// `start_offset` is below the latest entry's start.
    ///
    /// ```text
    /// epochs (0, 0) (2, 10), log_end_offset 20
    /// assign_epoch(5, 20) -> (0, 0) (2, 10) (5, 20)
    /// assign_epoch(4, 25) -> unchanged
    /// ```
    ///
    /// An entry at the log end that no record follows is dropped when the
    /// log is reopened (as in Kafka); the broker assigns it again when it
    /// becomes leader.
    pub fn assign_epoch(
        &mut self,
        epoch: LeaderEpoch,
        start_offset: Offset,
    ) -> Result<(), crate::LogError> {
        self.check_online()?;
        let before = self.epochs.clone();
        if self.epochs.assign(epoch, start_offset) || self.epochs_unsaved {
            if let Err(err) = self.save_epochs() {
                self.epochs = before;
                return Err(crate::LogError::from_write(err));
            }
        }
        Ok(())
    }

    /// OffsetsForLeaderEpoch: the largest epoch at most `requested` and the
    /// offset where it ends, by Kafka's rules.
    ///
    /// ```text
    /// epochs (0, 0) (2, 10) (5, 20), log_end_offset 30
    /// 5 -> (5, 30)   3 -> (2, 20)   2 -> (2, 20)   1 -> (0, 10)
    /// 6 -> None      -1 -> None     empty cache -> None
    /// ```
    ///
    /// A requested epoch below every entry (the log start moved past it)
    /// gives `(requested, first entry's start)`.
    pub fn end_offset_for_epoch(&self, requested: LeaderEpoch) -> Option<(LeaderEpoch, Offset)> {
        self.epochs.end_offset_for(requested, self.log_end_offset())
    }

    /// Every `(epoch, start offset)` entry, oldest first (tests and
    /// diagnostics).
    pub fn epoch_entries(&self) -> Vec<(LeaderEpoch, Offset)> {
        self.epochs.entries().to_vec()
    }

    /// Writes the epoch checkpoint, and on success forgets that an earlier
    /// write failed.
    pub(crate) fn save_epochs(&mut self) -> io::Result<()> {
        self.epochs.write(&*self.io, &self.dir)?;
        self.epochs_unsaved = false;
        Ok(())
    }

    /// Persists the epoch cache after a change that is already on disk
    /// (truncation, a moved log start, a rolled-back write). A failure is
    /// logged and the checkpoint is written again with the next epoch
    /// change, append that records epochs, or close: until then the file
    /// holds only entries the log no longer has, which an open drops or
    /// clamps unless records of an older epoch are appended over them.
    pub(crate) fn write_epochs_best_effort(&mut self) {
        if let Err(err) = self.save_epochs() {
            self.epochs_unsaved = true;
            tracing::warn!(partition = %self.partition_name(), %err, "could not write the leader-epoch checkpoint");
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn cache(entries: &[(i32, i64)]) -> LeaderEpochCache {
        let mut cache = LeaderEpochCache::default();
        for &(epoch, start) in entries {
            assert!(cache.assign(LeaderEpoch(epoch), Offset(start)));
        }
        cache
    }

    fn end(cache: &LeaderEpochCache, requested: i32) -> Option<(i32, i64)> {
        cache
            .end_offset_for(LeaderEpoch(requested), Offset(30))
            .map(|(e, o)| (e.0, o.0))
    }

    #[test]
    fn end_offset_for_follows_kafka() {
        let c = cache(&[(0, 0), (2, 10), (5, 20)]);
        assert_eq!(end(&c, 5), Some((5, 30)));
        assert_eq!(end(&c, 3), Some((2, 20)));
        assert_eq!(end(&c, 2), Some((2, 20)));
        assert_eq!(end(&c, 1), Some((0, 10)));
        assert_eq!(end(&c, 0), Some((0, 10)));
        assert_eq!(end(&c, 6), None);
        assert_eq!(end(&c, -1), None);
        assert_eq!(end(&LeaderEpochCache::default(), 0), None);
        let late = cache(&[(3, 100), (4, 120)]);
        assert_eq!(end(&late, 1), Some((1, 100)));
    }

    #[test]
    fn assign_only_moves_forward() {
        let mut c = cache(&[(1, 5)]);
        assert!(!c.assign(LeaderEpoch(1), Offset(9)));
        assert!(!c.assign(LeaderEpoch(0), Offset(9)));
        assert!(!c.assign(LeaderEpoch(2), Offset(4)));
        assert!(!c.assign(LeaderEpoch(-1), Offset(9)));
        assert!(c.assign(LeaderEpoch(2), Offset(5)));
        assert_eq!(c.entries(), &[(LeaderEpoch(2), Offset(5))]);
        assert!(c.assign(LeaderEpoch(3), Offset(7)));
        assert_eq!(c.entries().len(), 2);
    }

    #[test]
    fn truncation_from_either_end() {
        let mut c = cache(&[(0, 0), (2, 10), (5, 20)]);
        assert!(!c.truncate_from_end(Offset(21)));
        assert!(c.truncate_from_end(Offset(20)));
        assert_eq!(c, cache(&[(0, 0), (2, 10)]));
        assert!(c.truncate_from_start(Offset(12)));
        assert_eq!(c, cache(&[(2, 12)]));
        assert!(!c.truncate_from_start(Offset(12)));
        assert!(!c.truncate_from_start(Offset(3)));
        let mut c = cache(&[(0, 0), (2, 10)]);
        assert!(c.truncate_from_start(Offset(10)));
        assert_eq!(c, cache(&[(2, 10)]));
    }

    #[test]
    fn checkpoint_text_is_kafkas_and_garbage_is_refused() {
        let c = cache(&[(0, 0), (2, 10), (5, 20)]);
        assert_eq!(c.encode(), "0\n3\n0 0\n2 10\n5 20\n");
        assert_eq!(LeaderEpochCache::decode(&c.encode()), Some(c.clone()));
        assert_eq!(
            LeaderEpochCache::decode("0\n0\n"),
            Some(LeaderEpochCache::default())
        );
        for bad in [
            "",
            "1\n0\n",
            "0\n2\n0 0\n",
            "0\n1\n0 0\n1 5\n",
            "0\n2\n2 10\n1 20\n",
            "0\n2\n1 10\n2 10\n",
            "0\n1\n-1 0\n",
            "0\n1\n0 x\n",
            "0\n1\n0 0 0\n",
            "0\n99999999999999999999\n",
        ] {
            assert_eq!(LeaderEpochCache::decode(bad), None, "{bad:?}");
        }
    }
}
