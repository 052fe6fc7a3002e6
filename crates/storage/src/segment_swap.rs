//! Swapping the cleaner's output into a log so that a crash at any point
//! leaves either the old segments or the cleaned one, and recovery can
//! tell which.
//!
//! The cleaner writes the replacement of a group of adjacent segments
//! `[B, b1, …, bk]` as `B.log.cleaned`, `B.index.cleaned` and
//! `B.timeindex.cleaned` (`B` is the group's first base offset, names
//! zero-padded) and fsyncs them. [`swap_in`] then:
//!
//! 1. renames the two index files `.cleaned` -> `.swap`;
//! 2. renames `B.log.cleaned` -> `B.log.swap` and fsyncs the directory:
//!    **the commit point**;
//! 3. deletes the files of `b1 … bk` and fsyncs the directory;
//! 4. renames `B.log.swap` -> `B.log` (replacing the old first segment),
//!    then the index files, and fsyncs the directory.
//!
//! At the next open, [`complete_interrupted_swaps`] runs before anything
//! else reads the directory:
//!
//! - `B.log.cleaned` exists: the swap did not commit. Every `.cleaned` and
//!   `.swap` file of `B` is deleted; the old segments were not touched.
//! - `B.log.swap` exists: it committed. Its end offset `E` (the last
//!   batch's last offset + 1) is read from it, every segment with a base in
//!   `(B, E)` is deleted and `B.log.swap` renamed to `B.log`.
//! - Only index `.swap` files are left: step 4 was under way; the new log
//!   is in place.
//!
//! In the last two cases `B`'s index files, whichever survived, are deleted
//! and rebuilt by the segment scan: indexes are derived data, and which of
//! the old and new ones a crash kept is not worth reasoning about.
//!
//! `E` is enough to find the replaced segments because the cleaner keeps,
//! in every group, the batch that ended its last segment (empty if no
//! record of it survives): a cleaned group ends exactly where `bk` ended,
//! and the segment after the group starts at or after `E`.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use runnel_protocol::batch::{BatchHeader, BATCH_HEADER_LEN, MIN_BATCH_LENGTH};

use crate::recovery::RecoveryReport;
use crate::segment::{offset_file, INDEX_SUFFIX, LOG_SUFFIX, TIME_INDEX_SUFFIX};
use crate::storage_io::StorageIo;

/// Suffix of the cleaner's output before the swap.
pub(crate) const CLEANED_SUFFIX: &str = ".cleaned";
/// Suffix of cleaned files past the commit point, not yet in place.
pub(crate) const SWAP_SUFFIX: &str = ".swap";

const SUFFIXES: [&str; 3] = [LOG_SUFFIX, INDEX_SUFFIX, TIME_INDEX_SUFFIX];

/// `<dir>/<20-digit base>.<suffix><temp>`.
pub(crate) fn temp_file(dir: &Path, base: i64, suffix: &str, temp: &str) -> PathBuf {
    let mut name = offset_file(dir, base, suffix).into_os_string();
    name.push(temp);
    PathBuf::from(name)
}

/// How a [`swap_in`] failed.
#[derive(Debug)]
pub(crate) enum SwapError {
    /// Before the commit point. The temporaries were removed (best effort;
    /// recovery removes what remains) and the old segments are intact.
    NotCommitted(io::Error),
    /// After it: the directory holds a half-done swap that only recovery
    /// completes. The log must go offline.
    Committed(io::Error),
}

/// Removes the cleaner's temporaries for the group at `base`, the log's
/// `.cleaned` last so that while it exists recovery rolls back.
pub(crate) fn remove_temporaries(io: &dyn StorageIo, dir: &Path, base: i64) -> io::Result<()> {
    for suffix in [INDEX_SUFFIX, TIME_INDEX_SUFFIX, LOG_SUFFIX] {
        io.remove_file(&temp_file(dir, base, suffix, SWAP_SUFFIX))?;
        io.remove_file(&temp_file(dir, base, suffix, CLEANED_SUFFIX))?;
    }
    Ok(())
}

