//! The partition log: an ordered list of segments, the last one active.
//!
//! ```text
//! segments:  [0 .. 99] [100 .. 249] [250 .. )   <- active
//! log_start_offset = 0, log_end_offset = 312 (next offset to assign)
//! append(3 records)  -> offsets 312..=314, log_end_offset = 315
//! delete_records_before(120) -> first segment removed, log_start_offset = 120
//! ```

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use runnel_model::{Offset, Timestamp};
use runnel_protocol::batch::stored_record_infos;

use crate::checkpoint::{self, LOG_START_OFFSET_FILE, RECOVERY_POINT_FILE};
use crate::cleaner::CleanerState;
use crate::leader_epoch::LeaderEpochCache;
use crate::producer_state::ProducerStateManager;
use crate::segment::{Segment, SegmentMark};
use crate::storage_io::{StdIo, StorageIo};
use crate::{LogConfig, LogError};

pub use crate::recovery::RecoveryReport;

/// Largest decompressed batch `offset_for_timestamp` will decode.
const MAX_DECODE_BYTES: usize = 64 * 1024 * 1024;

/// A byte range of a segment file holding whole batches, for the broker to
/// `sendfile` without the log lock. The file stays readable even if the
/// segment is deleted meanwhile.
#[derive(Debug, Clone)]
pub struct ReadSlice {
    /// The segment's `.log` file.
    pub file: Arc<File>,
    /// Start of the first batch.
    pub position: u64,
    /// Bytes to send; 0 when there is nothing to return.
    pub len: u64,
}

impl ReadSlice {
    /// Reads the range into memory (TLS listeners, tests).
    pub fn read_to_vec(&self) -> io::Result<Vec<u8>> {
        let len = usize::try_from(self.len)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "slice too large"))?;
        let mut buf = vec![0u8; len];
        self.file.read_exact_at(&mut buf, self.position)?;
        Ok(buf)
    }
}

/// Offsets assigned to an append (or, for a duplicate, the original ones).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    /// Offset of the first record.
    pub base_offset: Offset,
    /// Offset of the last record.
    pub last_offset: Offset,
    /// The broker time stamped on the batches; -1 unless `LogAppendTime`.
    pub log_append_time: Timestamp,
    /// The log start offset after the append.
    pub log_start_offset: Offset,
}

/// Result of [`Log::append`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendOutcome {
    /// The batches were written.
    Appended(AppendInfo),
    /// An idempotent producer resent a batch already in the log; nothing was
    /// written and the info carries the original offsets.
    Duplicate(AppendInfo),
}

impl AppendOutcome {
    /// The info of either outcome.
    pub fn info(&self) -> &AppendInfo {
        match self {
            AppendOutcome::Appended(info) | AppendOutcome::Duplicate(info) => info,
        }
    }
}

/// Files to fsync to make the log durable up to an offset; run outside the
/// log lock, then report with [`Log::mark_flushed`].
///
/// A task remembers the log's truncation generation when it was taken. If
/// [`Log::truncate_to`] or [`Log::truncate_fully_and_start_at`] runs before
/// the task is reported, the log it describes is gone: its `up_to` may lie
/// past the new end, later appends there went to bytes or segment files
/// the task never fsynced, and its files may belong to deleted segments.
/// [`Log::mark_flushed`] therefore ignores such a task.
#[derive(Debug, Clone)]
pub struct FlushTask {
    pub(crate) io: Arc<dyn StorageIo>,
    pub(crate) dir: PathBuf,
    pub(crate) files: Vec<Arc<File>>,
    pub(crate) up_to: Offset,
    /// `Log::truncations` when the task was taken.
    pub(crate) generation: u64,
}

impl FlushTask {
    /// Fsyncs the files and the directory. An error is a failed fsync and
    /// must take the log offline ([`Log::mark_offline`]): after it the
    /// kernel may have dropped the dirty pages, so retrying could report
    /// durability that is not there.
    ///
    /// The recovery point is recorded (in memory and in its checkpoint
    /// file) only by [`Log::mark_flushed`], under the log lock: a task
    /// that lost a race with a truncation must not overwrite the
    /// truncation's own, lower checkpoint.
    pub fn run(&self) -> io::Result<()> {
        for file in &self.files {
            self.io.sync_data(file)?;
        }
        self.io.sync_dir(&self.dir)
    }

