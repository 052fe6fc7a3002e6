//! Opening a log: find the segments, validate what may be torn, rebuild
//! indexes, delete leftovers, restore the log start offset and the
//! idempotent producers' state.

use std::fmt;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use runnel_model::{Offset, Timestamp};
use runnel_protocol::batch::{validate_batch, BatchHeader, BATCH_HEADER_LEN};

use crate::checkpoint::{self, LOG_START_OFFSET_FILE, RECOVERY_POINT_FILE};
use crate::cleaner::CleanerState;
use crate::leader_epoch::{LeaderEpochCache, LEADER_EPOCH_CHECKPOINT_FILE};
use crate::log::Log;
use crate::producer_state::{list_snapshots, ProducerStateManager};
use crate::segment::{offset_file, OpenMode, Segment, INDEX_SUFFIX, LOG_SUFFIX, TIME_INDEX_SUFFIX};
use crate::storage_io::StorageIo;
use crate::{LogConfig, LogError};

/// What opening a log found and dropped.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Segments found.
    pub segments: usize,
    /// Segments whose every batch was validated (those after the recovery
    /// point after an unclean shutdown, or with a bad index).
    pub recovered_segments: usize,
    /// Bytes cut off at the first invalid batch, plus the bytes of the
    /// segments after it.
    pub truncated_bytes: u64,
    /// Segments whose indexes were rebuilt.
    pub rebuilt_indexes: usize,
    /// Invalid batches found (each one ends its segment: the log is
    /// truncated there).
    pub dropped_batches: usize,
    /// Whole segments deleted because they followed a truncation.
    pub dropped_segments: usize,
    /// Leftover `.cleaned`, `.swap`, `.deleted`, `.tmp` and orphan index
    /// files deleted.
    pub stray_files_deleted: usize,
    /// Batches replayed to rebuild idempotent producer state.
    pub producer_batches_replayed: usize,
    /// Segments whose file name was above their first batch's base offset
    /// (their indexes would be wrong), renamed to that offset.
    pub renamed_segments: usize,
    /// Empty segment files before the last segment, deleted: they hold
    /// nothing and would stop retention at them.
    pub empty_segments_deleted: usize,
    /// Producer state snapshots that could not be decoded, deleted (the
    /// state is rebuilt from an older snapshot or the log instead).
    pub snapshots_discarded: usize,
    /// Cleaner swaps a crash interrupted after their commit point,
    /// completed (the segments they replace deleted, the cleaned segment
    /// renamed into place, its indexes rebuilt). Swaps interrupted before
    /// it are rolled back and counted in `stray_files_deleted`.
    pub swaps_completed: usize,
    /// The leader-epoch checkpoint was missing or garbled and was rebuilt
    /// from the batch headers.
    pub epoch_cache_rebuilt: bool,
}

impl RecoveryReport {
    /// Whether opening found anything to repair: a torn or corrupt tail,
    /// indexes to rebuild, misnamed or empty segments, leftover files or
    /// unreadable snapshots.
    pub fn repaired_anything(&self) -> bool {
        self.truncated_bytes > 0
            || self.rebuilt_indexes > 0
            || self.stray_files_deleted > 0
            || self.renamed_segments > 0
            || self.empty_segments_deleted > 0
            || self.snapshots_discarded > 0
            || self.swaps_completed > 0
    }
}

impl fmt::Display for RecoveryReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} segments ({} validated), truncated {} bytes, {} invalid batches, {} segments dropped, {} indexes rebuilt, {} stray files deleted, {} segments renamed, {} empty segments deleted, {} snapshots discarded, {} cleaner swaps completed, {} batches replayed for producer state",
            self.segments,
            self.recovered_segments,
            self.truncated_bytes,
            self.dropped_batches,
            self.dropped_segments,
            self.rebuilt_indexes,
            self.stray_files_deleted,
            self.renamed_segments,
            self.empty_segments_deleted,
            self.snapshots_discarded,
            self.swaps_completed,
            self.producer_batches_replayed
        )
    }
}

