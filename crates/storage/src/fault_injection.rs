//! A [`StorageIo`] that fails on command, for tests of what the log does
//! when the disk misbehaves: a failed or short write, a full disk, a failed
//! fsync, a file that cannot be created.
//!
//! ```
//! use runnel_storage::fault_injection::{Fault, FaultyIo};
//!
//! let io = FaultyIo::new();
//! // The third write to a `.log` file writes 10 bytes, then fails with ENOSPC.
//! io.inject(Fault::write().on(".log").after(2).short(10).enospc());
//! // Every fsync fails with EIO until cleared.
//! io.inject(Fault::sync_data().persistent());
//! ```
//!
//! Faults match on the operation and, optionally, the end of the file's
//! path (read from `/proc/self/fd`, so Linux only). Each counts its own
//! matching operations; the first fault that is due fires.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::storage_io::{StdIo, StorageIo};

/// The operation a [`Fault`] applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultOp {
    /// [`StorageIo::create`].
    Create,
    /// [`StorageIo::write_all_at`].
    Write,
    /// [`StorageIo::set_len`].
    SetLen,
    /// [`StorageIo::sync_data`].
    SyncData,
    /// [`StorageIo::sync_dir`].
    SyncDir,
    /// [`StorageIo::rename`] (matched on the source path).
    Rename,
    /// [`StorageIo::remove_file`].
    Remove,
}

/// One planned failure. Built with [`Fault::write`] and friends, refined
/// with the builder methods, armed with [`FaultyIo::inject`].
#[derive(Debug, Clone)]
pub struct Fault {
    op: FaultOp,
    path_suffix: Option<String>,
    skip: u64,
    errno: i32,
    written_bytes: Option<usize>,
    persistent: bool,
}

impl Fault {
    fn new(op: FaultOp) -> Fault {
        Fault {
            op,
            path_suffix: None,
            skip: 0,
            errno: libc::EIO,
            written_bytes: None,
            persistent: false,
        }
    }

    /// Fails a write (by default with EIO, writing nothing).
    pub fn write() -> Fault {
        Fault::new(FaultOp::Write)
    }

    /// Fails an fsync of a file.
    pub fn sync_data() -> Fault {
        Fault::new(FaultOp::SyncData)
    }

    /// Fails an fsync of a directory.
    pub fn sync_dir() -> Fault {
        Fault::new(FaultOp::SyncDir)
    }

    /// Fails a file creation (nothing is created).
    pub fn create() -> Fault {
        Fault::new(FaultOp::Create)
    }

    /// Fails a truncation (the file is left as it was).
    pub fn set_len() -> Fault {
        Fault::new(FaultOp::SetLen)
    }

    /// Fails a rename (nothing is renamed); `on` matches the source path.
    pub fn rename() -> Fault {
        Fault::new(FaultOp::Rename)
    }

    /// Fails a file removal (the file stays).
    pub fn remove() -> Fault {
        Fault::new(FaultOp::Remove)
    }

    /// Applies only to files whose path ends with `suffix` (".log",
    /// ".index", "recovery-point-offset-checkpoint.tmp", ...).
    pub fn on(mut self, suffix: &str) -> Fault {
        self.path_suffix = Some(suffix.to_owned());
        self
    }

    /// Lets `count` matching operations succeed first.
    pub fn after(mut self, count: u64) -> Fault {
        self.skip = count;
        self
    }

    /// Fails with this OS error number instead of EIO.
    pub fn errno(mut self, errno: i32) -> Fault {
        self.errno = errno;
        self
    }

    /// Fails with ENOSPC, as a full disk does.
    pub fn enospc(self) -> Fault {
        self.errno(libc::ENOSPC)
    }

    /// For a write: really writes the first `bytes` bytes before failing,
    /// leaving a torn write on disk.
    pub fn short(mut self, bytes: usize) -> Fault {
        self.written_bytes = Some(bytes);
        self
    }

    /// Keeps failing every matching operation (after the skipped ones)
    /// until [`FaultyIo::clear`], instead of once.
    pub fn persistent(mut self) -> Fault {
        self.persistent = true;
        self
    }