    /// The offset below which the log is durable once [`FlushTask::run`]
    /// succeeds, unless the log was truncated since the task was taken.
    pub fn up_to(&self) -> Offset {
        self.up_to
    }
}

/// One partition's log. Not thread-safe by itself: the broker wraps it in a
/// mutex and does slow I/O (sendfile, fsync) outside it.
#[derive(Debug)]
pub struct Log {
    pub(crate) dir: PathBuf,
    /// Every change to the files goes through it.
    pub(crate) io: Arc<dyn StorageIo>,
    pub(crate) config: LogConfig,
    /// Never empty; the last is the active segment.
    pub(crate) segments: Vec<Segment>,
    pub(crate) log_start_offset: i64,
    pub(crate) recovery_point: i64,
    pub(crate) last_flush_time: Timestamp,
    pub(crate) producers: ProducerStateManager,
    pub(crate) offline: Option<String>,
    pub(crate) cleaner: CleanerState,
    /// Where each leader epoch starts; persisted on every change.
    pub(crate) epochs: LeaderEpochCache,
    /// A write of the epoch checkpoint failed after a change that could
    /// not be undone; the next chance rewrites it.
    pub(crate) epochs_unsaved: bool,
    /// Truncations of the log's end so far (since the open); a
    /// [`FlushTask`] taken under an older count is stale.
    pub(crate) truncations: u64,
}

impl Log {
    /// Opens or creates the log in `dir`. With `clean_shutdown` the indexes
    /// are trusted and only batch headers after the last index entry are
    /// walked; otherwise every batch after the recovery point is validated
    /// (length, magic, CRC, offsets), the log truncated at the first bad
    /// byte, indexes rebuilt and stray files deleted. The report says what
    /// was dropped.
    pub fn open(
        dir: &Path,
        config: LogConfig,
        clean_shutdown: bool,
    ) -> Result<(Log, RecoveryReport), LogError> {
        crate::recovery::open(
            dir,
            config,
            clean_shutdown,
            Timestamp::now(),
            StdIo::shared(),
        )
    }

    /// [`Log::open`] with every file change going through `io` (a
    /// [`crate::fault_injection::FaultyIo`] in tests).
    pub fn open_with_io(
        dir: &Path,
        config: LogConfig,
        clean_shutdown: bool,
        io: Arc<dyn StorageIo>,
    ) -> Result<(Log, RecoveryReport), LogError> {
        crate::recovery::open(dir, config, clean_shutdown, Timestamp::now(), io)
    }

    /// The partition the log belongs to, as its directory is named
    /// (`<topic>-<partition>`), for logging.
    pub(crate) fn partition_name(&self) -> String {
        self.dir.file_name().map_or_else(
            || self.dir.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        )
    }

    pub(crate) fn check_online(&self) -> Result<(), LogError> {
        match &self.offline {
            Some(reason) => Err(LogError::Offline(reason.clone())),
            None => Ok(()),
        }
    }

    /// Takes the log offline: every later append, read and flush fails
    /// with [`LogError::Offline`] carrying `reason`. Called after a failed
    /// fsync (by [`Log::flush`] itself, or by whoever ran a
    /// [`FlushTask`]) or a write that could not be rolled back. Logged
    /// once; the first reason is kept.
    pub fn mark_offline(&mut self, reason: String) {
        if self.offline.is_none() {
            tracing::error!(partition = %self.partition_name(), %reason, "taking log offline");
            self.offline = Some(reason);
        }
    }

    /// Takes the log offline without reporting a failure (deleted or
    /// closed).
    pub(crate) fn retire(&mut self, reason: &str) {
        self.offline.get_or_insert_with(|| reason.to_owned());
    }

    /// The reason the log is offline, if it is.
    pub fn offline_reason(&self) -> Option<&str> {
        self.offline.as_deref()
    }

    pub(crate) fn poison(&mut self, what: &str, err: io::Error) -> LogError {
        self.mark_offline(format!("{what} failed: {err}"));
        self.check_online().err().unwrap_or(LogError::Io(err))
    }

