//! The log cleaner: compaction of logs whose `cleanup.policy` contains
//! `compact`, keeping the latest record of every key. Offsets never change;
//! compaction leaves gaps.
//!
//! A pass ([`Log::compact`], or the [`crate::LogManager`]'s cleaner thread):
//!
//! 1. **Plan**, under the log's lock. The cleanable range runs from the log
//!    start to the *first uncleanable offset*: the active segment's base, or
//!    the base of the first dirty segment holding a record newer than
//!    `min.compaction.lag.ms`. The dirty part starts at the cleaner
//!    checkpoint (`cleaner-offset-checkpoint`): everything before it was
//!    cleaned already, so holds each key at most once.
//! 2. **Map**, without the lock (closed segments never change): key ->
//!    latest offset over the dirty part. Keys are kept whole (no hashing,
//!    so no collision can drop a record), bounded by the dedupe buffer
//!    (`log.cleaner.dedupe.buffer.size`); when it fills, the map ends after
//!    the last batch mapped and the next pass goes on from there.
//! 3. **Clean**, without the lock: every segment below the map's end is
//!    rewritten, adjacent ones merged while they fit one segment
//!    (`segment.bytes`, `segment.index.bytes`), into `.cleaned` files. A
//!    record is kept if it is at or past the map's end, or it has a key and
//!    no later offset for that key is in the map — and, if it is a
//!    tombstone (null value), its batch's delete horizon has not passed.
//!    Records without a key are dropped, as Kafka's cleaner does (a
//!    compacted topic refuses them; they exist only if the topic was
//!    switched from `delete`). Control batches are kept whole. A batch
//!    that keeps a tombstone and has no delete horizon gets one: `now +
//!    delete.retention.ms`, in its base timestamp with attribute bit 6
//!    (KIP-534); a later pass after the horizon removes the tombstone. A
//!    batch left empty is dropped unless it is the last batch of an
//!    idempotent producer (its state must survive a restart's replay) or
//!    the last of its group (so the group still ends where it ended; see
//!    [`crate::segment_swap`]); those stay as empty batches, as Kafka
//!    writes them.
//! 4. **Swap**, under the lock: [`crate::segment_swap::swap_in`], then the
//!    checkpoint moves to the map's end.
//!
//! ```text
//! segments: [0: a=1 b=1 a=2] [3: b=null c=1] [5: a=3 (active)]
//! compact:  map over 0..5 = {a: 2, b: 3, c: 4}; one group [0..5)
//! after:    [0: a=2@2 b=null@3 (horizon now+delete.retention.ms) c=1@4] [5: a=3 (active)]
//! read(0) -> the batch holding offset 2; read(1) -> the same batch
//! after the horizon, once more: [0: a=2@2 c=1@4] [5: …]
//! ```
//!
//! Not done (as Kafka does): removing aborted transactions' records and
//! the markers of finished transactions (there is no transaction index
//! yet), and bounding cleaning by the high watermark (the broker would have
//! to pass it in; on a single node it is the log end).

mod pass;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::io;
use std::path::Path;
use std::sync::Arc;

use parking_lot::Mutex;
use runnel_model::{Offset, Timestamp};
use runnel_protocol::batch::BatchError;

use crate::log::Log;
use crate::segment::{OpenMode, Segment};
use crate::segment_swap::{self, SwapError};
use crate::storage_io::{replace_file, StorageIo};
use crate::{DirtyRatio, LogError};

use pass::{run, CleanError, CleanOutput, CleanPlan, CleanedGroup, SegmentView};

/// Per-partition file holding the offset the log is cleaned up to and the
/// earliest pending tombstone delete horizon (-1 for none).
pub(crate) const CLEANER_CHECKPOINT_FILE: &str = "cleaner-offset-checkpoint";
/// Kafka's `log.cleaner.dedupe.buffer.size` default: 128 MiB.
pub const DEFAULT_DEDUPE_BUFFER_BYTES: u64 = 128 * 1024 * 1024;