/// Swaps the fsynced `.cleaned` files of the group starting at `base` in
/// place of the segments `base` and `others` (the rest of the group, in
/// order), by the steps in the module docs.
pub(crate) fn swap_in(
    io: &dyn StorageIo,
    dir: &Path,
    base: i64,
    others: &[i64],
) -> Result<(), SwapError> {
    let mut crash = CrashPoints::default();
    let committed = (|| {
        crash.step()?;
        for suffix in [INDEX_SUFFIX, TIME_INDEX_SUFFIX] {
            io.rename(
                &temp_file(dir, base, suffix, CLEANED_SUFFIX),
                &temp_file(dir, base, suffix, SWAP_SUFFIX),
            )?;
            crash.step()?;
        }
        io.rename(
            &temp_file(dir, base, LOG_SUFFIX, CLEANED_SUFFIX),
            &temp_file(dir, base, LOG_SUFFIX, SWAP_SUFFIX),
        )?;
        crash.step()?;
        Ok(())
    })();
    if let Err(err) = committed {
        if crash.crashed {
            return Err(SwapError::Committed(err));
        }
        if let Err(undo) = remove_temporaries(io, dir, base) {
            tracing::warn!(dir = %dir.display(), base, %undo, "could not remove the cleaner's temporary files; the next open will");
        }
        return Err(SwapError::NotCommitted(err));
    }
    let installed = (|| {
        io.sync_dir(dir)?;
        for &other in others {
            for suffix in SUFFIXES {
                io.remove_file(&offset_file(dir, other, suffix))?;
                crash.step()?;
            }
        }
        io.sync_dir(dir)?;
        for suffix in SUFFIXES {
            io.rename(
                &temp_file(dir, base, suffix, SWAP_SUFFIX),
                &offset_file(dir, base, suffix),
            )?;
            crash.step()?;
        }
        io.sync_dir(dir)
    })();
    installed.map_err(SwapError::Committed)
}

/// Finishes or undoes swaps a crash interrupted (see the module docs).
/// Runs before the directory is scanned for segments.
pub(crate) fn complete_interrupted_swaps(
    io: &dyn StorageIo,
    dir: &Path,
    report: &mut RecoveryReport,
) -> io::Result<()> {
    let mut uncommitted = BTreeSet::new();
    let mut committed = BTreeSet::new();
    let mut index_only = BTreeSet::new();
    let mut temporaries: BTreeMap<i64, usize> = BTreeMap::new();
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        let Some((base, suffix, temp)) = parse_temp(&name) else {
            continue;
        };
        *temporaries.entry(base).or_default() += 1;
        match (suffix, temp) {
            (LOG_SUFFIX, CLEANED_SUFFIX) => uncommitted.insert(base),
            (LOG_SUFFIX, _) => committed.insert(base),
            (_, _) => index_only.insert(base),
        };
    }
    if uncommitted.is_empty() && committed.is_empty() && index_only.is_empty() {
        return Ok(());
    }
    for &base in &uncommitted {
        tracing::warn!(dir = %dir.display(), base, "rolling back an uncommitted cleaner swap");
        remove_temporaries(io, dir, base)?;
        report.stray_files_deleted += temporaries.get(&base).copied().unwrap_or(0);
    }
    let segment_bases = segment_bases(dir)?;
    for &base in committed.difference(&uncommitted) {
        let end = swap_end_offset(&temp_file(dir, base, LOG_SUFFIX, SWAP_SUFFIX))?;
        if end <= base {
            // Not a file the cleaner wrote (it fsyncs before the commit
            // and never writes an empty group): leave the old segments.
            tracing::warn!(dir = %dir.display(), base, "discarding a cleaner swap file holding no batch");
            remove_temporaries(io, dir, base)?;
            report.stray_files_deleted += temporaries.get(&base).copied().unwrap_or(0);
            continue;
        }
        tracing::warn!(dir = %dir.display(), base, end, "completing an interrupted cleaner swap");
        for &other in segment_bases.range(base + 1..end.max(base + 1)) {
            for suffix in SUFFIXES {
                io.remove_file(&offset_file(dir, other, suffix))?;
            }
        }
        io.rename(
            &temp_file(dir, base, LOG_SUFFIX, SWAP_SUFFIX),
            &offset_file(dir, base, LOG_SUFFIX),
        )?;
        report.swaps_completed += 1;
    }
    for base in committed.union(&index_only) {
        if uncommitted.contains(base) {
            continue;
        }
        for suffix in [INDEX_SUFFIX, TIME_INDEX_SUFFIX] {
            io.remove_file(&offset_file(dir, *base, suffix))?;
            io.remove_file(&temp_file(dir, *base, suffix, SWAP_SUFFIX))?;
            io.remove_file(&temp_file(dir, *base, suffix, CLEANED_SUFFIX))?;
        }
        if !committed.contains(base) {
            report.swaps_completed += 1;
        }
    }
    io.sync_dir(dir)
}