    /// Undoes a write to the active segment that failed with `err`: cuts
    /// the segment and its indexes back to `mark`, so the files hold
    /// exactly what they held before. The log stays online and the error
    /// is returned as [`LogError::DiskFull`] or [`LogError::Io`]. If the
    /// cut itself fails, part of the write may remain on disk and the log
    /// is taken offline (recovery at the next open removes the torn bytes).
    ///
    /// This departs from Kafka, which takes the log directory offline on any
    /// write error: a rolled-back write leaves a known state, and the kernel
    /// reports a failing device at fsync, which does poison the log.
    pub(crate) fn undo_failed_write(
        &mut self,
        mark: &SegmentMark,
        what: &str,
        err: io::Error,
    ) -> LogError {
        if let Err(undo) = self.active_mut().roll_back(mark) {
            return self.poison(
                what,
                io::Error::new(
                    undo.kind(),
                    format!("{err}, and rolling the write back failed: {undo}"),
                ),
            );
        }
        tracing::warn!(partition = %self.partition_name(), %err, "{what} failed; rolled back");
        LogError::from_write(err)
    }

    pub(crate) fn active(&self) -> &Segment {
        debug_assert!(!self.segments.is_empty());
        &self.segments[self.segments.len() - 1]
    }

    pub(crate) fn active_mut(&mut self) -> &mut Segment {
        let last = self.segments.len() - 1;
        &mut self.segments[last]
    }

    /// Reads whole batches from `offset` up to `max_bytes`, from the one
    /// segment holding `offset`. With `min_one_batch` the first batch is
    /// returned even if larger than `max_bytes` (KIP-74); without, such a
    /// read is empty. `offset == log_end_offset` gives an empty slice.
    /// This is [`Log::read_below`] bounded by the log end offset.
    pub fn read(
        &self,
        offset: Offset,
        max_bytes: u32,
        min_one_batch: bool,
    ) -> Result<ReadSlice, LogError> {
        self.read_below(offset, max_bytes, min_one_batch, self.log_end_offset())
    }

    /// [`Log::read`] returning only whole batches whose last offset is
    /// below `upper` (the high watermark, for a consumer's fetch). A batch
    /// straddling `upper` is left out, so `upper` should be a batch
    /// boundary, as a high watermark is. `offset >= upper` gives an empty
    /// slice; an `offset` outside `[log_start_offset, log_end_offset]` is
    /// still [`LogError::OffsetOutOfRange`]. `upper` above the log end
    /// offset means the log end offset.
    ///
    /// ```text
    /// batches [0..4] [5..9] [10..14], log_end_offset 15
    /// read_below(0, big, true, 10) -> [0..4] [5..9]
    /// read_below(5, big, true, 7)  -> empty ([5..9] straddles 7)
    /// read_below(12, big, true, 10) -> empty
    /// ```
    ///
    /// The bound costs one index lookup and a short header walk in the
    /// segment read from, and none when `upper` is past that segment.
    pub fn read_below(
        &self,
        offset: Offset,
        max_bytes: u32,
        min_one_batch: bool,
        upper: Offset,
    ) -> Result<ReadSlice, LogError> {
        self.check_online()?;
        let log_end_offset = self.log_end_offset();
        if offset.0 < self.log_start_offset || offset > log_end_offset {
            return Err(self.out_of_range(offset));
        }
        let upper = upper.min(log_end_offset);
        let empty = Self::slice(self.active(), self.active().size(), 0);
        if offset >= upper {
            return Ok(empty);
        }
        let first = self
            .segments
            .partition_point(|s| s.base_offset() <= offset.0)
            .saturating_sub(1);
        for segment in &self.segments[first..] {
            let Some((position, header)) = segment.find_batch(offset.0)? else {
                continue;
            };
            if header.last_offset() >= upper.0 {
                return Ok(empty);
            }
            let first_len = header.total_len() as u64;
            let max_bytes = u64::from(max_bytes);
            if first_len > max_bytes && !min_one_batch {
                return Ok(Self::slice(segment, position, 0));
            }
            // Batches from the first one whose last offset reaches `upper`
            // on are not returned.
            let bound = match segment.find_batch(upper.0)? {
                Some((at, _)) => at,
                None => segment.size(),
            };
            let max_bytes = max_bytes.min(bound.saturating_sub(position));
            let end = segment.batches_end(position, first_len, max_bytes)?;
            return Ok(Self::slice(segment, position, end - position));
        }
        Ok(empty)
    }