/// What one compaction pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompactionReport {
    /// Segments rewritten (merged ones counted each).
    pub segments_cleaned: usize,
    /// Segments they became.
    pub segments_written: usize,
    /// Their bytes before.
    pub bytes_before: u64,
    /// Their bytes after.
    pub bytes_after: u64,
    /// Records removed: superseded, keyless, or tombstones past their
    /// horizon.
    pub records_removed: u64,
    /// Of those, tombstones.
    pub tombstones_removed: u64,
    /// The log is cleaned up to this offset (the new checkpoint).
    pub cleaned_up_to: Offset,
}

/// Where a compacted log stands, to decide whether to clean it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CleanableStatus {
    /// The dirty part starts here.
    pub first_dirty_offset: Offset,
    /// The cleanable range ends here (the active segment's base, or an
    /// earlier segment's by `min.compaction.lag.ms`).
    pub first_uncleanable_offset: Offset,
    /// Bytes of the cleanable segments wholly before the dirty part.
    pub clean_bytes: u64,
    /// Bytes of the cleanable segments holding dirty records.
    pub dirty_bytes: u64,
    /// A dirty record is older than `max.compaction.lag.ms`.
    pub max_lag_exceeded: bool,
    /// A tombstone the cleaner kept has passed its delete horizon.
    pub delete_horizon_passed: bool,
}

impl CleanableStatus {
    /// Dirty bytes over all cleanable bytes; 0 for an empty range.
    pub fn dirty_ratio(&self) -> f64 {
        let total = self.clean_bytes + self.dirty_bytes;
        if total == 0 {
            0.0
        } else {
            self.dirty_bytes as f64 / total as f64
        }
    }

    /// Whether the log should be cleaned now: dirty bytes at least
    /// `min.cleanable.dirty.ratio` of the cleanable ones, or a dirty record
    /// past `max.compaction.lag.ms`, or a tombstone past its horizon.
    pub fn is_due(&self, min_cleanable_dirty_ratio: DirtyRatio) -> bool {
        let dirty = self.dirty_bytes > 0
            && (self.dirty_ratio() >= min_cleanable_dirty_ratio.get() || self.max_lag_exceeded);
        dirty || self.delete_horizon_passed
    }
}

/// The cleaner's bookkeeping in a [`Log`].
#[derive(Debug, Default)]
pub(crate) struct CleanerState {
    /// Offsets below it are cleaned (the checkpoint).
    first_dirty_offset: i64,
    /// Earliest delete horizon of a batch still holding tombstones.
    next_delete_horizon_ms: Option<i64>,
    /// A pass is between its plan and its swap.
    in_progress: bool,
    /// Why cleaning this log stopped (corrupt data), until it is reopened.
    uncleanable: Option<String>,
    /// Truncations of the log so far: a pass planned before one is
    /// abandoned at its swap, because a truncated segment keeps its file
    /// (so the swap's same-file check cannot see it) and may be rolled
    /// again with other records.
    truncations: u64,
}

impl CleanerState {
    /// Reads the checkpoint of the log in `dir`. One past the log end (the
    /// log was truncated after it was cleaned) starts over from the log
    /// start.
    pub(crate) fn load(dir: &Path, log_start_offset: i64, log_end_offset: i64) -> CleanerState {
        let text = std::fs::read_to_string(dir.join(CLEANER_CHECKPOINT_FILE)).unwrap_or_default();
        let mut numbers = text.split_whitespace().map(str::parse::<i64>);
        let offset = match numbers.next() {
            Some(Ok(offset)) if offset <= log_end_offset => offset.max(log_start_offset),
            _ => log_start_offset,
        };
        let horizon = match numbers.next() {
            Some(Ok(horizon)) if horizon >= 0 => Some(horizon),
            _ => None,
        };
        CleanerState {
            first_dirty_offset: offset,
            next_delete_horizon_ms: horizon,
            ..CleanerState::default()
        }
    }

