//! The sparse time index of one segment: `(timestamp i64 BE, relative
//! offset u32 BE)` entries. Each entry says "the largest timestamp among the
//! records up to this offset"; timestamps strictly grow.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::storage_io::StorageIo;

/// Size of one time-index entry.
pub(crate) const TIME_ENTRY_LEN: usize = 12;

#[derive(Debug)]
pub(crate) struct TimeIndex {
    path: PathBuf,
    file: Arc<File>,
    io: Arc<dyn StorageIo>,
    entries: Vec<(i64, u32)>,
}

impl TimeIndex {
    /// Creates an empty index at `path`, truncating any file there.
    pub(crate) fn create(path: &Path, io: Arc<dyn StorageIo>) -> io::Result<TimeIndex> {
        let file = io.create(path)?;
        Ok(TimeIndex {
            path: path.to_path_buf(),
            file: Arc::new(file),
            io,
            entries: Vec::new(),
        })
    }

    /// Opens the index at `path`; returns whether it looked sane for a
    /// segment whose relative offsets stay below `max_relative`: whole
    /// entries, timestamps strictly growing, offsets not going back. An
    /// insane or missing index comes back empty, to be rebuilt.
    pub(crate) fn open(
        path: &Path,
        max_relative: u64,
        io: Arc<dyn StorageIo>,
    ) -> io::Result<(TimeIndex, bool)> {
        let file = match OpenOptions::new().read(true).write(true).open(path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Ok((TimeIndex::create(path, io)?, false));
            }
            Err(e) => return Err(e),
        };
        let mut bytes = Vec::new();
        (&file).read_to_end(&mut bytes)?;
        let mut index = TimeIndex {
            path: path.to_path_buf(),
            file: Arc::new(file),
            io,
            entries: Vec::new(),
        };
        let mut sane = bytes.len() % TIME_ENTRY_LEN == 0;
        if sane {
            for chunk in bytes.chunks_exact(TIME_ENTRY_LEN) {
                let mut ts = [0u8; 8];
                ts.copy_from_slice(&chunk[..8]);
                let timestamp = i64::from_be_bytes(ts);
                let relative = u32::from_be_bytes([chunk[8], chunk[9], chunk[10], chunk[11]]);
                let ordered = index
                    .entries
                    .last()
                    .is_none_or(|&(t, r)| timestamp > t && relative >= r);
                if !ordered || u64::from(relative) >= max_relative {
                    sane = false;
                    break;
                }
                index.entries.push((timestamp, relative));
            }
        }
        if !sane {
            index.reset()?;
        }
        Ok((index, sane))
    }

    /// Keeps only the first `count` entries, on disk too (undoing a failed
    /// append).
    pub(crate) fn truncate_entries(&mut self, count: usize) -> io::Result<()> {
        self.entries.truncate(count);
        self.io
            .set_len(&self.file, (self.entries.len() * TIME_ENTRY_LEN) as u64)
    }

    /// Number of entries for relative offsets below `relative` (those that
    /// survive cutting the segment's records there).
    pub(crate) fn entries_below_relative(&self, relative: u64) -> usize {
        self.entries
            .partition_point(|&(_, r)| u64::from(r) < relative)
    }

    /// Number of entries.
    pub(crate) fn entry_count(&self) -> usize {
        self.entries.len()
    }

    /// Drops every entry, on disk too.
    pub(crate) fn reset(&mut self) -> io::Result<()> {
        self.entries.clear();
        self.io.set_len(&self.file, 0)
    }

    /// Appends `(timestamp, relative)` if `timestamp` is newer than the last
    /// entry's; otherwise does nothing.
    pub(crate) fn maybe_append(&mut self, timestamp: i64, relative: u32) -> io::Result<()> {
        if self.entries.last().is_some_and(|&(t, _)| timestamp <= t) {
            return Ok(());
        }
        let mut entry = [0u8; TIME_ENTRY_LEN];
        entry[..8].copy_from_slice(&timestamp.to_be_bytes());
        entry[8..].copy_from_slice(&relative.to_be_bytes());
        let at = (self.entries.len() * TIME_ENTRY_LEN) as u64;
        self.io.write_all_at(&self.file, &entry, at)?;
        self.entries.push((timestamp, relative));
        Ok(())
    }

    /// The relative offset of the last entry whose timestamp is below
    /// `timestamp`: every record up to it is older than `timestamp`.
    pub(crate) fn last_older_than(&self, timestamp: i64) -> Option<u32> {
        let n = self.entries.partition_point(|&(t, _)| t < timestamp);
        n.checked_sub(1).map(|i| self.entries[i].1)
    }

    /// The last entry, if any.
    pub(crate) fn last(&self) -> Option<(i64, u32)> {
        self.entries.last().copied()
    }

    /// Bytes the index occupies on disk.
    pub(crate) fn size_bytes(&self) -> usize {
        self.entries.len() * TIME_ENTRY_LEN
    }

    pub(crate) fn file(&self) -> &Arc<File> {
        &self.file
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::storage_io::StdIo;

    #[test]
    fn keeps_only_growing_timestamps_and_finds_older_entries() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.timeindex");
        let (mut index, _) = TimeIndex::open(&path, 0, StdIo::shared()).unwrap();
        index.maybe_append(100, 3).unwrap();
        index.maybe_append(90, 5).unwrap();
        index.maybe_append(200, 9).unwrap();
        assert_eq!(index.size_bytes(), 24);
        assert_eq!(index.last_older_than(100), None);
        assert_eq!(index.last_older_than(101), Some(3));
        assert_eq!(index.last_older_than(1000), Some(9));
        let (reopened, sane) = TimeIndex::open(&path, 10, StdIo::shared()).unwrap();
        assert!(sane);
        assert_eq!(reopened.last(), Some((200, 9)));
    }
}
