//! Appending to the log: a client's batches ([`Log::append`]), the same
//! stamped with the leader's epoch ([`Log::append_as_leader`]), and a
//! leader's batches copied verbatim by a follower
//! ([`Log::append_as_follower`]). All three end in one writer that rolls
//! the active segment when due, records the leader epochs the batches
//! start, writes and indexes them, and rolls a failed write back.

use std::collections::HashMap;

use runnel_model::{LeaderEpoch, Offset, Timestamp};
use runnel_protocol::batch::{
    set_base_offset, set_log_append_time, set_partition_leader_epoch, split_batches,
    validate_batch, BatchError, BatchHeader, MIN_BATCH_LENGTH,
};

use crate::log::{AppendInfo, AppendOutcome, Log};
use crate::producer_state::{ProducerEntry, SequenceCheck};
use crate::segment::Segment;
use crate::{LogError, TimestampType};

/// Where the bytes a batch's CRC covers start (the attributes).
const CRC_COVERED_FROM: usize = 21;

/// The times a write decides a `segment.ms` roll by.
#[derive(Debug, Clone, Copy)]
struct RollClock {
    /// The wall clock (a new segment's creation time).
    now: Timestamp,
    /// Compared with the active segment's first batch timestamp: the
    /// broker's time for a leader's append, the newest record's for a
    /// follower's.
    records_ms: i64,
}

impl Log {
    /// Appends one or more client batches. All or nothing: on any error
    /// the log (files, offsets, producer state) is as it was before.
    ///
    /// Each batch is re-validated (magic, length, CRC, `max.message.bytes`),
    /// idempotent sequences are checked, offsets are assigned in place from
    /// the log end offset (and `LogAppendTime` stamped when configured), the
    /// bytes are written to the active segment (rolled first by
    /// `segment.bytes`, `segment.ms` or a full index) and indexed. The
    /// batches' `partition_leader_epoch` is left as the client sent it and
    /// the leader-epoch cache is not touched: this is the unreplicated path
    /// (see [`Log::append_as_leader`]).
    ///
    /// A failed write is rolled back: [`LogError::DiskFull`] on ENOSPC and
    /// [`LogError::Io`] otherwise, the log staying online; a roll that
    /// cannot create the new segment fails the same way, leaving the old
    /// active segment in place, and is retried by the next append.
    ///
    /// ```text
    /// before: log_end_offset = 10
    /// append(batch of 3, batch of 2) -> Appended { base_offset: 10, last_offset: 14 }
    /// after:  log_end_offset = 15
    /// ```
    pub fn append(
        &mut self,
        records: &mut [u8],
        now: Timestamp,
    ) -> Result<AppendOutcome, LogError> {
        self.append_assigning(records, now, None)
    }

    /// [`Log::append`] on the partition's leader: also stamps
    /// `partition_leader_epoch = leader_epoch` into every batch header
    /// (outside the CRC, so nothing is recomputed) and, when `leader_epoch`
    /// is above the latest epoch, records in the leader-epoch cache that it
    /// starts at the append's base offset (the checkpoint is written before
    /// the records, and restored if their write fails). A duplicate writes
    /// nothing and records no epoch.
    ///
    /// ```text
    /// before: log_end_offset = 10, epochs (0, 0)
    /// append_as_leader(batch of 3, epoch 2) -> Appended { base_offset: 10, last_offset: 12 }
    /// after:  log_end_offset = 13, epochs (0, 0) (2, 10)
    /// ```
    pub fn append_as_leader(
        &mut self,
        records: &mut [u8],
        now: Timestamp,
        leader_epoch: LeaderEpoch,
    ) -> Result<AppendOutcome, LogError> {
        self.append_assigning(records, now, Some(leader_epoch))
    }