    /// The log was truncated to `[log_start_offset, log_end_offset)`:
    /// abandons a pass in progress and moves the checkpoint back into the
    /// log (written if it moved; a failure is only logged, since a
    /// checkpoint past the log end is discarded at open, and one inside
    /// re-appended records only makes the cleaner skip them as clean).
    pub(crate) fn truncated(
        &mut self,
        io: &dyn StorageIo,
        dir: &Path,
        log_start_offset: i64,
        log_end_offset: i64,
    ) {
        self.truncations += 1;
        let clamped = self
            .first_dirty_offset
            .min(log_end_offset)
            .max(log_start_offset);
        if clamped != self.first_dirty_offset {
            self.first_dirty_offset = clamped;
            if let Err(err) = self.write(io, dir) {
                tracing::warn!(dir = %dir.display(), %err, "could not write the cleaner checkpoint after a truncation");
            }
        }
    }

    fn write(&self, io: &dyn StorageIo, dir: &Path) -> io::Result<()> {
        let horizon = self.next_delete_horizon_ms.unwrap_or(-1);
        let text = format!("{} {horizon}\n", self.first_dirty_offset);
        replace_file(io, dir, CLEANER_CHECKPOINT_FILE, text.as_bytes(), true)
    }
}

/// Cleaner settings from the broker.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CleanerOptions {
    /// `log.cleaner.dedupe.buffer.size`.
    pub(crate) dedupe_buffer_bytes: u64,
}

impl Default for CleanerOptions {
    fn default() -> Self {
        CleanerOptions {
            dedupe_buffer_bytes: DEFAULT_DEDUPE_BUFFER_BYTES,
        }
    }
}

impl Log {
    /// Where this log stands for the cleaner; `None` unless its
    /// `cleanup.policy` contains `compact` and it is online.
    pub fn cleanable_status(&self, now: Timestamp) -> Option<CleanableStatus> {
        if !self.config.cleanup_policy.compact || self.offline.is_some() {
            return None;
        }
        let (first_dirty, end) = self.cleanable_range(now);
        let mut status = CleanableStatus {
            first_dirty_offset: Offset(first_dirty),
            first_uncleanable_offset: Offset(end),
            clean_bytes: 0,
            dirty_bytes: 0,
            max_lag_exceeded: false,
            delete_horizon_passed: self
                .cleaner
                .next_delete_horizon_ms
                .is_some_and(|h| now.0 >= h),
        };
        let mut first_dirty_segment = None;
        for segment in self.segments.iter().take_while(|s| s.base_offset() < end) {
            if segment.next_offset() <= first_dirty {
                status.clean_bytes += segment.size();
            } else {
                status.dirty_bytes += segment.size();
                first_dirty_segment.get_or_insert(segment);
            }
        }
        if let Some(segment) = first_dirty_segment {
            let first = segment.first_batch_timestamp();
            status.max_lag_exceeded =
                first >= 0 && now.0.saturating_sub(first) > self.config.max_compaction_lag_ms;
        }
        Some(status)
    }

    /// The dirty part's start and the first uncleanable offset.
    fn cleanable_range(&self, now: Timestamp) -> (i64, i64) {
        let active_base = self.active().base_offset();
        let checkpoint = self.cleaner.first_dirty_offset.max(self.log_start_offset);
        let mut end = active_base;
        if self.config.min_compaction_lag_ms > 0 {
            let closed = &self.segments[..self.segments.len() - 1];
            for segment in closed.iter().filter(|s| s.next_offset() > checkpoint) {
                let newest = match segment.max_timestamp() {
                    ts if ts >= 0 => ts,
                    _ => segment.last_modified_ms().unwrap_or(now.0),
                };
                if now.0.saturating_sub(newest) < self.config.min_compaction_lag_ms {
                    end = segment.base_offset();
                    break;
                }
            }
        }
        (checkpoint.min(end), end)
    }

