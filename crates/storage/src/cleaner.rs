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

use std::borrow::Cow;
use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;
use runnel_model::{Offset, Timestamp};
use runnel_protocol::batch::{
    BatchError, BatchHeader, StoredBatch, BATCH_HEADER_LEN, MIN_BATCH_LENGTH,
};

use crate::log::Log;
use crate::segment::{OpenMode, Segment};
use crate::segment_swap::{self, SwapError, CLEANED_SUFFIX};
use crate::storage_io::{replace_file, StorageIo};
use crate::{DirtyRatio, LogConfig, LogError};

/// Per-partition file holding the offset the log is cleaned up to and the
/// earliest pending tombstone delete horizon (-1 for none).
pub(crate) const CLEANER_CHECKPOINT_FILE: &str = "cleaner-offset-checkpoint";
/// Largest decompressed batch the cleaner decodes.
const MAX_DECODE_BYTES: usize = 64 * 1024 * 1024;
/// Kafka's `log.cleaner.dedupe.buffer.size` default: 128 MiB.
pub const DEFAULT_DEDUPE_BUFFER_BYTES: u64 = 128 * 1024 * 1024;
/// Where the bytes a batch's CRC covers start (the attributes).
const CRC_COVERED_FROM: usize = 21;
/// What an entry of the offset map costs beyond its key's bytes: the key's
/// vector header, the offset, the table slot and its slack.
const MAP_ENTRY_OVERHEAD: u64 = 64;

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

/// A closed segment as the plan saw it.
#[derive(Debug, Clone)]
struct SegmentView {
    base: i64,
    next_offset: i64,
    size: u64,
    file: Arc<File>,
    index_bytes: usize,
    time_index_bytes: usize,
}

/// Everything a pass needs from the log, taken under its lock.
#[derive(Debug)]
pub(crate) struct CleanPlan {
    dir: PathBuf,
    io: Arc<dyn StorageIo>,
    config: LogConfig,
    now_ms: i64,
    /// The closed segments below the first uncleanable offset.
    segments: Vec<SegmentView>,
    first_dirty_offset: i64,
    first_uncleanable_offset: i64,
    /// Last offset of each idempotent producer's last batch.
    producer_last_offsets: HashMap<i64, i64>,
    dedupe_buffer_bytes: u64,
}

/// One group of segments rewritten into `.cleaned` files.
#[derive(Debug)]
struct CleanedGroup {
    bases: Vec<i64>,
    /// The `.log` files the group was read from, to check at the swap that
    /// the segments are still the same.
    files: Vec<Arc<File>>,
    bytes_before: u64,
    bytes_after: u64,
    /// False when nothing changed: no file was left to swap.
    written: bool,
}

/// The result of the lock-free part of a pass.
#[derive(Debug, Default)]
pub(crate) struct CleanOutput {
    groups: Vec<CleanedGroup>,
    map_end: i64,
    next_delete_horizon_ms: Option<i64>,
    records_removed: u64,
    tombstones_removed: u64,
}

/// Why the lock-free part of a pass stopped.
#[derive(Debug)]
pub(crate) enum CleanError {
    /// Reading or writing failed; retry later.
    Io(io::Error),
    /// A batch could not be decoded; stop cleaning this log.
    Corrupt(String),
    /// Shutdown asked to stop.
    Aborted,
}

impl From<io::Error> for CleanError {
    fn from(err: io::Error) -> Self {
        CleanError::Io(err)
    }
}

