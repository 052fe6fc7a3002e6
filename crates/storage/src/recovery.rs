//! Opening a log: find the segments, validate what may be torn, rebuild
//! indexes, delete leftovers, restore the log start offset and the
//! idempotent producers' state.

use std::fmt;
use std::io;
use std::path::Path;

use runnel_model::Timestamp;

use crate::checkpoint::{self, LOG_START_OFFSET_FILE, RECOVERY_POINT_FILE};
use crate::log::Log;
use crate::producer_state::{list_snapshots, ProducerStateManager};
use crate::segment::{offset_file, OpenMode, Segment, INDEX_SUFFIX, LOG_SUFFIX, TIME_INDEX_SUFFIX};
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
}

impl fmt::Display for RecoveryReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} segments ({} validated), truncated {} bytes, {} invalid batches, {} segments dropped, {} indexes rebuilt, {} stray files deleted, {} batches replayed for producer state",
            self.segments,
            self.recovered_segments,
            self.truncated_bytes,
            self.dropped_batches,
            self.dropped_segments,
            self.rebuilt_indexes,
            self.stray_files_deleted,
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

pub(crate) fn open(
    dir: &Path,
    config: LogConfig,
    clean_shutdown: bool,
    now: Timestamp,
) -> Result<(Log, RecoveryReport), LogError> {
    std::fs::create_dir_all(dir)?;
    let mut report = RecoveryReport::default();
    let bases = scan_dir(dir, &mut report)?;
    let checkpointed_start = checkpoint::read_offset(dir, LOG_START_OFFSET_FILE);
    let recovery_point = if clean_shutdown {
        None
    } else {
        Some(checkpoint::read_offset(dir, RECOVERY_POINT_FILE).unwrap_or(0))
    };

    let mut segments: Vec<Segment> = Vec::new();
    let mut truncated = false;
    for (i, &base) in bases.iter().enumerate() {
        let follows = segments.last().is_none_or(|s| base >= s.next_offset());
        if truncated || !follows {
            report.truncated_bytes += delete_segment_files(dir, base)?;
            report.dropped_segments += 1;
            truncated = true;
            continue;
        }
        let mode = match (recovery_point, bases.get(i + 1)) {
            (None, _) => OpenMode::Trusted,
            (Some(point), Some(&next)) if next <= point => OpenMode::Trusted,
            (Some(_), _) => OpenMode::Recover,
        };
        let (segment, outcome) = Segment::open(dir, base, mode, &config, now.0)?;
        report.segments += 1;
        if outcome.rebuilt_index {
            report.rebuilt_indexes += 1;
            report.recovered_segments += 1;
        }
        if outcome.truncated_bytes > 0 {
            report.truncated_bytes += outcome.truncated_bytes;
            report.dropped_batches += 1;
            truncated = true;
        }
        segments.push(segment);
    }
    if segments.is_empty() {
        let base = checkpointed_start.unwrap_or(0);
        segments.push(Segment::create(dir, base, now.0)?);
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
        config,
        segments,
        log_start_offset,
        recovery_point,
        last_flush_time: now,
        producers: ProducerStateManager::default(),
        offline: None,
    };
    report.producer_batches_replayed = restore_producer_state(&mut log)?;
    Ok((log, report))
}

/// Loads the newest valid snapshot at or below the log end offset (deleting
/// newer ones, left by a truncated log) and replays the batches after it.
fn restore_producer_state(log: &mut Log) -> Result<usize, LogError> {
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
                tracing::warn!(path = %path.display(), "ignoring unreadable producer state snapshot");
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
    Ok(replayed)
}