    /// Compacts the log now, whatever its dirty ratio, holding `self`
    /// throughout (see the module docs of `cleaner` for what is kept).
    /// `None` when there is nothing to clean: the policy does not contain
    /// `compact`, the active segment is the only one, or cleaning was
    /// stopped after corrupt data. An I/O error leaves the log as it was
    /// and online (a failure after a swap's commit point takes it offline;
    /// the next open completes the swap).
    ///
    /// ```text
    /// [0: k=a k=b] [2: k=c] [3: active]  compact -> [0: k=c@2] [3: active]
    /// read(0) -> the batch at 2
    /// ```
    pub fn compact(&mut self, now: Timestamp) -> Result<Option<CompactionReport>, LogError> {
        let Some(plan) = self.plan_clean(now, &CleanerOptions::default())? else {
            return Ok(None);
        };
        let result = run(&plan, &|| false);
        self.finish_clean(&plan, result)
    }

    /// Why the cleaner stopped cleaning this log, if it did.
    pub fn uncleanable_reason(&self) -> Option<&str> {
        self.cleaner.uncleanable.as_deref()
    }

    /// Starts a pass: takes what the lock-free part needs.
    fn plan_clean(
        &mut self,
        now: Timestamp,
        options: &CleanerOptions,
    ) -> Result<Option<CleanPlan>, LogError> {
        self.check_online()?;
        if !self.config.cleanup_policy.compact
            || self.cleaner.in_progress
            || self.cleaner.uncleanable.is_some()
        {
            return Ok(None);
        }
        let (first_dirty, end) = self.cleanable_range(now);
        let segments: Vec<SegmentView> = self.segments[..self.segments.len() - 1]
            .iter()
            .take_while(|s| s.base_offset() < end)
            .map(|s| SegmentView {
                base: s.base_offset(),
                next_offset: s.next_offset(),
                size: s.size(),
                file: Arc::clone(s.log_file()),
                index_bytes: s.index_size_bytes(),
                time_index_bytes: s.time_index_size_bytes(),
            })
            .collect();
        if segments.is_empty() {
            return Ok(None);
        }
        let producer_last_offsets = self.producers.last_offsets().collect::<HashMap<i64, i64>>();
        self.cleaner.in_progress = true;
        Ok(Some(CleanPlan {
            dir: self.dir.clone(),
            io: Arc::clone(&self.io),
            config: self.config.clone(),
            now_ms: now.0,
            segments,
            first_dirty_offset: first_dirty,
            first_uncleanable_offset: end,
            producer_last_offsets,
            dedupe_buffer_bytes: options.dedupe_buffer_bytes,
            truncations: self.cleaner.truncations,
        }))
    }