fn is_stray(name: &str) -> bool {
    [".cleaned", ".swap", ".deleted", ".tmp"]
        .iter()
        .any(|suffix| name.ends_with(suffix))
}

fn parse_base(name: &str, suffix: &str) -> Option<i64> {
    let stem = name.strip_suffix(suffix)?.strip_suffix('.')?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

fn remove_if_exists(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Lists segment base offsets, deleting stray and orphan files.
fn scan_dir(dir: &Path, report: &mut RecoveryReport) -> io::Result<Vec<i64>> {
    let mut bases = Vec::new();
    let mut index_files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if is_stray(&name) {
            remove_if_exists(&entry.path())?;
            report.stray_files_deleted += 1;
        } else if let Some(base) = parse_base(&name, LOG_SUFFIX) {
            bases.push(base);
        } else if let Some(base) =
            parse_base(&name, INDEX_SUFFIX).or_else(|| parse_base(&name, TIME_INDEX_SUFFIX))
        {
            index_files.push((base, entry.path()));
        }
    }
    bases.sort_unstable();
    for (base, path) in index_files {
        if bases.binary_search(&base).is_err() {
            remove_if_exists(&path)?;
            report.stray_files_deleted += 1;
        }
    }
    Ok(bases)
}

fn delete_segment_files(dir: &Path, base: i64) -> io::Result<u64> {
    let log = offset_file(dir, base, LOG_SUFFIX);
    let size = std::fs::metadata(&log).map_or(0, |m| m.len());
    for suffix in [LOG_SUFFIX, INDEX_SUFFIX, TIME_INDEX_SUFFIX] {
        remove_if_exists(&offset_file(dir, base, suffix))?;
    }
    Ok(size)
}

/// Largest first batch [`misnamed_segment_start`] reads to check its CRC.
const MAX_RENAME_CHECK_BYTES: u64 = 128 * 1024 * 1024;

/// If the segment file named `base` starts with a valid batch (CRC
/// checked) whose base offset is not below `floor` (the previous segment's
/// end) and the name is wrong in a way that matters, that batch's base
/// offset. The name matters when it is above the first batch (offsets
/// relative to it would be negative) or below `floor` (the segment would
/// seem to overlap the previous one). A name below a first batch that is
/// itself fine is only a gap and left alone.
fn misnamed_segment_start(dir: &Path, base: i64, floor: i64) -> io::Result<Option<i64>> {
    let file = File::open(offset_file(dir, base, LOG_SUFFIX))?;
    let size = file.metadata()?.len();
    if size < BATCH_HEADER_LEN as u64 {
        return Ok(None);
    }
    let mut header = [0u8; BATCH_HEADER_LEN];
    file.read_exact_at(&mut header, 0)?;
    let Ok(header) = BatchHeader::parse(&header) else {
        return Ok(None);
    };
    let total = header.total_len() as u64;
    let misnamed = header.base_offset < base || base < floor;
    if !misnamed
        || header.base_offset == base
        || header.base_offset < floor
        || total > size.min(MAX_RENAME_CHECK_BYTES)
    {
        return Ok(None);
    }
    let mut batch = vec![0u8; total as usize];
    file.read_exact_at(&mut batch, 0)?;
    Ok(validate_batch(&batch, batch.len())
        .ok()
        .map(|_| header.base_offset))
}

/// Renames segment `from`'s `.log` to `to` (which must not exist) and
/// deletes its indexes, to be rebuilt. Returns false if `to` is taken.
fn rename_segment(dir: &Path, from: i64, to: i64) -> io::Result<bool> {
    let target = offset_file(dir, to, LOG_SUFFIX);
    if target.exists() {
        return Ok(false);
    }
    std::fs::rename(offset_file(dir, from, LOG_SUFFIX), &target)?;
    for suffix in [INDEX_SUFFIX, TIME_INDEX_SUFFIX] {
        remove_if_exists(&offset_file(dir, from, suffix))?;
        remove_if_exists(&offset_file(dir, to, suffix))?;
    }
    Ok(true)
}

/// What every segment of one log is opened with.
struct OpenContext<'a> {
    dir: &'a Path,
    /// The directory's name, `<topic>-<partition>`, for logging.
    partition: String,
    config: &'a LogConfig,
    now_ms: i64,
    io: &'a Arc<dyn StorageIo>,
}