/// `(base, "log" | "index" | "timeindex", ".cleaned" | ".swap")` for a
/// cleaner temporary's file name.
fn parse_temp(name: &str) -> Option<(i64, &'static str, &'static str)> {
    let (rest, temp) = if let Some(rest) = name.strip_suffix(CLEANED_SUFFIX) {
        (rest, CLEANED_SUFFIX)
    } else {
        (name.strip_suffix(SWAP_SUFFIX)?, SWAP_SUFFIX)
    };
    let (stem, suffix) = rest.split_once('.')?;
    let suffix = SUFFIXES.into_iter().find(|s| *s == suffix)?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((stem.parse().ok()?, suffix, temp))
}

fn segment_bases(dir: &Path) -> io::Result<BTreeSet<i64>> {
    let mut bases = BTreeSet::new();
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if let Some(stem) = name.strip_suffix(".log") {
            if stem.len() == 20 && stem.bytes().all(|b| b.is_ascii_digit()) {
                if let Ok(base) = stem.parse() {
                    bases.insert(base);
                }
            }
        }
    }
    Ok(bases)
}

/// The offset after the last whole batch of a committed swap file, found
/// by walking batch headers. The file was fsynced before the commit, so
/// the walk normally reaches its end; if it does not, what follows the
/// last good batch is cut by the segment scan later.
fn swap_end_offset(path: &Path) -> io::Result<i64> {
    let file = File::open(path)?;
    let size = file.metadata()?.len();
    let mut position = 0u64;
    let mut end = 0i64;
    let mut header = [0u8; BATCH_HEADER_LEN];
    while position + BATCH_HEADER_LEN as u64 <= size {
        file.read_exact_at(&mut header, position)?;
        let Ok(parsed) = BatchHeader::parse(&header) else {
            break;
        };
        let total = parsed.total_len() as u64;
        if parsed.magic != 2 || parsed.batch_length < MIN_BATCH_LENGTH || position + total > size {
            break;
        }
        end = parsed.last_offset().saturating_add(1);
        position += total;
    }
    Ok(end)
}

/// Test hook: makes [`swap_in`] stop dead after a given file operation,
/// as a crash would, leaving the directory as it is.
#[derive(Debug, Default)]
struct CrashPoints {
    crashed: bool,
}

#[cfg(test)]
thread_local! {
    /// Crash at the n-th file operation of the swaps to come on this
    /// thread, counted across swaps (`None`: never).
    pub(crate) static CRASH_AFTER: std::cell::Cell<Option<usize>> = const { std::cell::Cell::new(None) };
}

impl CrashPoints {
    #[cfg(test)]
    fn step(&mut self) -> io::Result<()> {
        let due = CRASH_AFTER.with(|c| match c.get() {
            Some(1) => {
                c.set(None);
                true
            }
            Some(n) => {
                c.set(Some(n - 1));
                false
            }
            None => false,
        });
        if due {
            self.crashed = true;
            return Err(io::Error::other("simulated crash"));
        }
        Ok(())
    }

    #[cfg(not(test))]
    #[inline(always)]
    fn step(&mut self) -> io::Result<()> {
        Ok(())
    }
}