    /// Ends a pass: swaps the cleaned groups in, or cleans up after a
    /// failed or aborted one.
    fn finish_clean(
        &mut self,
        plan: &CleanPlan,
        result: Result<CleanOutput, CleanError>,
    ) -> Result<Option<CompactionReport>, LogError> {
        self.cleaner.in_progress = false;
        let partition = self.partition_name();
        let output = match result {
            Ok(output) => output,
            Err(CleanError::Aborted) => return Ok(None),
            Err(CleanError::Io(err)) => {
                tracing::warn!(%partition, %err, "log cleaning failed; will retry");
                return Err(LogError::from_write(err));
            }
            Err(CleanError::Corrupt(reason)) => {
                tracing::warn!(%partition, %reason, "corrupt data; no longer cleaning this log");
                self.cleaner.uncleanable = Some(reason.clone());
                return Err(BatchError::CorruptRecord(reason).into());
            }
        };
        let online = self.check_online();
        if online.is_err() || plan.truncations != self.cleaner.truncations {
            // Closed or deleted meanwhile (leave the files alone), or
            // truncated (what was cleaned may no longer be there).
            for group in output.groups.iter().filter(|g| g.written) {
                let _ = segment_swap::remove_temporaries(&*self.io, &self.dir, group.bases[0]);
            }
            return online.map(|()| None);
        }
        let mut report = CompactionReport {
            records_removed: output.records_removed,
            tombstones_removed: output.tombstones_removed,
            ..CompactionReport::default()
        };
        for (i, group) in output.groups.iter().enumerate() {
            if !group.written {
                continue;
            }
            match self.install_group(plan, group) {
                Ok(true) => {
                    report.segments_cleaned += group.bases.len();
                    report.segments_written += 1;
                    report.bytes_before += group.bytes_before;
                    report.bytes_after += group.bytes_after;
                }
                Ok(false) => {}
                Err(err) => {
                    for later in output.groups[i + 1..].iter().filter(|g| g.written) {
                        let _ =
                            segment_swap::remove_temporaries(&*self.io, &self.dir, later.bases[0]);
                    }
                    return Err(err);
                }
            }
        }
        self.cleaner.first_dirty_offset = output.map_end;
        self.cleaner.next_delete_horizon_ms = output.next_delete_horizon_ms;
        if let Err(err) = self.cleaner.write(&*self.io, &self.dir) {
            tracing::warn!(%partition, %err, "could not write the cleaner checkpoint");
        }
        report.cleaned_up_to = Offset(output.map_end);
        Ok(Some(report))
    }

    /// Swaps one cleaned group in, if its segments are still those the plan
    /// read (retention may have deleted them meanwhile). Returns whether it
    /// did.
    fn install_group(&mut self, plan: &CleanPlan, group: &CleanedGroup) -> Result<bool, LogError> {
        let base = group.bases[0];
        let first = self.segments.iter().position(|s| s.base_offset() == base);
        let unchanged = first.is_some_and(|first| {
            let closed = &self.segments[..self.segments.len() - 1];
            closed
                .get(first..first + group.bases.len())
                .is_some_and(|now| {
                    now.iter()
                        .zip(&group.files)
                        .all(|(s, file)| Arc::ptr_eq(s.log_file(), file))
                })
        });
        let Some(first) = first.filter(|_| unchanged) else {
            let _ = segment_swap::remove_temporaries(&*self.io, &self.dir, base);
            return Ok(false);
        };
        match segment_swap::swap_in(&*self.io, &self.dir, base, &group.bases[1..]) {
            Ok(()) => {}
            Err(SwapError::NotCommitted(err)) => {
                tracing::warn!(partition = %self.partition_name(), base, %err, "cleaned segment swap failed; rolled back");
                return Err(LogError::from_write(err));
            }
            Err(SwapError::Committed(err)) => return Err(self.poison("cleaned segment swap", err)),
        }
        let opened = Segment::open(
            &self.dir,
            base,
            OpenMode::Trusted,
            &self.config,
            plan.now_ms,
            Arc::clone(&self.io),
        );
        let segment = match opened {
            Ok((segment, _)) => segment,
            Err(err) => return Err(self.poison("opening a cleaned segment", err)),
        };
        let last = first + group.bases.len() - 1;
        debug_assert_eq!(segment.next_offset(), self.segments[last].next_offset());
        self.segments.splice(first..=last, [segment]);
        Ok(true)
    }
}

/// [`Log::compact`] for a log behind the manager's mutex: the map and the
/// rewrite run without the lock, so appends and reads go on meanwhile;
/// planning and the swap take it. `stop` aborts a pass at the next batch.
pub(crate) fn compact_shared(
    log: &Mutex<Log>,
    now: Timestamp,
    options: &CleanerOptions,
    stop: &dyn Fn() -> bool,
) -> Result<Option<CompactionReport>, LogError> {
    let plan = log.lock().plan_clean(now, options)?;
    let Some(plan) = plan else {
        return Ok(None);
    };
    let result = run(&plan, stop);
    log.lock().finish_clean(&plan, result)
}
