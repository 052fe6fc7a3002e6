//! The sparse offset index of one segment: `(relative offset u32 BE, file
//! position u32 BE)` entries, appended every `index.interval.bytes` of log.
//!
//! Entries key on the *base* offset of the batch starting at the position,
//! so a lookup for offset `o` lands at or before the batch holding `o`.
//! The file is plain appended entries (no preallocation), kept in memory.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::storage_io::StorageIo;

/// Size of one offset-index entry.
pub(crate) const OFFSET_ENTRY_LEN: usize = 8;

#[derive(Debug)]
pub(crate) struct OffsetIndex {
    path: PathBuf,
    file: Arc<File>,
    io: Arc<dyn StorageIo>,
    entries: Vec<(u32, u32)>,
}

impl OffsetIndex {
    /// Creates an empty index at `path`, truncating any file there.
    pub(crate) fn create(path: &Path, io: Arc<dyn StorageIo>) -> io::Result<OffsetIndex> {
        let file = io.create(path)?;
        Ok(OffsetIndex {
            path: path.to_path_buf(),
            file: Arc::new(file),
            io,
            entries: Vec::new(),
        })
    }

    /// Opens the index at `path`. Returns the index and whether its
    /// contents looked sane against a log of `log_size` bytes: whole
    /// entries, both fields strictly growing, positions inside the log. An
    /// insane or missing index comes back empty, to be rebuilt.
    pub(crate) fn open(
        path: &Path,
        log_size: u64,
        io: Arc<dyn StorageIo>,
    ) -> io::Result<(OffsetIndex, bool)> {
        let file = match OpenOptions::new().read(true).write(true).open(path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Ok((OffsetIndex::create(path, io)?, false));
            }
            Err(e) => return Err(e),
        };
        let mut bytes = Vec::new();
        (&file).read_to_end(&mut bytes)?;
        let mut index = OffsetIndex {
            path: path.to_path_buf(),
            file: Arc::new(file),
            io,
            entries: Vec::new(),
        };
        let mut sane = bytes.len() % OFFSET_ENTRY_LEN == 0;
        if sane {
            for chunk in bytes.chunks_exact(OFFSET_ENTRY_LEN) {
                let relative = u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
                let position = u32::from_be_bytes([chunk[4], chunk[5], chunk[6], chunk[7]]);
                let ordered = index
                    .entries
                    .last()
                    .is_none_or(|&(r, p)| relative > r && position > p);
                if !ordered || u64::from(position) >= log_size {
                    sane = false;
                    break;
                }
                index.entries.push((relative, position));
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
            .set_len(&self.file, (self.entries.len() * OFFSET_ENTRY_LEN) as u64)
    }

    /// Number of entries pointing below `position` (those that survive
    /// cutting the log there).
    pub(crate) fn entries_below_position(&self, position: u64) -> usize {
        self.entries
            .partition_point(|&(_, p)| u64::from(p) < position)
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

    /// Appends an entry; `relative` and `position` must grow.
    pub(crate) fn append(&mut self, relative: u32, position: u32) -> io::Result<()> {
        debug_assert!(self
            .entries
            .last()
            .is_none_or(|&(r, p)| relative > r && position > p));
        let mut entry = [0u8; OFFSET_ENTRY_LEN];
        entry[..4].copy_from_slice(&relative.to_be_bytes());
        entry[4..].copy_from_slice(&position.to_be_bytes());
        let at = (self.entries.len() * OFFSET_ENTRY_LEN) as u64;
        self.io.write_all_at(&self.file, &entry, at)?;
        self.entries.push((relative, position));
        Ok(())
    }

    /// Position of the last indexed batch whose base offset is at most
    /// `relative`; 0 when there is none.
    pub(crate) fn lookup(&self, relative: u32) -> u32 {
        let n = self.entries.partition_point(|&(r, _)| r <= relative);
        if n == 0 {
            0
        } else {
            self.entries[n - 1].1
        }
    }

    /// The largest indexed position that is at most `position`, if any.
    /// Every indexed position is the start of a batch, so the bytes from an
    /// earlier batch start up to it are whole batches.
    pub(crate) fn floor_position(&self, position: u32) -> Option<u32> {
        let n = self.entries.partition_point(|&(_, p)| p <= position);
        n.checked_sub(1).map(|last| self.entries[last].1)
    }

    /// The last entry, if any.
    pub(crate) fn last(&self) -> Option<(u32, u32)> {
        self.entries.last().copied()
    }

    /// Bytes the index occupies on disk.
    pub(crate) fn size_bytes(&self) -> usize {
        self.entries.len() * OFFSET_ENTRY_LEN
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
    fn lookup_finds_the_floor_entry() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.index");
        let (mut index, _) = OffsetIndex::open(&path, 0, StdIo::shared()).unwrap();
        index.append(10, 100).unwrap();
        index.append(20, 200).unwrap();
        assert_eq!(index.lookup(5), 0);
        assert_eq!(index.lookup(10), 100);
        assert_eq!(index.lookup(19), 100);
        assert_eq!(index.lookup(25), 200);
        let (reopened, sane) = OffsetIndex::open(&path, 1000, StdIo::shared()).unwrap();
        assert!(sane);
        assert_eq!(reopened.lookup(25), 200);
    }

    #[test]
    fn floor_position_finds_the_last_entry_at_or_before() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.index");
        let (mut index, _) = OffsetIndex::open(&path, 0, StdIo::shared()).unwrap();
        assert_eq!(index.floor_position(u32::MAX), None);
        index.append(10, 100).unwrap();
        index.append(20, 200).unwrap();
        assert_eq!(index.floor_position(99), None);
        assert_eq!(index.floor_position(100), Some(100));
        assert_eq!(index.floor_position(199), Some(100));
        assert_eq!(index.floor_position(200), Some(200));
        assert_eq!(index.floor_position(u32::MAX), Some(200));
    }

    #[test]
    fn index_pointing_past_the_log_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.index");
        let (mut index, _) = OffsetIndex::open(&path, 0, StdIo::shared()).unwrap();
        index.append(10, 100).unwrap();
        let (reopened, sane) = OffsetIndex::open(&path, 50, StdIo::shared()).unwrap();
        assert!(!sane);
        assert_eq!(reopened.size_bytes(), 0);
    }
}
