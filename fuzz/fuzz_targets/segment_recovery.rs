//! Opening a log directory whose files hold arbitrary bytes (see
//! `runnel_fuzz::SegmentInput` for the layout).
//!
//! Properties:
//! - opening never panics, whatever the files hold;
//! - after an unclean shutdown (full recovery) the log opens, and reading
//!   from the log start offset to the log end offset returns only whole
//!   batches with magic 2 and a good CRC, whose offsets strictly increase and
//!   stay below the log end offset, and together those reads return every
//!   byte left in the segment files (an empty read below the log end offset
//!   is allowed only once nothing is left: a recovered segment that is empty
//!   but named past the previous one's end moves the log end offset past
//!   offsets that hold nothing);
//! - recovery is idempotent: reopening what recovery left truncates nothing
//!   and gives the same log end offset, trusted or not.
//!
//! After a clean shutdown the indexes and CRCs are trusted by design, so for
//! that mode only "no panic" is checked.
//!
//! Recovery checks what Kafka's recovery checks (size, magic, CRC, offsets),
//! not the rules a produce request must pass on top (a known codec, at least
//! one record, `lastOffsetDelta == recordsCount - 1`): a batch with a good
//! CRC that breaks those is kept. Set `RUNNEL_FUZZ_STRICT_RECOVERY=1` to
//! demand all of `validate_batch` from recovered batches instead
//! (`fuzz/regressions/segment_recovery/` holds an input that shows the
//! difference).
#![no_main]

use std::path::Path;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use runnel_model::Offset;
use runnel_protocol::batch::{
    split_batches, validate_batch, BatchError, BATCH_HEADER_LEN, MIN_BATCH_LENGTH,
};
use runnel_storage::{Log, LogConfig};

use runnel_fuzz::{SegmentInput, FLAG_CLEAN_SHUTDOWN, FLAG_FIX_CRCS, FLAG_TWO_SEGMENTS};

/// Bytes asked for per read; far above any input.
const READ_MAX_BYTES: u32 = 16 * 1024 * 1024;

fuzz_target!(|data: &[u8]| {
    let Some(mut input) = SegmentInput::parse(data) else {
        return;
    };
    if input.flags & FLAG_FIX_CRCS != 0 {
        fix_crcs(&mut input.log);
    }
    let dir = scratch_dir();
    write_files(dir.path(), &input);

    if input.flags & FLAG_CLEAN_SHUTDOWN != 0 {
        if let Ok((log, _)) = Log::open(dir.path(), LogConfig::default(), true) {
            let end = log.log_end_offset().0;
            let mut offset = log.log_start_offset().0;
            // Reads may fail on untrusted-but-trusted bytes; they must not panic.
            while offset < end {
                let Ok(slice) = log.read(Offset(offset), READ_MAX_BYTES, true) else {
                    break;
                };
                let Ok(bytes) = slice.read_to_vec() else { break };
                let last = split_batches(&bytes)
                    .map_while(Result::ok)
                    .map(|(_, h)| h.last_offset())
                    .last();
                match last {
                    Some(last) if last >= offset => offset = last.saturating_add(1),
                    _ => break,
                }
            }
        }
        return;
    }

    let (log, _) = Log::open(dir.path(), LogConfig::default(), false)
        .unwrap_or_else(|e| panic!("recovery must open any directory of segments: {e}"));
    let log_start = log.log_start_offset().0;
    let log_end = log.log_end_offset().0;
    assert!(log_start <= log_end);
    let read_bytes = read_all(&log, log_start, log_end);
    assert_eq!(read_bytes, segment_bytes(dir.path()), "reads missed bytes of the segments");
    log.close().expect("close after recovery");

    let (log, report) = Log::open(dir.path(), LogConfig::default(), false)
        .expect("reopening a recovered log");
    assert_eq!(report.truncated_bytes, 0, "second recovery truncated: {report}");
    assert_eq!(log.log_end_offset().0, log_end);
    log.close().expect("close after second recovery");

    let (log, _) = Log::open(dir.path(), LogConfig::default(), true)
        .expect("trusted reopen of a recovered log");
    assert_eq!(log.log_end_offset().0, log_end);
    assert_eq!(log.log_start_offset().0, log_start);
    assert_eq!(read_all(&log, log_start, log_end), read_bytes);
});