    fn slice(segment: &Segment, position: u64, len: u64) -> ReadSlice {
        ReadSlice {
            file: Arc::clone(segment.log_file()),
            position,
            len,
        }
    }

    pub(crate) fn out_of_range(&self, offset: Offset) -> LogError {
        LogError::OffsetOutOfRange {
            offset,
            log_start_offset: self.log_start_offset(),
            log_end_offset: self.log_end_offset(),
        }
    }

    /// The first offset still readable.
    pub fn log_start_offset(&self) -> Offset {
        Offset(self.log_start_offset)
    }

    /// The next offset to assign.
    pub fn log_end_offset(&self) -> Offset {
        Offset(self.active().next_offset())
    }

    /// ListOffsets by time: the first record (at or after the log start)
    /// whose timestamp is at least `timestamp`, with its timestamp. The
    /// segment is found by its max timestamp, the batch through the time
    /// index and a header walk, and the record by decoding that batch
    /// (decompressing if needed). `None` if every record is older.
    pub fn offset_for_timestamp(
        &self,
        timestamp: Timestamp,
    ) -> Result<Option<(Offset, Timestamp)>, LogError> {
        self.check_online()?;
        let target = timestamp.0;
        for segment in &self.segments {
            if segment.max_timestamp() < target || segment.next_offset() <= self.log_start_offset {
                continue;
            }
            let mut position = segment.time_lookup_position(target);
            loop {
                let found = segment.scan_from(position, |h| {
                    h.max_timestamp >= target && h.last_offset() >= self.log_start_offset
                })?;
                let Some((at, header)) = found else { break };
                let bytes = segment.read_batch(at, &header)?;
                let hit = match stored_record_infos(&bytes, MAX_DECODE_BYTES) {
                    Ok(records) => records
                        .into_iter()
                        .find(|r| r.timestamp >= target && r.offset >= self.log_start_offset)
                        .map(|r| (r.offset, r.timestamp)),
                    // A batch we cannot decode: answer at batch granularity.
                    Err(_) => Some((
                        header.base_offset.max(self.log_start_offset),
                        header.max_timestamp,
                    )),
                };
                if let Some((offset, ts)) = hit {
                    return Ok(Some((Offset(offset), Timestamp(ts))));
                }
                position = at + header.total_len() as u64;
            }
        }
        Ok(None)
    }

    /// ListOffsets `MAX_TIMESTAMP` (KIP-734): the first record carrying the
    /// log's largest timestamp, and that timestamp. `None` for an empty log.
    pub fn max_timestamp(&self) -> Result<Option<(Offset, Timestamp)>, LogError> {
        self.check_online()?;
        let mut best: Option<&Segment> = None;
        for segment in &self.segments {
            if segment.next_offset() > segment.base_offset()
                && best.is_none_or(|b| segment.max_timestamp() > b.max_timestamp())
            {
                best = Some(segment);
            }
        }
        let Some(segment) = best else {
            return Ok(None);
        };
        let max = segment.max_timestamp();
        let Some((at, header)) = segment.find_batch(segment.offset_of_max_timestamp())? else {
            return Ok(Some((
                Offset(segment.offset_of_max_timestamp()),
                Timestamp(max),
            )));
        };
        let bytes = segment.read_batch(at, &header)?;
        let offset = stored_record_infos(&bytes, MAX_DECODE_BYTES)
            .ok()
            .and_then(|records| records.into_iter().find(|r| r.timestamp == max))
            .map_or(header.last_offset(), |r| r.offset);
        Ok(Some((Offset(offset), Timestamp(max))))
    }