    /// Appends batches fetched from the leader, verbatim: their offsets,
    /// timestamps and leader epochs were assigned there.
    ///
    /// Every whole batch is validated (framing, magic, CRC; not
    /// `max.message.bytes`, which the leader enforced — but a batch larger
    /// than a segment is still [`LogError::RecordTooLarge`]). A trailing
    /// partial batch, as a fetch response cut at its byte limit ends with,
    /// is ignored. The first batch may not start below the log end offset
    /// nor a batch below the end of the one before it
    /// ([`LogError::NonContiguousAppend`]); a batch may start *past* it, as
    /// after the leader's cleaner removed whole batches (Kafka accepts the
    /// same gaps). On any validation error nothing is written.
    ///
    /// Producer state is updated from the headers without sequence checks
    /// (the leader checked them), and each batch whose
    /// `partition_leader_epoch` is above the latest epoch starts that epoch
    /// in the cache. Returns `None` when there was no whole batch.
    ///
    /// The batches are written in runs of at most `segment.bytes`, each
    /// rolling the active segment when due, so a fetch larger than a
    /// segment is split across segments rather than refused. A failed
    /// write is rolled back as in [`Log::append`]; a run that was written
    /// before it stays (the log end offset says where to fetch next).
    ///
    /// ```text
    /// before: log_end_offset = 10
    /// append_as_follower([10..12 epoch 3] [13..13 epoch 3] [14.. cut short])
    ///     -> Some(AppendInfo { base_offset: 10, last_offset: 13 })
    /// after:  log_end_offset = 14, epochs (.., (3, 10))
    /// append_as_follower([12..15]) -> Err(NonContiguousAppend { expected: 14, found: 12 })
    /// ```
    pub fn append_as_follower(&mut self, records: &[u8]) -> Result<Option<AppendInfo>, LogError> {
        self.check_online()?;
        let batches = self.follower_batches(records)?;
        let (Some(&(_, first)), Some(&(_, last))) = (batches.first(), batches.last()) else {
            return Ok(None);
        };
        let now = Timestamp::now();
        let run_bytes_max = self.config.segment_bytes_max();
        let mut start = 0;
        while start < batches.len() {
            let from = batches[start].0;
            let mut end = start;
            let mut to = from;
            while let Some((at, header)) = batches.get(end) {
                let batch_end = at + header.total_len();
                if end > start && (batch_end - from) as u64 > run_bytes_max {
                    break;
                }
                to = batch_end;
                end += 1;
            }
            let run: Vec<(usize, BatchHeader)> = batches[start..end]
                .iter()
                .map(|&(at, header)| (at - from, header))
                .collect();
            // Kafka's follower rolls by `segment.ms` on the records' own
            // timestamps, not the wall clock, so that catching up on old
            // records does not roll a segment per fetch.
            let newest = run.iter().map(|(_, h)| h.max_timestamp).max();
            let clock = RollClock {
                now,
                records_ms: newest.unwrap_or(now.0),
            };
            self.write_batches(&records[from..to], &run, clock, true)?;
            for (_, header) in &run {
                self.producers.update(header);
            }
            start = end;
        }
        Ok(Some(AppendInfo {
            base_offset: Offset(first.base_offset),
            last_offset: Offset(last.last_offset()),
            log_append_time: Timestamp::NONE,
            log_start_offset: self.log_start_offset(),
        }))
    }

    /// The whole batches of a follower's fetch, validated, in offset order
    /// from the log end (see [`Log::append_as_follower`]).
    fn follower_batches(&self, records: &[u8]) -> Result<Vec<(usize, BatchHeader)>, LogError> {
        let segment_bytes_max = self.config.segment_bytes_max();
        let mut expected = self.log_end_offset().0;
        let mut batches = Vec::new();
        for item in split_batches(records) {
            let (at, header) = match item {
                Ok(item) => item,
                // The last batch of a fetch response may be cut short.
                Err(BatchError::TooShort { .. }) => break,
                Err(err) => return Err(err.into()),
            };
            let len = header.total_len();
            if len as u64 > segment_bytes_max {
                return Err(LogError::RecordTooLarge {
                    size: len as u64,
                    max: segment_bytes_max,
                });
            }
            validate_replicated_batch(&records[at..at + len])?;
            if header.base_offset < expected {
                return Err(LogError::NonContiguousAppend {
                    expected: Offset(expected),
                    found: Offset(header.base_offset),
                });
            }
            expected = header.last_offset().saturating_add(1);
            batches.push((at, header));
        }
        Ok(batches)
    }