pub(crate) fn open(
    dir: &Path,
    config: LogConfig,
    clean_shutdown: bool,
    now: Timestamp,
    io: Arc<dyn StorageIo>,
) -> Result<(Log, RecoveryReport), LogError> {
    std::fs::create_dir_all(dir)?;
    let mut report = RecoveryReport::default();
    crate::segment_swap::complete_interrupted_swaps(&*io, dir, &mut report)?;
    let bases = scan_dir(dir, &mut report)?;
    let checkpointed_start = checkpoint::read_offset(dir, LOG_START_OFFSET_FILE);
    let recovery_point = if clean_shutdown {
        None
    } else {
        Some(checkpoint::read_offset(dir, RECOVERY_POINT_FILE).unwrap_or(0))
    };
    let context = OpenContext {
        dir,
        partition: dir.file_name().map_or_else(
            || dir.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        ),
        config: &config,
        now_ms: now.0,
        io: &io,
    };
    let mut segments = open_segments(&context, &bases, recovery_point, &mut report)?;
    let partition = context.partition;
    if segments.is_empty() {
        let base = checkpointed_start.unwrap_or(0);
        segments.push(Segment::create(dir, base, now.0, Arc::clone(&io))?);
    }
    let log_end_offset = segments.last().map_or(0, Segment::next_offset);
    let first_base = segments.first().map_or(0, Segment::base_offset);
    let log_start_offset = checkpointed_start
        .unwrap_or(first_base)
        .max(first_base)
        .min(log_end_offset);
    let recovery_point = recovery_point
        .unwrap_or(log_end_offset)
        .clamp(log_start_offset, log_end_offset);

    let mut log = Log {
        dir: dir.to_path_buf(),
        io,
        config,
        segments,
        log_start_offset,
        recovery_point,
        last_flush_time: now,
        producers: ProducerStateManager::default(),
        offline: None,
        cleaner: CleanerState::default(),
        epochs: LeaderEpochCache::default(),
        epochs_unsaved: false,
        truncations: 0,
    };
    log.cleaner = CleanerState::load(dir, log.log_start_offset, log_end_offset);
    restore_epochs(&mut log, &mut report)?;
    restore_producer_state(&mut log, &mut report)?;
    if report.repaired_anything() {
        tracing::warn!(%partition, %report, "log recovered");
    }
    Ok((log, report))
}

/// Opens the segments named `bases` in order: renames misnamed ones,
/// validates those past the recovery point (all of them without one),
/// truncates at the first bad batch and deletes every segment after it,
/// and deletes empty segments that are not the last.
fn open_segments(
    context: &OpenContext<'_>,
    bases: &[i64],
    recovery_point: Option<i64>,
    report: &mut RecoveryReport,
) -> Result<Vec<Segment>, LogError> {
    let OpenContext { dir, partition, .. } = context;
    let mut segments: Vec<Segment> = Vec::new();
    let mut truncated = false;
    for (i, &named_base) in bases.iter().enumerate() {
        let floor = segments.last().map_or(0, Segment::next_offset);
        let mut base = named_base;
        let mut misnamed = false;
        if !truncated {
            if let Some(first) = misnamed_segment_start(dir, named_base, floor)? {
                if rename_segment(dir, named_base, first)? {
                    tracing::warn!(%partition, segment = named_base, first_offset = first, "segment not named after its first batch; renamed");
                    report.renamed_segments += 1;
                    base = first;
                    misnamed = true;
                }
            }
        }
        if truncated || base < floor {
            let bytes = delete_segment_files(dir, base)?;
            tracing::warn!(%partition, segment = base, bytes, "dropping a segment after a truncation or overlapping the previous one");
            report.truncated_bytes += bytes;
            report.dropped_segments += 1;
            truncated = true;
            continue;
        }
        let mode = match (recovery_point, bases.get(i + 1)) {
            _ if misnamed => OpenMode::Recover,
            (None, _) => OpenMode::Trusted,
            (Some(point), Some(&next)) if next <= point => OpenMode::Trusted,
            (Some(_), _) => OpenMode::Recover,
        };
        let (segment, outcome) = Segment::open(
            dir,
            base,
            mode,
            context.config,
            context.now_ms,
            Arc::clone(context.io),
        )?;
        report.segments += 1;
        if outcome.rebuilt_index {
            report.rebuilt_indexes += 1;
            report.recovered_segments += 1;
        }
        if outcome.truncated_bytes > 0 {
            tracing::warn!(%partition, segment = base, bytes = outcome.truncated_bytes, kept_bytes = segment.size(), "truncated an invalid or torn segment tail");
            report.truncated_bytes += outcome.truncated_bytes;
            report.dropped_batches += 1;
            truncated = true;
        }
        let is_last = i + 1 == bases.len();
        if segment.size() == 0 && !is_last && !truncated {
            drop(segment);
            delete_segment_files(dir, base)?;
            report.segments -= 1;
            report.empty_segments_deleted += 1;
            continue;
        }
        segments.push(segment);
    }
    Ok(segments)
}