    fn matches(&self, op: FaultOp, path: Option<&Path>) -> bool {
        if self.op != op {
            return false;
        }
        match (&self.path_suffix, path) {
            (None, _) => true,
            (Some(suffix), Some(path)) => path.to_string_lossy().ends_with(suffix.as_str()),
            (Some(_), None) => false,
        }
    }
}

/// A [`StorageIo`] over the real file system that fails the operations
/// its armed [`Fault`]s select.
#[derive(Debug, Default)]
pub struct FaultyIo {
    faults: Mutex<Vec<Fault>>,
    injected: AtomicU64,
}

impl FaultyIo {
    /// A new instance with no faults armed.
    pub fn new() -> Arc<FaultyIo> {
        Arc::new(FaultyIo::default())
    }

    /// Arms `fault`.
    pub fn inject(&self, fault: Fault) {
        self.faults.lock().push(fault);
    }

    /// Disarms every fault: the disk is healthy again.
    pub fn clear(&self) {
        self.faults.lock().clear();
    }

    /// How many failures were injected so far.
    pub fn injected(&self) -> u64 {
        self.injected.load(Ordering::Relaxed)
    }

    /// The fault due for this operation, if any, consuming one-shot faults
    /// and counting down skips.
    fn due(&self, op: FaultOp, path: Option<&Path>) -> Option<Fault> {
        let mut faults = self.faults.lock();
        let mut fired = None;
        for (i, fault) in faults.iter_mut().enumerate() {
            if !fault.matches(op, path) {
                continue;
            }
            if fault.skip > 0 {
                fault.skip -= 1;
                continue;
            }
            fired = Some(i);
            break;
        }
        let i = fired?;
        let fault = if faults[i].persistent {
            faults[i].clone()
        } else {
            faults.remove(i)
        };
        self.injected.fetch_add(1, Ordering::Relaxed);
        Some(fault)
    }

    fn due_for_file(&self, op: FaultOp, file: &File) -> Option<Fault> {
        let wants_path = {
            let faults = self.faults.lock();
            if faults.iter().all(|f| f.op != op) {
                return None;
            }
            faults.iter().any(|f| f.op == op && f.path_suffix.is_some())
        };
        let path = wants_path.then(|| file_path(file)).flatten();
        self.due(op, path.as_deref())
    }
}

/// The path `file` was opened at, without the " (deleted)" the kernel adds
/// to unlinked files.
fn file_path(file: &File) -> Option<PathBuf> {
    let link = std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd())).ok()?;
    let text = link.to_string_lossy();
    Some(PathBuf::from(
        text.strip_suffix(" (deleted)").unwrap_or(&text),
    ))
}

fn failure(fault: &Fault) -> io::Error {
    io::Error::from_raw_os_error(fault.errno)
}

impl StorageIo for FaultyIo {
    fn create(&self, path: &Path) -> io::Result<File> {
        match self.due(FaultOp::Create, Some(path)) {
            Some(fault) => Err(failure(&fault)),
            None => StdIo.create(path),
        }
    }

    fn write_all_at(&self, file: &File, buf: &[u8], offset: u64) -> io::Result<()> {
        let Some(fault) = self.due_for_file(FaultOp::Write, file) else {
            return StdIo.write_all_at(file, buf, offset);
        };
        if let Some(bytes) = fault.written_bytes {
            StdIo.write_all_at(file, &buf[..bytes.min(buf.len())], offset)?;
        }
        Err(failure(&fault))
    }

    fn set_len(&self, file: &File, len: u64) -> io::Result<()> {
        match self.due_for_file(FaultOp::SetLen, file) {
            Some(fault) => Err(failure(&fault)),
            None => StdIo.set_len(file, len),
        }
    }

    fn sync_data(&self, file: &File) -> io::Result<()> {
        match self.due_for_file(FaultOp::SyncData, file) {
            Some(fault) => Err(failure(&fault)),
            None => StdIo.sync_data(file),
        }
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        match self.due(FaultOp::SyncDir, Some(dir)) {
            Some(fault) => Err(failure(&fault)),
            None => StdIo.sync_dir(dir),
        }
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        match self.due(FaultOp::Rename, Some(from)) {
            Some(fault) => Err(failure(&fault)),
            None => StdIo.rename(from, to),
        }
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        match self.due(FaultOp::Remove, Some(path)) {
            Some(fault) => Err(failure(&fault)),
            None => StdIo.remove_file(path),
        }
    }
}