    /// [`Log::append`], stamping `leader_epoch` when given.
    fn append_assigning(
        &mut self,
        records: &mut [u8],
        now: Timestamp,
        leader_epoch: Option<LeaderEpoch>,
    ) -> Result<AppendOutcome, LogError> {
        self.check_online()?;
        let mut batches = self.client_batches(records)?;
        let log_end_offset = self.log_end_offset().0;
        let mut next = log_end_offset;
        let mut changed: HashMap<i64, ProducerEntry> = HashMap::new();
        let append_time = self.config.timestamp_type == TimestampType::LogAppendTime;
        for (_, header) in batches.iter_mut() {
            if header.has_producer_id() && !header.is_control() {
                let pid = header.producer_id;
                let entry = changed.get(&pid).or_else(|| self.producers.entry(pid));
                if let SequenceCheck::Duplicate(original) = ProducerEntry::check(entry, header)? {
                    return Ok(AppendOutcome::Duplicate(AppendInfo {
                        base_offset: Offset(original.first_offset),
                        last_offset: Offset(original.last_offset),
                        log_append_time: Timestamp::NONE,
                        log_start_offset: self.log_start_offset(),
                    }));
                }
            }
            header.base_offset = next;
            if append_time {
                header.max_timestamp = now.0;
                header.attributes |= 0x08;
            }
            if let Some(epoch) = leader_epoch {
                header.partition_leader_epoch = epoch.0;
            }
            if header.has_producer_id() && !header.is_control() {
                let pid = header.producer_id;
                let base = self.producers.entry(pid).cloned();
                changed
                    .entry(pid)
                    .or_insert_with(|| {
                        base.unwrap_or_else(|| ProducerEntry {
                            epoch: header.producer_epoch,
                            ..ProducerEntry::default()
                        })
                    })
                    .update(header);
            }
            next = header.last_offset() + 1;
        }
        for (at, header) in &batches {
            let batch = &mut records[*at..*at + header.total_len()];
            set_base_offset(batch, Offset(header.base_offset))?;
            if let Some(epoch) = leader_epoch {
                set_partition_leader_epoch(batch, epoch)?;
            }
            if append_time {
                set_log_append_time(batch, now)?;
            }
        }

        let clock = RollClock {
            now,
            records_ms: now.0,
        };
        self.write_batches(records, &batches, clock, leader_epoch.is_some())?;
        self.producers.commit(changed);
        Ok(AppendOutcome::Appended(AppendInfo {
            base_offset: Offset(log_end_offset),
            last_offset: Offset(next - 1),
            log_append_time: if append_time { now } else { Timestamp::NONE },
            log_start_offset: self.log_start_offset(),
        }))
    }

    /// The batches of a client's append, validated: framing, magic, CRC,
    /// record counts, `max.message.bytes`, and the whole append within a
    /// segment.
    fn client_batches(&self, records: &[u8]) -> Result<Vec<(usize, BatchHeader)>, LogError> {
        let max_message_bytes = self.config.max_message_bytes as usize;
        let mut batches: Vec<(usize, BatchHeader)> = Vec::new();
        for item in split_batches(records) {
            let (at, header) = item?;
            let len = header.total_len();
            if len > max_message_bytes {
                return Err(LogError::RecordTooLarge {
                    size: len as u64,
                    max: max_message_bytes as u64,
                });
            }
            validate_batch(&records[at..at + len], max_message_bytes)?;
            batches.push((at, header));
        }
        if batches.is_empty() {
            return Err(BatchError::CorruptRecord("no record batch in the append".into()).into());
        }
        if records.len() as u64 > self.config.segment_bytes_max() {
            return Err(LogError::RecordTooLarge {
                size: records.len() as u64,
                max: self.config.segment_bytes_max(),
            });
        }
        Ok(batches)
    }

    /// Writes `records`, whole batches with offsets assigned whose headers
    /// (and positions in `records`) are `batches`, at the log end: rolls
    /// first if due by `clock`; with `record_epochs`, records in the leader-epoch cache
    /// (and its checkpoint) every epoch the batches start; writes and
    /// indexes them. A failed write is rolled back, the epoch cache with
    /// it.
    fn write_batches(
        &mut self,
        records: &[u8],
        batches: &[(usize, BatchHeader)],
        clock: RollClock,
        record_epochs: bool,
    ) -> Result<(), LogError> {
        let Some((_, last)) = batches.last() else {
            return Ok(());
        };
        if self.active().should_roll(
            &self.config,
            records.len() as u64,
            last.last_offset(),
            clock.records_ms,
        ) {
            self.roll(clock.now)?;
        }
        let epochs_before = if record_epochs {
            self.record_epoch_starts(batches)?
        } else {
            None
        };
        let config = self.config.clone();
        let mark = self.active().mark();
        if let Err(err) = self.active_mut().append(records, batches, &config) {
            let err = self.undo_failed_write(&mark, "segment write", err);
            if let Some(before) = epochs_before {
                self.epochs = before;
                self.write_epochs_best_effort();
            }
            return Err(err);
        }
        Ok(())
    }

