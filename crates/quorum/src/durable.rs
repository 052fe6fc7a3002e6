//! Small files replaced whole and durably, and the framing of the log file.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

/// Replaces `path` with `bytes` so that a crash leaves the old or the new
/// contents, never a mix: a temp file beside it is written and fsynced,
/// renamed over it, and the directory is fsynced.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut file = File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    sync_dir(path)
}

/// Fsyncs the directory holding `path`, so a create or rename in it is
/// durable.
pub fn sync_dir(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => File::open(dir)?.sync_all(),
        _ => Ok(()),
    }
}

/// Reads `path`, or `None` if it does not exist.
pub fn read_if_exists(path: &Path) -> io::Result<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// The header of one frame of the log file: payload length, then the
/// CRC-32C of the payload, both big-endian.
pub const FRAME_HEADER: usize = 8;

/// Appends one frame holding `payload` to `out`.
pub fn put_frame(out: &mut Vec<u8>, payload: &[u8]) {
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&crc32c::crc32c(payload).to_be_bytes());
    out.extend_from_slice(payload);
}

/// The frames of `bytes` with the position each starts at. Stops at the
/// first frame that is cut short or fails its CRC: what follows is a torn
/// write (the crash came before its fsync completed), and the returned
/// length is where the good data ends.
pub fn frames(bytes: &[u8]) -> (Vec<(u64, &[u8])>, u64) {
    let mut out = Vec::new();
    let mut pos = 0usize;
    while let Some(header) = bytes.get(pos..pos + FRAME_HEADER) {
        let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let crc = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
        let start = pos + FRAME_HEADER;
        let Some(payload) = start.checked_add(len).and_then(|end| bytes.get(start..end)) else {
            break;
        };
        if crc32c::crc32c(payload) != crc {
            break;
        }
        out.push((pos as u64, payload));
        pos = start + len;
    }
    (out, pos as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_stop_at_a_torn_or_corrupt_tail() {
        let mut bytes = Vec::new();
        put_frame(&mut bytes, b"one");
        put_frame(&mut bytes, b"two");
        let good = bytes.len() as u64;
        let (frames_read, end) = frames(&bytes);
        assert_eq!(frames_read.len(), 2);
        assert_eq!(frames_read[1], (11, &b"two"[..]));
        assert_eq!(end, good);

        let mut torn = bytes.clone();
        put_frame(&mut torn, b"three");
        torn.truncate(torn.len() - 2);
        let (frames_read, end) = frames(&torn);
        assert_eq!(frames_read.len(), 2);
        assert_eq!(end, good);

        let mut corrupt = bytes.clone();
        corrupt[FRAME_HEADER] ^= 1;
        let (frames_read, end) = frames(&corrupt);
        assert!(frames_read.is_empty());
        assert_eq!(end, 0);
    }

    #[test]
    fn an_absurd_length_is_a_torn_frame_not_a_panic() {
        let bytes = [0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 1, 2, 3];
        assert_eq!(frames(&bytes), (vec![], 0));
    }

    #[test]
    fn atomic_writes_replace_the_whole_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state.json");
        write_atomically(&path, b"first version").expect("write");
        write_atomically(&path, b"second").expect("write");
        assert_eq!(
            read_if_exists(&path).expect("read"),
            Some(b"second".to_vec())
        );
        assert_eq!(
            read_if_exists(&dir.path().join("missing")).expect("read"),
            None
        );
    }
}