/// Loads the leader-epoch checkpoint, drops the entries at or past the
/// recovered log end and clamps the first to the log start. A missing or
/// garbled checkpoint is rebuilt from the batch headers. The checkpoint is
/// rewritten if anything changed — and after a rebuild of a non-empty log,
/// so that a log written before epochs were recorded is scanned only once.
fn restore_epochs(log: &mut Log, report: &mut RecoveryReport) -> Result<(), LogError> {
    let (mut epochs, mut changed) = match LeaderEpochCache::load(&log.dir) {
        Some(epochs) => (epochs, false),
        None => {
            report.epoch_cache_rebuilt = true;
            let garbled = log.dir.join(LEADER_EPOCH_CHECKPOINT_FILE).exists();
            let rebuilt = LeaderEpochCache::rebuild(&log.segments)?;
            (rebuilt, garbled || log.size_bytes() > 0)
        }
    };
    changed |= epochs.truncate_from_end(log.log_end_offset());
    changed |= epochs.truncate_from_start(Offset(log.log_start_offset));
    log.epochs = epochs;
    if changed {
        log.write_epochs_best_effort();
    }
    Ok(())
}

/// Loads the newest valid snapshot at or below the log end offset (deleting
/// newer ones, left by a truncated log) and replays the batches after it.
pub(crate) fn restore_producer_state(
    log: &mut Log,
    report: &mut RecoveryReport,
) -> Result<(), LogError> {
    let log_end_offset = log.log_end_offset().0;
    let mut from = log.log_start_offset;
    let mut state = None;
    for (offset, path) in list_snapshots(&log.dir)?.into_iter().rev() {
        if offset > log_end_offset {
            remove_if_exists(&path)?;
            continue;
        }
        if state.is_none() {
            let loaded = std::fs::read(&path)
                .ok()
                .and_then(|bytes| ProducerStateManager::decode(&bytes));
            if let Some(loaded) = loaded {
                state = Some(loaded);
                from = offset;
            } else {
                tracing::warn!(path = %path.display(), "deleting unreadable producer state snapshot");
                remove_if_exists(&path)?;
                report.snapshots_discarded += 1;
            }
        }
    }
    let mut state = state.unwrap_or_default();
    let mut replayed = 0;
    for segment in &log.segments {
        if segment.next_offset() <= from {
            continue;
        }
        let mut position = match segment.find_batch(from)? {
            Some((position, _)) => position,
            None => continue,
        };
        while let Some((at, header)) = segment.scan_from(position, |_| true)? {
            if header.base_offset >= from {
                state.update(&header);
                replayed += 1;
            }
            position = at + header.total_len() as u64;
        }
    }
    log.producers = state;
    report.producer_batches_replayed = replayed;
    Ok(())
}