    /// DeleteRecords: raises the log start offset to `offset` and deletes the
    /// segments entirely below it; persists the new start. Returns it.
    ///
    /// ```text
    /// segments [0..99] [100..249] [250..), log_start_offset 0
    /// delete_records_before(120) -> 120; segment 0 deleted
    /// ```
    pub fn delete_records_before(&mut self, offset: Offset) -> Result<Offset, LogError> {
        self.check_online()?;
        if offset.0 < 0 || offset > self.log_end_offset() {
            return Err(self.out_of_range(offset));
        }
        if offset.0 > self.log_start_offset {
            checkpoint::write_offset(&*self.io, &self.dir, LOG_START_OFFSET_FILE, offset.0, true)
                .map_err(LogError::from_write)?;
            self.log_start_offset = offset.0;
            let below = self.segments[1..]
                .iter()
                .take_while(|s| s.base_offset() <= offset.0)
                .count();
            self.delete_oldest(below)?;
            self.truncate_epochs_from_start();
        }
        Ok(self.log_start_offset())
    }

    /// Deletes the `count` oldest segments (never the last one) and moves the
    /// log start offset to the first remaining segment if it is behind.
    fn delete_oldest(&mut self, count: usize) -> Result<(), LogError> {
        let count = count.min(self.segments.len() - 1);
        if count == 0 {
            return Ok(());
        }
        let new_start = self.segments[count]
            .base_offset()
            .max(self.log_start_offset);
        if new_start != self.log_start_offset {
            checkpoint::write_offset(&*self.io, &self.dir, LOG_START_OFFSET_FILE, new_start, true)
                .map_err(LogError::from_write)?;
            self.log_start_offset = new_start;
        }
        for segment in self.segments.drain(..count) {
            segment.delete_files()?;
        }
        if self.recovery_point < self.log_start_offset {
            self.recovery_point = self.log_start_offset;
        }
        self.truncate_epochs_from_start();
        Ok(())
    }

    /// Forgets the leader epochs wholly below the log start (Kafka's
    /// `truncateFromStart`) and persists the cache if it changed.
    fn truncate_epochs_from_start(&mut self) {
        if self.epochs.truncate_from_start(self.log_start_offset()) {
            self.write_epochs_best_effort();
        }
    }

    /// Applies `retention.ms` (a segment whose newest record is older than
    /// `now - retention.ms`) and `retention.bytes` (oldest segments while the
    /// log minus that segment is still at least `retention.bytes`) to a
    /// prefix of the segments. If every segment is expired the active one is
    /// rolled first, as Kafka does. Returns the number of segments deleted.
    /// Does nothing unless `cleanup.policy` contains `delete`.
    pub fn apply_retention(&mut self, now: Timestamp) -> Result<usize, LogError> {
        self.check_online()?;
        if !self.config.cleanup_policy.delete {
            return Ok(0);
        }
        let mut expired = 0;
        if self.config.retention_ms >= 0 {
            for segment in &self.segments {
                if segment.size() == 0 {
                    break;
                }
                let newest = match segment.max_timestamp() {
                    ts if ts >= 0 => ts,
                    _ => segment.last_modified_ms()?,
                };
                if now.0.saturating_sub(newest) > self.config.retention_ms {
                    expired += 1;
                } else {
                    break;
                }
            }
        }
        if self.config.retention_bytes >= 0 {
            let mut excess = self.size_bytes() as i64 - self.config.retention_bytes;
            let mut oversize = 0;
            for segment in &self.segments {
                let size = segment.size() as i64;
                if size == 0 || excess - size < 0 {
                    break;
                }
                excess -= size;
                oversize += 1;
            }
            expired = expired.max(oversize);
        }
        if expired == 0 {
            return Ok(0);
        }
        if expired == self.segments.len() {
            self.roll(now)?;
        }
        self.delete_oldest(expired)?;
        Ok(expired)
    }

    /// Forgets idle idempotent producers (see
    /// [`ProducerStateManager::expire`]). Returns how many were removed.
    pub fn expire_producers(&mut self, now: Timestamp, producer_id_expiration_ms: i64) -> usize {
        self.producers.expire(now.0, producer_id_expiration_ms)
    }

    /// The idempotent producers' state.
    pub fn producer_state(&self) -> &ProducerStateManager {
        &self.producers
    }

    /// Replaces the configuration; applies from the next append or check.
    pub fn set_config(&mut self, config: LogConfig) {
        self.config = config;
    }

    /// The current configuration.
    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    /// Bytes in the segment files (indexes excluded).
    pub fn size_bytes(&self) -> u64 {
        self.segments.iter().map(Segment::size).sum()
    }

