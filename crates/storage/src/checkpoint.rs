//! Small per-partition checkpoint files holding one offset
//! (`log-start-offset`, `recovery-point-offset-checkpoint`), written to a
//! temporary file and renamed into place so a crash leaves the old or the
//! new value, never a torn one.

use std::io;
use std::path::Path;

use crate::storage_io::{replace_file, StorageIo};

/// File holding the log start offset raised by retention and DeleteRecords.
pub(crate) const LOG_START_OFFSET_FILE: &str = "log-start-offset";
/// File holding the offset below which the log is known to be fsynced.
pub(crate) const RECOVERY_POINT_FILE: &str = "recovery-point-offset-checkpoint";

/// Reads the offset in `dir/name`; `None` if missing or unreadable.
pub(crate) fn read_offset(dir: &Path, name: &str) -> Option<i64> {
    let text = std::fs::read_to_string(dir.join(name)).ok()?;
    text.trim().parse::<i64>().ok().filter(|&o| o >= 0)
}

/// Writes `offset` to `dir/name` through a temporary file and a rename;
/// with `sync`, fsyncs the file before the rename.
pub(crate) fn write_offset(
    io: &dyn StorageIo,
    dir: &Path,
    name: &str,
    offset: i64,
    sync: bool,
) -> io::Result<()> {
    replace_file(io, dir, name, format!("{offset}\n").as_bytes(), sync)
}