    /// Records the leader epochs `batches` start (each non-negative
    /// `partition_leader_epoch` above the latest, at its batch's base
    /// offset) and persists the cache, before the batches are written: a
    /// crash in between leaves entries at the log end, which the next open
    /// drops. Returns the cache as it was if it changed, to restore if the
    /// write fails.
    fn record_epoch_starts(
        &mut self,
        batches: &[(usize, BatchHeader)],
    ) -> Result<Option<crate::leader_epoch::LeaderEpochCache>, LogError> {
        let before = self.epochs.clone();
        let mut changed = false;
        for (_, header) in batches {
            let epoch = LeaderEpoch(header.partition_leader_epoch);
            if epoch.0 >= 0 && self.latest_epoch().is_none_or(|latest| epoch > latest) {
                changed |= self.epochs.assign(epoch, Offset(header.base_offset));
            }
        }
        if !changed && !self.epochs_unsaved {
            return Ok(None);
        }
        if let Err(err) = self.save_epochs() {
            self.epochs = before;
            return Err(LogError::from_write(err));
        }
        Ok(Some(before))
    }

    /// Closes the active segment and starts a new one at the log end offset,
    /// snapshotting producer state there. Does nothing if the active segment
    /// is empty.
    ///
    /// If the new segment's files cannot be created (a full disk), those
    /// created are removed and the old segment stays active; the final
    /// time-index entry the old segment got is valid either way.
    pub(crate) fn roll(&mut self, now: Timestamp) -> Result<(), LogError> {
        if self.active().size() == 0 {
            return Ok(());
        }
        let mark = self.active().mark();
        if let Err(err) = self.active_mut().seal() {
            return Err(self.undo_failed_write(&mark, "time index write at roll", err));
        }
        let base = self.log_end_offset().0;
        let segment = match Segment::create(&self.dir, base, now.0, std::sync::Arc::clone(&self.io))
        {
            Ok(segment) => segment,
            Err(err) => {
                tracing::warn!(partition = %self.partition_name(), base, %err, "could not roll to a new segment");
                return Err(LogError::from_write(err));
            }
        };
        self.segments.push(segment);
        if let Err(err) = self
            .producers
            .write_snapshot(&*self.io, &self.dir, base, false)
        {
            tracing::warn!(partition = %self.partition_name(), %err, "producer state snapshot failed");
        }
        Ok(())
    }
}

/// Validates one batch a leader stored, exactly filling `buf`: magic 2, a
/// consistent length, the CRC, a known codec and sane offsets. Unlike
/// [`validate_batch`] it accepts what the cleaner leaves on a compacted
/// leader: batches with no records and a last offset delta beyond their
/// record count.
fn validate_replicated_batch(buf: &[u8]) -> Result<BatchHeader, BatchError> {
    let header = BatchHeader::parse(buf)?;
    if header.magic != 2 {
        return Err(BatchError::UnsupportedMagic(header.magic));
    }
    if header.batch_length < MIN_BATCH_LENGTH || header.total_len() != buf.len() {
        return Err(BatchError::CorruptRecord(format!(
            "batch length {} does not frame the {} bytes received",
            header.batch_length,
            buf.len()
        )));
    }
    let computed = crc32c::crc32c(&buf[CRC_COVERED_FROM..]);
    if computed != header.crc {
        return Err(BatchError::Crc {
            stored: header.crc,
            computed,
        });
    }
    header.compression()?;
    if header.base_offset < 0 || header.last_offset_delta < 0 || header.records_count < 0 {
        return Err(BatchError::InvalidRecord(format!(
            "batch at offset {} has last offset delta {} and {} records",
            header.base_offset, header.last_offset_delta, header.records_count
        )));
    }
    Ok(header)
}