    /// Number of segments, the active one included.
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// The directory holding the log.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The files holding data past the recovery point, to fsync outside the
    /// lock; `None` when everything is flushed or the log is offline.
    pub fn flush_task(&self) -> Option<FlushTask> {
        let log_end_offset = self.log_end_offset().0;
        if self.offline.is_some() || self.recovery_point >= log_end_offset {
            return None;
        }
        let files = self
            .segments
            .iter()
            .filter(|s| s.next_offset() > self.recovery_point || s.size() == 0)
            .flat_map(Segment::files)
            .collect();
        Some(FlushTask {
            io: Arc::clone(&self.io),
            dir: self.dir.clone(),
            files,
            up_to: Offset(log_end_offset),
            generation: self.truncations,
        })
    }

    /// Records that `task` ran successfully: the log is durable below its
    /// `up_to`. Raises the recovery point and writes its checkpoint file
    /// (not fsynced: a lost checkpoint only makes the next recovery
    /// validate more; one that cannot be written is logged).
    ///
    /// Ignored once the log is offline (a flush that raced with a failed
    /// one proves nothing) and for a task taken before a truncation (see
    /// [`FlushTask`]): the next flush covers that data again.
    pub fn mark_flushed(&mut self, task: &FlushTask) {
        if self.offline.is_some() {
            return;
        }
        if task.generation != self.truncations {
            tracing::debug!(partition = %self.partition_name(), up_to = %task.up_to, "ignoring a flush taken before a truncation");
            return;
        }
        let up_to = task.up_to.0.min(self.log_end_offset().0);
        if up_to > self.recovery_point {
            self.recovery_point = up_to;
            let written =
                checkpoint::write_offset(&*self.io, &self.dir, RECOVERY_POINT_FILE, up_to, false);
            if let Err(err) = written {
                tracing::warn!(partition = %self.partition_name(), %err, "could not write the recovery point checkpoint");
            }
        }
        self.last_flush_time = Timestamp::now();
    }

    /// Records appended since the last flush.
    pub fn unflushed_messages(&self) -> i64 {
        (self.log_end_offset().0 - self.recovery_point).max(0)
    }

    /// When the last flush completed (the open time before any flush).
    pub fn last_flush_time(&self) -> Timestamp {
        self.last_flush_time
    }

    /// Fsyncs synchronously (shutdown). A failure takes the log offline.
    pub fn flush(&mut self) -> Result<(), LogError> {
        self.check_online()?;
        if let Some(task) = self.flush_task() {
            if let Err(err) = task.run() {
                return Err(self.poison("fsync", err));
            }
            self.mark_flushed(&task);
        }
        Ok(())
    }

    /// Whether a failed write or fsync took the log offline.
    pub fn is_offline(&self) -> bool {
        self.offline.is_some()
    }

    /// Flushes, records the final time-index entry and writes the producer
    /// state snapshot at the log end offset and the leader-epoch
    /// checkpoint, so the next open can trust the files.
    pub fn close(mut self) -> Result<(), LogError> {
        self.close_in_place()
    }

    /// [`Log::close`] for a log shared behind a mutex: afterwards the log is
    /// offline ("closed").
    pub(crate) fn close_in_place(&mut self) -> Result<(), LogError> {
        self.check_online()?;
        let mark = self.active().mark();
        if let Err(err) = self.active_mut().seal() {
            return Err(self.undo_failed_write(&mark, "time index write at close", err));
        }
        for file in self.active().files() {
            if let Err(err) = self.io.sync_data(&file) {
                return Err(self.poison("fsync", err));
            }
        }
        self.flush()?;
        let log_end_offset = self.log_end_offset().0;
        self.producers
            .write_snapshot(&*self.io, &self.dir, log_end_offset, true)
            .map_err(LogError::from_write)?;
        checkpoint::write_offset(
            &*self.io,
            &self.dir,
            LOG_START_OFFSET_FILE,
            self.log_start_offset,
            true,
        )
        .map_err(LogError::from_write)?;
        self.save_epochs().map_err(LogError::from_write)?;
        if let Err(err) = self.io.sync_dir(&self.dir) {
            return Err(self.poison("directory fsync", err));
        }
        self.retire("log closed");
        Ok(())
    }
}
