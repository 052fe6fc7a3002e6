//! The seam between the log and the file system for everything that changes
//! files: creating them, writing, truncating and fsyncing. Reads go straight
//! to the `File` (the broker `sendfile`s from it), so only the operations
//! that can lose or tear data pass through here, and tests can make them
//! fail ([`crate::fault_injection::FaultyIo`]).
//!
//! The production implementation, [`StdIo`], is a direct call to `std::fs`;
//! the only cost of the seam is one virtual call per write.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

/// The file operations the log's writers (segments, indexes, checkpoints,
/// producer snapshots) and flushers perform.
pub trait StorageIo: fmt::Debug + Send + Sync {
    /// Creates (or truncates) the file at `path`, open for reading and
    /// writing.
    fn create(&self, path: &Path) -> io::Result<File>;
    /// Writes all of `buf` at `offset`. On error a prefix of `buf` may
    /// have been written.
    fn write_all_at(&self, file: &File, buf: &[u8], offset: u64) -> io::Result<()>;
    /// Truncates or extends the file to `len` bytes.
    fn set_len(&self, file: &File, len: u64) -> io::Result<()>;
    /// Fsyncs the file's data (`fdatasync`).
    fn sync_data(&self, file: &File) -> io::Result<()>;
    /// Fsyncs a directory, making creations, renames and removals in it
    /// durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// Renames `from` to `to`, replacing `to` atomically if it exists (the
    /// cleaner's segment swap).
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }
    /// Removes the file at `path`; a missing file is not an error.
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        match std::fs::remove_file(path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

/// The real file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct StdIo;

impl StdIo {
    /// A shared handle, the default of every log.
    pub fn shared() -> Arc<dyn StorageIo> {
        Arc::new(StdIo)
    }
}

impl StorageIo for StdIo {
    fn create(&self, path: &Path) -> io::Result<File> {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
    }

    fn write_all_at(&self, file: &File, buf: &[u8], offset: u64) -> io::Result<()> {
        FileExt::write_all_at(file, buf, offset)
    }

    fn set_len(&self, file: &File, len: u64) -> io::Result<()> {
        file.set_len(len)
    }

    fn sync_data(&self, file: &File) -> io::Result<()> {
        file.sync_data()
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }
}

/// Whether `err` means the disk (or the user's quota) is full: the one
/// write failure the log recovers from by itself (see
/// [`crate::LogError::DiskFull`]).
pub(crate) fn is_disk_full(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
    ) || matches!(err.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
}

/// Writes `bytes` as the whole content of `dir/name` through `name.tmp`
/// and a rename, so a crash leaves the old or the new content. With
/// `sync`, fsyncs the file before the rename. A failed write removes the
/// temporary file.
pub(crate) fn replace_file(
    io: &dyn StorageIo,
    dir: &Path,
    name: &str,
    bytes: &[u8],
    sync: bool,
) -> io::Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    let written = io.create(&tmp).and_then(|file| {
        io.write_all_at(&file, bytes, 0)?;
        if sync {
            io.sync_data(&file)?;
        }
        Ok(())
    });
    if let Err(err) = written {
        // Best effort: a leftover `.tmp` is deleted at the next open anyway.
        let _ = std::fs::remove_file(&tmp);
        return Err(err);
    }
    std::fs::rename(&tmp, dir.join(name))
}