fn corrupt(base: i64, position: u64, err: impl std::fmt::Display) -> CleanError {
    CleanError::Corrupt(format!("segment {base} at byte {position}: {err}"))
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
    pub(crate) fn plan_clean(
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
        }))
    }

    /// Ends a pass: swaps the cleaned groups in, or cleans up after a
    /// failed or aborted one.
    pub(crate) fn finish_clean(
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
        if let Err(err) = self.check_online() {
            // Closed or deleted meanwhile: leave the files alone.
            for group in output.groups.iter().filter(|g| g.written) {
                let _ = segment_swap::remove_temporaries(&*self.io, &self.dir, group.bases[0]);
            }
            return Err(err);
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

/// The lock-free part of a pass: the offset map, then the rewrite into
/// `.cleaned` files (removed again on failure).
pub(crate) fn run(plan: &CleanPlan, stop: &dyn Fn() -> bool) -> Result<CleanOutput, CleanError> {
    let (map, map_end) = build_offset_map(plan, stop)?;
    let count = plan
        .segments
        .iter()
        .take_while(|s| s.base < map_end)
        .count();
    let mut output = CleanOutput {
        map_end,
        ..CleanOutput::default()
    };
    for range in group_segments(&plan.segments[..count], &plan.config) {
        let base = plan.segments[range.start].base;
        match clean_group(
            plan,
            &map,
            map_end,
            &plan.segments[range],
            &mut output,
            stop,
        ) {
            Ok(group) => output.groups.push(group),
            Err(err) => {
                for group in output.groups.iter().filter(|g| g.written) {
                    let _ = segment_swap::remove_temporaries(&*plan.io, &plan.dir, group.bases[0]);
                }
                let _ = segment_swap::remove_temporaries(&*plan.io, &plan.dir, base);
                return Err(err);
            }
        }
    }
    Ok(output)
}

/// Key -> latest offset over the dirty records, and the offset the map
/// ends at: the first uncleanable offset, or the end of the last batch
/// mapped when the dedupe buffer filled first.
fn build_offset_map(
    plan: &CleanPlan,
    stop: &dyn Fn() -> bool,
) -> Result<(HashMap<Vec<u8>, i64>, i64), CleanError> {
    let first_dirty = plan.first_dirty_offset;
    let mut map: HashMap<Vec<u8>, i64> = HashMap::new();
    let mut used = 0u64;
    let mut map_end = first_dirty;
    for view in plan.segments.iter().filter(|s| s.next_offset > first_dirty) {
        let mut full = false;
        for_each_batch(view, |position, header, bytes| {
            if header.last_offset() < first_dirty {
                return Ok(true);
            }
            if stop() {
                return Err(CleanError::Aborted);
            }
            if used >= plan.dedupe_buffer_bytes && map_end > first_dirty {
                full = true;
                return Ok(false);
            }
            if !header.is_control() {
                let batch = StoredBatch::decode(bytes, MAX_DECODE_BYTES)
                    .map_err(|e| corrupt(view.base, position, e))?;
                for record in batch.records().filter(|r| r.offset >= first_dirty) {
                    let Some(key) = record.key else { continue };
                    match map.get_mut(key) {
                        Some(offset) => *offset = record.offset,
                        None => {
                            used += key.len() as u64 + MAP_ENTRY_OVERHEAD;
                            map.insert(key.to_vec(), record.offset);
                        }
                    }
                }
            }
            map_end = header.last_offset() + 1;
            Ok(true)
        })?;
        if full {
            return Ok((map, map_end));
        }
    }
    Ok((map, plan.first_uncleanable_offset.max(map_end)))
}

/// Splits `views` into runs of adjacent segments that fit one segment
/// together: `segment.bytes`, `segment.index.bytes` for both indexes, and
/// offsets within a u32 of the first base.
fn group_segments(views: &[SegmentView], config: &LogConfig) -> Vec<Range<usize>> {
    let max_bytes = config.segment_bytes_max();
    let max_index = config.segment_index_bytes as usize;
    let mut groups = Vec::new();
    let mut start = 0;
    while start < views.len() {
        let first = &views[start];
        let (mut bytes, mut index, mut time_index) =
            (first.size, first.index_bytes, first.time_index_bytes);
        let mut end = start + 1;
        while let Some(next) = views.get(end) {
            let fits = bytes + next.size <= max_bytes
                && index + next.index_bytes <= max_index
                && time_index + next.time_index_bytes <= max_index
                && next.next_offset - 1 - first.base <= i64::from(i32::MAX);
            if !fits {
                break;
            }
            bytes += next.size;
            index += next.index_bytes;
            time_index += next.time_index_bytes;
            end += 1;
        }
        groups.push(start..end);
        start = end;
    }
    groups
}

/// What becomes of one batch.
enum Filtered {
    /// Copied as it is.
    Keep,
    /// Re-encoded with fewer records or a delete horizon.
    Rewrite(Vec<u8>),
    /// Left out.
    Drop,
}

/// Rewrites one group into `<base>.{log,index,timeindex}.cleaned`, fsynced.
fn clean_group(
    plan: &CleanPlan,
    map: &HashMap<Vec<u8>, i64>,
    map_end: i64,
    views: &[SegmentView],
    output: &mut CleanOutput,
    stop: &dyn Fn() -> bool,
) -> Result<CleanedGroup, CleanError> {
    let base = views[0].base;
    let mut writer = Segment::create_with_suffix(
        &plan.dir,
        base,
        CLEANED_SUFFIX,
        plan.now_ms,
        Arc::clone(&plan.io),
    )?;
    let mut changed = views.len() > 1;
    let last = views.len() - 1;
    for (i, view) in views.iter().enumerate() {
        for_each_batch(view, |position, header, bytes| {
            if stop() {
                return Err(CleanError::Aborted);
            }
            let ends_group = i == last && position + bytes.len() as u64 == view.size;
            let out = match filter_batch(plan, map, map_end, header, bytes, ends_group, output)
                .map_err(|e| corrupt(view.base, position, e))?
            {
                Filtered::Keep => Cow::Borrowed(bytes),
                Filtered::Rewrite(rebuilt) => {
                    changed = true;
                    Cow::Owned(rebuilt)
                }
                Filtered::Drop => {
                    changed = true;
                    return Ok(true);
                }
            };
            let header = BatchHeader::parse(&out).map_err(|e| corrupt(view.base, position, e))?;
            writer.append(&out, &[(0, header)], &plan.config)?;
            Ok(true)
        })?;
    }
    writer.seal()?;
    let group = CleanedGroup {
        bases: views.iter().map(|v| v.base).collect(),
        files: views.iter().map(|v| Arc::clone(&v.file)).collect(),
        bytes_before: views.iter().map(|v| v.size).sum(),
        bytes_after: writer.size(),
        written: changed,
    };
    if !changed {
        drop(writer);
        segment_swap::remove_temporaries(&*plan.io, &plan.dir, base)?;
        return Ok(group);
    }
    // Keep the group's age for retention of segments without timestamps.
    if let Ok(modified) = views[last].file.metadata().and_then(|m| m.modified()) {
        let _ = writer.log_file().set_modified(modified);
    }
    for file in writer.files() {
        plan.io.sync_data(&file)?;
    }
    Ok(group)
}

/// Decides what to keep of one batch (see the module docs). Counts what it
/// removes and the delete horizons of the tombstones it keeps in `output`.
fn filter_batch(
    plan: &CleanPlan,
    map: &HashMap<Vec<u8>, i64>,
    map_end: i64,
    header: &BatchHeader,
    bytes: &[u8],
    ends_group: bool,
    output: &mut CleanOutput,
) -> Result<Filtered, BatchError> {
    if header.is_control() {
        return Ok(Filtered::Keep);
    }
    let batch = StoredBatch::decode(bytes, MAX_DECODE_BYTES)?;
    let discard_tombstones = header
        .delete_horizon_ms()
        .is_some_and(|horizon| plan.now_ms >= horizon);
    let mut keep = Vec::with_capacity(batch.len());
    let mut keeps_tombstones = false;
    for record in batch.records() {
        let kept = record.offset >= map_end
            || record.key.is_some_and(|key| {
                let latest = map.get(key).is_none_or(|&latest| record.offset >= latest);
                latest && (record.value.is_some() || !discard_tombstones)
            });
        if kept && record.value.is_none() && record.offset < map_end {
            keeps_tombstones = true;
        }
        if !kept {
            output.records_removed += 1;
            output.tombstones_removed += u64::from(record.value.is_none());
        }
        keep.push(kept);
    }
    let new_horizon = (keeps_tombstones && !header.has_delete_horizon()).then(|| {
        plan.now_ms
            .saturating_add(plan.config.delete_retention_ms.max(0))
    });
    if keeps_tombstones {
        let horizon = header.delete_horizon_ms().or(new_horizon);
        output.next_delete_horizon_ms = match (output.next_delete_horizon_ms, horizon) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
    let kept = keep.iter().filter(|&&k| k).count();
    let needed_when_empty = ends_group
        || (header.has_producer_id()
            && plan.producer_last_offsets.get(&header.producer_id) == Some(&header.last_offset()));
    if kept == 0 && !needed_when_empty {
        return Ok(Filtered::Drop);
    }
    if kept == batch.len() && new_horizon.is_none() {
        return Ok(Filtered::Keep);
    }
    Ok(Filtered::Rewrite(batch.rebuild(&keep, new_horizon)?))
}

/// Calls `visit(position, header, batch bytes)` for each batch of the
/// segment, until it returns false. A batch that does not fit the file is
/// corrupt data.
fn for_each_batch(
    view: &SegmentView,
    mut visit: impl FnMut(u64, &BatchHeader, &[u8]) -> Result<bool, CleanError>,
) -> Result<(), CleanError> {
    let mut position = 0u64;
    let mut header_bytes = [0u8; BATCH_HEADER_LEN];
    let mut buf = Vec::new();
    while position < view.size {
        if view.size - position < BATCH_HEADER_LEN as u64 {
            return Err(corrupt(view.base, position, "torn batch header"));
        }
        view.file.read_exact_at(&mut header_bytes, position)?;
        let header =
            BatchHeader::parse(&header_bytes).map_err(|e| corrupt(view.base, position, e))?;
        let total = header.total_len() as u64;
        if header.magic != 2
            || header.batch_length < MIN_BATCH_LENGTH
            || total > view.size - position
        {
            return Err(corrupt(view.base, position, "malformed batch header"));
        }
        buf.resize(total as usize, 0);
        view.file.read_exact_at(&mut buf, position)?;
        // The cleaner re-encodes batches with a fresh CRC: never launder
        // a damaged one.
        if crc32c::crc32c(&buf[CRC_COVERED_FROM..]) != header.crc {
            return Err(corrupt(view.base, position, "CRC mismatch"));
        }
        if !visit(position, &header, &buf)? {
            break;
        }
        position += total;
    }
    Ok(())
}

#[cfg(test)]
#[path = "cleaner_tests.rs"]
mod tests;
