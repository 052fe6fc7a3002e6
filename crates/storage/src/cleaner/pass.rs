//! The lock-free part of a compaction pass: the offset map over the dirty
//! records, the grouping of segments, and the rewrite of each group into
//! `.cleaned` files (see the parent module for the rules).

use std::borrow::Cow;
use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;

use runnel_protocol::batch::{
    BatchError, BatchHeader, StoredBatch, BATCH_HEADER_LEN, MIN_BATCH_LENGTH,
};

use crate::segment::Segment;
use crate::segment_swap::{self, CLEANED_SUFFIX};
use crate::storage_io::StorageIo;
use crate::LogConfig;

/// Largest decompressed batch the cleaner decodes.
const MAX_DECODE_BYTES: usize = 64 * 1024 * 1024;
/// Where the bytes a batch's CRC covers start (the attributes).
const CRC_COVERED_FROM: usize = 21;
/// What an entry of the offset map costs beyond its key's bytes: the key's
/// vector header, the offset, the table slot and its slack.
pub(super) const MAP_ENTRY_OVERHEAD: u64 = 64;

/// A closed segment as the plan saw it.
#[derive(Debug, Clone)]
pub(super) struct SegmentView {
    pub(super) base: i64,
    pub(super) next_offset: i64,
    pub(super) size: u64,
    pub(super) file: Arc<File>,
    pub(super) index_bytes: usize,
    pub(super) time_index_bytes: usize,
}

/// Everything a pass needs from the log, taken under its lock.
#[derive(Debug)]
pub(super) struct CleanPlan {
    pub(super) dir: PathBuf,
    pub(super) io: Arc<dyn StorageIo>,
    pub(super) config: LogConfig,
    pub(super) now_ms: i64,
    /// The closed segments below the first uncleanable offset.
    pub(super) segments: Vec<SegmentView>,
    pub(super) first_dirty_offset: i64,
    pub(super) first_uncleanable_offset: i64,
    /// Last offset of each idempotent producer's last batch.
    pub(super) producer_last_offsets: HashMap<i64, i64>,
    pub(super) dedupe_buffer_bytes: u64,
    /// The log's truncation count when the plan was made: a pass that a
    /// truncation overtook is abandoned.
    pub(super) truncations: u64,
}

/// One group of segments rewritten into `.cleaned` files.
#[derive(Debug)]
pub(super) struct CleanedGroup {
    pub(super) bases: Vec<i64>,
    /// The `.log` files the group was read from, to check at the swap that
    /// the segments are still the same.
    pub(super) files: Vec<Arc<File>>,
    pub(super) bytes_before: u64,
    pub(super) bytes_after: u64,
    /// False when nothing changed: no file was left to swap.
    pub(super) written: bool,
}

/// The result of the lock-free part of a pass.
#[derive(Debug, Default)]
pub(super) struct CleanOutput {
    pub(super) groups: Vec<CleanedGroup>,
    pub(super) map_end: i64,
    pub(super) next_delete_horizon_ms: Option<i64>,
    pub(super) records_removed: u64,
    pub(super) tombstones_removed: u64,
}

/// Why the lock-free part of a pass stopped.
#[derive(Debug)]
pub(super) enum CleanError {
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

/// The lock-free part of a pass: the offset map, then the rewrite into
/// `.cleaned` files (removed again on failure).
pub(super) fn run(plan: &CleanPlan, stop: &dyn Fn() -> bool) -> Result<CleanOutput, CleanError> {
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