/// Total size of the `.log` files in `dir`.
fn segment_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .expect("list the log dir")
        .map(|entry| entry.expect("read a dir entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "log"))
        .map(|path| std::fs::metadata(path).expect("stat a segment").len())
        .sum()
}

/// Reads `[log_start, log_end)`, checks every batch returned, and returns
/// the number of bytes read.
fn read_all(log: &Log, log_start: i64, log_end: i64) -> u64 {
    let mut offset = log_start;
    let mut previous_last: Option<i64> = None;
    let mut total = 0;
    while offset < log_end {
        let slice = log
            .read(Offset(offset), READ_MAX_BYTES, true)
            .unwrap_or_else(|e| panic!("read at {offset} (log end {log_end}): {e}"));
        let bytes = slice.read_to_vec().expect("read the slice");
        if bytes.is_empty() {
            break;
        }
        total += bytes.len() as u64;
        let mut end = 0;
        for item in split_batches(&bytes) {
            let (at, header) = item.unwrap_or_else(|e| panic!("read at {offset}: {e}"));
            let batch = &bytes[at..at + header.total_len()];
            match validate_batch(batch, usize::MAX) {
                Ok(_) => {}
                Err(BatchError::InvalidRecord(_) | BatchError::Compression(_)) if !strict() => {}
                Err(e) => panic!("read at {offset} returned an invalid batch at +{at}: {e}"),
            }
            if let Some(previous) = previous_last {
                assert!(
                    header.base_offset > previous,
                    "batch at {} follows one ending at {previous}",
                    header.base_offset
                );
            }
            if at == 0 {
                assert!(header.last_offset() >= offset, "read at {offset} starts too early");
            }
            assert!(header.last_offset() < log_end, "batch beyond the log end");
            previous_last = Some(header.last_offset());
            end = at + header.total_len();
        }
        assert_eq!(end, bytes.len(), "read returned a partial batch");
        let last = previous_last.expect("a non-empty read holds a batch");
        let Some(next) = last.checked_add(1) else { break };
        offset = next;
    }
    total
}

/// Whether recovered batches must pass all of `validate_batch`.
fn strict() -> bool {
    static STRICT: OnceLock<bool> = OnceLock::new();
    *STRICT.get_or_init(|| {
        std::env::var_os("RUNNEL_FUZZ_STRICT_RECOVERY").is_some_and(|v| v != "0" && !v.is_empty())
    })
}

/// Rewrites the CRC of each batch the splitter frames, stopping at the
/// first it cannot.
fn fix_crcs(log: &mut [u8]) {
    let mut at = 0;
    while log.len() - at >= BATCH_HEADER_LEN {
        let length = i32::from_be_bytes([log[at + 8], log[at + 9], log[at + 10], log[at + 11]]);
        if length < MIN_BATCH_LENGTH {
            return;
        }
        let end = at + 12 + length as usize;
        if end > log.len() {
            return;
        }
        let crc = crc32c::crc32c(&log[at + 21..end]);
        log[at + 17..at + 21].copy_from_slice(&crc.to_be_bytes());
        at = end;
    }
}

/// A fresh directory, in memory when /dev/shm exists.
fn scratch_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("runnel-fuzz-")
        .tempdir_in("/dev/shm")
        .or_else(|_| tempfile::tempdir())
        .expect("create a temp dir")
}

fn write_files(dir: &Path, input: &SegmentInput) {
    let name = |base: i64, suffix: &str| dir.join(format!("{base:020}.{suffix}"));
    let write = |path: std::path::PathBuf, bytes: &[u8]| {
        std::fs::write(&path, bytes).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    };
    let (first, second) = if input.flags & FLAG_TWO_SEGMENTS != 0 && !input.log.is_empty() {
        input.log.split_at(usize::from(input.split) % input.log.len())
    } else {
        (&input.log[..], &[][..])
    };
    write(name(0, "log"), first);
    if !input.index.is_empty() {
        write(name(0, "index"), &input.index);
    }
    if !input.time_index.is_empty() {
        write(name(0, "timeindex"), &input.time_index);
    }
    if !second.is_empty() {
        let base = second
            .first_chunk::<8>()
            .map_or(1, |b| i64::from_be_bytes(*b))
            .max(1); // not 0: that is the first segment's name
        write(name(base, "log"), second);
    }
}
